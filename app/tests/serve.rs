//! `app serve` as a user runs it: the binary, against the emulator.

mod support;

#[test]
fn serve_refuses_a_missing_table_naming_it_and_the_command_that_makes_it() {
    let emu = support::Emulator::start();
    let creds = emu.credentials(support::ACCOUNT);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .args([
            "serve", "--port", "0", "--store", "dynamodb", "--table", "nope",
        ])
        .env("AWS_ENDPOINT_URL", &emu.url)
        .env("AWS_REGION", "us-east-1")
        .envs(creds)
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
    use std::io::{BufRead, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .args(["serve", "--port", "0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_string();
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
