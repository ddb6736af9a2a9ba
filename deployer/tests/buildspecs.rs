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

/// Runs one phase's commands in one shell in `dir`, as CodeBuild does, signed in to the pipeline
/// account (CodeBuild's role lives there); returns stdout.
fn run_phase(emu: &Emulator, dir: &Path, commands: &[String]) -> String {
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
        .envs(emu.credentials(PIPELINE))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{commands:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
async fn build_then_both_deploy_stages_put_one_artifact_into_sandbox_and_prod() {
    let emu = Emulator::start();
    let p = Project::new();
    // The emulator lacks UpdateTerminationProtection (stack_failures.rs covers it with mocks).
    p.edit(
        "environments/prod.toml",
        "termination_protection = true",
        "termination_protection = false",
    );
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
    p.write("app-binary", "#!/bin/sh\necho catalog\n");

    let build = buildspec(&template, "BuildProject");
    assert_eq!(build["env"]["exported-variables"][0], "ARTIFACT_SHA");
    // The rustup install and the two release builds take minutes and need the network: they are
    // replaced by the binaries above; every other command runs as written.
    let mut commands: Vec<String> = strings(&build["phases"]["build"]["commands"])
        .into_iter()
        .filter(|c| !c.starts_with("cargo build"))
        .map(|c| {
            if c.ends_with("deployer package") {
                format!("{c} --binary app-binary")
            } else {
                c
            }
        })
        .collect();
    commands.push("echo \"ARTIFACT_SHA=$ARTIFACT_SHA\"".into());
    let out = run_phase(&emu, &src, &commands);
    assert!(out.contains("catalog-pipeline: CREATE_COMPLETE"), "{out}");
    // The execution a self-update restarts finds the pipeline current and goes on: no loop.
    let out = run_phase(&emu, &src, &commands);
    assert!(out.contains("catalog-pipeline: no changes"), "{out}");
    let manifest: Value = serde_json::from_str(&p.read("dist/manifest.json")).unwrap();
    let sha = manifest["sha256"].as_str().unwrap();
    assert!(
        out.ends_with(&format!("ARTIFACT_SHA={sha}\n")),
        "the exported sha is the manifest's:\n{out}"
    );

    let artifact = tempfile::tempdir().unwrap();
    collect_artifact(
        &strings(&build["artifacts"]["files"]),
        &src,
        artifact.path(),
    );
    for project in ["DeploySandboxProject", "DeployProdProject"] {
        let spec = buildspec(&template, project);
        run_phase(
            &emu,
            artifact.path(),
            &strings(&spec["phases"]["build"]["commands"]),
        );
    }
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(sha); 3]
    );
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(sha); 3]
    );
}
