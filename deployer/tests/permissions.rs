//! Least privilege, read as IAM evaluates it, on the rendered templates: who may assume which
//! role, and whether each execution role allows what CloudFormation's resource handlers need.
//!
//! The emulator checks callers' identity policies and trust policies (scripts/moto_server.py),
//! but not `iam:PassRole`, not conditions on identity policies, not the resource of most calls,
//! and not what CloudFormation does with an execution role. Those are checked here, statically.
//! The handlers' permissions come from the CloudFormation resource provider schemas that cfn-lint
//! ships (`handlers.{create,read,update,delete}.permissions`).

mod common;
use common::{PIPELINE, PROD, Project, SANDBOX, repo_root};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn synth(p: &Project, env: &str) -> BTreeMap<String, Value> {
    p.run(&["synth", env]).expect(0);
    std::fs::read_dir(p.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{env}-"))
        })
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap();
            let kind = name.strip_prefix(&format!("{env}-")).unwrap().to_string();
            (
                kind,
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

/// A Fn::Sub string (or a plain one) with the pseudo parameters of `account`.
fn text(v: &Value, account: &str) -> String {
    let s = v
        .get("Fn::Sub")
        .and_then(Value::as_str)
        .or(v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    s.replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", "us-east-1")
}

/// The statements of every inline policy of a role.
fn statements(role: &Value) -> Vec<Value> {
    list(&role["Properties"]["Policies"])
        .iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .collect()
}

/// IAM's action matching: case-insensitive, `*` and `?` wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Whether some Allow statement grants `action` (on some resource) and no Deny of it applies to
/// every resource. Resource scoping is asserted apart.
fn allows(statements: &[Value], action: &str) -> bool {
    let concerns = |s: &Value| {
        list(&s["Action"])
            .iter()
            .any(|a| action_matches(a.as_str().unwrap(), action))
    };
    let denied = statements.iter().any(|s| {
        s["Effect"] == "Deny" && concerns(s) && list(&s["Resource"]).contains(&json!("*"))
    });
    !denied
        && statements
            .iter()
            .any(|s| s["Effect"] == "Allow" && concerns(s))
}

fn resource<'a>(t: &'a Value, logical: &str) -> &'a Value {
    let r = &t["Resources"][logical];
    assert!(r.is_object(), "{logical} is not in the template");
    r
}

/// The AWS principals a role's trust policy allows.
fn trusted(role: &Value, account: &str) -> BTreeSet<String> {
    list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| list(&s["Principal"]["AWS"]))
        .map(|p| text(&p, account))
        .collect()
}

/// The roles any role of the template may assume, by role.
fn assumable(t: &Value, account: &str) -> BTreeMap<String, BTreeSet<String>> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(name, r)| {
            let targets = statements(r)
                .iter()
                .filter(|s| {
                    s["Effect"] == "Allow"
                        && list(&s["Action"])
                            .iter()
                            .any(|a| action_matches(a.as_str().unwrap(), "sts:AssumeRole"))
                })
                .flat_map(|s| list(&s["Resource"]))
                .map(|r| text(&r, account))
                .collect();
            (name.clone(), targets)
        })
        .collect()
}

#[test]
fn prod_deploy_role_trusts_only_the_prod_deploy_action_and_a_named_break_glass_role() {
    let p = Project::new();
    let prod = &synth(&p, "prod")["bootstrap-target"];
    assert_eq!(
        trusted(resource(prod, "DeployRole"), PROD),
        BTreeSet::from([format!(
            "arn:aws:iam::{PIPELINE}:role/catalog-action-deploy-prod"
        )])
    );
    p.edit(
        "environments/prod.toml",
        "[branches]",
        "[access]\nbreak_glass_role_arn = \"arn:aws:iam::333333333333:role/break-glass\"\n\n[branches]",
    );
    let prod = &synth(&p, "prod")["bootstrap-target"];
    assert_eq!(
        trusted(resource(prod, "DeployRole"), PROD),
        BTreeSet::from([
            format!("arn:aws:iam::{PIPELINE}:role/catalog-action-deploy-prod"),
            "arn:aws:iam::333333333333:role/break-glass".to_string(),
        ])
    );
}

#[test]
fn operators_read_prod_through_a_role_that_changes_nothing() {
    let p = Project::new();
    let prod = &synth(&p, "prod")["bootstrap-target"];
    let read = resource(prod, "ReadRole");
    // The pipeline's prod Verify action (the stack's outputs) and the readers.
    let verify = format!("arn:aws:iam::{PIPELINE}:role/catalog-action-verify-prod");
    assert_eq!(
        trusted(read, PROD),
        BTreeSet::from([verify.clone(), format!("arn:aws:iam::{PIPELINE}:root")])
    );
    let st = statements(read);
    for action in [
        "cloudformation:DescribeStacks",
        "logs:FilterLogEvents",
        "cloudformation:DetectStackDrift",
    ] {
        assert!(allows(&st, action), "the read role may not {action}");
    }
    for action in [
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteStack",
        "cloudformation:UpdateTerminationProtection",
        "iam:PassRole",
        "s3:PutObject",
        "lambda:UpdateFunctionCode",
        "dynamodb:GetItem",
    ] {
        assert!(!allows(&st, action), "the read role may {action}");
    }
    // Of the parameters, only the bootstrap marker (`doctor` reads it) and the verifier's
    // password (`verify` logs in with it): never a signing secret.
    let readable: Vec<String> = st
        .iter()
        .filter(|s| {
            s["Effect"] == "Allow"
                && list(&s["Action"])
                    .iter()
                    .any(|a| action_matches(a.as_str().unwrap(), "ssm:GetParameter"))
        })
        .flat_map(|s| list(&s["Resource"]))
        .map(|r| text(&r, PROD))
        .collect();
    assert_eq!(
        readable,
        [
            format!("arn:aws:ssm:us-east-1:{PROD}:parameter/catalog/bootstrap/version"),
            format!("arn:aws:ssm:us-east-1:{PROD}:parameter/catalog/prod/verify-password")
        ]
    );
    p.edit(
        "environments/prod.toml",
        "[branches]",
        "[access]\nreaders = [\"arn:aws:iam::444444444444:role/auditor\"]\n\n[branches]",
    );
    let prod = &synth(&p, "prod")["bootstrap-target"];
    assert_eq!(
        trusted(resource(prod, "ReadRole"), PROD),
        BTreeSet::from([verify, "arn:aws:iam::444444444444:role/auditor".to_string()])
    );
}

#[test]
fn sandbox_deploy_role_trusts_its_deploy_action_and_the_operators_sandbox_names() {
    let p = Project::new();
    let sandbox = &synth(&p, "sandbox")["bootstrap-target"];
    // Without an [access] table: the pipeline account, as before.
    assert_eq!(
        trusted(resource(sandbox, "DeployRole"), SANDBOX),
        BTreeSet::from([
            format!("arn:aws:iam::{PIPELINE}:role/catalog-action-deploy-sandbox"),
            format!("arn:aws:iam::{PIPELINE}:root"),
        ])
    );
    p.edit(
        "environments/sandbox.toml",
        "[branches]",
        "[access]\noperators = [\"arn:aws:iam::444444444444:role/dev\"]\n\n[branches]",
    );
    let sandbox = &synth(&p, "sandbox")["bootstrap-target"];
    assert_eq!(
        trusted(resource(sandbox, "DeployRole"), SANDBOX),
        BTreeSet::from([
            format!("arn:aws:iam::{PIPELINE}:role/catalog-action-deploy-sandbox"),
            "arn:aws:iam::444444444444:role/dev".to_string(),
        ])
    );
}

#[test]
fn each_pipeline_action_has_its_own_role_and_only_deploy_prod_reaches_prod() {
    let p = Project::new();
    let boot = &synth(&p, "pipeline")["bootstrap-pipeline"];
    let deploy_role =
        |account: &str, env: &str| format!("arn:aws:iam::{account}:role/catalog-{env}-deploy");
    let can_assume = assumable(boot, PIPELINE);
    let reaching = |role: &str| {
        can_assume
            .iter()
            .filter(|(_, targets)| targets.iter().any(|t| action_matches(t, role)))
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reaching(&deploy_role(PROD, "prod")),
        ["DeployProdActionRole"]
    );
    assert_eq!(
        reaching(&deploy_role(SANDBOX, "sandbox")),
        ["DeploySandboxActionRole"]
    );
    for (name, targets) in &can_assume {
        assert!(
            targets.len() <= 1,
            "{name} may assume more than one role: {targets:?}"
        );
    }
    // Build compiles merged code: it reaches no account and no stack.
    let build = statements(resource(boot, "BuildActionRole"));
    for action in [
        "sts:AssumeRole",
        "cloudformation:CreateChangeSet",
        "iam:PassRole",
        "s3:DeleteObject",
    ] {
        assert!(!allows(&build, action), "Build may {action}");
    }
    // UpdatePipeline changes the pipeline stack only, through the pipeline execution role.
    let update = statements(resource(boot, "UpdatePipelineActionRole"));
    assert!(allows(&update, "cloudformation:ExecuteChangeSet"));
    assert!(!allows(&update, "sts:AssumeRole"));
    let stacks: Vec<String> = update
        .iter()
        .filter(|s| list(&s["Action"]).contains(&json!("cloudformation:ExecuteChangeSet")))
        .flat_map(|s| list(&s["Resource"]))
        .map(|r| text(&r, PIPELINE))
        .collect();
    assert_eq!(
        stacks,
        [format!(
            "arn:aws:cloudformation:us-east-1:{PIPELINE}:stack/catalog-pipeline/*"
        )]
    );
    // The projects run as their own action's role.
    let pipeline = &synth(&p, "pipeline")["pipeline"];
    for (project, role) in [
        ("BuildProject", "build"),
        ("UpdatePipelineProject", "update-pipeline"),
        ("DeploySandboxProject", "deploy-sandbox"),
        ("DeployProdProject", "deploy-prod"),
    ] {
        assert_eq!(
            resource(pipeline, project)["Properties"]["ServiceRole"],
            json!({ "Fn::ImportValue": format!("catalog-action-{role}-role") })
        );
    }
}

#[test]
fn the_branch_role_trusts_branch_workflows_of_one_repository_and_passes_only_the_branch_execution_role()
 {
    let p = Project::new();
    let sandbox = &synth(&p, "sandbox")["bootstrap-target"];
    let role = resource(sandbox, "BranchDeployRole");
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"],
        "repo:example-org/catalog:ref:refs/heads/*"
    );
    let pass: Vec<Value> = statements(role)
        .iter()
        .filter(|s| list(&s["Action"]).contains(&json!("iam:PassRole")))
        .flat_map(|s| list(&s["Resource"]))
        .collect();
    assert_eq!(
        pass,
        [json!({ "Fn::GetAtt": ["BranchExecutionRole", "Arn"] })]
    );
    // An account that already has GitHub's provider names it instead of making a second one.
    p.edit(
        "environments/sandbox.toml",
        "github_repository = \"example-org/catalog\"",
        "github_repository = \"example-org/catalog\"\noidc_provider_arn = \"arn:aws:iam::222222222222:oidc-provider/token.actions.githubusercontent.com\"",
    );
    let sandbox = &synth(&p, "sandbox")["bootstrap-target"];
    assert!(sandbox["Resources"].get("GitHubOidc").is_none());
    assert_eq!(
        resource(sandbox, "BranchDeployRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            [0]["Principal"]["Federated"],
        "arn:aws:iam::222222222222:oidc-provider/token.actions.githubusercontent.com"
    );
}

/// The resource provider schemas cfn-lint ships, by type name.
fn schemas() -> BTreeMap<String, Value> {
    let site = std::fs::read_dir(repo_root().join(".venv/lib"))
        .expect("scripts/emulator install made .venv")
        .map(|e| e.unwrap().path().join("site-packages/cfnlint/data/schemas"))
        .find(|p| p.is_dir())
        .expect("cfn-lint is in .venv");
    let index: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(site.join("providers/us-east-1.json")).unwrap(),
    )
    .unwrap();
    index
        .into_iter()
        .map(|(t, hash)| {
            let path = site.join(format!("resources/{hash}.json"));
            (
                t,
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Handler permissions our templates cannot need, each with the property that would need it:
/// the test fails if a template starts setting that property.
const NOT_NEEDED: &[(&str, &str, &str)] = &[
    // (type, action pattern, property whose use would need it)
    (
        "AWS::DynamoDB::Table",
        "kinesis:*",
        "KinesisStreamSpecification",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:*KinesisStreamingDestination",
        "KinesisStreamSpecification",
    ),
    (
        "AWS::DynamoDB::Table",
        "kms:*",
        "SSESpecification.KMSMasterKeyId",
    ),
    ("AWS::DynamoDB::Table", "dynamodb:*TableReplica", "Replicas"),
    (
        "AWS::DynamoDB::Table",
        "iam:CreateServiceLinkedRole",
        "Replicas",
    ),
    // Importing data from S3 writes items: the execution role never reads or writes app data.
    (
        "AWS::DynamoDB::Table",
        "dynamodb:*Import*",
        "ImportSourceSpecification",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:*Item",
        "ImportSourceSpecification",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:Query",
        "ImportSourceSpecification",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:Scan",
        "ImportSourceSpecification",
    ),
    ("AWS::DynamoDB::Table", "s3:*", "ImportSourceSpecification"),
    (
        "AWS::DynamoDB::Table",
        "logs:*",
        "ImportSourceSpecification",
    ),
    ("AWS::Lambda::Function", "ec2:*", "VpcConfig"),
    (
        "AWS::Lambda::Function",
        "elasticfilesystem:*",
        "FileSystemConfigs",
    ),
    ("AWS::Lambda::Function", "s3files:*", "FileSystemConfigs"),
    ("AWS::Lambda::Function", "kms:*", "KmsKeyArn"),
    ("AWS::Lambda::Function", "lambda:GetLayerVersion", "Layers"),
    (
        "AWS::Lambda::Function",
        "lambda:GetCodeSigningConfig",
        "CodeSigningConfigArn",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:PassCapacityProvider",
        "CapacityProviderConfig",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:*FunctionScalingConfig",
        "CapacityProviderConfig",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:AssociateRuntimeAlias",
        "RuntimeManagementConfig",
    ),
    (
        "AWS::Lambda::Version",
        "lambda:*ProvisionedConcurrencyConfig",
        "ProvisionedConcurrencyConfig",
    ),
    (
        "AWS::Lambda::Version",
        "lambda:*FunctionScalingConfig",
        "FunctionScalingConfig",
    ),
    (
        "AWS::Lambda::Alias",
        "lambda:*ProvisionedConcurrencyConfig",
        "ProvisionedConcurrencyConfig",
    ),
    (
        "AWS::CodeDeploy::DeploymentGroup",
        "codedeploy:RegisterOnPremisesInstance",
        "OnPremisesInstanceTagFilters",
    ),
    // A revision deployed by the group itself: ours are deployed by the alias's update policy.
    (
        "AWS::CodeDeploy::DeploymentGroup",
        "codedeploy:*ApplicationRevision",
        "Deployment",
    ),
    (
        "AWS::CodeDeploy::DeploymentGroup",
        "codedeploy:ListDeployments",
        "Deployment",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:*ResourcePolic*",
        "ResourcePolicyDocument",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:CreateLogDelivery",
        "FieldIndexPolicies",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:PutBearerTokenAuthentication",
        "BearerTokenAuthenticationEnabled",
    ),
    ("AWS::Logs::LogGroup", "firehose:*", "FieldIndexPolicies"),
    ("AWS::Logs::LogGroup", "s3:*", "FieldIndexPolicies"),
    ("AWS::SNS::Topic", "iam:*", "DeliveryStatusLogging"),
    ("AWS::SNS::Subscription", "iam:*", "DeliveryStatusLogging"),
    (
        "AWS::ApiGatewayV2::Integration",
        "iam:PassRole",
        "CredentialsArn",
    ),
    (
        "AWS::ApiGatewayV2::Authorizer",
        "iam:PassRole",
        "AuthorizerCredentialsArn",
    ),
    ("AWS::ApiGatewayV2::Api", "s3:*", "BodyS3Location"),
    (
        "AWS::ApiGatewayV2::DomainName",
        "s3:*",
        "MutualTlsAuthentication",
    ),
    (
        "AWS::Route53::RecordSet",
        "route53:ListHostedZones",
        "HostedZoneName",
    ),
    (
        "AWS::CodePipeline::Pipeline",
        "codepipeline:*StageTransition",
        "DisableInboundStageTransitions",
    ),
];

/// Handler permissions withheld on purpose, with the reason.
const WITHHELD: &[(&str, &str, &str)] = &[
    (
        "AWS::IAM::Role",
        "iam:DeleteRolePermissionsBoundary",
        "the app boundary never comes off a role the stacks make (explicitly denied)",
    ),
    (
        "AWS::ApiGatewayV2::Stage",
        "apigateway:*TagResource",
        "IAM authorizes API Gateway tagging as PUT/DELETE on /tags/* (granted): the service authorization reference has no apigateway:TagResource",
    ),
];

/// What the CodeBuild::Project schema does not list (it has no handlers): read from the
/// CodeBuild API reference for CreateProject, UpdateProject, DeleteProject, BatchGetProjects.
const CODEBUILD_PROJECT: &[&str] = &[
    "codebuild:CreateProject",
    "codebuild:UpdateProject",
    "codebuild:DeleteProject",
    "codebuild:BatchGetProjects",
    "iam:PassRole",
];

fn property_used(resource: &Value, property: &str) -> bool {
    property
        .split('.')
        .try_fold(&resource["Properties"], |v, key| v.get(key))
        .is_some()
}

/// Every action the handlers of every resource in `template` need, checked against `policy`.
fn assert_closure(
    template: &Value,
    policy: &[Value],
    what: &str,
    schemas: &BTreeMap<String, Value>,
) {
    let mut missing = BTreeSet::new();
    for (logical, r) in template["Resources"].as_object().unwrap() {
        let ty = r["Type"].as_str().unwrap();
        let needed: Vec<String> = if ty == "AWS::CodeBuild::Project" {
            CODEBUILD_PROJECT.iter().map(|s| s.to_string()).collect()
        } else {
            let h = &schemas[ty]["handlers"];
            ["create", "read", "update", "delete"]
                .iter()
                .flat_map(|k| list(&h[k]["permissions"]))
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        };
        for action in needed {
            let excused = NOT_NEEDED
                .iter()
                .find(|(t, pattern, _)| *t == ty && action_matches(pattern, &action));
            if WITHHELD
                .iter()
                .any(|(t, pattern, _)| *t == ty && action_matches(pattern, &action))
            {
                continue;
            }
            if let Some((_, _, property)) = excused {
                assert!(
                    !property_used(r, property),
                    "{what}: {logical} sets {property}, so its handlers need {action}: grant it and remove the exception"
                );
                continue;
            }
            if !allows(policy, &action) {
                missing.insert(format!("{action} (for {logical}, {ty})"));
            }
        }
    }
    assert!(missing.is_empty(), "{what} lacks: {missing:#?}");
}

fn execution_policy(boot: &Value, role: &str) -> Vec<Value> {
    statements(resource(boot, role))
}

#[test]
fn execution_roles_allow_what_the_resource_handlers_need_for_every_option() {
    let schemas = schemas();
    let p = Project::new();
    let boot = synth(&p, "pipeline");
    assert_closure(
        &boot["pipeline"],
        &execution_policy(&boot["bootstrap-pipeline"], "PipelineExecutionRole"),
        "the pipeline execution role",
        &schemas,
    );
    p.edit(
        "environments/pipeline.toml",
        "notify_emails = []",
        "notify_emails = [\"ops@example.org\"]",
    );
    let boot = synth(&p, "pipeline");
    assert_closure(
        &boot["pipeline"],
        &execution_policy(&boot["bootstrap-pipeline"], "PipelineExecutionRole"),
        "the pipeline execution role (approval topic)",
        &schemas,
    );

    for env in ["sandbox", "prod"] {
        let file = format!("environments/{env}.toml");
        let plain = synth(&p, env);
        let exec = execution_policy(&plain["bootstrap-target"], "ExecutionRole");
        assert_closure(
            &plain["catalog"],
            &exec,
            &format!("{env} execution role"),
            &schemas,
        );
        p.edit(
            &file,
            "# [settings.catalog.auth]\n# oidc_issuer = \"https://example.eu.auth0.com/\"\n# oidc_audience = [\"https://catalog.example.org\"]",
            "[settings.catalog.auth]\noidc_issuer = \"https://example.eu.auth0.com/\"\noidc_audience = [\"https://catalog.example.org\"]",
        );
        let account = if env == "sandbox" { SANDBOX } else { PROD };
        p.edit(
            &file,
            "# [settings.catalog.domain]\n# name = \"api.example.org\"\n# certificate_arn = \"arn:aws:acm:us-east-1:ACCOUNT:certificate/...\"\n# hosted_zone_id = \"Z0123456789ABCDEFGHIJ\"",
            &format!("[settings.catalog.domain]\nname = \"api.example.org\"\ncertificate_arn = \"arn:aws:acm:us-east-1:{account}:certificate/abc\"\nhosted_zone_id = \"Z0123456789ABCDEFGHIJ\""),
        );
        p.edit(
            &file,
            "# [settings.catalog.gradual]\n# strategy = \"Canary10Percent5Minutes\"\n# error_threshold = 1",
            "[settings.catalog.gradual]\nstrategy = \"Linear10PercentEvery1Minute\"\nerror_threshold = 1",
        );
        let all = synth(&p, env);
        assert!(all["catalog"]["Resources"].get("QueryAlias").is_some());
        assert!(
            all["catalog"]["Resources"].get("DnsRecord").is_some()
                || all["catalog"]["Resources"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|r| r["Type"] == "AWS::Route53::RecordSet")
        );
        let exec = execution_policy(&all["bootstrap-target"], "ExecutionRole");
        assert_closure(
            &all["catalog"],
            &exec,
            &format!("{env} execution role (auth, domain, gradual)"),
            &schemas,
        );
    }

    // A branch stack, through the branch execution role.
    let p = Project::new();
    p.run(&["synth", "sandbox"]).expect(0);
    let boot: Value = serde_json::from_str(&p.read("out/sandbox-bootstrap-target.json")).unwrap();
    let envs = deployer::config::Environments::load(&p.path("environments")).unwrap();
    let options = deployer::render::Options {
        branch: Some("feat/x".into()),
        ..Default::default()
    };
    let branch = deployer::render::Renderer::load(&p.path("templates"))
        .unwrap()
        .render_with(
            &envs,
            envs.env("sandbox").unwrap(),
            deployer::render::StackKind::Service("catalog"),
            &options,
        )
        .unwrap()
        .template;
    assert_closure(
        &branch,
        &execution_policy(&boot, "BranchExecutionRole"),
        "the branch execution role",
        &schemas,
    );
}

#[test]
fn execution_roles_create_roles_only_under_the_boundary_and_never_touch_the_bootstrap() {
    let p = Project::new();
    let out = synth(&p, "sandbox");
    let boot = &out["bootstrap-target"];
    for (role, boundary) in [
        ("ExecutionRole", "AppBoundary"),
        ("BranchExecutionRole", "BranchBoundary"),
    ] {
        let st = execution_policy(boot, role);
        let create = st
            .iter()
            .find(|s| list(&s["Action"]).contains(&json!("iam:CreateRole")))
            .unwrap();
        assert_eq!(
            create["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
            json!({ "Ref": boundary }),
            "{role}"
        );
        assert!(
            st.iter().any(|s| s["Effect"] == "Deny"
                && list(&s["Action"]).contains(&json!("iam:DeleteRolePermissionsBoundary"))
                && s["Resource"] == "*"),
            "{role} may remove the boundary"
        );
        let denied: BTreeSet<String> = st
            .iter()
            .filter(|s| s["Effect"] == "Deny" && list(&s["Action"]).contains(&json!("iam:*")))
            .flat_map(|s| list(&s["Resource"]))
            .map(|r| text(&r, SANDBOX))
            .collect();
        let boundaries: BTreeSet<String> = st
            .iter()
            .filter(|s| s["Effect"] == "Deny" && list(&s["Action"]).contains(&json!("iam:*")))
            .flat_map(|s| list(&s["Resource"]))
            .filter(|r| r.get("Ref").is_some())
            .map(|r| r["Ref"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            boundaries,
            BTreeSet::from(["AppBoundary".to_string(), "BranchBoundary".to_string()]),
            "{role} may change a boundary"
        );
        for own in [
            "catalog-sandbox-deploy",
            "catalog-sandbox-read",
            "catalog-sandbox-cfn-exec",
            "catalog-sandbox-cfn-exec-branch",
            "catalog-sandbox-branch-deployer",
        ] {
            assert!(
                denied.contains(&format!("arn:aws:iam::{SANDBOX}:role/{own}")),
                "{role} is not denied {own}"
            );
        }
        // The signing secrets are the app's: the execution role only names them.
        assert!(
            !allows(&st, "ssm:GetParameter"),
            "{role} may read SSM parameters"
        );
    }
    // Every role the catalog makes carries its boundary (a branch stack's, its own), and asks for
    // nothing it does not allow.
    p.run(&["synth", "sandbox", "--branch", "feat/x"]).expect(0);
    let branch: Value = serde_json::from_str(&p.read("out/sandbox-branch-catalog.json")).unwrap();
    for (catalog, boundary, policy) in [
        (
            &out["catalog"],
            "AppBoundary",
            "catalog-sandbox-app-boundary",
        ),
        (&branch, "BranchBoundary", "catalog-sandbox-branch-boundary"),
    ] {
        let allowed = list(&resource(boot, boundary)["Properties"]["PolicyDocument"]["Statement"]);
        let roles: Vec<(&String, &Value)> = catalog["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
            .collect();
        assert_eq!(roles.len(), 3);
        for (name, role) in roles {
            assert_eq!(
                text(&role["Properties"]["PermissionsBoundary"], SANDBOX),
                format!("arn:aws:iam::{SANDBOX}:policy/{policy}"),
                "{name}"
            );
            for s in statements(role) {
                for a in list(&s["Action"]) {
                    assert!(
                        allows(&allowed, a.as_str().unwrap()),
                        "{name} asks for {a}, the boundary does not allow it"
                    );
                }
            }
        }
    }
    // IAM's `*` crosses `/` and `-`: the branch boundary names nothing of sandbox's own (its
    // table, logs, queues, signing secret), and sandbox's names nothing of the branches'.
    let reach = |boundary: &str| -> Vec<String> {
        list(&resource(boot, boundary)["Properties"]["PolicyDocument"]["Statement"])
            .iter()
            .flat_map(|s| list(&s["Resource"]))
            .map(|r| text(&r, SANDBOX))
            .collect()
    };
    let sandbox_own = [
        format!("arn:aws:dynamodb:us-east-1:{SANDBOX}:table/catalog-sandbox-Table-X1"),
        format!("arn:aws:ssm:us-east-1:{SANDBOX}:parameter/catalog/sandbox/jwt-secret"),
        format!("arn:aws:logs:us-east-1:{SANDBOX}:log-group:/aws/lambda/catalog-sandbox-query"),
    ];
    let branch_own = [
        format!("arn:aws:dynamodb:us-east-1:{SANDBOX}:table/catalog-br-feat-x-0a1b2c3d4e-Table-X1"),
        format!(
            "arn:aws:ssm:us-east-1:{SANDBOX}:parameter/catalog/sandbox/catalog-br-0a1b2c3d4e/jwt-secret"
        ),
        format!(
            "arn:aws:logs:us-east-1:{SANDBOX}:log-group:/aws/lambda/catalog-br-0a1b2c3d4e-query"
        ),
    ];
    for (boundary, own, other) in [
        ("AppBoundary", &sandbox_own, &branch_own),
        ("BranchBoundary", &branch_own, &sandbox_own),
    ] {
        let patterns = reach(boundary);
        for arn in own {
            assert!(
                patterns.iter().any(|p| action_matches(p, arn)),
                "{boundary} does not reach {arn}: {patterns:?}"
            );
        }
        for arn in other {
            assert!(
                !patterns.iter().any(|p| action_matches(p, arn)),
                "{boundary} reaches {arn}: {patterns:?}"
            );
        }
    }
}

/// Statements that grant a whole service or every resource, each with the reason it must.
const BROAD_GRANTS: &[(&str, &str)] = &[
    (
        "ListingHasNoResource",
        "ListStacks and ValidateTemplate take no resource",
    ),
    (
        "ListHostedZonesHasNoResource",
        "route53:ListHostedZones takes no resource",
    ),
    (
        "DriftDetectionReadsWhatItCompares",
        "drift detection reads each resource type's own Describe/Get calls",
    ),
    (
        "AccountAdmin",
        "a KMS key policy's Resource is always the key itself",
    ),
    (
        "TheBoundaryStays",
        "a Deny: removing any role's boundary is refused",
    ),
];

#[test]
fn no_grant_of_a_whole_service_or_every_resource_without_its_reason() {
    let p = Project::new();
    for env in ["pipeline", "sandbox", "prod"] {
        for (kind, t) in synth(&p, env) {
            let mut docs = vec![];
            for r in t["Resources"].as_object().unwrap().values() {
                docs.extend(statements(r));
                docs.extend(list(&r["Properties"]["PolicyDocument"]["Statement"]));
                docs.extend(list(&r["Properties"]["KeyPolicy"]["Statement"]));
            }
            for s in docs {
                let sid = s["Sid"].as_str().unwrap_or("(no Sid)");
                let whole_service = list(&s["Action"])
                    .iter()
                    .any(|a| a.as_str().unwrap().ends_with(":*") || a == "*");
                let every_resource = list(&s["Resource"]).contains(&json!("*"));
                let principal_star = s["Principal"] == "*";
                if (whole_service || every_resource) && !principal_star {
                    assert!(
                        BROAD_GRANTS.iter().any(|(allowed, _)| *allowed == sid)
                            || (s["Effect"] == "Deny" && !every_resource),
                        "{env}/{kind}: statement {sid} grants {} on {}: scope it, or list it in BROAD_GRANTS with its reason",
                        s["Action"],
                        s["Resource"]
                    );
                }
            }
        }
    }
}

#[test]
fn data_and_artifacts_are_kept_where_they_must_be() {
    let p = Project::new();
    let prod = synth(&p, "prod");
    let table = resource(&prod["catalog"], "Table");
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    assert_eq!(
        table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["DeletionPolicy"], "Retain");
    // S3 refuses a PutObject without If-None-Match: an artifact is written once, never replaced.
    let policy = list(
        &resource(&prod["bootstrap-target"], "ArtifactBucketPolicy")["Properties"]["PolicyDocument"]
            ["Statement"],
    );
    let no_overwrite = policy
        .iter()
        .find(|s| s["Sid"] == "ArtifactsAreNeverReplaced")
        .unwrap();
    assert_eq!(no_overwrite["Effect"], "Deny");
    assert_eq!(no_overwrite["Action"], "s3:PutObject");
    assert_eq!(
        no_overwrite["Condition"],
        json!({ "Null": { "s3:if-none-match": "true" } })
    );
    // What `gc --artifacts` removes (with the account's own credentials) is a delete marker in a
    // versioned bucket, and can be brought back until this rule expires it.
    let bucket = &resource(&prod["bootstrap-target"], "ArtifactBucket")["Properties"];
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let rules = list(&bucket["LifecycleConfiguration"]["Rules"]);
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"],
        30
    );
    assert!(
        rules[0]["ExpirationInDays"].is_null(),
        "current artifacts never expire"
    );
    // No role in a target may delete an artifact.
    for r in prod["bootstrap-target"]["Resources"]
        .as_object()
        .unwrap()
        .values()
    {
        if r["Type"] == "AWS::IAM::Role" {
            assert!(!allows(&statements(r), "s3:DeleteObject"));
            assert!(!allows(&statements(r), "s3:DeleteObjectVersion"));
        }
    }
}

/// The SDK operations `path` (a file, or a module's directory) calls (`.some_operation()` on a
/// client), as IAM actions of `service`.
fn calls_in(path: &str, service: &str) -> BTreeSet<String> {
    let path = repo_root().join("deployer/src").join(path);
    let text = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        assert!(!files.is_empty(), "no source in {}", path.display());
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        std::fs::read_to_string(&path).unwrap()
    };
    let verbs = [
        "describe_",
        "create_",
        "execute_",
        "delete_",
        "get_",
        "list_",
        "update_",
        "continue_",
        "detect_",
        "filter_",
        "head_",
        "put_",
    ];
    text.split('.')
        .filter_map(|part| part.split_once("()").map(|(name, _)| name.trim()))
        .filter(|name| {
            verbs.iter().any(|v| name.starts_with(v))
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(|name| {
            let camel: String = name
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            // S3's HeadObject is authorized as s3:GetObject.
            let camel = if camel == "HeadObject" {
                "GetObject".into()
            } else {
                camel
            };
            format!("{service}:{camel}")
        })
        .collect()
}

/// Every call the deployer makes in a target account is allowed by the role it makes it through,
/// also the ones the emulator lacks (drift detection, termination protection, continuing a
/// rollback), whose paths are tested with mocks.
#[test]
fn every_call_the_deployer_makes_in_a_target_is_allowed_by_its_role() {
    let p = Project::new();
    let boot = &synth(&p, "sandbox")["bootstrap-target"];
    let deploy = statements(resource(boot, "DeployRole"));
    let read = statements(resource(boot, "ReadRole"));
    let branch = statements(resource(boot, "BranchDeployRole"));
    // Through the deploy role: change sets, stack waits (their events too) and deletions,
    // artifacts, the marker.
    let mut through_deploy = calls_in("stack", "cloudformation");
    assert!(through_deploy.contains("cloudformation:DescribeStackEvents"));
    through_deploy.extend(calls_in("artifact.rs", "s3"));
    // The marker check, and branch stacks' signing secrets (made and deleted); the environment's
    // own secret is made at bootstrap, with the operator's credentials.
    through_deploy.extend(calls_in("access.rs", "ssm"));
    assert!(through_deploy.contains("ssm:GetParameter"));
    assert!(through_deploy.contains("ssm:PutParameter"));
    assert!(through_deploy.contains("ssm:DeleteParameter"));
    assert!(through_deploy.contains("cloudformation:UpdateTerminationProtection"));
    assert!(through_deploy.contains("cloudformation:ContinueUpdateRollback"));
    assert!(through_deploy.contains("s3:PutObject"));
    for action in &through_deploy {
        assert!(allows(&deploy, action), "the deploy role may not {action}");
    }
    // The branch role deploys and destroys branch stacks the same way, but never protects one
    // (branch stacks have no termination protection) nor continues another's rollback.
    for action in &through_deploy {
        let protected_only = [
            "cloudformation:UpdateTerminationProtection",
            "cloudformation:ContinueUpdateRollback",
        ];
        if !protected_only.contains(&action.as_str()) {
            assert!(allows(&branch, action), "the branch role may not {action}");
        }
    }
    // Through the read role: drift detection and logs, and the stacks' state.
    let mut through_read = calls_in("drift.rs", "cloudformation");
    through_read.extend(calls_in("logs.rs", "logs"));
    through_read.insert("cloudformation:DescribeStacks".into());
    assert!(through_read.contains("cloudformation:DetectStackDrift"));
    assert!(through_read.contains("logs:FilterLogEvents"));
    for action in &through_read {
        assert!(allows(&read, action), "the read role may not {action}");
    }
}
