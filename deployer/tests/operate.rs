//! Living with a deployed stack: its logs, its outputs as a file, drift on a stack that is not
//! there, and shell completions.

mod common;
use common::{Emulator, Project, SANDBOX, bootstrapped};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Writes `messages` to a function's log group in sandbox, `ago_ms` before now.
async fn log(emu: &Emulator, function: &str, messages: &[(&str, i64)]) {
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
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
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_merge_the_functions_in_time_order_and_follow_new_ones() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    p.run(&["deploy", "sandbox"]).expect(0);
    log(
        &emu,
        "query",
        &[("GET /products 200", 3_000), ("GET /health 200", 1_000)],
    )
    .await;
    log(&emu, "command", &[("POST /products 201", 2_000)]).await;
    log(&emu, "import", &[("imported long ago", 3_600_000)]).await;

    let all = p
        .run(&["logs", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    let pair = |f: &str, m: &str| (f.to_string(), m.to_string());
    assert_eq!(
        messages(&all),
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
    log(&emu, "command", &[("PUT /products/1 200", 0)]).await;
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
