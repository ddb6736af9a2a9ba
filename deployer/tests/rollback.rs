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

    // However long the history: with 120 newer entries of v2 (as many redeploys would leave),
    // the artifact before it is still found, by the keys alone, without reading them all.
    let bucket = format!("catalog-artifacts-{SANDBOX}-us-east-1");
    let s3 = aws_sdk_s3::Client::new(&common::sdk_config(&emu, SANDBOX));
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("history/catalog-sandbox/")
        .send()
        .await
        .unwrap();
    let newest = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .max()
        .unwrap();
    assert!(newest.ends_with(&format!("-{v2}.json")), "{newest}");
    let entry = s3
        .get_object()
        .bucket(&bucket)
        .key(newest)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let millis: u64 = newest.rsplit('/').next().unwrap()[..13].parse().unwrap();
    for i in 1..=120 {
        s3.put_object()
            .bucket(&bucket)
            .key(format!(
                "history/catalog-sandbox/{:013}-{v2}.json",
                millis + i
            ))
            .body(entry.clone().into())
            .send()
            .await
            .unwrap();
    }
    p.run(&["rollback", "sandbox"]).expect(0);
    assert_eq!(
        code_sha256s(&emu, SANDBOX, "catalog-sandbox").await,
        vec![lambda_sha(&v1); 3]
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
