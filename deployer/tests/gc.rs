//! `gc --artifacts`: only what no stack, pending change set or history entry references goes,
//! once old enough, after asking; and it can come back (the bucket keeps versions).

mod common;
use common::{Emulator, PIPELINE, SANDBOX, bootstrapped, package, sdk_config};

fn sha(manifest: &serde_json::Value) -> String {
    manifest["sha256"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_only_artifacts_nothing_references() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let v1 = sha(&package(&p, "v1"));
    p.run(&["deploy", "sandbox"]).expect(0);
    let v2 = sha(&package(&p, "v2"));
    p.run(&["deploy", "sandbox"]).expect(0);
    // A branch stack's artifact is referenced while the branch stack lives, and by nothing after.
    let v3 = sha(&package(&p, "v3"));
    p.run(&["deploy", "sandbox", "--branch", "feat-gc"])
        .expect(0);
    p.run(&["destroy", "sandbox", "--branch", "feat-gc", "--yes"])
        .expect(0);
    // A change set waiting (for an approval, say) keeps the artifact it would deploy.
    let v4 = sha(&package(&p, "v4"));
    p.run(&["deploy", "sandbox", "--no-execute"]).expect(0);
    // So does the first change set of a stack not made yet (REVIEW_IN_PROGRESS).
    let v5 = sha(&package(&p, "v5"));
    p.run(&["deploy", "sandbox", "--branch", "feat-new", "--no-execute"])
        .expect(0);

    let gc = |extra: &[&str]| {
        let mut args = vec!["gc", "sandbox", "--artifacts", "--output", "json"];
        args.extend(extra);
        p.run_as(&emu, SANDBOX, &args)
    };
    // Everything is younger than the default age: nothing goes, and nothing is asked.
    let young = gc(&[]).expect(0).json();
    assert_eq!(young["removed"], serde_json::json!([]));
    assert_eq!(
        (young["referenced"].as_u64(), young["too_young"].as_u64()),
        (Some(4), Some(1))
    );

    let dry = gc(&["--older-than", "0s", "--dry-run"]).expect(0).json();
    let bucket = dry["bucket"].as_str().unwrap().to_string();
    assert_eq!(bucket, format!("catalog-artifacts-{SANDBOX}-us-east-1"));
    let orphan = format!("app/{v3}.zip");
    assert_eq!(dry["removed"][0]["key"], orphan.as_str());
    assert_eq!(dry["removed"].as_array().unwrap().len(), 1);

    // Off a terminal, removing needs --yes.
    let refused = gc(&["--older-than", "0s"]).expect(2);
    assert!(
        refused.stderr().contains("pass --yes"),
        "{}",
        refused.stderr()
    );

    let s3 = aws_sdk_s3::Client::new(&sdk_config(&emu, SANDBOX));
    let exists = |key: String| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .is_ok()
        }
    };
    // On a terminal it shows what would go and asks; "n" leaves it.
    let sandbox = emu.credentials(SANDBOX);
    let sandbox: Vec<(&str, &str)> = sandbox
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let asked = p
        .run_on_terminal_with(
            &["gc", "sandbox", "--artifacts", "--older-than", "0s"],
            "n\n",
            &sandbox,
        )
        .expect(1);
    let shown = asked.stdout();
    assert!(
        shown.contains(&format!("would remove s3://{bucket}/{orphan}"))
            && shown.contains("Remove 1 unreferenced object from")
            && shown.contains("nothing was removed"),
        "{shown}"
    );
    assert!(
        exists(orphan.clone()).await,
        "a declined or refused gc removed nothing"
    );

    let done = gc(&["--older-than", "0s", "--yes"]).expect(0).json();
    assert_eq!(done["removed"][0]["key"], orphan.as_str());
    assert_eq!(done["dry_run"], false);
    assert!(!exists(orphan.clone()).await);
    for kept in [&v1, &v2, &v4, &v5] {
        assert!(
            exists(format!("app/{kept}.zip")).await,
            "{kept} was removed"
        );
    }
    // On AWS the removal is a delete marker in a versioned bucket, to be restored until the
    // lifecycle rule expires it; the emulator's CloudFormation ignores the bucket's
    // VersioningConfiguration, so here it is gone for good. permissions.rs checks the rendered
    // bucket (versioned, noncurrent versions kept 30 days).

    // The history is never collected: rollback still finds both deploys.
    let history = p
        .run(&["history", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);

    let text = p
        .run_as(
            &emu,
            SANDBOX,
            &["gc", "sandbox", "--artifacts", "--older-than", "0s"],
        )
        .expect(0)
        .stdout();
    assert!(
        text.contains("kept 4 referenced by a stack, a change set or the history"),
        "{text}"
    );
}

#[test]
fn gc_names_what_it_cannot_collect() {
    let emu = Emulator::start();
    let p = common::Project::new().signed_in(&emu, PIPELINE);
    let pipeline = p.run(&["gc", "pipeline", "--artifacts"]).expect(2);
    assert!(
        pipeline.stderr().contains("lifecycle rule expires"),
        "{}",
        pipeline.stderr()
    );
    // gc reads every stack of the bucket's account: it runs with that account's credentials.
    let elsewhere = p.run(&["gc", "sandbox", "--artifacts"]).expect(2);
    assert!(
        elsewhere
            .stderr()
            .contains(&format!("needs credentials in its account {SANDBOX}")),
        "{}",
        elsewhere.stderr()
    );
    let kindless = p.run(&["gc", "sandbox"]).expect(2);
    assert!(
        kindless.stderr().contains("--artifacts"),
        "{}",
        kindless.stderr()
    );
}
