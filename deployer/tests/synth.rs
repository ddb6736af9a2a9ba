//! `deployer synth`: one file per stack, the same bytes on every run.

mod common;
use common::Project;
use std::collections::BTreeMap;

fn files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn synth_all_writes_every_stack_of_every_environment_identically_twice() {
    let p = Project::new();
    p.run(&["synth", "--all", "--out", "first"]).expect(0);
    p.run(&["synth", "--all", "--out", "second"]).expect(0);
    let first = files(&p.path("first"));
    let names: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "pipeline-bootstrap-pipeline.json",
            "pipeline-pipeline.json",
            "prod-bootstrap-target.json",
            "prod-catalog.json",
            "sandbox-bootstrap-target.json",
            "sandbox-catalog.json",
        ]
    );
    assert_eq!(first, files(&p.path("second")));
}

#[test]
fn settings_reach_the_rendered_template() {
    let p = Project::new();
    p.run(&["synth", "--all"]).expect(0);
    let sandbox: serde_json::Value =
        serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap();
    let prod: serde_json::Value = serde_json::from_str(&p.read("out/prod-catalog.json")).unwrap();
    assert_eq!(sandbox["Resources"]["Table"]["DeletionPolicy"], "Delete");
    assert_eq!(prod["Resources"]["Table"]["DeletionPolicy"], "Retain");
    assert_eq!(
        prod["Resources"]["FunctionLogs"]["Properties"]["RetentionInDays"],
        90
    );
    // Only the pipeline account may assume a target's deploy role.
    let boot: serde_json::Value =
        serde_json::from_str(&p.read("out/prod-bootstrap-target.json")).unwrap();
    let trust = &boot["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        [0]["Principal"]["AWS"]["Fn::Sub"];
    assert_eq!(trust, "arn:${AWS::Partition}:iam::111111111111:root");
}

#[test]
fn values_are_json_escaped() {
    let p = Project::new();
    p.edit(
        "environments/pipeline.toml",
        "repository = \"example-org/catalog\"",
        "repository = \"quote\\\" back\\\\slash <tag>\"",
    );
    p.edit(
        "templates/pipeline.json.hbs",
        "\"Description\": \"{{prefix}} delivery pipeline",
        "\"Description\": \"{{pipeline.github.repository}} delivery pipeline",
    );
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    assert!(
        t["Description"]
            .as_str()
            .unwrap()
            .starts_with("quote\" back\\slash <tag> delivery")
    );
}

#[test]
fn synth_one_environment_with_json_output() {
    let p = Project::new();
    let run = p
        .run(&["synth", "sandbox", "--out", "o", "--output", "json"])
        .expect(0);
    let report = run.json();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        assert_eq!(f["env"], "sandbox");
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(p.path(path)).unwrap();
        assert_eq!(f["bytes"], bytes.len());
        assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(files[1]["stack"], "catalog-sandbox");
}

#[test]
fn synth_needs_an_environment_or_all() {
    let p = Project::new();
    let err = p.run(&["synth"]).expect(2).stderr();
    assert!(err.contains("--all"), "{err}");
    let err = p.run(&["synth", "staging"]).expect(2).stderr();
    assert!(err.contains("pipeline, sandbox, prod"), "{err}");
}

#[test]
fn the_pipeline_promotes_one_build_artifact_through_an_approval() {
    let p = Project::new();
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    let pipeline = &t["Resources"]["Pipeline"]["Properties"];
    assert_eq!(pipeline["PipelineType"], "V2");
    let stages: Vec<&serde_json::Value> = pipeline["Stages"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = stages.iter().map(|s| s["Name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Source", "Build", "DeploySandbox", "Approval", "DeployProd"]
    );
    let action = |i: usize| &stages[i]["Actions"][0];
    assert_eq!(action(3)["ActionTypeId"]["Provider"], "Manual");
    // Both deploys take the one Build output, and nothing else.
    assert_eq!(
        action(2)["InputArtifacts"],
        serde_json::json!([{"Name": "Build"}])
    );
    assert_eq!(action(4)["InputArtifacts"], action(2)["InputArtifacts"]);
    assert_eq!(
        action(1)["OutputArtifacts"],
        serde_json::json!([{"Name": "Build"}])
    );
    let spec = |project: &str| {
        t["Resources"][project]["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        spec("DeploySandboxProject")
            .contains("deployer deploy sandbox --no-progress --artifact dist/manifest.json")
    );
    assert!(
        spec("DeployProdProject")
            .contains("deployer deploy prod --no-progress --artifact dist/manifest.json")
    );
    assert!(spec("BuildProject").contains("deployer pipeline deploy"));
    // Self-update: an update supersedes the running execution, so the pipeline restarts; the
    // restarted Build finds the pipeline current (no changes) and carries on, so it never loops.
    assert_eq!(pipeline["RestartExecutionOnUpdate"], true);
    // On push to the configured branch only.
    assert_eq!(
        pipeline["Triggers"][0]["GitConfiguration"]["Push"][0]["Branches"]["Includes"],
        serde_json::json!(["main"])
    );
    // CodeBuild may assume the deploy roles of sandbox and prod, nothing else.
    p.run(&["synth", "pipeline"]).expect(0);
    let boot: serde_json::Value =
        serde_json::from_str(&p.read("out/pipeline-bootstrap-pipeline.json")).unwrap();
    let statements = boot["Resources"]["CodeBuildRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let assume: Vec<&serde_json::Value> = statements
        .iter()
        .filter(|s| s["Action"] == "sts:AssumeRole")
        .collect();
    assert_eq!(assume.len(), 1);
    assert_eq!(
        assume[0]["Resource"],
        serde_json::json!([
            {"Fn::Sub": "arn:${AWS::Partition}:iam::222222222222:role/catalog-deploy"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::333333333333:role/catalog-deploy"}
        ])
    );
}

#[test]
fn approval_notifications_are_an_sns_topic_only_when_emails_are_named() {
    let p = Project::new();
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    let approval = |t: &serde_json::Value| {
        t["Resources"]["Pipeline"]["Properties"]["Stages"][3]["Actions"][0]["Configuration"].clone()
    };
    assert!(approval(&t).get("NotificationArn").is_none());
    assert!(t["Resources"].get("ApprovalTopic").is_none());

    p.edit(
        "environments/pipeline.toml",
        "notify_emails = []",
        "notify_emails = [\"ops@example.org\", \"lead@example.org\"]",
    );
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    let topic = serde_json::json!({"Ref": "ApprovalTopic"});
    assert_eq!(approval(&t)["NotificationArn"], topic);
    assert_eq!(t["Resources"]["ApprovalTopic"]["Type"], "AWS::SNS::Topic");
    assert_eq!(
        t["Resources"]["ApprovalTopic"]["Properties"]["Subscription"],
        serde_json::json!([
            {"Protocol": "email", "Endpoint": "ops@example.org"},
            {"Protocol": "email", "Endpoint": "lead@example.org"}
        ])
    );
    // The pipeline's role may publish to this topic and nothing else, before the pipeline runs.
    let policy = &t["Resources"]["ApprovalNotifyPolicy"]["Properties"];
    assert_eq!(policy["Roles"], serde_json::json!(["catalog-codepipeline"]));
    assert_eq!(
        policy["PolicyDocument"]["Statement"],
        serde_json::json!([{"Effect": "Allow", "Action": "sns:Publish", "Resource": topic}])
    );
    assert_eq!(
        t["Resources"]["Pipeline"]["DependsOn"],
        "ApprovalNotifyPolicy"
    );
    assert_eq!(t["Outputs"]["ApprovalTopicArn"]["Value"], topic);
}
