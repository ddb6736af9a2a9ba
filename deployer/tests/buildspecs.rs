//! The pipeline's buildspecs, run as CodeBuild would run them (each phase's commands in one
//! shell), against the emulator: Build's artifact files are all the deploy stages get, and the
//! deploy stages put the very same code into sandbox and prod.

mod common;
use common::{Emulator, PIPELINE, PROD, Project, SANDBOX, code_sha256s, lambda_sha};
use serde_json::Value;
use std::path::Path;

fn buildspec(template: &Value, project: &str) -> Value {
    common::yaml(
        template["Resources"][project]["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// Runs one phase's commands in one shell in `dir`, as CodeBuild does, with the credentials of
/// the pipeline action's own role and the action's environment variables; returns the exit
/// status and both streams.
fn run_phase(
    emu: &Emulator,
    role: &str,
    dir: &Path,
    commands: &[String],
    vars: &[(&str, &str)],
) -> (bool, String, String) {
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &commands.join("\n")])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_ENDPOINT_URL", &emu.url)
        .env("CODEBUILD_BUILD_ID", "catalog-build:0001")
        .envs(emu.role_credentials(PIPELINE, &format!("catalog-action-{role}")))
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `run_phase` that must succeed; returns stdout.
fn phase_ok(
    emu: &Emulator,
    role: &str,
    dir: &Path,
    commands: &[String],
    vars: &[(&str, &str)],
) -> String {
    let (ok, stdout, stderr) = run_phase(emu, role, dir, commands, vars);
    assert!(ok, "{role}: {commands:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Copies what an artifact spec's `files` name (`dir/**/*` or one file) from `src` to `dst`.
fn collect_artifact(files: &[String], src: &Path, dst: &Path) {
    for pattern in files {
        let rel = pattern.strip_suffix("/**/*").unwrap_or(pattern);
        let (from, to) = (src.join(rel), dst.join(rel));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if from.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            for entry in std::fs::read_dir(&from).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        } else {
            std::fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("artifact file {pattern} is missing: {e}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_action_runs_as_its_own_role_and_only_deploy_prod_reaches_prod() {
    let emu = Emulator::start();
    let p = Project::new();
    // The pipeline account first: the targets' deploy roles trust its action roles by ARN, and
    // AWS refuses a trust policy naming a role that does not exist.
    for (env, account) in [("pipeline", PIPELINE), ("sandbox", SANDBOX), ("prod", PROD)] {
        p.run_as(&emu, account, &["bootstrap", env]).expect(0);
    }
    p.run(&["synth", "pipeline"]).expect(0);
    let template: Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();

    // The source checkout, with the deployer that `cargo build --release -p deployer` would make.
    let src = p.path("");
    std::fs::create_dir_all(src.join("target/release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_deployer"),
        src.join("target/release/deployer"),
    )
    .unwrap();
    std::fs::write(p.path("app-binary"), common::stand_in_binary("catalog")).unwrap();

    let build = buildspec(&template, "BuildProject");
    assert_eq!(build["env"]["exported-variables"][0], "ARTIFACT_SHA");
    // The tests and the release build take minutes: they are replaced by the binaries above
    // (the local runner's test runs the tests' failure path); every other command runs as written.
    let mut commands: Vec<String> = strings(&build["phases"]["build"]["commands"])
        .into_iter()
        .filter(|c| !c.starts_with("cargo build") && c != "scripts/test")
        .map(|c| {
            c.replace(
                "then target/release/deployer package;",
                "then target/release/deployer package --binary app-binary;",
            )
        })
        .collect();
    commands.push("echo \"ARTIFACT_SHA=$ARTIFACT_SHA\"".into());
    // The Build action gives ROLLBACK_TO the pipeline variable RollbackTo, declared with the
    // default an execution started by a push takes.
    let pipeline = &template["Resources"]["Pipeline"]["Properties"];
    assert_eq!(pipeline["Variables"][0]["Name"], "RollbackTo", "{pipeline}");
    let default = pipeline["Variables"][0]["DefaultValue"].as_str().unwrap();
    let build_action = &pipeline["Stages"][1]["Actions"][0];
    assert_eq!(build_action["Name"], "Build");
    let variables: Value = serde_json::from_str(
        build_action["Configuration"]["EnvironmentVariables"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        variables,
        serde_json::json!([{"name": "ROLLBACK_TO", "value": "#{variables.RollbackTo}", "type": "PLAINTEXT"}])
    );
    let out = phase_ok(&emu, "build", &src, &commands, &[("ROLLBACK_TO", default)]);
    let manifest: Value = serde_json::from_str(&p.read("dist/manifest.json")).unwrap();
    let sha = manifest["sha256"].as_str().unwrap();
    assert!(
        out.ends_with(&format!("ARTIFACT_SHA={sha}\n")),
        "the exported sha is the manifest's:\n{out}"
    );

    // Build compiles merged code: its role reaches neither prod nor any stack.
    let deployer = "target/release/deployer".to_string();
    for attempt in [
        format!("{deployer} deploy prod --no-progress --artifact dist/manifest.json"),
        format!("{deployer} pipeline deploy --no-progress"),
    ] {
        let (ok, _, err) = run_phase(&emu, "build", &src, std::slice::from_ref(&attempt), &[]);
        assert!(!ok, "the Build action's role ran {attempt}");
        assert!(err.contains("AccessDenied"), "{attempt}: {err}");
    }

    let artifact = tempfile::tempdir().unwrap();
    collect_artifact(
        &strings(&build["artifacts"]["files"]),
        &src,
        artifact.path(),
    );
    // UpdatePipeline runs from Build's artifact alone; the execution it restarts finds the
    // pipeline current and goes on, so a self-update never loops.
    let update =
        strings(&buildspec(&template, "UpdatePipelineProject")["phases"]["build"]["commands"]);
    let out = phase_ok(&emu, "update-pipeline", artifact.path(), &update, &[]);
    assert!(out.contains("catalog-pipeline: CREATE_COMPLETE"), "{out}");
    let out = phase_ok(&emu, "update-pipeline", artifact.path(), &update, &[]);
    assert!(out.contains("catalog-pipeline: no changes"), "{out}");

    let deploy =
        |project: &str| strings(&buildspec(&template, project)["phases"]["build"]["commands"]);
    // CodePipeline resolves the deploy actions' ARTIFACT_SHA from Build's exported variable (the
    // pipeline's structure test asserts the mapping); here the test hands it over.
    let approved = [("ARTIFACT_SHA", sha)];
    phase_ok(
        &emu,
        "deploy-sandbox",
        artifact.path(),
        &deploy("DeploySandboxProject"),
        &approved,
    );
    // PrepareProd makes prod's change set through prod's propose role, which cannot execute it.
    let mut prepare =
        strings(&buildspec(&template, "PrepareProdProject")["phases"]["build"]["commands"]);
    prepare.push("echo \"CHANGE_SET_CATALOG=$CHANGE_SET_CATALOG\"".into());
    let out = phase_ok(&emu, "prepare-prod", artifact.path(), &prepare, &approved);
    let change_set = out
        .lines()
        .find_map(|l| l.strip_prefix("CHANGE_SET_CATALOG="))
        .unwrap()
        .to_string();
    assert!(change_set.starts_with("deployer-review-"), "{out}");
    let execute = format!(
        "target/release/deployer deploy prod --stack catalog --change-set {change_set} --no-progress --artifact dist/manifest.json"
    );
    let (ok, _, err) = run_phase(&emu, "prepare-prod", artifact.path(), &[execute], &[]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    let approved = [
        ("ARTIFACT_SHA", sha),
        ("CHANGE_SET_CATALOG", change_set.as_str()),
    ];

    // The sandbox action may not take prod's role either.
    let (ok, _, err) = run_phase(
        &emu,
        "deploy-sandbox",
        artifact.path(),
        &deploy("DeployProdProject"),
        &approved,
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");

    // An artifact replaced while it waited for approval (zip and manifest together) is refused:
    // the approval named the sha256 Build exported.
    let swapped = tempfile::tempdir().unwrap();
    collect_artifact(&strings(&build["artifacts"]["files"]), &src, swapped.path());
    std::fs::write(
        swapped.path().join("other"),
        common::stand_in_binary("other"),
    )
    .unwrap();
    let repackaged = std::process::Command::new(swapped.path().join("target/release/deployer"))
        .args(["package", "--binary", "other"])
        .current_dir(swapped.path())
        .output()
        .unwrap();
    assert!(repackaged.status.success());
    let (ok, _, err) = run_phase(
        &emu,
        "deploy-prod",
        swapped.path(),
        &deploy("DeployProdProject"),
        &approved,
    );
    assert!(!ok, "a swapped artifact reached prod");
    assert!(
        err.contains(&format!("but this deploy must ship {sha}")),
        "{err}"
    );

    let (ok, _, err) = run_phase(
        &emu,
        "deploy-prod",
        artifact.path(),
        &deploy("DeployProdProject"),
        &approved,
    );
    // Prod's stack is deployed; the emulator lacks UpdateTerminationProtection, which AWS has
    // (stack_failures.rs covers the call with mocks): the deploy says so and goes on.
    assert!(ok, "the prod Deploy action failed:\n{err}");
    assert!(
        err.contains("termination protection NOT turned on: the local emulator does not implement UpdateTerminationProtection"),
        "{err}"
    );
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(sha); 3]
    );
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(sha); 3]
    );
}
