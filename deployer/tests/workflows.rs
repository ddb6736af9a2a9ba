//! The GitHub Actions workflows (tests, branch stacks), parsed as YAML (actionlint does not
//! install here) and checked for their triggers and steps.

mod common;
use common::{Project, repo_root};
use serde_json::Value;

fn workflow(name: &str) -> Value {
    let path = repo_root().join(".github/workflows").join(name);
    common::yaml(&std::fs::read_to_string(&path).unwrap())
}

/// YAML 1.1 reads the key `on` as true.
fn triggers(w: &Value) -> &Value {
    w.get("on")
        .or_else(|| w.get("true"))
        .expect("a workflow has triggers")
}

fn runs(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect()
}

const ROLE: &str = "arn:aws:iam::222222222222:role/catalog-sandbox-branch-deployer";

#[test]
fn pull_requests_and_main_run_the_test_command_with_cargo_cached() {
    let w = workflow("test.yml");
    assert!(triggers(&w).get("pull_request").is_some());
    assert_eq!(triggers(&w)["push"]["branches"][0], "main");
    let job = &w["jobs"]["test"];
    assert_eq!(runs(job), ["scripts/test"]);
    assert_eq!(w["permissions"]["contents"], "read");
    let cached = job["steps"].to_string();
    assert!(cached.contains("~/.cargo/registry") && cached.contains("target"));
}

/// A tag can be moved to other code; a commit cannot. Every third-party action is pinned by one.
#[test]
fn every_action_is_pinned_by_commit() {
    for entry in std::fs::read_dir(repo_root().join(".github/workflows")).unwrap() {
        let path = entry.unwrap().path();
        let w = common::yaml(&std::fs::read_to_string(&path).unwrap());
        for (name, job) in w["jobs"].as_object().unwrap() {
            for step in job["steps"].as_array().unwrap() {
                let Some(uses) = step["uses"].as_str() else {
                    continue;
                };
                let commit = uses.rsplit_once('@').map_or("", |(_, c)| c);
                assert!(
                    commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                    "{}: job {name} uses {uses}, not a commit",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn pushes_deploy_and_deletes_destroy_the_branch_stack() {
    let w = workflow("branch-stack.yml");
    let on = triggers(&w);
    assert_eq!(on["push"]["branches-ignore"], serde_json::json!(["main"]));
    assert!(on.get("delete").is_some());
    assert_eq!(w["permissions"]["id-token"], "write");
    assert_eq!(w["env"]["ROLE"], ROLE);

    let deploy = &w["jobs"]["deploy"];
    assert_eq!(deploy["if"], "github.event_name == 'push'");
    let deploy_runs = runs(deploy);
    assert!(deploy_runs.iter().any(|r| r.contains("deployer package")));
    let step = deploy["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("deploy sandbox --branch"))
        })
        .unwrap();
    // The branch name reaches the shell as a variable, never spliced into the script.
    assert_eq!(
        step["run"],
        "target/release/deployer deploy sandbox --branch \"$BRANCH\" --no-progress --outputs-file outputs.json"
    );
    assert_eq!(step["env"]["BRANCH"], "${{ github.ref_name }}");
    // The branch's API URL lands in the job summary, again through a variable.
    assert!(deploy_runs.iter().any(|r| {
        r.contains("outputs.json")
            && r.contains("GITHUB_STEP_SUMMARY")
            && r.contains("$BRANCH")
            && !r.contains("${{")
    }));

    let destroy = &w["jobs"]["destroy"];
    assert!(
        destroy["if"]
            .as_str()
            .unwrap()
            .contains("github.event.ref_type == 'branch'")
    );
    assert!(
        runs(destroy)
            .iter()
            .any(|r| r.contains("destroy sandbox --branch \"$BRANCH\""))
    );
}

#[test]
fn nightly_gc_keeps_the_branches_git_still_has() {
    let w = workflow("branch-gc.yml");
    assert!(triggers(&w)["schedule"][0]["cron"].is_string());
    assert_eq!(w["permissions"]["id-token"], "write");
    let job = &w["jobs"]["gc"];
    assert!(
        runs(job)
            .iter()
            .any(|r| r.contains("branches gc --keep-from-git"))
    );
    let creds = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials"))
        })
        .unwrap();
    assert_eq!(creds["with"]["role-to-assume"], ROLE);
}

#[test]
fn the_role_the_workflows_assume_trusts_only_this_repository() {
    let p = Project::new();
    p.run(&["synth", "sandbox"]).expect(0);
    let t: Value = serde_json::from_str(&p.read("out/sandbox-bootstrap-target.json")).unwrap();
    let role = &t["Resources"]["BranchDeployRole"]["Properties"];
    assert_eq!(role["RoleName"], "catalog-sandbox-branch-deployer");
    let condition = &role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"];
    assert_eq!(
        condition["StringLike"]["token.actions.githubusercontent.com:sub"],
        "repo:example-org/catalog:ref:refs/heads/*"
    );
    let stacks = &role["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"]["Fn::Sub"];
    assert!(
        stacks.as_str().unwrap().ends_with(":stack/catalog-br-*/*"),
        "{stacks}"
    );
    // Prod, with branch stacks off, trusts no GitHub workflow.
    p.run(&["synth", "prod"]).expect(0);
    let prod: Value = serde_json::from_str(&p.read("out/prod-bootstrap-target.json")).unwrap();
    assert!(prod["Resources"].get("BranchDeployRole").is_none());
}
