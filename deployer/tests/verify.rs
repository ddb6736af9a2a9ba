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
