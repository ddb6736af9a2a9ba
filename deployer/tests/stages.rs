//! Stages and stacks are data: a new environment between sandbox and prod, a second stack with
//! settings of its own, and two regions of one account, all without a change to the deployer.

mod common;
use common::{Emulator, PIPELINE, Project, SANDBOX, bootstrapped, repo_root};
use serde_json::Value;

const STAGING: &str = "444444444444";

/// The project with `staging` (a fourth account) between sandbox and prod, holding the catalog
/// and an `orders` stack whose template declares its settings.
fn with_staging() -> Project {
    let p = Project::new();
    let fixtures = repo_root().join("deployer/tests/fixtures");
    for file in ["orders.json.hbs", "orders.settings.toml"] {
        std::fs::copy(fixtures.join(file), p.path(&format!("templates/{file}"))).unwrap();
    }
    let staging = p
        .read("environments/sandbox.toml")
        .replace(
            "account_id = \"222222222222\"",
            "account_id = \"444444444444\"",
        )
        .replace(
            "stacks = [\"catalog\"]",
            "stacks = [\"catalog\", \"orders\"]",
        )
        .replace("enabled = true", "enabled = false")
        + "\n[settings.orders]\nowner = \"team-orders\"\n";
    p.write("environments/staging.toml", &staging);
    p.edit(
        "environments/pipeline.toml",
        "[[stages]]\nenvironment = \"prod\"",
        "[[stages]]\nenvironment = \"staging\"\n\n[[stages]]\nenvironment = \"prod\"",
    );
    p
}

fn synthesized(p: &Project, file: &str) -> Value {
    serde_json::from_str(&p.read(&format!("out/{file}"))).unwrap()
}

#[test]
fn a_new_environment_and_a_new_stack_are_rendered_in_order_with_their_own_roles() {
    let p = with_staging();
    let report = p.run(&["synth", "--all", "--output", "json"]).expect(0);
    assert!(!report.stderr().contains("warning"), "{}", report.stderr());
    let stacks: Vec<(String, String)> = report.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["env"].as_str().unwrap().to_string(),
                f["stack"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("pipeline", "catalog-bootstrap-pipeline"),
        ("pipeline", "catalog-pipeline"),
        ("sandbox", "catalog-bootstrap"),
        ("sandbox", "catalog-sandbox"),
        ("staging", "catalog-bootstrap"),
        ("staging", "catalog-staging"),
        ("staging", "catalog-staging-orders"),
        ("prod", "catalog-bootstrap"),
        ("prod", "catalog-prod"),
    ];
    assert_eq!(
        stacks,
        expected.map(|(e, s)| (e.to_string(), s.to_string()))
    );

    // The orders stack sees its settings: the given owner and the declared default.
    // Functions belong to the stack that declares them: the orders stack has none.
    let err = p
        .run(&["logs", "staging", "--stack", "orders"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("orders has no functions whose logs to read"),
        "{err}"
    );
    let orders = synthesized(&p, "staging-orders.json");
    let table = &orders["Resources"]["Orders"]["Properties"];
    assert_eq!(table["TableName"], "catalog-staging-orders");
    assert_eq!(table["Tags"][0]["Value"], "team-orders");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );

    // The pipeline deploys staging between sandbox and the approval, both its stacks.
    let pipeline = synthesized(&p, "pipeline-pipeline.json");
    let props = &pipeline["Resources"]["Pipeline"]["Properties"];
    let names: Vec<&str> = props["Stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Source",
            "Build",
            "UpdatePipeline",
            "DeploySandbox",
            "VerifySandbox",
            "DeployStaging",
            "VerifyStaging",
            "PrepareProd",
            "ApproveProd",
            "DeployProd",
            "VerifyProd"
        ]
    );
    let buildspec =
        pipeline["Resources"]["DeployStagingProject"]["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap();
    let buildspec = common::yaml(buildspec);
    let staging_deploy_lines: Vec<&str> = buildspec["phases"]["build"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        staging_deploy_lines[0].contains("deploy staging --stack catalog ")
            && staging_deploy_lines[1].contains("deploy staging --stack orders "),
        "{staging_deploy_lines:?}"
    );
    let approval = props["Stages"][8]["Actions"][0]["Configuration"]["CustomData"]
        .as_str()
        .unwrap();
    assert!(
        approval.contains("running in staging, to prod"),
        "{approval}"
    );

    // Staging's Deploy action has a role of its own that reaches staging's deploy role only, and
    // staging's deploy role trusts it.
    let boot = synthesized(&p, "pipeline-bootstrap-pipeline.json");
    let role = &boot["Resources"]["DeployStagingActionRole"]["Properties"];
    assert_eq!(role["RoleName"], "catalog-action-deploy-staging");
    let assume: Vec<&Value> = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("sts:AssumeRole"))
        .collect();
    assert_eq!(assume.len(), 1);
    assert_eq!(
        assume[0]["Resource"]["Fn::Sub"],
        "arn:${AWS::Partition}:iam::444444444444:role/catalog-staging-deploy"
    );
    let target = synthesized(&p, "staging-bootstrap-target.json");
    let trust = &target["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        [0]["Principal"]["AWS"];
    assert!(
        trust
            .to_string()
            .contains("arn:aws:iam::111111111111:role/catalog-action-deploy-staging"),
        "{trust}"
    );
    assert_eq!(
        target["Resources"]["DeployRole"]["Properties"]["RoleName"],
        "catalog-staging-deploy"
    );

    cfn_lint(&p);
}

/// cfn-lint (from the emulator's venv, which scripts/test makes) has no error to report on the
/// rendered templates, the new ones included.
fn cfn_lint(p: &Project) {
    let lint = repo_root().join(".venv/bin/cfn-lint");
    assert!(
        lint.exists(),
        "{} is missing: run the tests through scripts/test, which installs it",
        lint.display()
    );
    let files: Vec<_> = std::fs::read_dir(p.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let out = std::process::Command::new(lint)
        .arg("--")
        .args(&files)
        .output()
        .unwrap();
    // A bitmask: 2 errors, 4 warnings, 8 informational.
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code >= 0 && code & 3 == 0,
        "cfn-lint exit {code}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn an_environment_without_functions_or_branches_leaves_their_tables_out() {
    let p = with_staging();
    p.write(
        "environments/staging.toml",
        "account_id = \"444444444444\"\nregion = \"us-east-1\"\nstacks = [\"orders\"]\n\n\
         [safety]\nretain_data = false\ntermination_protection = false\nrequire_approval = false\n\n\
         [settings.orders]\nowner = \"team-orders\"\n",
    );
    p.run(&["synth", "--all"]).expect(0);
    let orders = synthesized(&p, "staging-orders.json");
    assert_eq!(
        orders["Resources"]["Orders"]["Properties"]["TableName"],
        "catalog-staging-orders"
    );
    // No branch stacks there: the bootstrap makes no role for GitHub.
    let boot = synthesized(&p, "staging-bootstrap-target.json");
    assert!(boot["Resources"].get("BranchDeployRole").is_none());
    assert!(boot["Resources"].get("DeployRole").is_some());
    // A catalog stack there would run the artifact: its template names what is missing.
    p.edit(
        "environments/staging.toml",
        "stacks = [\"orders\"]",
        "stacks = [\"orders\", \"catalog\"]",
    );
    let err = p.run(&["synth", "staging"]).expect(2).stderr();
    assert!(
        err.contains("environments/staging.toml gives no lambda.log_retention_days"),
        "{err}"
    );
    // package builds for the first stage that runs functions, and asked for staging, says why not.
    let err = p
        .run(&["package", "--env", "staging", "--binary", "README.md"])
        .expect(2)
        .stderr();
    assert!(
        err.contains(
            "staging runs no function: package for an environment whose file has a [lambda] table"
        ),
        "{err}"
    );
}

#[test]
fn names_the_config_does_not_know_are_refused_with_a_suggestion() {
    let p = with_staging();
    let err = p.run(&["synth", "stagin"]).expect(2).stderr();
    assert!(
        err.contains("there is no environment \"stagin\"; did you mean staging?")
            && err.contains("pipeline, sandbox, staging, prod"),
        "{err}"
    );
    let err = p.run(&["deploy", "staging"]).expect(2).stderr();
    assert!(
        err.contains("staging holds the stacks catalog, orders: name one with --stack"),
        "{err}"
    );
    let err = p
        .run(&["deploy", "staging", "--stack", "ordrs"])
        .expect(2)
        .stderr();
    assert!(
        err.contains("staging holds no stack \"ordrs\"; did you mean orders?"),
        "{err}"
    );
    // An unknown setting names the file, the line and the key.
    p.edit(
        "environments/staging.toml",
        "owner = \"team-orders\"",
        "owner = \"team-orders\"\npoint_in_time_recovry = false",
    );
    let line = p
        .read("environments/staging.toml")
        .lines()
        .position(|l| l.starts_with("point_in_time_recovry"))
        .unwrap()
        + 1;
    let err = p.run(&["synth", "staging"]).expect(2).stderr();
    assert!(
        err.contains(&format!(
            "environments/staging.toml:{line}: settings.orders.point_in_time_recovry is not a setting"
        )) && err.contains("did you mean point_in_time_recovery?"),
        "{err}"
    );
}

#[test]
fn files_no_stage_uses_are_named_in_a_warning() {
    let p = with_staging();
    p.edit(
        "environments/pipeline.toml",
        "[[stages]]\nenvironment = \"staging\"\n\n",
        "",
    );
    let run = p.run(&["synth", "--all"]).expect(0);
    let err = run.stderr();
    assert!(
        err.contains("warning: environments/staging.toml is not used: no stage in environments/pipeline.toml names staging"),
        "{err}"
    );
    assert!(
        err.contains("warning: templates/orders.json.hbs is not used")
            && err.contains("warning: templates/orders.settings.toml is not used"),
        "{err}"
    );
}

#[test]
fn environments_sharing_an_account_must_not_reach_into_each_other() {
    // Same account and region: one bootstrap stack and bucket each, so refused.
    let p = with_staging();
    p.edit(
        "environments/staging.toml",
        "account_id = \"444444444444\"",
        "account_id = \"222222222222\"",
    );
    let err = p.run(&["synth", "--all"]).expect(2).stderr();
    assert!(
        err.contains("environments/sandbox.toml and environments/staging.toml are both in account 222222222222 and region us-east-1"),
        "{err}"
    );
    // Another region is fine, unless one name would reach the other's resources.
    p.edit(
        "environments/staging.toml",
        "region = \"us-east-1\"",
        "region = \"eu-west-1\"",
    );
    p.run(&["synth", "--all"]).expect(0);
    let text = p
        .read("environments/pipeline.toml")
        .replace("environment = \"staging\"", "environment = \"sandbox-eu\"");
    p.write("environments/pipeline.toml", &text);
    std::fs::rename(
        p.path("environments/staging.toml"),
        p.path("environments/sandbox-eu.toml"),
    )
    .unwrap();
    let err = p.run(&["synth", "--all"]).expect(2).stderr();
    assert!(
        err.contains("catalog-sandbox-* (what sandbox may change there) also names sandbox-eu's resources; rename one"),
        "{err}"
    );
}

/// Every stack name in `account` and `region` of the emulator.
async fn stacks_in(emu: &Emulator, account: &str, region: &str) -> Vec<String> {
    let config = aws_sdk_cloudformation::config::Builder::from(&common::sdk_config(emu, account))
        .region(aws_sdk_cloudformation::config::Region::new(
            region.to_string(),
        ))
        .build();
    let mut names: Vec<String> = aws_sdk_cloudformation::Client::from_conf(config)
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .filter_map(|s| s.stack_name().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn staging_and_its_orders_stack_go_to_their_own_account() {
    let emu = Emulator::start_with(&[PIPELINE, SANDBOX, STAGING]);
    let p = with_staging().signed_in(&emu, PIPELINE);
    p.run_as(&emu, STAGING, &["bootstrap", "staging"]).expect(0);
    common::package(&p, "v1");
    let orders = p
        .run(&["deploy", "staging", "--stack", "orders", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(orders["stack"], "catalog-staging-orders");
    // The orders template takes no artifact: none is uploaded or tagged.
    assert!(
        orders.get("artifact").is_none_or(Value::is_null),
        "{orders}"
    );
    p.run(&["deploy", "staging", "--stack", "catalog"])
        .expect(0);
    assert_eq!(
        stacks_in(&emu, STAGING, "us-east-1").await,
        [
            "catalog-bootstrap",
            "catalog-staging",
            "catalog-staging-orders"
        ]
    );
    assert!(stacks_in(&emu, SANDBOX, "us-east-1").await.is_empty());
    let out = p
        .run(&[
            "outputs", "staging", "--stack", "orders", "--output", "json",
        ])
        .expect(0)
        .json();
    assert_eq!(out["stack"], "catalog-staging-orders");
}

#[tokio::test]
async fn two_regions_of_one_account_bootstrap_and_deploy_side_by_side() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let eu = p
        .read("environments/sandbox.toml")
        .replace("region = \"us-east-1\"", "region = \"eu-west-1\"")
        .replace("enabled = true", "enabled = false");
    p.write("environments/euwest.toml", &eu);
    p.edit(
        "environments/pipeline.toml",
        "[[stages]]\nenvironment = \"prod\"",
        "[[stages]]\nenvironment = \"euwest\"\n\n[[stages]]\nenvironment = \"prod\"",
    );
    // sandbox's bootstrap stands; euwest's goes beside it, with roles of its own.
    p.run_as(&emu, SANDBOX, &["bootstrap", "euwest"]).expect(0);
    p.run(&["deploy", "sandbox"]).expect(0);
    p.run(&["deploy", "euwest"]).expect(0);
    assert_eq!(
        stacks_in(&emu, SANDBOX, "us-east-1").await,
        ["catalog-bootstrap", "catalog-sandbox"]
    );
    assert_eq!(
        stacks_in(&emu, SANDBOX, "eu-west-1").await,
        ["catalog-bootstrap", "catalog-euwest"]
    );
    // A second bootstrap of either changes nothing in the other.
    let again = p
        .run_as(&emu, SANDBOX, &["bootstrap", "sandbox", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(again["outcome"], "no-changes", "{again}");
}

#[tokio::test]
async fn a_branch_has_a_stack_of_each_of_its_environment_s_stacks() {
    let emu = Emulator::start();
    let p = bootstrapped(&emu);
    let fixtures = repo_root().join("deployer/tests/fixtures");
    for file in ["orders.json.hbs", "orders.settings.toml"] {
        std::fs::copy(fixtures.join(file), p.path(&format!("templates/{file}"))).unwrap();
    }
    p.edit(
        "environments/sandbox.toml",
        "stacks = [\"catalog\"]",
        "stacks = [\"catalog\", \"orders\"]",
    );
    let sandbox =
        p.read("environments/sandbox.toml") + "\n[settings.orders]\nowner = \"team-orders\"\n";
    p.write("environments/sandbox.toml", &sandbox);

    // With two stacks, a branch deploy names the one it means, as the environment's does.
    let err = p
        .run(&["deploy", "sandbox", "--branch", "feat/x"])
        .expect(2)
        .stderr();
    assert!(err.contains("name one with --stack"), "{err}");
    // synth renders the branch's stacks, each under its own names.
    p.run(&["synth", "sandbox", "--branch", "feat/x", "--out", "out"])
        .expect(0);
    let orders = synthesized(&p, "sandbox-branch-orders.json");
    let table = orders["Resources"]["Orders"]["Properties"]["TableName"]
        .as_str()
        .unwrap()
        .to_string();
    let catalog = synthesized(&p, "sandbox-branch-catalog.json");
    assert!(table.starts_with("catalog-br-"), "{table}");
    assert_ne!(
        catalog["Resources"]["Table"]["Properties"]["TableName"], table,
        "the branch's two stacks share no resource name"
    );

    // The branch's orders stack goes in beside its catalog stack, through the branch's roles.
    let deployed = p
        .run(&[
            "deploy", "sandbox", "--branch", "feat/x", "--stack", "orders", "-o", "json",
        ])
        .expect(0)
        .json();
    let name = deployed["stack"].as_str().unwrap().to_string();
    assert!(name.starts_with("catalog-br-feat-x-orders-"), "{name}");
    p.run(&[
        "deploy", "sandbox", "--branch", "feat/x", "--stack", "catalog",
    ])
    .expect(0);
    let listed = p.run(&["branches", "list", "-o", "json"]).expect(0).json();
    let rows = listed["stacks"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["branch"] == "feat/x"), "{listed}");

    p.run(&[
        "destroy", "sandbox", "--branch", "feat/x", "--stack", "orders", "--yes",
    ])
    .expect(0);
    let left = stacks_in(&emu, SANDBOX, "us-east-1").await;
    assert!(!left.contains(&name), "{left:?}");
    // gc takes what is left of a branch that is gone.
    p.run(&["branches", "gc", "--keep", "main", "--yes"])
        .expect(0);
    assert_eq!(
        stacks_in(&emu, SANDBOX, "us-east-1").await,
        ["catalog-bootstrap"]
    );
}
