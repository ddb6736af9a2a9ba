//! `deployer pipeline run --local`: the rendered pipeline's actions, run here against the
//! emulator (which runs no CodePipeline) as CodePipeline would run them: each with its own role,
//! Build's variables handed on, a stop at the approval, and prod changed only after it.

mod common;
use common::{App, Emulator, PIPELINE, PROD, Project, SANDBOX, code_sha256s, lambda_sha};
use serde_json::Value;

/// Bootstrapped accounts and a project whose Build makes no release build: the deployer under
/// test stands in for `cargo build --release -p deployer`'s, a stand-in binary for the app's (the
/// emulator runs neither), and `scripts/test` passes or fails as the test says. Every other
/// command of every buildspec runs as rendered.
fn project(emu: &Emulator) -> Project {
    let p = Project::new().signed_in(emu, PIPELINE);
    for (env, account) in [("pipeline", PIPELINE), ("sandbox", SANDBOX), ("prod", PROD)] {
        p.run_as(emu, account, &["bootstrap", env]).expect(0);
    }
    std::fs::create_dir_all(p.path("target/release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_deployer"),
        p.path("target/release/deployer"),
    )
    .unwrap();
    let template = "templates/pipeline.json.hbs";
    p.edit(
        template,
        "      - cargo build --release --locked -p deployer\\n",
        "",
    );
    p.edit(
        template,
        "then target/release/deployer package;",
        "then target/release/deployer package --binary app-binary;",
    );
    std::fs::create_dir_all(p.path("scripts")).unwrap();
    tests_pass(&p, true);
    p
}

fn tests_pass(p: &Project, pass: bool) {
    use std::os::unix::fs::PermissionsExt;
    let path = p.path("scripts/test");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho running the tests\nexit {}\n",
            u8::from(!pass)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn merge(p: &Project, version: &str) {
    std::fs::write(p.path("app-binary"), common::stand_in_binary(version)).unwrap();
}

/// `pipeline run --local` with `url` standing in for every stage's API, as JSON.
fn run_local(p: &Project, url: &str) -> common::Run {
    p.run(&[
        "pipeline",
        "run",
        "--local",
        "--verify-url",
        url,
        "--output",
        "json",
    ])
}

fn sha(execution: &Value) -> String {
    execution["variables"]["BuildVariables.ARTIFACT_SHA"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Prod's stack status: a first change set makes the stack, empty, in REVIEW_IN_PROGRESS.
async fn prod_status(emu: &Emulator) -> Option<String> {
    let stacks = common::cloudformation(emu, PROD)
        .describe_stacks()
        .stack_name("catalog-prod")
        .send()
        .await
        .ok()?;
    Some(stacks.stacks()[0].stack_status()?.as_str().to_string())
}

/// The project after its first merge ran up to prod's approval, the Verify actions' stand-in API
/// (the emulator runs none), and that run.
fn waiting_for_approval(emu: &Emulator) -> (Project, App, Value) {
    let p = project(emu);
    let app = App::start("open");
    merge(&p, "v1");
    let first = run_local(&p, &app.1).expect(0).json();
    assert_eq!(first["status"], "WaitingForApproval", "{first}");
    (p, app, first)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_reaches_prod_only_through_the_approval_with_the_artifact_sandbox_ran() {
    let emu = Emulator::start();
    let (p, app, first) = waiting_for_approval(&emu);
    let stages: Vec<(&str, &str)> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("Source", "Succeeded"),
            ("Build", "Succeeded"),
            ("UpdatePipeline", "Succeeded"),
            ("DeploySandbox", "Succeeded"),
            ("VerifySandbox", "Succeeded"),
            ("PrepareProd", "Succeeded"),
            ("ApproveProd", "Waiting"),
        ]
    );
    let v1 = sha(&first);
    // Prod's change set is made, and named in what the approver reads; nothing ran in prod.
    let change_set = first["variables"]["PrepareProdVariables.CHANGE_SET_CATALOG"]
        .as_str()
        .unwrap();
    assert!(change_set.starts_with("deployer-review-"), "{first}");
    assert!(
        first["waiting"]["summary"]
            .as_str()
            .unwrap()
            .ends_with(&format!("catalog={change_set}")),
        "{first}"
    );
    assert!(
        first["waiting"]["summary"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "Promote artifact sha256 {v1}, running in sandbox, to prod"
            )),
        "{first}"
    );
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(&v1); 3]
    );
    assert_eq!(
        prod_status(&emu).await.as_deref(),
        Some("REVIEW_IN_PROGRESS"),
        "prod changed before the approval"
    );

    // A newer merge supersedes the waiting execution: its artifact can no longer be promoted.
    merge(&p, "v2");
    let second = run_local(&p, &app.1).expect(0);
    assert!(
        second.stderr().contains(&format!(
            "execution {} (waiting for approval) is superseded by {}",
            first["id"].as_str().unwrap(),
            second.json()["id"].as_str().unwrap()
        )),
        "{}",
        second.stderr()
    );
    let v2 = sha(&second.json());
    assert_ne!(v1, v2);

    // A change set altered after the approval is refused: here the approved execution's own
    // templates, edited while it waited, no longer make the change set Prepare made.
    let run_dir = p.path(&format!(
        ".deployer/runs/{}",
        second.json()["id"].as_str().unwrap()
    ));
    let template = run_dir.join("templates/catalog.json.hbs");
    let original = std::fs::read_to_string(&template).unwrap();
    // (A key added before one already there would be overwritten by it: change the value.)
    assert!(original.contains("\"Timeout\": 10,"));
    std::fs::write(
        &template,
        original.replacen("\"Timeout\": 10,", "\"Timeout\": 29,", 1),
    )
    .unwrap();
    let refused = p.run(&["approve", "--local", "--yes"]).expect(1).stderr();
    assert!(
        refused
            .contains("was made from another template, parameters or artifact than this deploy's"),
        "{refused}"
    );
    assert_eq!(
        prod_status(&emu).await.as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );

    merge(&p, "v2");
    let third = run_local(&p, &app.1).expect(0).json();
    let v2 = sha(&third);
    let approved = p
        .run(&["approve", "--local", "--yes", "--output", "json"])
        .expect(0);
    assert!(
        approved
            .stderr()
            .contains(&format!("Promote artifact sha256 {v2}")),
        "approve shows what it promotes: {}",
        approved.stderr()
    );
    // and the change set's rows, as Prepare made them
    assert!(
        approved
            .stderr()
            .contains("prod's change set for catalog-prod")
            && approved.stderr().contains("Add      QueryFunction"),
        "{}",
        approved.stderr()
    );
    // IAM and security rows again, under their own heading.
    let security = approved
        .stderr()
        .split("IAM and security changes, read these first:")
        .nth(1)
        .and_then(|rest| rest.split("ApproveProd/PromoteToProd: approved").next())
        .unwrap_or_default()
        .to_string();
    assert!(
        security.contains("AWS::IAM::Role") && !security.contains("AWS::Lambda::Function"),
        "{}",
        approved.stderr()
    );
    let approved = approved.json();
    assert_eq!(approved["id"], third["id"]);
    assert_eq!(approved["status"], "Succeeded", "{approved}");
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(&v2); 3]
    );
    // What CodePipeline would keep, the runner keeps: newest first.
    let status = p
        .run(&["pipeline", "status", "--local", "--output", "json"])
        .expect(0)
        .json();
    let statuses: Vec<&str> = status["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Succeeded", "Failed", "Superseded"]);
    // Nothing waits now; the superseded execution stays superseded.
    let err = p.run(&["approve", "--local", "--yes"]).expect(2).stderr();
    assert!(
        err.contains("no local execution waits for approval"),
        "{err}"
    );
}

/// A second command while one runs the local pipeline (two approvals in two terminals, a run
/// beside an approval) is refused, and changes nothing: one approval promotes once.
#[tokio::test(flavor = "multi_thread")]
async fn one_command_at_a_time_runs_the_local_pipeline() {
    let emu = Emulator::start();
    let (p, app, first) = waiting_for_approval(&emu);
    let before = prod_status(&emu).await;
    // Another deployer holding the lock, as a running approval does.
    let held = std::fs::File::open(p.path(".deployer/pipeline-runs.lock")).unwrap();
    held.lock().unwrap();
    let err = p.run(&["approve", "--local", "--yes"]).expect(2).stderr();
    assert!(
        err.contains("another deployer command is running this project's local pipeline")
            && err.contains(".deployer/pipeline-runs.lock"),
        "{err}"
    );
    merge(&p, "v2");
    let err = run_local(&p, &app.1).expect(2).stderr();
    assert!(err.contains("nothing was done"), "{err}");
    let status = p
        .run(&["pipeline", "status", "--local", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(
        status["executions"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(status["executions"][0]["id"], first["id"]);
    assert_eq!(status["executions"][0]["status"], "WaitingForApproval");
    assert_eq!(prod_status(&emu).await, before);
    // Once the other command has ended, the approval goes through.
    drop(held);
    let approved = p
        .run(&["approve", "--local", "--yes", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(approved["id"], first["id"]);
    assert_eq!(approved["status"], "Succeeded", "{approved}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_stops_the_run_before_sandbox() {
    let emu = Emulator::start();
    let p = project(&emu);
    let app = App::start("open");
    merge(&p, "v1");
    tests_pass(&p, false);
    let run = run_local(&p, &app.1).expect(1);
    assert!(
        run.stderr()
            .contains("Build/Build failed: its commands exited with exit status: 1"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("running the tests"));
    let sandbox = common::cloudformation(&emu, SANDBOX)
        .describe_stacks()
        .stack_name("catalog-sandbox")
        .send()
        .await;
    assert!(sandbox.is_err(), "sandbox was deployed after a red test");

    // A failing smoke test stops the run after sandbox, before prod is prepared.
    tests_pass(&p, true);
    let run = run_local(&p, "http://127.0.0.1:9").expect(1);
    assert!(
        run.stderr().contains("VerifySandbox/VerifySandbox failed")
            && run.stderr().contains("FAIL GET /health answers 200"),
        "{}",
        run.stderr()
    );
    let prod = common::cloudformation(&emu, PROD)
        .describe_stacks()
        .stack_name("catalog-prod")
        .send()
        .await;
    assert!(prod.is_err(), "prod was prepared after a failed smoke test");
    // Without --verify-url the Verify actions need the local stand-in, which needs cargo-lambda:
    // said before anything runs.
    let err = p
        .run_with(
            &["pipeline", "run", "--local"],
            &[("CARGO_LAMBDA", "/nonexistent/cargo-lambda")],
        )
        .expect(2)
        .stderr();
    assert!(
        err.contains("needs cargo-lambda") && err.contains("scripts/emulator install"),
        "{err}"
    );

    // Against AWS (no emulator endpoint) the local runner does not start.
    let err = p
        .run_unset(&["pipeline", "run", "--local"], &[], &["AWS_ENDPOINT_URL"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("--local runs the pipeline against the local emulator only"),
        "{err}"
    );
}

/// A merge that changes the pipeline is applied by the pipeline's own UpdatePipeline action,
/// under its role (with IAM enforced: it lists the stack's change sets before making its own).
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_that_changes_the_pipeline_is_applied_by_the_pipeline_itself() {
    let emu = Emulator::start();
    let (p, app, _) = waiting_for_approval(&emu);
    p.edit(
        "templates/pipeline.json.hbs",
        "one artifact throughout",
        "one artifact throughout, changed by a merge",
    );
    merge(&p, "v2");
    let run = run_local(&p, &app.1).expect(0).json();
    assert_eq!(run["status"], "WaitingForApproval", "{run}");
    let deployed = common::cloudformation(&emu, PIPELINE)
        .get_template()
        .stack_name("catalog-pipeline")
        .send()
        .await
        .unwrap();
    assert!(
        deployed
            .template_body()
            .unwrap()
            .contains("changed by a merge"),
        "the pipeline stack was not updated"
    );
}

/// A merge that takes away the approval before prod is refused by the pipeline's own
/// UpdatePipeline action, so the run stops before anything deploys without it; an administrator
/// of the pipeline account may still apply it by hand, and is told what it removes. A pipeline
/// stack whose template the deployer cannot read (YAML, deployed by hand) is not updated by the
/// pipeline itself either.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_cannot_take_away_the_approval_before_prod() {
    let emu = Emulator::start();
    let (p, app, _) = waiting_for_approval(&emu);

    // The pipeline stack redeployed by hand from YAML: the pipeline cannot read which approvals
    // it has, so it does not update itself past it.
    let cfn = common::cloudformation(&emu, PIPELINE);
    let deployed = cfn
        .get_template()
        .stack_name("catalog-pipeline")
        .send()
        .await
        .unwrap();
    let json: Value = serde_json::from_str(deployed.template_body().unwrap()).unwrap();
    cfn.update_stack()
        .stack_name("catalog-pipeline")
        .template_body(serde_norway::to_string(&json).unwrap())
        .send()
        .await
        .unwrap();
    // The emulator applies an update before it answers.
    let stacks = cfn
        .describe_stacks()
        .stack_name("catalog-pipeline")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stacks.stacks()[0].stack_status().unwrap().as_str(),
        "UPDATE_COMPLETE"
    );
    merge(&p, "v2");
    let err = run_local(&p, &app.1).expect(1).stderr();
    assert!(
        err.contains("UpdatePipeline/UpdatePipeline failed") && err.contains("is not JSON"),
        "{err}"
    );
    // An administrator puts the deployer's JSON back, told what was not checked.
    let err = p.run(&["pipeline", "deploy"]).expect(0).stderr();
    assert!(
        err.contains("whether this update keeps its approvals is not checked"),
        "{err}"
    );

    p.edit(
        "environments/pipeline.toml",
        "[[stages]]\nenvironment = \"prod\"\napproval = true",
        "[[stages]]\nenvironment = \"prod\"",
    );
    p.edit(
        "environments/prod.toml",
        "require_approval = true",
        "require_approval = false",
    );
    merge(&p, "v2");
    let err = run_local(&p, &app.1).expect(1).stderr();
    assert!(
        err.contains("UpdatePipeline/UpdatePipeline failed")
            && err.contains("removes the manual approval before DeployProd"),
        "{err}"
    );
    assert!(!err.contains("== DeploySandbox"), "{err}");
    // Prod holds only the first run's change set, waiting for its approval.
    assert_eq!(
        prod_status(&emu).await.as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );

    let err = p.run(&["pipeline", "deploy"]).expect(0).stderr();
    assert!(
        err.contains("warning: this removes the manual approval before DeployProd"),
        "{err}"
    );
}

/// Without --verify-url, Verify checks the deployed stack's own functions: the artifact's
/// bootstrap in Lambda mode under cargo-lambda's runtime API, each with the Handler, environment
/// and (IAM-enforced) role the stack gave it, behind a router built from the deployed template's
/// routes. A Handler the binary does not know passes against `app serve` but fails here.
#[tokio::test(flavor = "multi_thread")]
async fn verify_runs_the_promoted_artifact_as_lambda_would_and_a_wrong_handler_stops_the_run() {
    let emu = Emulator::start();
    let p = project(&emu);
    // The real app (the debug build beside the deployer), not a stand-in binary.
    let app = std::path::Path::new(env!("CARGO_BIN_EXE_deployer")).with_file_name("app");
    std::fs::copy(&app, p.path("app-binary")).unwrap();
    let cargo_lambda = common::repo_root().join(".venv/bin/cargo-lambda");
    assert!(
        cargo_lambda.is_file(),
        "{} is missing: run scripts/emulator install",
        cargo_lambda.display()
    );
    let cargo_lambda = cargo_lambda.to_str().unwrap();
    // cargo-lambda asks cargo for the (empty) project it serves from; the harness's HOME has no
    // rustup settings, so it is given this build's cargo.
    let cargo = ("CARGO", env!("CARGO"));
    let run = p
        .run_with(
            &["pipeline", "run", "--local", "-o", "json"],
            &[("CARGO_LAMBDA", cargo_lambda), cargo],
        )
        .expect(0);
    let err = run.stderr();
    assert!(
        err.contains("VerifySandbox: the local stand-in for API Gateway at http://127.0.0.1:")
            && err.contains(
                "catalog-sandbox's CommandFunction and QueryFunction run this run's artifact"
            ),
        "{err}"
    );
    // The smoke test went through both functions: a sign-up (command, over the table and the
    // signing secret, as the command role) and the reads (query).
    for (check, status) in [
        ("POST /signup", "HTTP 201"),
        ("POST /login as the new user", "HTTP 200"),
        ("POST /products as a new reader", "HTTP 403"),
        ("GET /products answers 200", "HTTP 200"),
    ] {
        let line = err.lines().find(|l| l.contains(check)).unwrap_or_default();
        assert!(
            line.trim_start().starts_with("ok") && line.contains(status),
            "{check}: {line:?}\n{err}"
        );
    }
    assert_eq!(run.json()["status"], "WaitingForApproval");

    // The command function's Handler misspelt in the template: the binary refuses it at start,
    // the sign-up gets no answer, Verify fails and prod is never prepared (this run supersedes
    // the one waiting).
    p.edit(
        "templates/catalog.json.hbs",
        r#""Handler": "command","#,
        r#""Handler": "comand","#,
    );
    let run = p
        .run_with(
            &["pipeline", "run", "--local"],
            &[("CARGO_LAMBDA", cargo_lambda), cargo],
        )
        .expect(1);
    let err = run.stderr();
    assert!(
        err.contains("VerifySandbox/VerifySandbox failed")
            && err.contains("stand-in-CommandFunction.log"),
        "{err}"
    );
    // The function failed at start: its log says why, and the API answered at once, as Lambda
    // does, rather than after timeouts.
    assert!(
        err.contains("POST /signup (201 open, 403 closed)") && err.contains("HTTP 502"),
        "{err}"
    );
    assert!(
        !err.contains("PrepareProd: as"),
        "prod was prepared after a failed Verify:\n{err}"
    );
}

/// `rollback prod`: a new execution ships the artifact prod ran before through every stage (each
/// deploys it from its own history and bucket: nothing is built) and waits at the approval, like
/// any merge; prod goes back only once it is approved. On AWS it starts CodePipeline with the
/// variable Build reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_of_prod_goes_through_sandbox_and_the_approval() {
    let emu = Emulator::start();
    // Two builds reach prod; the rollback goes back to the one that made its stack.
    let (p, app, first) = waiting_for_approval(&emu);
    let v1 = sha(&first);
    p.run(&["approve", "--local", "--yes"]).expect(0);
    merge(&p, "v2");
    let v2 = sha(&run_local(&p, &app.1).expect(0).json());
    p.run(&["approve", "--local", "--yes"]).expect(0);
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(&v2); 3]
    );

    // A later build on the branch: a rollback recalls the artifact, it does not build.
    merge(&p, "v3");
    let rollback = p
        .run(&[
            "rollback",
            "prod",
            "--local",
            "--verify-url",
            &app.1,
            "--output",
            "json",
        ])
        .expect(0);
    let run = rollback.json();
    assert!(
        rollback.stderr().contains(&format!(
            "catalog-prod: from {} back to {}",
            &v2[..12],
            &v1[..12]
        )),
        "{}",
        rollback.stderr()
    );
    assert_eq!(run["status"], "WaitingForApproval", "{run}");
    assert_eq!(run["variables"]["variables.RollbackTo"], v1.as_str());
    assert_eq!(sha(&run), v1, "Build exported the recalled artifact");
    assert!(
        run["waiting"]["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("Promote artifact sha256 {v1}, running in sandbox")),
        "{run}"
    );
    // Sandbox took v1 from its own history; prod waits on v2.
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(&v1); 3]
    );
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(&v2); 3]
    );
    p.run(&["approve", "--local", "--yes"]).expect(0);
    assert_eq!(
        code_sha256s(&emu, PROD, "catalog-prod").await,
        vec![lambda_sha(&v1); 3]
    );
    let history = p
        .run(&["history", "prod", "--output", "json"])
        .expect(0)
        .json();
    let entries: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manifest"]["sha256"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (v1.as_str(), "rolled-back"),
            (v2.as_str(), "deployed"),
            (v1.as_str(), "deployed")
        ]
    );

    // Only an artifact the stack ran comes back: a recall of any other is refused by the deploy.
    let unknown = "ab".repeat(32);
    p.run(&["package", "--from-history", &unknown, "--out", "recall"])
        .expect(0);
    let err = p
        .run(&["deploy", "sandbox", "--artifact", "recall/manifest.json"])
        .expect(2)
        .stderr();
    assert!(
        err.contains(&format!("catalog-sandbox never ran artifact {unknown}")),
        "{err}"
    );

    // On AWS: an execution of CodePipeline with RollbackTo set (the emulator keeps no pipeline
    // made through CloudFormation, so this one is made directly, as `pipeline deploy` would).
    let cp = aws_sdk_codepipeline::Client::new(&common::sdk_config(&emu, PIPELINE));
    let stage = |name: &str| {
        aws_sdk_codepipeline::types::StageDeclaration::builder()
            .name(name)
            .actions(
                aws_sdk_codepipeline::types::ActionDeclaration::builder()
                    .name(name)
                    .action_type_id(
                        aws_sdk_codepipeline::types::ActionTypeId::builder()
                            .category(aws_sdk_codepipeline::types::ActionCategory::Approval)
                            .owner(aws_sdk_codepipeline::types::ActionOwner::Aws)
                            .provider("Manual")
                            .version("1")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let declaration = aws_sdk_codepipeline::types::PipelineDeclaration::builder()
        .name("catalog")
        .role_arn(format!("arn:aws:iam::{PIPELINE}:role/catalog-codepipeline"))
        .stages(stage("Source"))
        .stages(stage("Approve"));
    // One deployed by an older deployer declares no RollbackTo: refused, saying to update it.
    cp.create_pipeline()
        .pipeline(declaration.clone().build().unwrap())
        .send()
        .await
        .unwrap();
    let err = p.run(&["rollback", "prod"]).expect(2).stderr();
    assert!(
        err.contains("pipeline catalog declares no variable RollbackTo")
            && err.contains("deployer pipeline deploy"),
        "{err}"
    );
    let variable = aws_sdk_codepipeline::types::PipelineVariableDeclaration::builder()
        .name("RollbackTo")
        .default_value("none")
        .build()
        .unwrap();
    cp.update_pipeline()
        .pipeline(declaration.variables(variable).build().unwrap())
        .send()
        .await
        .unwrap();
    let started = p
        .run(&["rollback", "prod", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(started["to"], v2.as_str(), "{started}");
    let execution = cp
        .get_pipeline_execution()
        .pipeline_name("catalog")
        .pipeline_execution_id(started["execution_id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let variables: Vec<(&str, &str)> = execution
        .pipeline_execution()
        .unwrap()
        .variables()
        .iter()
        .map(|v| (v.name().unwrap(), v.resolved_value().unwrap()))
        .collect();
    assert_eq!(variables, [("RollbackTo", v2.as_str())]);
}
