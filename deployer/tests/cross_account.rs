//! The plumbing end to end: an operator in the pipeline account deploys into sandbox through STS,
//! and the stack lives in sandbox only.

mod common;
use common::{
    Emulator, PIPELINE, PROD, Project, SANDBOX, bootstrapped, cloudformation, code_sha256s,
    lambda_sha, package,
};

async fn stack_names(cfn: &aws_sdk_cloudformation::Client) -> Vec<String> {
    cfn.describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .filter_map(|s| s.stack_name().map(str::to_string))
        .collect()
}

async fn change_set_count(emu: &Emulator) -> usize {
    cloudformation(emu, SANDBOX)
        .list_change_sets()
        .stack_name("catalog-sandbox")
        .send()
        .await
        .unwrap()
        .summaries()
        .len()
}

#[tokio::test]
async fn the_function_runs_the_packaged_zip_uploaded_once_and_code_changes_update_it() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let v1 = package(&p, "v1");
    let first = p
        .run(&["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(first["artifact"]["uploaded"], true);
    assert_eq!(first["artifact"]["sha256"], v1["sha256"]);
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(v1["sha256"].as_str().unwrap()); 3]
    );

    // Nothing changed: no upload, no change set.
    let sets = change_set_count(&emu).await;
    let again = p
        .run(&["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(again["outcome"], "no-changes");
    assert_eq!(again["artifact"]["uploaded"], false);
    assert_eq!(change_set_count(&emu).await, sets);

    let v2 = package(&p, "v2");
    assert_ne!(v1["sha256"], v2["sha256"]);
    let updated = p
        .run(&["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(updated["outcome"], "updated", "{updated}");
    assert_eq!(updated["artifact"]["uploaded"], true);
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(v2["sha256"].as_str().unwrap()); 3]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_replaced_in_the_bucket_is_refused_naming_both_sums() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let v1 = package(&p, "v1");
    p.run(&["deploy", "sandbox"]).expect(0);
    let sha = v1["sha256"].as_str().unwrap();
    let bucket = format!("catalog-artifacts-{SANDBOX}-us-east-1");
    // By content, under the package pipeline.toml's [artifact] names.
    assert_eq!(v1["package"], "app");
    let key = format!("app/{sha}.zip");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&common::sdk_config(&emu, SANDBOX))
            .force_path_style(true)
            .build(),
    );
    // The upload went up with its SHA-256, which S3 checked and keeps.
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), Some(lambda_sha(sha).as_str()));
    // An administrator of sandbox replaces it. On AWS the bucket policy refuses a PutObject
    // without If-None-Match (permissions.rs asserts it); the emulator does not evaluate bucket
    // policies, so this stands in for whatever got past it.
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(b"not the artifact".to_vec().into())
        .send()
        .await
        .unwrap();
    // The next deploy that changes the stack (the same artifact, more memory) reads the object.
    p.edit(
        "environments/sandbox.toml",
        "memory_mb = 256\n# reserved_concurrency = 50",
        "memory_mb = 512\n# reserved_concurrency = 50",
    );
    let err = p.run(&["deploy", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains(&format!("s3://{bucket}/{key} is not the artifact")),
        "{err}"
    );
    assert!(err.contains(&format!("the manifest says {sha}")), "{err}");
    let replaced = common::hex_sha256(b"not the artifact");
    assert!(
        err.contains(&format!("S3 holds sha256 {replaced}")),
        "{err}"
    );
}

#[test]
fn deploy_without_a_package_says_how_to_make_one() {
    let p = Project::new();
    let err = p.run(&["deploy", "sandbox"]).expect(2).stderr();
    assert!(err.contains("no artifact at dist/manifest.json"), "{err}");
    assert!(err.contains("deployer package"), "{err}");
}

#[test]
fn a_zip_that_does_not_match_its_manifest_is_refused() {
    let p = Project::new();
    let manifest = package(&p, "v1");
    p.write(
        &format!("dist/{}", manifest["zip"].as_str().unwrap()),
        "tampered",
    );
    let err = p.run(&["deploy", "sandbox"]).expect(2).stderr();
    assert!(err.contains("does not match dist/manifest.json"), "{err}");
}

#[test]
fn packaging_is_deterministic() {
    let p = Project::new();
    let a = package(&p, "same");
    let bytes_a = std::fs::read(p.path(&format!("dist/{}", a["zip"].as_str().unwrap()))).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a different mtime would show
    let b = package(&p, "same");
    let bytes_b = std::fs::read(p.path(&format!("dist/{}", b["zip"].as_str().unwrap()))).unwrap();
    assert_eq!(
        (a["sha256"].clone(), bytes_a),
        (b["sha256"].clone(), bytes_b)
    );
    assert_eq!(a["architecture"], "x86_64");
}

#[tokio::test]
async fn deploy_assumes_a_role_in_sandbox_and_the_stack_stays_there() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);

    let run = p.run(&["deploy", "sandbox", "--output", "json"]).expect(0);
    let report = run.json();
    assert_eq!(report["stack"], "catalog-sandbox");
    assert_eq!(report["outcome"], "created");
    assert_eq!(report["status"], "CREATE_COMPLETE");
    let changed: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["logical_id"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"Table"), "{changed:?}");
    // Events stream on stderr while stdout carries the one JSON report.
    assert!(run.stderr().contains("CREATE_COMPLETE"), "{}", run.stderr());
    // Not a terminal: plain lines, no progress display.
    assert!(!run.stderr().contains('\x1b'), "{:?}", run.stderr());
    // Before acting, one line says where and as whom, and that the endpoint is not AWS.
    let first = run.stderr().lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!(
            "sandbox: account {SANDBOX}, us-east-1, as arn:aws:iam::{SANDBOX}:role/catalog-sandbox-deploy, at {}",
            emu.url
        )) && first.ends_with("(not AWS)"),
        "{first}"
    );

    let mut sandbox = stack_names(&cloudformation(&emu, SANDBOX)).await;
    sandbox.sort();
    assert_eq!(sandbox, ["catalog-bootstrap", "catalog-sandbox"]);
    assert!(
        stack_names(&cloudformation(&emu, PIPELINE))
            .await
            .is_empty()
    );
    assert!(stack_names(&cloudformation(&emu, PROD)).await.is_empty());

    // The stack carries what it was made from.
    let stack = cloudformation(&emu, SANDBOX)
        .describe_stacks()
        .stack_name("catalog-sandbox")
        .send()
        .await
        .unwrap()
        .stacks()[0]
        .clone();
    let tags: Vec<(&str, &str)> = stack
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(tags.contains(&("env", "sandbox")), "{tags:?}");
    assert!(tags.contains(&("app", "catalog")), "{tags:?}");

    // The same again: nothing to do, and still exit 0.
    let again = p.run(&["deploy", "sandbox", "--output", "json"]).expect(0);
    assert_eq!(again.json()["outcome"], "no-changes");

    let outputs = p
        .run(&["outputs", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(outputs["stack"], "catalog-sandbox");
    assert_eq!(outputs["status"], "CREATE_COMPLETE");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_import_topic_delivers_to_the_import_function_it_may_invoke() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    let config = common::sdk_config(&emu, SANDBOX);
    let topic = format!("arn:aws:sns:us-east-1:{SANDBOX}:catalog-sandbox-import");
    let function = format!("arn:aws:lambda:us-east-1:{SANDBOX}:function:catalog-sandbox-import");
    let subs = aws_sdk_sns::Client::new(&config)
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let subs: Vec<(&str, &str)> = subs
        .subscriptions()
        .iter()
        .map(|s| (s.protocol().unwrap(), s.endpoint().unwrap()))
        .collect();
    assert_eq!(subs, [("lambda", function.as_str())]);
    // The permission is in the template: SNS may invoke the function, from this topic only.
    let policy = aws_sdk_lambda::Client::new(&config)
        .get_policy()
        .function_name("catalog-sandbox-import")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(statement["Action"], "lambda:InvokeFunction");
    assert_eq!(statement["Condition"]["ArnLike"]["AWS:SourceArn"], topic);
    // The dead-letter queue exists, and the function is told where it is.
    aws_sdk_sqs::Client::new(&config)
        .get_queue_url()
        .queue_name("catalog-sandbox-import-dlq")
        .send()
        .await
        .unwrap();
    let env = aws_sdk_lambda::Client::new(&config)
        .get_function_configuration()
        .function_name("catalog-sandbox-import")
        .send()
        .await
        .unwrap();
    let vars = env.environment().unwrap().variables().unwrap();
    // (The emulator's stack writes the AWS form of the URL, its API the local one.)
    let url = &vars["CATALOG_DEAD_LETTER_QUEUE"];
    assert!(
        url.ends_with(&format!("/{SANDBOX}/catalog-sandbox-import-dlq")),
        "{url}"
    );
}

#[tokio::test]
async fn a_template_change_updates_the_stack() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    p.edit(
        "environments/sandbox.toml",
        "log_retention_days = 14",
        "log_retention_days = 30",
    );
    let report = p
        .run(&["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(report["outcome"], "updated", "{report}");
    assert_eq!(report["status"], "UPDATE_COMPLETE");
}

#[test]
fn prod_is_refused_outside_the_pipeline_without_touching_aws() {
    // No emulator: the refusal must come before any AWS call.
    let p = Project::new();
    let err = p.run(&["deploy", "prod"]).expect(2).stderr();
    assert!(
        err.contains("require_approval = true in environments/prod.toml"),
        "{err}"
    );
    assert!(err.contains("deployer approve"), "{err}");
}

#[test]
fn the_pipeline_account_has_no_catalog_stack() {
    let p = Project::new();
    let err = p.run(&["deploy", "pipeline"]).expect(2).stderr();
    assert!(
        err.contains(
            "the pipeline account holds no stack of the service; use one of sandbox, prod"
        ),
        "{err}"
    );
}

#[test]
fn an_endpoint_nobody_listens_on_is_named_not_blamed_on_credentials() {
    let p = Project::new();
    package(&p, "v1");
    // A closed port: nothing listens, the way an absent network looks.
    let run = p.run_with(
        &["deploy", "sandbox"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    let err = run.expect(1).stderr();
    assert!(
        err.contains("cannot reach the endpoint http://127.0.0.1:9 (AWS_ENDPOINT_URL)"),
        "{err}"
    );
    assert!(!err.contains("sign in first"), "{err}");
}

#[test]
fn an_endpoint_that_stops_answering_is_given_up_on_and_named() {
    let p = Project::new();
    package(&p, "v1");
    let (url, held) = common::silent_endpoint(4);
    let run = p.run_with(
        &["deploy", "sandbox"],
        &[("AWS_ENDPOINT_URL", &url), ("DEPLOYER_CALL_TIMEOUT", "2")],
    );
    let err = run.expect(1).stderr();
    assert!(
        err.contains(&format!(
            "no answer from the endpoint {url} (AWS_ENDPOINT_URL) within 2 s"
        )),
        "{err}"
    );
    drop(held);
}

#[test]
fn without_a_region_anywhere_the_environment_files_say_where() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let run = p.run_unset(
        &["status", "sandbox", "--output", "json"],
        &[],
        &["AWS_REGION"],
    );
    let report = run.expect(0).json();
    assert_eq!(report["stacks"][0]["status"], "CREATE_COMPLETE", "{report}");
}

#[test]
fn a_profile_named_on_the_command_line_signs_in() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let creds: std::collections::HashMap<_, _> = emu.credentials(PIPELINE).into_iter().collect();
    std::fs::create_dir_all(p.path(".aws")).unwrap();
    p.write(
        ".aws/credentials",
        &format!(
            "[emu]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"], creds["AWS_SESSION_TOKEN"]
        ),
    );
    p.write(".aws/config", "[profile emu]\nregion = us-east-1\n");
    let keys = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ];
    let report = p
        .run_unset(
            &["status", "sandbox", "--profile", "emu", "--output", "json"],
            &[],
            &keys,
        )
        .expect(0)
        .json();
    assert_eq!(report["stacks"][0]["status"], "CREATE_COMPLETE", "{report}");
    // A profile that is not there fails as a sign-in problem, naming the way out.
    let err = p
        .run_unset(&["status", "sandbox", "--profile", "nobody"], &[], &keys)
        .expect(1)
        .stderr();
    assert!(err.contains("sign in first"), "{err}");
}

#[test]
fn deploy_before_bootstrap_is_refused_naming_the_command() {
    let emu = Emulator::start();
    let p = Project::new().signed_in(&emu, PIPELINE);
    package(&p, "v1");
    // Before the bootstrap there is no deploy role to assume (AWS refuses the AssumeRole).
    let err = p.run(&["deploy", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains("cannot assume arn:aws:iam::222222222222:role/catalog-sandbox-deploy"),
        "{err}"
    );
    assert!(err.contains("run `deployer bootstrap sandbox`"), "{err}");
}

#[test]
fn bootstrap_needs_credentials_in_the_account_it_prepares() {
    let emu = Emulator::start();
    let p = Project::new().signed_in(&emu, PIPELINE);
    let err = p.run(&["bootstrap", "prod"]).expect(2).stderr();
    assert!(
        err.contains("`deployer bootstrap` for prod needs credentials in its account 333333333333"),
        "{err}"
    );
    assert!(err.contains("these are for account 111111111111"), "{err}");
}

#[tokio::test]
async fn pipeline_and_sandbox_in_one_account_keep_two_bootstrap_stacks() {
    let emu = Emulator::start();
    let p = Project::new();
    p.edit(
        "environments/sandbox.toml",
        "account_id = \"222222222222\"",
        "account_id = \"111111111111\"",
    );
    p.run_as(&emu, PIPELINE, &["bootstrap", "pipeline"])
        .expect(0);
    p.run_as(&emu, PIPELINE, &["bootstrap", "sandbox"])
        .expect(0);
    let again = p
        .run_as(
            &emu,
            PIPELINE,
            &["bootstrap", "pipeline", "--output", "json"],
        )
        .expect(0)
        .json();
    assert_eq!(
        again["outcome"], "no-changes",
        "sandbox's bootstrap left it alone"
    );
    let mut names = stack_names(&cloudformation(&emu, PIPELINE)).await;
    names.sort();
    assert_eq!(names, ["catalog-bootstrap", "catalog-bootstrap-pipeline"]);
    // Deploying from that one account still goes through the deploy role.
    package(&p, "v1");
    let out = p
        .run_as(&emu, PIPELINE, &["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(out["outcome"], "created", "{out}");
}

#[tokio::test]
async fn bootstrap_all_three_accounts_then_again_changes_nothing() {
    let emu = Emulator::start();
    let p = Project::new();
    for (env, account) in [("pipeline", PIPELINE), ("sandbox", SANDBOX), ("prod", PROD)] {
        let first = p
            .run_as(&emu, account, &["bootstrap", env, "--output", "json"])
            .expect(0)
            .json();
        assert_eq!(first["outcome"], "created", "{env}: {first}");
        let again = p
            .run_as(&emu, account, &["bootstrap", env, "--output", "json"])
            .expect(0)
            .json();
        assert_eq!(again["outcome"], "no-changes", "{env}: {again}");
        let expected = if env == "pipeline" {
            "catalog-bootstrap-pipeline"
        } else {
            "catalog-bootstrap"
        };
        assert_eq!(
            stack_names(&cloudformation(&emu, account)).await,
            [expected]
        );
    }
    let boot = cloudformation(&emu, PIPELINE)
        .get_template()
        .stack_name("catalog-bootstrap-pipeline")
        .send()
        .await
        .unwrap();
    assert!(
        boot.template_body()
            .unwrap()
            .contains("AWS::ECR::Repository")
    );
}

#[test]
fn a_stale_bootstrap_is_refused() {
    let emu = Emulator::start();
    let p = Project::new().signed_in(&emu, PIPELINE);
    // An older bootstrap wrote version 1.
    p.edit(
        "templates/bootstrap-target.json.hbs",
        "\"Value\": \"{{bootstrap_version}}\",",
        "\"Value\": \"1\",",
    );
    p.run_as(&emu, SANDBOX, &["bootstrap", "sandbox"]).expect(0);
    package(&p, "v1");
    let err = p.run(&["deploy", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains("has bootstrap version 1 but this deployer needs 5"),
        "{err}"
    );
    assert!(err.contains("run `deployer bootstrap sandbox`"), "{err}");
}

#[tokio::test]
async fn diff_shows_changes_and_leaves_nothing_behind() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let before = p
        .run(&["diff", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(before["changed"], true);
    let adds: Vec<&str> = before["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["logical_id"].as_str().unwrap())
        .collect();
    assert!(
        [
            "QueryFunction",
            "CommandFunction",
            "ImportFunction",
            "Table"
        ]
        .iter()
        .all(|id| adds.contains(id)),
        "{adds:?}"
    );
    // The CREATE change set's empty stack is gone again.
    let mut names = stack_names(&cloudformation(&emu, SANDBOX)).await;
    names.retain(|n| n == "catalog-sandbox");
    assert!(names.is_empty(), "diff left {names:?}");

    // For CI: --fail exits 1 while there are changes, 0 once there are none.
    let failing = p
        .run(&["diff", "sandbox", "--fail", "-o", "json"])
        .expect(1);
    assert_eq!(failing.json()["changed"], true);

    p.run(&["deploy", "sandbox"]).expect(0);
    let after = p.run(&["diff", "sandbox"]).expect(0).stdout();
    assert_eq!(after, "catalog-sandbox: no changes\n");
    p.run(&["diff", "sandbox", "--fail"]).expect(0);
    // Drift: the emulator has no drift detection, so nobody can tell: 3, not 1 ("drifted").
    let err = p.run(&["drift", "sandbox"]).expect(3).stderr();
    assert!(err.contains("DetectStackDrift"), "{err}");
    // Nor can diff --fail with no AWS to ask: 3, never 1 or 0.
    let err = p
        .run_with(
            &["diff", "sandbox", "--fail"],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
        )
        .expect(3)
        .stderr();
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

/// Runs `deploy sandbox` on a terminal, types Ctrl-C once it asks (stdin held open: no Enter,
/// no end of input) and returns all it showed; fails if it is still running a minute later.
fn ctrl_c_at_the_question(p: &common::Project) -> String {
    use std::io::{Read, Write};
    let mut child = p.spawn_on_terminal(&["deploy", "sandbox"], &[]);
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    let mut typed = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(bytes) => shown.push_str(&String::from_utf8_lossy(&bytes)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("still running a minute on (Ctrl-C typed: {typed}):\n{shown}");
            }
        }
        if !typed && shown.contains("[y/N]") {
            child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
            typed = true;
        }
    }
    assert!(typed, "it never asked:\n{shown}");
    assert_eq!(child.wait().unwrap().code(), Some(130), "{shown}");
    shown
}

#[tokio::test]
async fn deploy_shows_its_plan_and_asks_on_a_terminal_before_iam_changes() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    // The first deploy makes roles: at a terminal it shows the plan, the IAM rows again, and
    // asks; a "no" runs nothing and leaves no stack behind.
    let no = p
        .run_on_terminal(&["deploy", "sandbox"], "n\n")
        .expect(1)
        .stdout();
    assert!(no.contains("catalog-sandbox will change:"), "{no}");
    assert!(no.contains("IAM and security changes:"), "{no}");
    assert!(no.contains("AWS::IAM::Role"), "{no}");
    assert!(no.contains("Deploy them? [y/N]"), "{no}");
    assert!(no.contains("not confirmed; nothing was changed"), "{no}");
    // On a terminal that takes colour the plan is coloured (Add in green), unless NO_COLOR says
    // otherwise.
    let term = ("TERM", "xterm-256color");
    let coloured = p
        .run_on_terminal_with(&["deploy", "sandbox"], "n\n", &[term])
        .expect(1)
        .stdout();
    assert!(coloured.contains("\u{1b}[32mAdd"), "{coloured:?}");
    let plain = p
        .run_on_terminal_with(&["deploy", "sandbox"], "n\n", &[term, ("NO_COLOR", "1")])
        .expect(1)
        .stdout();
    // (The progress line's own cursor codes stay: only colours go.)
    assert!(
        plain.contains("catalog-sandbox will change:")
            && ["\u{1b}[31m", "\u{1b}[32m", "\u{1b}[33m"]
                .iter()
                .all(|sgr| !plain.contains(sgr)),
        "{plain:?}"
    );
    assert!(
        !stack_names(&cloudformation(&emu, SANDBOX))
            .await
            .contains(&"catalog-sandbox".to_string())
    );
    // Ctrl-C at the question stops the deploy at once, not at the next Enter, deleting the
    // change set it made and the empty stack a first create makes.
    let interrupted = ctrl_c_at_the_question(&p);
    assert!(
        interrupted.contains("interrupted: deleted change set")
            && interrupted.contains("and the empty stack it made"),
        "{interrupted}"
    );
    assert!(
        !stack_names(&cloudformation(&emu, SANDBOX))
            .await
            .contains(&"catalog-sandbox".to_string())
    );
    // --yes asks nothing; and a run without a terminal (CI) never asks.
    let yes = p
        .run_on_terminal(&["deploy", "sandbox", "--yes"], "")
        .expect(0)
        .stdout();
    assert!(
        yes.contains("catalog-sandbox will change:") && !yes.contains("[y/N]"),
        "{yes}"
    );
    p.edit(
        "templates/catalog.json.hbs",
        "\"Timeout\": 10,",
        "\"Timeout\": 11,",
    );
    let ci = p.run(&["deploy", "sandbox"]).expect(0).stderr();
    assert!(
        ci.contains("catalog-sandbox will change:") && !ci.contains("[y/N]"),
        "{ci}"
    );
    // Never a colour into a pipe.
    assert!(!ci.contains('\u{1b}'), "{ci:?}");
    // It ends on one line: how it went, and how long it took.
    let last = ci.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("catalog-sandbox: UPDATE_COMPLETE in ") && last.ends_with('s'),
        "{ci}"
    );
}

#[tokio::test]
async fn destroy_asks_on_a_terminal_and_needs_yes_elsewhere() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    let still_there = || async {
        stack_names(&cloudformation(&emu, SANDBOX))
            .await
            .contains(&"catalog-sandbox".to_string())
    };
    // A script without --yes deletes nothing.
    let err = p.run(&["destroy", "sandbox"]).expect(2).stderr();
    assert!(err.contains("pass --yes"), "{err}");
    assert!(still_there().await);
    // At a terminal, the question names the stack, the account and the data it takes along;
    // anything but yes keeps it.
    let no = p
        .run_on_terminal(&["destroy", "sandbox"], "n\n")
        .expect(1)
        .stdout();
    assert!(
        no.contains(&format!(
            "Delete stack catalog-sandbox in sandbox (account {SANDBOX}), its data included (safety.retain_data = false)? [y/N]"
        )),
        "{no}"
    );
    // A "no" is an answer, not an error.
    assert!(
        no.contains("not confirmed; nothing was deleted") && !no.contains("error:"),
        "{no}"
    );
    assert!(still_there().await);
    let yes = p
        .run_on_terminal(&["destroy", "sandbox"], "y\n")
        .expect(0)
        .stdout();
    assert!(yes.contains("catalog-sandbox: deleted"), "{yes}");
    assert!(!still_there().await);
}

#[tokio::test]
async fn destroy_removes_sandbox_and_refuses_prod() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    let gone = p
        .run(&["destroy", "sandbox", "--yes", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(gone["deleted"], true);
    assert_eq!(
        stack_names(&cloudformation(&emu, SANDBOX)).await,
        ["catalog-bootstrap"]
    );
    let again = p.run(&["destroy", "sandbox", "--yes"]).expect(0).stdout();
    assert!(again.contains("there was no such stack"), "{again}");
    let err = p.run(&["destroy", "prod"]).expect(2).stderr();
    assert!(err.contains("never destroys prod"), "{err}");
}

#[test]
fn status_lists_every_stack_of_every_account() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let v1 = package(&p, "v1");
    p.run(&["deploy", "sandbox"]).expect(0);
    let report = p.run(&["status", "--output", "json"]).expect(0).json();
    // The text has a header row over its columns.
    let text = p.run(&["status"]).expect(0).stdout();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ENV", "STACK", "STATUS", "UPDATED"], "{text}");
    assert!(text.contains("catalog-sandbox"), "{text}");
    let rows: Vec<(&str, &str, Option<&str>)> = report["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["env"].as_str().unwrap(),
                r["stack"].as_str().unwrap(),
                r["status"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("pipeline", "catalog-bootstrap-pipeline", None),
            ("pipeline", "catalog-pipeline", None),
            ("sandbox", "catalog-bootstrap", Some("CREATE_COMPLETE")),
            ("sandbox", "catalog-sandbox", Some("CREATE_COMPLETE")),
            ("prod", "catalog-bootstrap", None),
            ("prod", "catalog-prod", None),
        ]
    );
    // Prod is not bootstrapped here: there is no role to assume, and the rows say so.
    assert!(
        report["stacks"][4]["unreachable"]
            .as_str()
            .unwrap()
            .contains("cannot assume arn:aws:iam::333333333333:role/catalog-prod-read"),
        "{report}"
    );
    assert!(report["stacks"][2].get("unreachable").is_none());
    // Bootstrapped, prod is read through its read-only role, which trusts the pipeline account.
    p.run_as(&emu, PROD, &["bootstrap", "prod"]).expect(0);
    let prod = p
        .run(&["status", "prod", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(prod["stacks"][0]["status"], "CREATE_COMPLETE", "{prod}");
    // The same administrator cannot deploy prod, not even posing as CodeBuild: prod's deploy
    // role trusts only the pipeline's prod Deploy action.
    let err = p
        .run_with(
            &["deploy", "prod"],
            &[("CODEBUILD_BUILD_ID", "catalog-build:1")],
        )
        .expect(2)
        .stderr();
    assert!(
        err.contains("cannot assume arn:aws:iam::333333333333:role/catalog-prod-deploy")
            && err.contains("AccessDenied"),
        "{err}"
    );
    assert_eq!(report["stacks"][3]["artifact_sha256"], v1["sha256"]);
    let text = p.run(&["status", "sandbox"]).expect(0).stdout();
    assert!(
        text.contains("catalog-sandbox") && !text.contains("catalog-prod"),
        "{text}"
    );
}

fn api_calls(run: &common::Run) -> usize {
    run.stderr()
        .lines()
        .find_map(|l| l.strip_prefix("aws api calls: "))
        .expect("DEPLOYER_STATS prints the count")
        .parse()
        .unwrap()
}

#[test]
fn a_no_op_deploy_costs_a_handful_of_calls() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let first = p
        .run_with(&["deploy", "sandbox"], &[("DEPLOYER_STATS", "1")])
        .expect(0);
    let again = p
        .run_with(&["deploy", "sandbox"], &[("DEPLOYER_STATS", "1")])
        .expect(0);
    // Caller identity, assume role, stack description, live template: nothing more when nothing
    // changed (the bootstrap marker and the artifact matter only to a deploy that changes
    // something).
    assert_eq!(api_calls(&again), 4, "{}", again.stderr());
    assert!(
        api_calls(&first) > api_calls(&again) + 4,
        "{}",
        first.stderr()
    );
    // A branch stack's checks describe it once, and the deploy uses that description.
    let branch = ["deploy", "sandbox", "--branch", "feat/x"];
    p.run(&branch).expect(0);
    let again = p.run_with(&branch, &[("DEPLOYER_STATS", "1")]).expect(0);
    assert_eq!(api_calls(&again), 4, "{}", again.stderr());
}

async fn template_of(emu: &Emulator, account: &str, stack: &str) -> String {
    cloudformation(emu, account)
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .template_body()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn admin_execution_role_only_while_asked_for() {
    let emu = Emulator::start();
    let p = Project::new();
    p.run_as(
        &emu,
        SANDBOX,
        &["bootstrap", "sandbox", "--admin-execution-role"],
    )
    .expect(0);
    assert!(
        template_of(&emu, SANDBOX, "catalog-bootstrap")
            .await
            .contains("AdministratorAccess")
    );
    let report = p
        .run_as(&emu, SANDBOX, &["bootstrap", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(report["outcome"], "updated", "{report}");
    assert!(
        !template_of(&emu, SANDBOX, "catalog-bootstrap")
            .await
            .contains("AdministratorAccess")
    );
}

#[test]
fn trust_follows_the_config_whole() {
    // Rendered, not deployed: the emulator fails to update a stack holding a KMS key
    // ("Fn::GetAtt references undefined resource ArtifactKey").
    let p = Project::new();
    p.run(&["synth", "pipeline", "--out", "before"]).expect(0);
    p.edit(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = \"444444444444\"",
    );
    p.run(&["synth", "pipeline", "--out", "after"]).expect(0);
    let before = p.read("before/pipeline-bootstrap-pipeline.json");
    let after = p.read("after/pipeline-bootstrap-pipeline.json");
    assert_eq!(
        before.matches(PROD).count(),
        3,
        "the prod Deploy, Prepare and Verify actions' assume-roles"
    );
    assert!(!after.contains(PROD), "{after}");
    assert_eq!(after.matches("444444444444").count(), 3);
}

#[tokio::test]
async fn bootstrap_makes_the_signing_secret_once() {
    let emu = Emulator::start();
    let p = Project::new();
    p.run_as(&emu, SANDBOX, &["bootstrap", "sandbox"]).expect(0);
    let ssm = aws_sdk_ssm::Client::new(&common::sdk_config(&emu, SANDBOX));
    let read = || async {
        ssm.get_parameter()
            .name("/catalog/sandbox/jwt-secret")
            .with_decryption(true)
            .send()
            .await
            .unwrap()
            .parameter
            .unwrap()
    };
    let first = read().await;
    assert_eq!(
        first.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    assert_eq!(first.value().unwrap().len(), 96, "48 random bytes in hex");
    p.run_as(&emu, SANDBOX, &["bootstrap", "sandbox"]).expect(0);
    assert_eq!(read().await.value(), first.value(), "never replaced");
}

#[tokio::test]
async fn pipeline_deploy_creates_the_pipeline_stack_then_changes_nothing() {
    // The emulator accepts CodeBuild and CodePipeline resources without making them: this
    // asserts on the stack and the template it keeps.
    let emu = Emulator::start();
    let p = Project::new();
    // Before the account's bootstrap: refused, nothing made. AWS would fail the change set on
    // the roles and key the template imports; the emulator resolves no imports and would go on.
    let err = p
        .run_as(&emu, PIPELINE, &["pipeline", "deploy"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("pipeline (account 111111111111) is not bootstrapped, or was by a deployer older than its version marker: /catalog/bootstrap/pipeline/version does not exist; run `deployer bootstrap pipeline`"),
        "{err}"
    );
    assert!(
        cloudformation(&emu, PIPELINE)
            .describe_stacks()
            .stack_name("catalog-pipeline")
            .send()
            .await
            .is_err(),
        "the pipeline stack was made before the bootstrap"
    );
    p.run_as(&emu, PIPELINE, &["bootstrap", "pipeline"])
        .expect(0);
    let first = p
        .run_as(&emu, PIPELINE, &["pipeline", "deploy", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(first["outcome"], "created", "{first}");
    assert!(
        template_of(&emu, PIPELINE, "catalog-pipeline")
            .await
            .contains("AWS::CodePipeline::Pipeline")
    );
    let again = p
        .run_as(&emu, PIPELINE, &["pipeline", "deploy", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(again["outcome"], "no-changes");
    let err = p
        .run_as(&emu, SANDBOX, &["pipeline", "deploy"])
        .expect(2)
        .stderr();
    assert!(
        err.contains(
            "`deployer pipeline deploy` for pipeline needs credentials in its account 111111111111"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_notifications_subscribe_the_named_addresses() {
    let emu = Emulator::start();
    let p = Project::new();
    p.edit(
        "environments/pipeline.toml",
        "notify_emails = []",
        "notify_emails = [\"ops@example.org\"]",
    );
    p.run_as(&emu, PIPELINE, &["bootstrap", "pipeline"])
        .expect(0);
    p.run_as(&emu, PIPELINE, &["pipeline", "deploy"]).expect(0);
    let sns = aws_sdk_sns::Client::new(&common::sdk_config(&emu, PIPELINE));
    let topic = format!("arn:aws:sns:us-east-1:{PIPELINE}:catalog-approvals");
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let endpoints: Vec<(&str, &str)> = subs
        .subscriptions()
        .iter()
        .map(|s| (s.protocol().unwrap(), s.endpoint().unwrap()))
        .collect();
    assert_eq!(endpoints, [("email", "ops@example.org")]);
    // The pipeline's role may publish to that topic: the pipeline account's bootstrap gives it the
    // right up front, so the pipeline stack's execution role needs no IAM rights.
    let boot = cloudformation(&emu, PIPELINE)
        .get_template()
        .stack_name("catalog-bootstrap-pipeline")
        .send()
        .await
        .unwrap();
    let boot: serde_json::Value = serde_json::from_str(boot.template_body().unwrap()).unwrap();
    let notify = &boot["Resources"]["PipelineRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "NotifyApprovers")
        .unwrap()
        .clone();
    assert_eq!(notify["Action"], "sns:Publish");
    assert!(
        notify["Resource"]
            .to_string()
            .contains(":catalog-approvals")
    );
}

/// The signing secrets in sandbox's account, by name, with their values.
async fn secrets(emu: &Emulator) -> std::collections::BTreeMap<String, String> {
    let ssm = aws_sdk_ssm::Client::new(&common::sdk_config(emu, SANDBOX));
    let found = ssm
        .get_parameters_by_path()
        .path("/catalog/sandbox")
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    found
        .parameters()
        .iter()
        .map(|p| {
            (
                p.name().unwrap_or_default().to_string(),
                p.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn branch_names(report: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = report["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["branch"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn branch_stacks_live_side_by_side_and_gc_removes_only_orphans() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    for branch in ["feat/A", "feat-a", "фича/поиск"] {
        let r = p
            .run(&["deploy", "sandbox", "--branch", branch, "--output", "json"])
            .expect(0)
            .json();
        assert_eq!(r["outcome"], "created", "{branch}: {r}");
    }
    let listed = p
        .run(&["branches", "list", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(branch_names(&listed), ["feat-a", "feat/A", "фича/поиск"]);
    let text = p.run(&["branches", "list"]).expect(0).stdout();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["BRANCH", "STATUS", "AGE", "STACK"], "{text}");
    // Stack tags propagate to SNS, SQS, IAM, Lambda and DynamoDB, whose tag values take only
    // letters, digits, spaces and `_.:/=+-@`, at most 256 (the emulator checks none of it).
    let described = cloudformation(&emu, SANDBOX)
        .describe_stacks()
        .send()
        .await
        .unwrap();
    for stack in described.stacks() {
        for tag in stack.tags() {
            let value = tag.value().unwrap_or_default();
            assert!(
                value.len() <= 256
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)),
                "{}: tag {} = {value:?}",
                stack.stack_name().unwrap_or_default(),
                tag.key().unwrap_or_default()
            );
        }
    }
    // Each has its own function; branch data is never retained.
    let names = stack_names(&cloudformation(&emu, SANDBOX)).await;
    let a = names
        .iter()
        .find(|n| n.starts_with("catalog-br-feat-a-"))
        .unwrap();
    let template = template_of(&emu, SANDBOX, a).await;
    assert!(
        template.contains("\"DeletionPolicy\":\"Delete\""),
        "{template}"
    );
    // Each branch stack signs with its own secret, which only it names: code on a branch never
    // holds one that sandbox (or another branch) trusts.
    let made = secrets(&emu).await;
    assert_eq!(made.len(), 4, "sandbox's and three branches': {made:?}");
    let values: std::collections::BTreeSet<&String> = made.values().collect();
    assert_eq!(values.len(), 4, "every secret differs");
    let feat_a = p
        .run(&[
            "outputs", "sandbox", "--branch", "feat-a", "--output", "json",
        ])
        .expect(0)
        .json();
    let feat_a = template_of(&emu, SANDBOX, feat_a["stack"].as_str().unwrap()).await;
    let named: Vec<&String> = made
        .keys()
        .filter(|name| feat_a.contains(&format!("\"{name}\"")))
        .collect();
    assert_eq!(named.len(), 1, "one secret of its own: {named:?}");
    let own = named[0].clone();
    assert_ne!(own, "/catalog/sandbox/jwt-secret");

    let gone = p
        .run(&[
            "destroy", "sandbox", "--branch", "feat-a", "--yes", "--output", "json",
        ])
        .expect(0)
        .json();
    assert_eq!(gone["deleted"], true);
    let err = p
        .run(&["outputs", "sandbox", "--branch", "feat-a"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("deploy it first with `deployer deploy sandbox --branch feat-a`"),
        "{err}"
    );
    let outputs = p
        .run(&[
            "outputs", "sandbox", "--branch", "feat/A", "--output", "json",
        ])
        .expect(0)
        .json();
    assert!(
        outputs["stack"]
            .as_str()
            .unwrap()
            .starts_with("catalog-br-feat-a-"),
        "{outputs}"
    );
    // feat-a's stack is gone; the one left with that slug is feat/A's.
    assert!(
        stack_names(&cloudformation(&emu, SANDBOX))
            .await
            .contains(&outputs["stack"].as_str().unwrap().to_string())
    );
    let again = p
        .run(&["destroy", "sandbox", "--branch", "feat-a", "--yes"])
        .expect(0)
        .stdout();
    assert!(again.contains("there was no such stack"), "{again}");
    assert!(
        !secrets(&emu).await.contains_key(&own),
        "feat-a's secret went with its stack"
    );
    let listed = p
        .run(&["branches", "list", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(branch_names(&listed), ["feat/A", "фича/поиск"]);

    let dry = p
        .run(&[
            "branches",
            "gc",
            "--keep",
            "feat/A",
            "--dry-run",
            "--output",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(
        branch_names(
            &p.run(&["branches", "list", "--output", "json"])
                .expect(0)
                .json()
        )
        .len(),
        2
    );
    // Without a terminal to ask at, gc shows what would go and removes nothing without --yes.
    let err = p
        .run(&["branches", "gc", "--keep", "feat/A"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("would remove") && err.contains("pass --yes"),
        "{err}"
    );
    assert_eq!(
        branch_names(
            &p.run(&["branches", "list", "--output", "json"])
                .expect(0)
                .json()
        )
        .len(),
        2
    );
    p.run(&["branches", "gc", "--keep", "feat/A", "--yes"])
        .expect(0);
    assert_eq!(
        branch_names(
            &p.run(&["branches", "list", "--output", "json"])
                .expect(0)
                .json()
        ),
        ["feat/A"]
    );
    // Nothing but branch stacks is ever a candidate: sandbox and its bootstrap survive.
    p.run(&["branches", "gc", "--keep", "nothing-left", "--yes"])
        .expect(0);
    let mut left = stack_names(&cloudformation(&emu, SANDBOX)).await;
    left.sort();
    assert_eq!(left, ["catalog-bootstrap", "catalog-sandbox"]);
    assert_eq!(
        secrets(&emu).await.into_keys().collect::<Vec<_>>(),
        ["/catalog/sandbox/jwt-secret"],
        "gc removes the branches' secrets with their stacks"
    );
}

#[test]
fn branch_stacks_are_refused_outside_sandbox_and_past_the_limit() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let err = p
        .run(&["deploy", "prod", "--branch", "feat/x"])
        .expect(2)
        .stderr();
    assert!(err.contains("branch stacks are off in prod"), "{err}");
    let err = p
        .run(&["deploy", "sandbox", "--branch", "a..b"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("\"a..b\" is not a valid git branch name"),
        "{err}"
    );
    p.edit(
        "environments/sandbox.toml",
        "max_stacks = 10",
        "max_stacks = 1",
    );
    p.run(&["deploy", "sandbox", "--branch", "one"]).expect(0);
    let err = p
        .run(&["deploy", "sandbox", "--branch", "two"])
        .expect(2)
        .stderr();
    assert!(err.contains("already holds 1 branch stacks"), "{err}");
    // Updating an existing branch stack is no new stack.
    p.run(&["deploy", "sandbox", "--branch", "one"]).expect(0);
}

#[test]
fn the_github_branch_role_runs_the_workflows_commands() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    // The session GitHub's OIDC would hand the workflow (the emulator stands in for the token
    // exchange; the trust's repository and branch conditions are asserted in permissions.rs).
    let github = emu.role_credentials(SANDBOX, "catalog-sandbox-branch-deployer");
    let github: Vec<(&str, &str)> = github
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let run = |args: &[&str]| p.run_with(args, &github);
    // branch-stack.yml on push, then on delete; branch-gc.yml nightly.
    run(&[
        "deploy",
        "sandbox",
        "--branch",
        "feat/ci",
        "--no-progress",
        "--outputs-file",
        "outputs.json",
    ])
    .expect(0);
    let listed = run(&["branches", "list", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(branch_names(&listed), ["feat/ci"]);
    // It deploys through the branch execution role, the only one it may pass.
    let stack = &listed["stacks"][0]["stack"];
    let described = run(&[
        "outputs", "sandbox", "--branch", "feat/ci", "--output", "json",
    ])
    .expect(0)
    .json();
    assert_eq!(&described["stack"], stack);
    run(&[
        "branches",
        "gc",
        "--keep",
        "main",
        "--no-progress",
        "--yes",
        "--output",
        "json",
    ])
    .expect(0);
    let listed = run(&["branches", "list", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(branch_names(&listed), Vec::<String>::new());
    run(&[
        "destroy",
        "sandbox",
        "--branch",
        "feat/ci",
        "--no-progress",
        "--yes",
    ])
    .expect(0);
    // Nothing but branch stacks: the role may not read the bootstrap marker's neighbours or
    // assume the deploy role (on the emulator, resource scoping of CloudFormation calls is
    // asserted on the templates instead; it checks S3 and STS resources itself).
    let mut posing = github.clone();
    posing.push(("CODEBUILD_BUILD_ID", "catalog-build:1"));
    let err = p.run_with(&["deploy", "prod"], &posing).expect(2).stderr();
    assert!(err.contains("cannot assume"), "{err}");
}

#[test]
fn ctrl_c_stops_at_once_and_says_what_is_left_where() {
    let p = Project::new();
    package(&p, "v1");
    // An endpoint that never answers keeps the deploy waiting until it is interrupted.
    let (url, held) = common::silent_endpoint(1);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(["deploy", "sandbox"])
        .current_dir(p.path(""))
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the request is on its way (the listener has taken the connection): by
    // then the deployer listens for Ctrl-C.
    while !held.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted: no change set was waiting to run"),
        "{err}"
    );
    assert!(err.contains("the next deploy waits for it"), "{err}");
}

#[tokio::test]
async fn ctrl_c_before_the_change_set_runs_deletes_it_and_the_empty_stack() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    // CloudFormation keeps ExecuteChangeSet waiting: the change set is made, not executed.
    let (url, held) = common::holding_proxy(&emu.url, "Action=ExecuteChangeSet");
    let child = p.spawn_with(&["deploy", "sandbox"], &[("AWS_ENDPOINT_URL", &url)]);
    held.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the deploy reaches ExecuteChangeSet");
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: deleted change set arn:aws:cloudformation:")
            && err.contains("and the empty stack it made"),
        "{err}"
    );
    // Nothing is left: no stack waiting in REVIEW_IN_PROGRESS, so the next deploy creates it.
    let cfn = cloudformation(&emu, SANDBOX);
    let left = cfn
        .describe_stacks()
        .stack_name("catalog-sandbox")
        .send()
        .await;
    assert!(left.is_err(), "{left:?}");
    let again = p
        .run(&["deploy", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(again["outcome"], "created");
}

#[tokio::test]
async fn two_deploys_of_one_stack_at_once_both_end_cleanly() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    package(&p, "v2");
    let both: Vec<_> = (0..2)
        .map(|_| p.spawn_with(&["deploy", "sandbox", "--output", "json"], &[]))
        .collect();
    let mut outcomes = vec![];
    for child in both {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        outcomes.push(report["outcome"].as_str().unwrap().to_string());
    }
    // One updated; the other updated after it, or found nothing left to do.
    assert!(outcomes.iter().any(|o| o == "updated"), "{outcomes:?}");
    let cfn = cloudformation(&emu, SANDBOX);
    let stack = cfn
        .describe_stacks()
        .stack_name("catalog-sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stack.stacks()[0].stack_status().unwrap().as_str(),
        "UPDATE_COMPLETE"
    );
    let left = cfn
        .list_change_sets()
        .stack_name("catalog-sandbox")
        .send()
        .await
        .unwrap();
    assert!(
        left.summaries()
            .iter()
            .all(|s| s.execution_status().map(|e| e.as_str()) == Some("EXECUTE_COMPLETE")),
        "no change set waits: {:?}",
        left.summaries()
    );
}

#[tokio::test]
async fn no_execute_leaves_a_change_set_that_only_the_same_deploy_runs() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    let v1 = code_sha256s(&emu, SANDBOX, "catalog-sandbox").await;
    package(&p, "v2");
    let proposed = p
        .run(&["deploy", "sandbox", "--no-execute", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(proposed["outcome"], "proposed");
    let name = proposed["change_set"].as_str().unwrap().to_string();
    assert!(name.starts_with("deployer-review-"), "{name}");
    let text = p
        .run(&["deploy", "sandbox", "--no-execute"])
        .expect(0)
        .stdout();
    assert!(
        text.contains("left for review, not executed")
            && text.contains("--change-set deployer-review-"),
        "{text}"
    );
    // Nothing ran: the functions still run v1.
    assert_eq!(code_sha256s(&emu, SANDBOX, "catalog-sandbox").await, v1);
    // Another artifact than the one it was made from: refused, naming why.
    package(&p, "v3");
    let err = p
        .run(&["deploy", "sandbox", "--change-set", &name])
        .expect(2)
        .stderr();
    assert!(
        err.contains("was made from another template, parameters or artifact"),
        "{err}"
    );
    let err = p
        .run(&["deploy", "sandbox", "--change-set", "deployer-review-0"])
        .expect(2)
        .stderr();
    assert!(err.contains("has no change set deployer-review-0"), "{err}");
    // The same artifact: exactly that change set runs.
    let v2 = package(&p, "v2");
    let run = p
        .run(&[
            "deploy",
            "sandbox",
            "--change-set",
            &name,
            "--output",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(run["outcome"], "updated");
    let v2_sha = lambda_sha(v2["sha256"].as_str().unwrap());
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![v2_sha; 3]
    );
}

#[tokio::test]
async fn a_template_over_the_inline_limit_goes_through_the_bucket() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    // 60 kB of metadata: more than the 51,200 bytes CloudFormation takes as TemplateBody.
    p.edit(
        "templates/catalog.json.hbs",
        r#""AWSTemplateFormatVersion": "2010-09-09","#,
        &format!(
            r#""AWSTemplateFormatVersion": "2010-09-09", "Metadata": {{ "Padding": "{}" }},"#,
            "x".repeat(60_000)
        ),
    );
    p.run(&["deploy", "sandbox"]).expect(0);
    let bucket = format!("catalog-artifacts-{SANDBOX}-us-east-1");
    let s3 = aws_sdk_s3::Client::new(&common::sdk_config(&emu, SANDBOX));
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("templates/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let live = template_of(&emu, SANDBOX, "catalog-sandbox").await;
    assert!(live.len() > 51_200, "{}", live.len());
    // The key is the template's sha256, so what is stored is what was deployed.
    assert_eq!(
        keys[0],
        format!("templates/{}.json", common::hex_sha256(live.as_bytes()))
    );
    // Unchanged, it is neither sent nor uploaded again.
    let again = p
        .run_with(
            &["deploy", "sandbox", "--output", "json"],
            &[("DEPLOYER_STATS", "1")],
        )
        .expect(0);
    assert_eq!(again.json()["outcome"], "no-changes");
    assert_eq!(api_calls(&again), 4, "{}", again.stderr());
}
