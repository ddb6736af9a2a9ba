//! `history` and `rollback`: what a stack ran is recorded in its environment's artifact bucket,
//! and an earlier artifact goes back in with one command (never into a protected environment).

mod common;
use common::{Emulator, SANDBOX, bootstrapped, code_sha256s, lambda_sha, package};
use serde_json::Value;

fn shas(history: &Value) -> Vec<String> {
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manifest"]["sha256"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_puts_the_previous_artifact_back_and_history_lists_each() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    // The emulator keeps a stack's tags and parameters as they were at its creation (AWS
    // updates them on every change set), so a stack back on its first artifact would look
    // unchanged there: the stack is made from a v0 first.
    package(&p, "v0");
    p.run(&["deploy", "sandbox"]).expect(0);
    let v1 = package(&p, "v1")["sha256"].as_str().unwrap().to_string();
    p.run(&["deploy", "sandbox"]).expect(0);
    let v2 = package(&p, "v2")["sha256"].as_str().unwrap().to_string();
    p.run(&["deploy", "sandbox"]).expect(0);
    // A deploy that changes nothing records nothing.
    p.run(&["deploy", "sandbox"]).expect(0);

    let history = p
        .run(&["history", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(history["stack"], "catalog-sandbox");
    assert_eq!(shas(&history)[..2], [v2.clone(), v1.clone()]);
    let newest = &history["entries"][0];
    assert_eq!(newest["outcome"], "deployed");
    // Who: the caller, not the role the deployer assumed for them.
    assert_eq!(
        newest["by"],
        "arn:aws:sts::111111111111:assumed-role/operator/operator"
    );
    let text = p.run(&["history", "sandbox"]).expect(0).stdout();
    assert!(
        text.contains(&v2[..12]) && text.contains("(running now)"),
        "{text}"
    );

    let back = p
        .run(&["rollback", "sandbox", "--output", "json"])
        .expect(0);
    assert!(
        back.stderr().contains(&format!(
            "catalog-sandbox: from {} back to {}",
            &v2[..12],
            &v1[..12]
        )),
        "{}",
        back.stderr()
    );
    assert_eq!(back.json()["artifact"]["sha256"], v1.as_str());
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(&v1); 3]
    );
    let history = p
        .run(&["history", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(shas(&history)[..3], [v1.clone(), v2.clone(), v1.clone()]);
    assert_eq!(history["entries"][0]["outcome"], "rolled-back");

    // --to picks any artifact it ran, by the start of its sha256; an unknown one is refused.
    p.run(&["rollback", "sandbox", "--to", &v2[..10]]).expect(0);
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(&v2); 3]
    );
    let err = p
        .run(&["rollback", "sandbox", "--to", "0000000"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("ran no other artifact starting 0000000"),
        "{err}"
    );
}

#[test]
fn only_a_protected_environment_rolls_back_through_the_local_pipeline() {
    // (Prod's own rollback, through the pipeline and its approval: tests/local_pipeline.rs.)
    let p = common::Project::new();
    let err = p
        .run(&["rollback", "sandbox", "--local"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("--local runs a protected environment's rollback through the local pipeline; sandbox needs no approval"),
        "{err}"
    );
}
