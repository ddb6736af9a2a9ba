//! Living with a deployed stack: its logs, its outputs as a file, drift on a stack that is not
//! there, and shell completions.

mod common;
use common::{Emulator, Project, SANDBOX, bootstrapped};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes `messages` to a function's log group in sandbox, `ago_ms` before `now` (one `now` for
/// the lines whose order a test checks: on a loaded machine the calls are seconds apart).
async fn log(emu: &Emulator, function: &str, now: i64, messages: &[(&str, i64)]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&common::sdk_config(emu, SANDBOX));
    let group = format!("/aws/lambda/catalog-sandbox-{function}");
    // A stream per call, as each Lambda instance writes its own.
    static STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stream = format!("2026/11/24/[$LATEST]{n}");
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();
    let mut put = logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(&stream);
    for (message, ago_ms) in messages {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - ago_ms)
                .message(*message)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();
}

fn messages(report: &serde_json::Value) -> Vec<(String, String)> {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["function"].as_str().unwrap().to_string(),
                // A JSON line is an object; compare its text.
                e["message"]
                    .as_str()
                    .map_or_else(|| e["message"].to_string(), str::to_string),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_merge_the_functions_in_time_order_and_follow_new_ones() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    let now = now_ms();
    log(
        &emu,
        "query",
        now,
        &[("GET /products 200", 3_000), ("GET /health 200", 1_000)],
    )
    .await;
    log(&emu, "command", now, &[("POST /products 201", 2_000)]).await;
    log(&emu, "import", now, &[("imported long ago", 3_600_000)]).await;
    // The app's own lines are JSON: --output json gives them as objects, not strings.
    log(
        &emu,
        "query",
        now,
        &[(r#"{"level":"INFO","fields":{"status":200}}"#, 1_500)],
    )
    .await;

    let all = p
        .run(&["logs", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    let pair = |f: &str, m: &str| (f.to_string(), m.to_string());
    let object = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["message"].as_object())
        .unwrap_or_else(|| panic!("no JSON line as an object: {all}"));
    assert_eq!(object["fields"]["status"], 200, "{all}");
    let text_lines: Vec<_> = messages(&all)
        .into_iter()
        .filter(|(_, m)| !m.starts_with('{'))
        .collect();
    assert_eq!(
        text_lines,
        [
            pair("query", "GET /products 200"),
            pair("command", "POST /products 201"),
            pair("query", "GET /health 200"),
        ],
        "older than --since (10m) is left out"
    );
    let day = p
        .run(&[
            "logs",
            "sandbox",
            "--since",
            "1d",
            "--function",
            "import",
            "--output",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(messages(&day), [pair("import", "imported long ago")]);
    let text = p.run(&["logs", "sandbox"]).expect(0).stdout();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains(" command POST /products 201"),
        "{text}"
    );

    let err = p
        .run(&["logs", "sandbox", "--since", "ten minutes"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("--since \"ten minutes\" is not a duration"),
        "{err}"
    );
    let err = p
        .run(&["logs", "sandbox", "--branch", "feat/none"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("does not exist: is the stack deployed?"),
        "{err}"
    );

    // --follow prints what is there, then what arrives, until stopped.
    let (mut child, mut lines) = follow(&emu, &p, &["--function", "command"]);
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .ends_with("POST /products 201")
    );
    log(&emu, "command", now_ms(), &[("PUT /products/1 200", 0)]).await;
    let next = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(next.ends_with("command PUT /products/1 200"), "{next}");

    // With --output json, one JSON object per line.
    let (mut child, mut lines) = follow(&emu, &p, &["--function", "command", "--output", "json"]);
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(first["function"], "command");
    assert_eq!(first["message"], "POST /products 201");
}

/// `deployer logs sandbox --follow ARGS` running, and its stdout line by line.
fn follow(
    emu: &Emulator,
    p: &Project,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(["logs", "sandbox", "--follow"])
        .args(args)
        .current_dir(p.path(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_ENDPOINT_URL", &emu.url)
        .envs(emu.credentials(common::PIPELINE))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_writes_the_outputs_file_the_outputs_command_shows() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox", "--outputs-file", "outputs.json"])
        .expect(0);
    let file: serde_json::Value = serde_json::from_str(&p.read("outputs.json")).unwrap();
    let shown = p
        .run(&["outputs", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert!(file.is_object(), "{file}");
    assert_eq!(file, shown["outputs"]);
    // A file that cannot be written fails the command, after saying the deploy went through.
    let run = p
        .run(&["deploy", "sandbox", "--outputs-file", "no/such/dir/o.json"])
        .expect(1);
    assert!(
        run.stdout().contains("catalog-sandbox: no changes"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stderr().contains("cannot write no/such/dir/o.json"),
        "{}",
        run.stderr()
    );
}

#[test]
fn drift_on_a_stack_that_is_not_there_says_to_deploy_first() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let err = p.run(&["drift", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains("stack catalog-sandbox does not exist in account 222222222222: nothing to compare; deploy it first"),
        "{err}"
    );
    let err = p.run(&["drift", "pipeline"]).expect(2).stderr();
    assert!(err.contains("holds no stack of the service"), "{err}");
}

#[test]
fn completions_need_no_project_and_know_every_command() {
    let empty = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_deployer"))
            .args(["completions", shell])
            .current_dir(empty.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["deploy", "drift", "logs", "branches", "outputs-file"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let p = Project::new();
    let err = p.run(&["completions", "tcsh"]).expect(2).stderr();
    assert!(err.contains("possible values: bash"), "{err}");
}

/// An API the emulator lacks (CodePipeline's GetPipelineState) is named as such in one line, not
/// shown as its HTML error page.
#[test]
fn a_call_the_emulator_does_not_implement_says_so_in_one_line() {
    let emu = Emulator::start();
    let p = common::Project::new().signed_in(&emu, common::PIPELINE);
    let err = p.run(&["pipeline", "status"]).expect(1).stderr();
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("GetPipelineState")
            && line.contains("the local emulator (")
            && line.contains("does not implement this call")
            && !line.contains('<'),
        "{err}"
    );
}

/// `doctor` says, environment by environment, what this machine can reach and what to do where it
/// cannot: exit 1 until every account is bootstrapped, then 0.
#[test]
fn doctor_names_each_failure_with_what_to_do_then_passes() {
    let emu = Emulator::start();
    // The emulator makes no AWS::IAM::OIDCProvider from a template (it skips the type), so the
    // provider the bootstrap stack would make on AWS is named in the file instead.
    let p = Project::new().signed_in(&emu, common::PIPELINE);
    p.edit(
        "environments/sandbox.toml",
        "# oidc_provider_arn = \"arn:aws:iam::ACCOUNT:oidc-provider/token.actions.githubusercontent.com\"",
        &format!("oidc_provider_arn = \"arn:aws:iam::{SANDBOX}:oidc-provider/token.actions.githubusercontent.com\""),
    );
    p.run_as(&emu, SANDBOX, &["bootstrap", "sandbox"]).expect(0);
    let run = p.run(&["doctor", "-o", "json"]).expect(1);
    let report = run.json();
    let check = |env: &str, name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["env"] == env && c["check"] == name)
            .unwrap_or_else(|| panic!("no {env} {name} in {report}"))
            .clone()
    };
    assert_eq!(report["account"], common::PIPELINE);
    for (env, name) in [
        ("sandbox", "read role"),
        ("sandbox", "bootstrap version"),
        ("sandbox", "github oidc"),
        ("sandbox", "deploy role"),
        ("prod", "deploy role"),
    ] {
        assert_eq!(check(env, name)["ok"], true, "{env} {name}: {report}");
    }
    // Prod's deploy role is never tried: only the pipeline's prod Deploy action may assume it.
    assert!(
        check("prod", "deploy role")["detail"]
            .as_str()
            .unwrap()
            .contains("only the pipeline's prod Deploy action may assume it"),
        "{report}"
    );
    // Neither prod nor the pipeline account is bootstrapped yet: each failure says what to do.
    let prod = check("prod", "read role");
    assert_eq!(prod["ok"], false, "{report}");
    assert!(
        prod["detail"]
            .as_str()
            .unwrap()
            .contains("run `deployer bootstrap prod`"),
        "{report}"
    );
    let pipeline = check("pipeline", "bootstrap");
    assert!(
        pipeline["detail"]
            .as_str()
            .unwrap()
            .contains("run `deployer bootstrap pipeline`"),
        "{report}"
    );
    p.run_as(&emu, common::PROD, &["bootstrap", "prod"])
        .expect(0);
    // A pipeline account bootstrapped by an older deployer has the stack but an old marker,
    // which `pipeline deploy` refuses: doctor says so, and how to mend it.
    let marker = "\"Value\": \"{{bootstrap_version}}\",";
    p.edit(
        "templates/bootstrap-pipeline.json.hbs",
        marker,
        "\"Value\": \"4\",",
    );
    p.run(&["bootstrap", "pipeline"]).expect(0);
    let report = p
        .run(&["doctor", "pipeline", "-o", "json"])
        .expect(1)
        .json();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks[0]["check"], "bootstrap", "{report}");
    assert_eq!(checks[0]["ok"], true, "{report}");
    assert_eq!(checks[1]["check"], "bootstrap version", "{report}");
    assert!(
        checks[1]["detail"].as_str().unwrap().contains(
            "has bootstrap version 4 but this deployer needs 5; run `deployer bootstrap pipeline`"
        ),
        "{report}"
    );
    p.edit(
        "templates/bootstrap-pipeline.json.hbs",
        "\"Value\": \"4\",",
        marker,
    );
    p.run(&["bootstrap", "pipeline"]).expect(0);
    let text = p.run(&["doctor"]).expect(0).stdout();
    assert!(text.contains("every check passed"), "{text}");
}

/// Each command's help lists its own options first and the global ones apart, under their own
/// heading; every argument has a description.
#[test]
fn help_keeps_each_command_s_options_apart_from_the_global_ones() {
    let p = Project::new();
    let help = p.run(&["deploy", "--help"]).expect(0).stdout();
    let (own, global) = help
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("{help}"));
    assert!(
        own.contains("--no-execute") && !own.contains("--environments"),
        "{help}"
    );
    assert!(
        global.contains("--environments") && !global.contains("--no-execute"),
        "{help}"
    );
    for command in [
        "synth",
        "bootstrap",
        "deploy",
        "diff",
        "destroy",
        "package",
        "status",
        "approve",
        "reject",
        "outputs",
        "drift",
        "logs",
        "history",
        "rollback",
        "verify",
        "doctor",
    ] {
        let help = p.run(&[command, "--help"]).expect(0).stdout();
        // An option or argument line without a description is the name alone on its line.
        for line in help.lines().filter(|l| l.starts_with("  ")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let undocumented = match words.first() {
                Some(w) if w.starts_with('-') || w.starts_with('<') || w.starts_with('[') => {
                    words.iter().skip(1).all(|w| {
                        w.starts_with('<')
                            || w.starts_with('[')
                            || w.starts_with('-')
                            || w.ends_with(',')
                    })
                }
                _ => false,
            };
            assert!(
                !undocumented,
                "`{command} --help` leaves undescribed: {line}\n{help}"
            );
        }
    }
}

/// `scripts/emulator shell`: what the README offers for running commands by hand. Commands typed
/// into it act on the emulator it started (every account bootstrapped), signed in to the pipeline
/// account, and the emulator stops with the shell.
#[test]
fn the_emulator_shell_runs_the_readmes_commands_as_written() {
    use std::io::Write;
    let state = tempfile::tempdir().unwrap();
    let mut shell = Command::new(common::repo_root().join("scripts/emulator"))
        .arg("shell")
        .env("EMULATOR_STATE", state.path())
        .env("SHELL", "bash")
        // This build's deployer: a `cargo build` under the running tests would compile the SDK
        // again (without the dev-dependencies' features) and replace the binary they run.
        .env("DEPLOYER", env!("CARGO_BIN_EXE_deployer"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"deployer status sandbox --output json\ndeployer doctor sandbox --output json\nexit 0\n",
        )
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("signed in to 111111111111"), "{stderr}");
    let mut documents =
        serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
    let status = documents.next().unwrap().unwrap();
    // The bootstrap stack the shell made, read through sandbox's read role; no catalog yet.
    let states: Vec<(&str, &serde_json::Value)> = status["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stack"].as_str().unwrap(), &s["status"]))
        .collect();
    assert_eq!(
        states,
        [
            ("catalog-bootstrap", &"CREATE_COMPLETE".into()),
            ("catalog-sandbox", &serde_json::Value::Null)
        ],
        "{status}"
    );
    // Signed in to the pipeline account, as the README's recipe is, sandbox's roles and
    // bootstrap pass doctor's checks. (Its GitHub OIDC provider does not: the emulator's
    // CloudFormation skips AWS::IAM::OIDCProvider.)
    let doctor = documents.next().unwrap().unwrap();
    assert_eq!(doctor["account"], "111111111111", "{doctor}");
    let passed: Vec<&str> = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == true)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        passed,
        ["read role", "bootstrap version", "deploy role"],
        "{doctor}"
    );
    // The emulator the shell started is gone with it: nothing answers at its address.
    let address = stderr
        .split("emulator: http://")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("the shell named no emulator address: {stderr}"));
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the emulator at {address} outlived its shell"
    );
}
