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
