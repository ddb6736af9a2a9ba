//! `deployer verify`: the smoke test, run against the real catalog app on localhost (the
//! emulator runs no API Gateway or Lambda), with a verifier who may write and without one.

mod common;
use common::{App, Project};

#[test]
fn a_verifier_makes_reads_changes_and_deletes_a_throwaway_product() {
    let app = App::start("open");
    let (status, _) = app.request(
        "POST",
        "/signup",
        r#"{"email":"ann@example.com","password":"correct horse battery staple"}"#,
    );
    assert_eq!(status, 201);
    let p = Project::new();
    let run = p
        .run_with(
            &[
                "verify",
                "sandbox",
                "--url",
                &app.1,
                "--email",
                "ann@example.com",
                "--output",
                "json",
            ],
            &[("DEPLOYER_VERIFY_PASSWORD", "correct horse battery staple")],
        )
        .expect(0);
    let report = run.json();
    assert_eq!(report["passed"], true, "{report}");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks.len(), 9, "{checks:?}");
    assert!(checks.contains(&"DELETE /products/{id} removes it (needs an admin)"));
    // Cleaned up: the catalog holds nothing the check made.
    assert_eq!(
        app.request("GET", "/products", ""),
        (200, r#"{"items":[],"next_cursor":null}"#.to_string())
    );
}

#[test]
fn without_a_verifier_a_new_reader_is_refused_a_write_and_a_failure_exits_1() {
    let app = App::start("open");
    let p = Project::new();
    let text = p
        .run(&["verify", "sandbox", "--url", &app.1])
        .expect(0)
        .stdout();
    assert!(
        text.contains("ok   POST /products as a new reader answers 403")
            && text.contains("every check passed"),
        "{text}"
    );
    // A wrong password: the login check fails, the command exits 1 naming it.
    let run = p
        .run_with(
            &[
                "verify",
                "sandbox",
                "--url",
                &app.1,
                "--email",
                "ann@example.com",
            ],
            &[("DEPLOYER_VERIFY_PASSWORD", "wrong")],
        )
        .expect(1);
    assert!(
        run.stdout().contains("FAIL POST /login as ann@example.com"),
        "{}",
        run.stdout()
    );
    // A dead endpoint fails each check instead of waiting.
    let dead = p
        .run(&["verify", "sandbox", "--url", "http://127.0.0.1:9"])
        .expect(1);
    assert!(
        dead.stdout().contains("FAIL GET /health answers 200"),
        "{}",
        dead.stdout()
    );
    let err = p
        .run(&["verify", "sandbox", "--url", "ftp://x"])
        .expect(2)
        .stderr();
    assert!(err.contains("is not an http(s) URL"), "{err}");
}

/// With `[verify] email` in the environment's file, bootstrap makes the verifier's password (a
/// SecureString in that account) and verify reads it through the read role, signs the verifier up
/// on its first run (a named admin may, even where sign-up is closed) and logs in after that.
#[tokio::test]
async fn the_configured_verifier_signs_up_once_with_the_password_bootstrap_made() {
    let emu = common::Emulator::start();
    let p = Project::new().signed_in(&emu, common::PIPELINE);
    p.edit(
        "environments/sandbox.toml",
        "# [verify]\n# email = \"verify@example.org\"",
        "[verify]\nemail = \"ann@example.com\"",
    );
    // Before bootstrap there is no password: said, with what to do.
    let err = p
        .run(&["verify", "sandbox", "--url", "http://127.0.0.1:9"])
        .expect(2)
        .stderr();
    assert!(err.contains("run `deployer bootstrap sandbox`"), "{err}");
    p.run_as(&emu, common::SANDBOX, &["bootstrap", "sandbox"])
        .expect(0);
    // The app's only admin is ann; sign-up is closed to everyone else.
    let app = App::start("closed");
    let verify = || {
        p.run(&["verify", "sandbox", "--url", &app.1, "-o", "json"])
            .expect(0)
            .json()
    };
    let first = verify();
    let names: Vec<&str> = first["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"POST /signup as ann@example.com (its first run)")
            && names.contains(&"DELETE /products/{id} removes it (needs an admin)"),
        "{first}"
    );
    let second = verify();
    assert!(
        !second.to_string().contains("its first run"),
        "the second run logs in at once: {second}"
    );
    // The password is a SecureString of the sandbox account (permissions.rs: only the read role
    // of the deployer's roles may read it).
    let ssm = aws_sdk_ssm::Client::new(&common::sdk_config(&emu, common::SANDBOX));
    let param = ssm
        .get_parameter()
        .name("/catalog/sandbox/verify-password")
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(
        param.r#type,
        Some(aws_sdk_ssm::types::ParameterType::SecureString)
    );
}
