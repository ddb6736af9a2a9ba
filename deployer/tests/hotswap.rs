//! `deploy --branch B --hotswap`: a branch stack's functions take new code without a change set
//! when nothing else changed; anything more is refused, and so is any stack but a branch's.

mod common;
use common::{Emulator, SANDBOX, bootstrapped, code_sha256s, lambda_sha, package};

/// The branch stack's functions' common name (`{base}-query` and so on), as Lambda lists them.
async fn branch_functions(emu: &Emulator) -> String {
    let lambda = aws_sdk_lambda::Client::new(&common::sdk_config(emu, SANDBOX));
    let listed = lambda.list_functions().send().await.unwrap();
    listed
        .functions()
        .iter()
        .filter_map(|f| f.function_name()?.strip_suffix("-query"))
        .find(|n| n.starts_with("catalog-br-"))
        .expect("the branch stack's query function")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_code_changed_goes_straight_into_the_functions() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let branch = ["deploy", "sandbox", "--branch", "feat/fast"];
    p.run(&branch).expect(0);
    let base = branch_functions(&emu).await;
    let stacks = common::cloudformation(&emu, SANDBOX);
    let stack = stacks
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .filter_map(|s| s.stack_name())
        .find(|n| n.starts_with("catalog-br-feat-fast-"))
        .unwrap()
        .to_string();
    let events = || async {
        stacks
            .describe_stack_events()
            .stack_name(&stack)
            .send()
            .await
            .unwrap()
            .stack_events()
            .len()
    };
    let events_before = events().await;
    assert!(events_before > 0);

    let v2 = package(&p, "v2")["sha256"].as_str().unwrap().to_string();
    let run = p
        .run(&[
            "deploy",
            "sandbox",
            "--branch",
            "feat/fast",
            "--hotswap",
            "--output",
            "json",
        ])
        .expect(0);
    let report = run.json();
    assert_eq!(report["sha256"], v2.as_str());
    assert_eq!(report["functions"].as_array().unwrap().len(), 3);
    assert_eq!(
        code_sha256s(&emu, SANDBOX, &base).await,
        vec![lambda_sha(&v2); 3]
    );
    let text = p
        .run(&["deploy", "sandbox", "--branch", "feat/fast", "--hotswap"])
        .expect(0)
        .stdout();
    assert!(
        text.contains("the stack now differs from its template"),
        "{text}"
    );
    // No change set ran: the stack has no new events.
    assert_eq!(events().await, events_before);

    // A template change is not code only: refused, nothing swapped.
    p.edit(
        "environments/sandbox.toml",
        "memory_mb = 256\n",
        "memory_mb = 384\n",
    );
    package(&p, "v3");
    let err = p
        .run(&["deploy", "sandbox", "--branch", "feat/fast", "--hotswap"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("template changed, not only its code: deploy without --hotswap"),
        "{err}"
    );
    assert_eq!(
        code_sha256s(&emu, SANDBOX, &base).await,
        vec![lambda_sha(&v2); 3]
    );
}

#[test]
fn hotswap_is_for_branch_stacks_only() {
    let p = common::Project::new();
    let err = p
        .run(&["deploy", "sandbox", "--hotswap"])
        .expect(2)
        .stderr();
    assert!(err.contains("--branch"), "{err}");
    let err = p
        .run(&["deploy", "prod", "--branch", "x", "--hotswap"])
        .expect(2)
        .stderr();
    assert!(err.contains("branch stacks are off in prod"), "{err}");
}
