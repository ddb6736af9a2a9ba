//! `app serve` as a user runs it: the binary, against the emulator.

mod support;

#[test]
fn serve_refuses_a_missing_table_naming_it_and_the_command_that_makes_it() {
    let emu = support::Emulator::start();
    let out = app_at(&emu, &emu.url)
        .args([
            "serve", "--port", "0", "--store", "dynamodb", "--table", "nope",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "DynamoDB table nope does not exist: create it with `app create-table --table nope`"
        ),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it never says it listens"
    );
}

#[test]
fn a_redirected_log_has_no_colour_codes_and_latencies_print_short() {
    use std::io::{Read, Write};
    let (mut child, addr) = listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serve", "--port", "0"])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped()),
    );
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    child.kill().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    assert!(log.contains("request"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
    let latency = log
        .split("latency_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let decimals = latency.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "latency_ms={latency}");
}

/// The app binary, signed in as `emu`'s operator, every AWS call going to `endpoint`.
fn app_at(emu: &support::Emulator, endpoint: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_app"));
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .envs(emu.credentials(support::ACCOUNT));
    command
}

/// Starts `command` (an `app serve --port 0`): the child, and the address it says it listens on.
fn listening(command: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    (child, addr)
}

/// A DynamoDB that stops answering mid-run (a frozen endpoint, a connection lost without a word)
/// costs a request at most the call's time limit: a 503 with Retry-After, which the client may
/// retry. Without a limit the SDK would wait for ever, and on Lambda the function would be
/// killed at its timeout instead, the client getting API Gateway's bare 500.
#[test]
fn a_store_that_stops_answering_is_a_503_the_client_may_retry() {
    use std::io::{Read, Write};
    let emu = support::Emulator::start();
    let made = app_at(&emu, &emu.url)
        .args(["create-table", "--table", "held"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    // Every call goes through; a product list (a Query) is taken and never answered.
    let (proxy, held) = support::proxy::holding_proxy(&emu.url, "DynamoDB_20120810.Query");
    let (mut child, addr) = listening(
        app_at(&emu, &proxy)
            .args([
                "serve", "--port", "0", "--store", "dynamodb", "--table", "held",
            ])
            .stderr(std::process::Stdio::null()),
    );
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    // Far above the call's limit: a test that would otherwise wait for ever fails instead.
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    conn.write_all(b"GET /products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let read = conn.read_to_string(&mut answer);
    child.kill().unwrap();
    child.wait().unwrap();
    read.unwrap_or_else(|e| panic!("no answer: {e}"));
    held.try_recv()
        .expect("the Query reached the store and was held");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"busy\""), "{answer}");
}

/// `app serve` whose DynamoDB endpoint never answers stops at its start, saying what to check,
/// within the call's time limit.
#[test]
fn serve_stops_at_once_when_dynamodb_does_not_answer_naming_what_to_check() {
    let emu = support::Emulator::start();
    let (silent, _held) = support::proxy::silent_endpoint(4);
    let mut child = app_at(&emu, &silent)
        .args([
            "serve", "--port", "0", "--store", "dynamodb", "--table", "t",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Far above the call's limit: a serve that would wait for ever fails the test instead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("app serve still waits for an endpoint that never answers");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot reach DynamoDB to find table t: check AWS_ENDPOINT_URL"),
        "{stderr}"
    );
    assert!(stderr.contains("no answer from the store"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it never says it listens"
    );
}
