//! Gradual deploys ([settings.catalog.gradual]): the API calls each function's `live` alias, and
//! every change of a function's code or configuration publishes a new version for CodeDeploy to
//! shift the alias to.
//!
//! What the emulator cannot show: its CloudFormation skips AWS::Lambda::Alias,
//! AWS::CodeDeploy::* and AWS::CloudWatch::Alarm and ignores UpdatePolicy, and a Lambda
//! permission on an alias it skipped fails the stack (ResourceNotFoundException): a stack with
//! gradual deploys cannot be deployed there at all. So everything is checked on the rendered
//! template: here, cfn-lint in scripts/test, and the execution role's and the boundary's
//! closure over the resource handlers' permissions in permissions.rs.

mod common;
use common::Project;
use serde_json::Value;

fn gradual_on(p: &Project, strategy: &str) {
    p.edit(
        "environments/sandbox.toml",
        "# [settings.catalog.gradual]\n# strategy = \"Canary10Percent5Minutes\"\n# error_threshold = 1",
        &format!("[settings.catalog.gradual]\nstrategy = \"{strategy}\"\nerror_threshold = 2"),
    );
}

#[test]
fn the_api_calls_live_aliases_that_codedeploy_shifts_under_error_alarms() {
    let p = Project::new();
    gradual_on(&p, "Linear10PercentEvery1Minute");
    p.run(&["synth", "sandbox"]).expect(0);
    let t: Value = serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap();
    let r = &t["Resources"];
    for (f, name) in [("Query", "query"), ("Command", "command")] {
        assert_eq!(
            r[format!("{f}Integration")]["Properties"]["IntegrationUri"],
            serde_json::json!({ "Ref": format!("{f}Alias") })
        );
        assert_eq!(
            r[format!("{f}Permission")]["Properties"]["FunctionName"],
            serde_json::json!({ "Ref": format!("{f}Alias") })
        );
        let alias = &r[format!("{f}Alias")];
        assert_eq!(
            alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"],
            serde_json::json!({ "Ref": format!("{f}DeploymentGroup") })
        );
        let group = &r[format!("{f}DeploymentGroup")]["Properties"];
        assert_eq!(
            group["DeploymentConfigName"],
            "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
        );
        assert_eq!(
            group["AlarmConfiguration"]["Alarms"][0]["Name"]["Ref"],
            format!("{f}Errors")
        );
        assert_eq!(group["AutoRollbackConfiguration"]["Enabled"], true);
        let alarm = &r[format!("{f}Errors")]["Properties"];
        assert_eq!(alarm["Threshold"], 2);
        assert_eq!(alarm["AlarmName"], format!("catalog-sandbox-{name}-errors"));
        let description = r[format!("{f}Version")]["Properties"]["Description"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            description.starts_with(&format!(
                "{f}Function: artifact ${{ArtifactKey}}, configuration "
            )),
            "{description}"
        );
    }
    // The import function, called by SNS, switches at once; and a branch stack never shifts.
    assert!(r.get("ImportAlias").is_none());
    p.run(&["synth", "sandbox", "--branch", "feat/x", "--out", "branch"])
        .expect(0);
    let branch = std::fs::read_dir(p.path("branch"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let branch: Value = serde_json::from_slice(&std::fs::read(branch.path()).unwrap()).unwrap();
    assert!(branch["Resources"].get("QueryAlias").is_none());
    // A strategy CodeDeploy does not have is refused at its key.
    p.edit(
        "environments/sandbox.toml",
        "strategy = \"Linear10PercentEvery1Minute\"",
        "strategy = \"Canary50Percent\"",
    );
    let err = p.run(&["synth", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains("strategy") && err.contains("Canary10Percent5Minutes"),
        "{err}"
    );
}

/// The Description the renderer gives each function's Version: CloudFormation replaces a Version
/// whose Description changes (createOnlyProperties in AWS::Lambda::Version's schema), which
/// publishes a new one for CodeDeploy to shift to.
fn descriptions(p: &Project) -> (String, String) {
    p.run(&["synth", "sandbox"]).expect(0);
    let t: Value = serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap();
    let of = |f: &str| {
        t["Resources"][format!("{f}Version")]["Properties"]["Description"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (of("Query"), of("Command"))
}

#[test]
fn a_change_of_code_or_configuration_publishes_a_version_and_nothing_else_does() {
    let p = Project::new();
    gradual_on(&p, "Canary10Percent5Minutes");
    let (query, command) = descriptions(&p);
    // New code: the description names the artifact key, which names the zip's sha256.
    assert!(query.contains("${ArtifactKey}") && command.contains("${ArtifactKey}"));
    // The same files render the same descriptions: no version without a change.
    assert_eq!(descriptions(&p), (query.clone(), command.clone()));
    // A change of the query function's configuration alone: its version only.
    p.edit(
        "environments/sandbox.toml",
        "memory_mb = 256",
        "memory_mb = 320",
    );
    let (query_after, command_after) = descriptions(&p);
    assert_ne!(query_after, query);
    assert_eq!(command_after, command);
    // Settings that are not the function's (the API's throttling) publish nothing.
    p.edit(
        "environments/sandbox.toml",
        "rate_limit = 100.0",
        "rate_limit = 50.0",
    );
    assert_eq!(descriptions(&p), (query_after, command_after));
}
