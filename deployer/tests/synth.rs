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

/// The entries the cache holds in `dir`, in order, without the marker of its last sweep.
fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut e: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| !path.ends_with(".swept"))
        .collect();
    e.sort();
    e
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
        prod["Resources"]["QueryLogs"]["Properties"]["RetentionInDays"],
        90
    );
    // Only the pipeline's prod Deploy action may assume prod's deploy role (permissions.rs has
    // the rest of the trust rules).
    let boot: serde_json::Value =
        serde_json::from_str(&p.read("out/prod-bootstrap-target.json")).unwrap();
    let trust = &boot["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        [0]["Principal"]["AWS"];
    assert_eq!(
        trust,
        &serde_json::json!(["arn:aws:iam::111111111111:role/catalog-action-deploy-prod"])
    );
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
    // A newer execution overtakes older ones waiting between stages (and `approve` refuses one
    // left at the approval once a newer one is prepared behind it: approvals.rs).
    assert_eq!(pipeline["ExecutionMode"], "SUPERSEDED");
    let stages: Vec<&serde_json::Value> = pipeline["Stages"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = stages.iter().map(|s| s["Name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Source",
            "Build",
            "UpdatePipeline",
            "DeploySandbox",
            "VerifySandbox",
            "PrepareProd",
            "ApproveProd",
            "DeployProd",
            "VerifyProd"
        ]
    );
    let action = |i: usize| &stages[i]["Actions"][0];
    assert_eq!(action(6)["ActionTypeId"]["Provider"], "Manual");
    // The self-update, the prepare, the deploys and verifies take the one Build output, and
    // nothing else.
    assert_eq!(
        action(3)["InputArtifacts"],
        serde_json::json!([{"Name": "Build"}])
    );
    for i in [2, 4, 5, 7, 8] {
        assert_eq!(action(i)["InputArtifacts"], action(3)["InputArtifacts"]);
    }
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
    assert!(spec("DeploySandboxProject").contains(
        "deployer deploy sandbox --stack catalog --no-progress --artifact dist/manifest.json"
    ));
    // Prepare makes prod's change set and exports its name; the approval names it, and prod's
    // Deploy executes exactly it (or, where Prepare found nothing to change, changes nothing).
    assert!(spec("PrepareProdProject").contains(
        "deployer deploy prod --stack catalog --no-execute --no-progress --artifact dist/manifest.json --expect-sha256 \"$ARTIFACT_SHA\" --output json > prepared-catalog.json"
    ));
    assert_eq!(action(5)["Namespace"], "PrepareProdVariables");
    // Each deploy is followed by its smoke test, whose failure stops the pipeline.
    assert!(spec("VerifySandboxProject").contains("deployer verify sandbox --stack catalog"));
    assert!(spec("VerifyProdProject").contains("deployer verify prod --stack catalog"));
    assert!(
        action(6)["Configuration"]["CustomData"]
            .as_str()
            .unwrap()
            .ends_with("catalog=#{PrepareProdVariables.CHANGE_SET_CATALOG}")
    );
    assert!(spec("DeployProdProject").contains(
        "deployer deploy prod --stack catalog --change-set \"$CHANGE_SET_CATALOG\" --no-progress --artifact dist/manifest.json"
    ));
    assert!(spec("DeployProdProject").contains("--unchanged"));
    // Every deploy ships exactly the sha256 Build exported (and the approval names).
    let sha =
        r##"{"name":"ARTIFACT_SHA","value":"#{BuildVariables.ARTIFACT_SHA}","type":"PLAINTEXT"}"##;
    for i in [3, 5] {
        assert_eq!(
            action(i)["Configuration"]["EnvironmentVariables"],
            format!("[{sha}]")
        );
    }
    assert_eq!(
        action(7)["Configuration"]["EnvironmentVariables"],
        format!(
            r##"[{sha},{{"name":"CHANGE_SET_CATALOG","value":"#{{PrepareProdVariables.CHANGE_SET_CATALOG}}","type":"PLAINTEXT"}}]"##
        )
    );
    assert!(spec("DeployProdProject").contains("--expect-sha256 \"$ARTIFACT_SHA\""));
    // Build reaches no account: the self-update is a stage of its own, with its own role.
    assert!(!spec("BuildProject").contains("deployer pipeline deploy"));
    assert!(spec("UpdatePipelineProject").contains("deployer pipeline deploy"));
    // Self-update: CodePipeline cancels the running execution when its definition changes, so the
    // pipeline must restart; the restarted Build finds the pipeline current (no changes) and
    // carries on, so it never loops.
    assert_eq!(pipeline["RestartExecutionOnUpdate"], true);
    // On push to the configured branch only.
    assert_eq!(
        pipeline["Triggers"][0]["GitConfiguration"]["Push"][0]["Branches"]["Includes"],
        serde_json::json!(["main"])
    );
    // Which action's role may assume which deploy role: permissions.rs.
}

/// Every CodeBuild project builds with the toolchain rust-toolchain.toml pins, from an image,
/// never an installer piped into a shell, on the architecture the functions run on.
#[test]
fn builds_run_in_the_pinned_toolchain_s_image_on_the_functions_architecture() {
    let toolchain: toml::Value = toml::from_str(
        &std::fs::read_to_string(common::repo_root().join("rust-toolchain.toml")).unwrap(),
    )
    .unwrap();
    let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
    let projects = |p: &Project| -> Vec<serde_json::Value> {
        p.run(&["synth", "pipeline"]).expect(0);
        let t: serde_json::Value =
            serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
        t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::CodeBuild::Project")
            .cloned()
            .collect()
    };
    let p = Project::new();
    let all = projects(&p);
    assert_eq!(all.len(), 7);
    for project in &all {
        let env = &project["Properties"]["Environment"];
        assert_eq!(
            env["Image"],
            format!("public.ecr.aws/docker/library/rust:{channel}-bookworm")
        );
        assert_eq!(env["Type"], "LINUX_CONTAINER");
        let spec = project["Properties"]["Source"]["BuildSpec"]
            .as_str()
            .unwrap();
        assert!(!spec.contains("curl") && !spec.contains("| sh"), "{spec}");
    }
    for file in ["environments/sandbox.toml", "environments/prod.toml"] {
        p.edit(
            file,
            "architecture = \"x86_64\"",
            "architecture = \"arm64\"",
        );
    }
    for project in projects(&p) {
        assert_eq!(
            project["Properties"]["Environment"]["Type"],
            "ARM_CONTAINER"
        );
    }
}

/// CodeBuild stops a build at its project's TimeoutInMinutes, 60 where none is set: the deployer's
/// own limit for one wait. Every project says its limit, and one that deploys leaves its deployer
/// room to wait out, for each stack it deploys, an operation already running and then its own,
/// each up to the default `--timeout` the deployer's help gives. Then a long wait ends with the
/// deployer saying what goes on in AWS. The emulator runs no build: the template is the judge.
#[test]
fn every_build_has_a_limit_and_deploys_leave_their_deployer_room_to_wait() {
    let p = Project::new();
    let help = p.run(&["deploy", "--help"]).expect(0).stdout();
    let default = help
        .split("--timeout")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("{help}"));
    let wait = humantime::parse_duration(default)
        .unwrap()
        .as_secs()
        .div_ceil(60);
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    let mut deploying = 0;
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::CodeBuild::Project" {
            continue;
        }
        let minutes = r["Properties"]["TimeoutInMinutes"]
            .as_u64()
            .unwrap_or_else(|| panic!("{id} has no TimeoutInMinutes"));
        assert!((5..=2160).contains(&minutes), "{id}: {minutes}");
        let spec = r["Properties"]["Source"]["BuildSpec"].as_str().unwrap();
        // One command a stack (the approved stage's runs one of two deploys, by its change set).
        let deploys = spec
            .lines()
            .filter(|l| l.contains("deployer deploy ") || l.contains("deployer pipeline deploy"))
            .count();
        if deploys > 0 {
            deploying += 1;
            assert!(
                minutes > 2 * wait * deploys as u64,
                "{id} deploys {deploys} stack(s), each may wait twice {wait} minutes, and it has {minutes}"
            );
        }
    }
    // UpdatePipeline, and Prepare and Deploy of the stages.
    assert_eq!(deploying, 4, "{t}");
}

#[test]
fn approval_notifications_are_an_sns_topic_only_when_emails_are_named() {
    let p = Project::new();
    p.run(&["synth", "pipeline"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/pipeline-pipeline.json")).unwrap();
    let approval = |t: &serde_json::Value| {
        t["Resources"]["Pipeline"]["Properties"]["Stages"][6]["Actions"][0]["Configuration"].clone()
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
    // The pipeline's role may publish to this topic, and only this one, from its bootstrap on: the
    // pipeline stack itself makes no IAM policy (its execution role has no IAM rights).
    assert!(t["Resources"].get("ApprovalNotifyPolicy").is_none());
    p.run(&["synth", "pipeline"]).expect(0);
    let boot: serde_json::Value =
        serde_json::from_str(&p.read("out/pipeline-bootstrap-pipeline.json")).unwrap();
    let notify: Vec<&serde_json::Value> = boot["Resources"]["PipelineRole"]["Properties"]["Policies"]
        [0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"] == "sns:Publish")
        .collect();
    assert_eq!(
        notify,
        [
            &serde_json::json!({"Sid": "NotifyApprovers", "Effect": "Allow", "Action": "sns:Publish",
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:catalog-approvals"}})
        ]
    );
    assert_eq!(t["Outputs"]["ApprovalTopicArn"]["Value"], topic);
}

const AUTH: (&str, &str) = (
    "# [settings.catalog.auth]\n# oidc_issuer = \"https://example.eu.auth0.com/\"\n# oidc_audience",
    "[settings.catalog.auth]\noidc_issuer = \"https://example.eu.auth0.com/\"\noidc_audience",
);
const DOMAIN: (&str, &str) = (
    "# [settings.catalog.domain]\n# name = \"api.example.org\"\n# certificate_arn = \"arn:aws:acm:us-east-1:ACCOUNT:certificate/...\"",
    "[settings.catalog.domain]\nname = \"api.example.org\"\ncertificate_arn = \"arn:aws:acm:us-east-1:222222222222:certificate/0f6c3e2a-1b2c-4d5e-8f90-123456789abc\"",
);
const ZONE: (&str, &str) = (
    "# hosted_zone_id = \"Z0123456789ABCDEFGHIJ\"",
    "hosted_zone_id = \"Z0123456789ABCDEFGHIJ\"",
);

/// The sandbox catalog template after the given edits to sandbox.toml.
fn sandbox_catalog(edits: &[(&str, &str)]) -> serde_json::Value {
    let p = Project::new();
    for (from, to) in edits {
        p.edit("environments/sandbox.toml", from, to);
    }
    p.run(&["synth", "sandbox"]).expect(0);
    serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap()
}

/// Each route key and the function its integration reaches, and whether a JWT guards it.
fn routes(t: &serde_json::Value) -> BTreeMap<String, (String, bool)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .map(|r| {
            let p = &r["Properties"];
            let integration = p["Target"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .trim_start_matches("integrations/${")
                .trim_end_matches('}');
            let function =
                &t["Resources"][integration]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0];
            (
                p["RouteKey"].as_str().unwrap().to_string(),
                (
                    function.as_str().unwrap().to_string(),
                    p["AuthorizationType"] == "JWT",
                ),
            )
        })
        .collect()
}

/// The reads, the same with every option: all to the query function, never guarded.
const READ_ROUTES: [(&str, &str, bool); 4] = [
    ("$default", "QueryFunction", false),
    ("GET /health", "QueryFunction", false),
    ("GET /products", "QueryFunction", false),
    ("GET /products/{id}", "QueryFunction", false),
];

fn route_table(entries: &[(&str, &str, bool)]) -> BTreeMap<String, (String, bool)> {
    entries
        .iter()
        .map(|(k, f, jwt)| (k.to_string(), (f.to_string(), *jwt)))
        .collect()
}

/// The actions a function's role allows beyond writing its own logs.
fn actions(t: &serde_json::Value, role: &str) -> Vec<String> {
    let statements =
        &t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    statements
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::Array(a) => {
                a.iter().map(|a| a.as_str().unwrap().to_string()).collect()
            }
            a => vec![a.as_str().unwrap().to_string()],
        })
        .collect()
}

/// CloudFormation authorizes every change set action (CreateChangeSet, DescribeChangeSet,
/// ExecuteChangeSet, DeleteChangeSet, ListChangeSets) against the stack alone (the Service
/// Authorization Reference lists no other resource type for them), so each grant of one names
/// stacks: a `changeSet/...` ARN would grant nothing and read as if change sets were guarded by
/// their names. The emulator cannot show this; IAM's own resource types do.
#[test]
fn change_set_grants_name_stacks_only() {
    let p = Project::new();
    p.run(&["synth", "--all"]).expect(0);
    let mut checked = 0;
    for file in [
        "sandbox-bootstrap-target.json",
        "prod-bootstrap-target.json",
        "pipeline-bootstrap-pipeline.json",
    ] {
        let t: serde_json::Value = serde_json::from_str(&p.read(&format!("out/{file}"))).unwrap();
        for (id, resource) in t["Resources"].as_object().unwrap() {
            let policies = resource["Properties"]["Policies"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let documents = policies
                .iter()
                .map(|p| p["PolicyDocument"].clone())
                .chain(resource["Properties"].get("PolicyDocument").cloned());
            for document in documents {
                for statement in document["Statement"].as_array().unwrap() {
                    let actions: Vec<&str> = match &statement["Action"] {
                        serde_json::Value::Array(a) => {
                            a.iter().filter_map(|a| a.as_str()).collect()
                        }
                        a => a.as_str().into_iter().collect(),
                    };
                    if !actions
                        .iter()
                        .any(|a| a.starts_with("cloudformation:") && a.contains("ChangeSet"))
                    {
                        continue;
                    }
                    let resources = match &statement["Resource"] {
                        serde_json::Value::Array(r) => r.clone(),
                        r => vec![r.clone()],
                    };
                    for r in resources {
                        let arn = r["Fn::Sub"]
                            .as_str()
                            .or(r.as_str())
                            .unwrap_or_default()
                            .to_string();
                        assert!(!arn.contains(":changeSet/"), "{file} {id}: {arn}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} change set grants found");
}

#[test]
fn reads_writes_and_imports_are_three_functions_of_one_artifact() {
    let p = Project::new();
    p.run(&["synth", "--all"]).expect(0);
    let t: serde_json::Value = serde_json::from_str(&p.read("out/prod-catalog.json")).unwrap();
    let r = &t["Resources"];
    for (name, handler, memory, reserved) in [
        ("Query", "query", 512, Some(50)),
        ("Command", "command", 512, Some(10)),
        ("Import", "import", 256, None),
    ] {
        let f = &r[format!("{name}Function")]["Properties"];
        assert_eq!(f["Handler"], handler);
        assert_eq!(f["FunctionName"], format!("catalog-prod-{handler}"));
        assert_eq!(
            f["Code"], r["QueryFunction"]["Properties"]["Code"],
            "one artifact"
        );
        assert_eq!(f["MemorySize"], memory);
        assert_eq!(f["ReservedConcurrentExecutions"].as_u64(), reserved);
        assert_eq!(f["Role"]["Fn::GetAtt"][0], format!("{name}Role"));
        assert_eq!(
            r[format!("{name}Logs")]["Properties"]["LogGroupName"],
            format!("/aws/lambda/catalog-prod-{handler}")
        );
    }
    // Sandbox reserves nothing: new accounts have little concurrency to reserve.
    let sandbox: serde_json::Value =
        serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap();
    assert!(
        sandbox["Resources"]["QueryFunction"]["Properties"]
            .get("ReservedConcurrentExecutions")
            .is_none()
    );

    assert_eq!(
        routes(&t),
        route_table(
            &[
                &READ_ROUTES[..],
                &[
                    ("POST /products", "CommandFunction", false),
                    ("PUT /products/{id}", "CommandFunction", false),
                    ("PUT /users/{email}/role", "CommandFunction", false),
                    ("POST /invitations", "CommandFunction", false),
                    ("DELETE /products/{id}", "CommandFunction", false),
                    ("POST /signup", "CommandFunction", false),
                    ("POST /login", "CommandFunction", false),
                ],
            ]
            .concat()
        )
    );
    assert!(r.get("Authorizer").is_none());
    // The $default route keeps the logical id it had before the split, so a stack deployed
    // then is updated in place: a second $default route would be refused by API Gateway.
    assert_eq!(r["HttpApiRoute"]["Properties"]["RouteKey"], "$default");
    // Reads cannot write; only the command function reads the signing secret.
    assert_eq!(
        actions(&t, "QueryRole"),
        ["dynamodb:GetItem", "dynamodb:Query"]
    );
    assert!(actions(&t, "CommandRole").contains(&"ssm:GetParameter".to_string()));
    assert!(!actions(&t, "ImportRole").contains(&"ssm:GetParameter".to_string()));
    assert_eq!(
        r["CommandFunction"]["Properties"]["Environment"]["Variables"]["CATALOG_TRUST_AUTHORIZER"],
        "false"
    );

    // The import path: the topic delivers to the import function, which may be invoked by this
    // topic only, and whose dead letters (its own and Lambda's after retries) go to one queue.
    let import = &r["ImportFunction"]["Properties"];
    assert_eq!(
        r["ImportTopic"]["Properties"]["Subscription"],
        serde_json::json!([{"Protocol": "lambda", "Endpoint": {"Fn::GetAtt": ["ImportFunction", "Arn"]}}])
    );
    let permission = &r["ImportPermission"]["Properties"];
    assert_eq!(permission["Principal"], "sns.amazonaws.com");
    assert_eq!(
        permission["SourceArn"],
        serde_json::json!({"Ref": "ImportTopic"})
    );
    assert_eq!(
        permission["FunctionName"],
        serde_json::json!({"Ref": "ImportFunction"})
    );
    let dlq = serde_json::json!({"Fn::GetAtt": ["ImportDeadLetters", "Arn"]});
    assert_eq!(import["DeadLetterConfig"]["TargetArn"], dlq);
    assert_eq!(
        import["Environment"]["Variables"]["CATALOG_DEAD_LETTER_QUEUE"],
        serde_json::json!({"Ref": "ImportDeadLetters"})
    );
    assert!(actions(&t, "ImportRole").contains(&"sqs:SendMessage".to_string()));
    assert_eq!(
        t["Outputs"]["ImportTopicArn"]["Value"],
        serde_json::json!({"Ref": "ImportTopic"})
    );
}

#[test]
fn an_oidc_issuer_puts_a_jwt_authorizer_on_the_write_routes() {
    let t = sandbox_catalog(&[AUTH]);
    let jwt = &t["Resources"]["Authorizer"]["Properties"];
    assert_eq!(jwt["AuthorizerType"], "JWT");
    assert_eq!(
        jwt["JwtConfiguration"],
        serde_json::json!({"Issuer": "https://example.eu.auth0.com/", "Audience": ["https://catalog.example.org"]})
    );
    assert_eq!(
        routes(&t),
        route_table(
            &[
                &READ_ROUTES[..],
                &[
                    ("POST /products", "CommandFunction", true),
                    ("PUT /products/{id}", "CommandFunction", true),
                    ("PUT /users/{email}/role", "CommandFunction", true),
                    ("POST /invitations", "CommandFunction", true),
                    ("DELETE /products/{id}", "CommandFunction", true),
                ],
            ]
            .concat()
        )
    );
    let vars = &t["Resources"]["CommandFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(vars["CATALOG_TRUST_AUTHORIZER"], "true");
    // API Gateway asks for the scopes before the function runs: an editor's or an admin's to
    // create and update, an admin's for the rest; the app maps the same scopes to roles.
    let scopes = |route: &str| t["Resources"][route]["Properties"]["AuthorizationScopes"].clone();
    let either = serde_json::json!(["catalog/write", "catalog/admin"]);
    assert_eq!(scopes("RouteCreateProduct"), either);
    assert_eq!(scopes("RouteUpdateProduct"), either);
    for admin_only in ["RouteDeleteProduct", "RouteGrantRole", "RouteInvite"] {
        assert_eq!(
            scopes(admin_only),
            serde_json::json!(["catalog/admin"]),
            "{admin_only}"
        );
    }
    assert_eq!(
        (&vars["CATALOG_ADMIN_SCOPE"], &vars["CATALOG_EDITOR_SCOPE"]),
        (
            &serde_json::json!("catalog/admin"),
            &serde_json::json!("catalog/write")
        )
    );
    // Without [auth], no route asks for scopes.
    let t = sandbox_catalog(&[]);
    assert!(
        t["Resources"]["RouteCreateProduct"]["Properties"]
            .get("AuthorizationScopes")
            .is_none()
    );
}

#[test]
fn a_custom_domain_maps_the_api_and_writes_dns_only_with_a_zone() {
    let t = sandbox_catalog(&[DOMAIN]);
    let r = &t["Resources"];
    let domain = &r["ApiDomain"]["Properties"];
    assert_eq!(domain["DomainName"], "api.example.org");
    assert_eq!(
        domain["DomainNameConfigurations"][0]["EndpointType"],
        "REGIONAL"
    );
    assert_eq!(
        r["ApiMapping"]["Properties"]["DomainName"],
        serde_json::json!({"Ref": "ApiDomain"})
    );
    assert!(
        r.get("ApiDnsRecord").is_none(),
        "no zone: DNS is the operator's"
    );
    assert_eq!(t["Outputs"]["ApiUrl"]["Value"], "https://api.example.org/");
    assert!(t["Outputs"].get("DomainTarget").is_some());

    let t = sandbox_catalog(&[DOMAIN, ZONE]);
    let record = &t["Resources"]["ApiDnsRecord"]["Properties"];
    assert_eq!(record["HostedZoneId"], "Z0123456789ABCDEFGHIJ");
    assert_eq!(record["Name"], "api.example.org");
    assert_eq!(
        record["AliasTarget"]["DNSName"],
        serde_json::json!({"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]})
    );

    let plain = sandbox_catalog(&[]);
    assert!(plain["Resources"].get("ApiDomain").is_none());
}

#[test]
fn every_option_renders_templates_cfn_lint_accepts() {
    let p = Project::new();
    for (from, to) in [AUTH, DOMAIN, ZONE] {
        p.edit("environments/sandbox.toml", from, to);
    }
    p.edit(
        "environments/pipeline.toml",
        "notify_emails = []",
        "notify_emails = [\"ops@example.org\"]",
    );
    p.run(&["synth", "--all"]).expect(0);
    let out = std::process::Command::new(common::repo_root().join(".venv/bin/cfn-lint"))
        .arg("--")
        .args(
            std::fs::read_dir(p.path("out"))
                .unwrap()
                .map(|e| e.unwrap().path()),
        )
        .output()
        .expect("cfn-lint runs (scripts/emulator install puts it in .venv)");
    // Exit status bits: 2 errors, 4 warnings, 8 informational; errors fail.
    assert_eq!(
        out.status.code().unwrap() & 3,
        0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_admins_named_in_the_settings_reach_the_command_function_only() {
    let env_of = |t: &serde_json::Value, f: &str| {
        t["Resources"][f]["Properties"]["Environment"]["Variables"].clone()
    };
    let t = sandbox_catalog(&[]);
    assert_eq!(env_of(&t, "CommandFunction")["CATALOG_ADMINS"], "");
    let t = sandbox_catalog(&[(
        "# [settings.catalog.users]\n# admins = [\"ann@example.com\"]",
        "[settings.catalog.users]\nadmins = [\"ann@example.com\", \"bo.b@example.org\"]",
    )]);
    assert_eq!(
        env_of(&t, "CommandFunction")["CATALOG_ADMINS"],
        "ann@example.com,bo.b@example.org"
    );
    assert!(env_of(&t, "QueryFunction").get("CATALOG_ADMINS").is_none());
    let p = common::Project::new();
    p.edit(
        "environments/sandbox.toml",
        "# [settings.catalog.users]\n# admins = [\"ann@example.com\"]",
        "[settings.catalog.users]\nadmins = [\"ann@example.com,eve@example.com\"]",
    );
    let err = p.run(&["synth", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains(
            "users.admins holds \"ann@example.com,eve@example.com\", which is not an email address"
        ),
        "{err}"
    );
}

#[test]
fn the_stage_throttles_every_route_and_login_tighter() {
    let stage = |t: &serde_json::Value| t["Resources"]["HttpApiStage"].clone();
    let s = stage(&sandbox_catalog(&[
        ("login_rate_limit = 5.0", "login_rate_limit = 2.5"),
        ("rate_limit = 100.0", "rate_limit = 40.0"),
    ]));
    assert_eq!(
        s["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"],
        40.0
    );
    assert_eq!(
        s["Properties"]["DefaultRouteSettings"]["ThrottlingBurstLimit"],
        200
    );
    for route in ["POST /login", "POST /signup"] {
        assert_eq!(
            s["Properties"]["RouteSettings"][route]["ThrottlingRateLimit"],
            2.5
        );
        assert_eq!(
            s["Properties"]["RouteSettings"][route]["ThrottlingBurstLimit"],
            10
        );
    }
    // API Gateway refuses settings for a route the stage does not know yet.
    assert_eq!(
        s["DependsOn"],
        serde_json::json!(["RouteSignup", "RouteLogin"])
    );
    // Behind an identity provider there is no sign-up or login route to throttle.
    let s = stage(&sandbox_catalog(&[(
        "# [settings.catalog.auth]\n# oidc_issuer = \"https://example.eu.auth0.com/\"\n# oidc_audience = [\"https://catalog.example.org\"]",
        "[settings.catalog.auth]\noidc_issuer = \"https://example.eu.auth0.com/\"\noidc_audience = [\"https://catalog.example.org\"]",
    )]));
    assert!(s["Properties"].get("RouteSettings").is_none(), "{s}");
    assert!(s.get("DependsOn").is_none(), "{s}");
    let p = common::Project::new();
    p.edit(
        "environments/sandbox.toml",
        "login_rate_limit = 5.0",
        "login_rate_limit = 500.0",
    );
    let err = p.run(&["synth", "sandbox"]).expect(2).stderr();
    assert!(
        err.contains(
            "settings.catalog.throttling.login_rate_limit must be at most rate_limit (100); got 500"
        ),
        "{err}"
    );
}

#[test]
fn who_may_sign_up_follows_the_environment_and_a_protected_one_is_closed_by_default() {
    let p = Project::new();
    let signup = |p: &Project, env: &str| {
        p.run(&["synth", env]).expect(0);
        let t: serde_json::Value =
            serde_json::from_str(&p.read(&format!("out/{env}-catalog.json"))).unwrap();
        t["Resources"]["CommandFunction"]["Properties"]["Environment"]["Variables"]
            ["CATALOG_SIGNUP"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(signup(&p, "sandbox"), "open");
    let t: serde_json::Value = serde_json::from_str(&p.read("out/sandbox-catalog.json")).unwrap();
    assert_eq!(signup(&p, "prod"), "closed");
    p.edit(
        "environments/prod.toml",
        "# [settings.catalog.users]\n# admins = [\"ann@example.com\"]\n# signup = \"invite\"",
        "[settings.catalog.users]\nadmins = [\"ann@example.com\"]\nsignup = \"invite\"",
    );
    assert_eq!(signup(&p, "prod"), "invite");
    p.edit(
        "environments/prod.toml",
        "signup = \"invite\"",
        "signup = \"by-invite\"",
    );
    let err = p.run(&["synth", "prod"]).expect(2).stderr();
    assert!(
        err.contains("environments/prod.toml:") && err.contains("by-invite"),
        "{err}"
    );
    // The routes an admin uses reach the command function.
    for (route, key) in [
        ("RouteGrantRole", "PUT /users/{email}/role"),
        ("RouteInvite", "POST /invitations"),
    ] {
        let r = &t["Resources"][route]["Properties"];
        assert_eq!(r["RouteKey"], key);
        assert_eq!(r["Target"]["Fn::Sub"], "integrations/${CommandIntegration}");
    }
}

/// The parse of each template is kept between runs (render/cache.rs); the cache only ever saves
/// time: an edited template, a damaged entry or no cache at all render the same bytes as a parse.
#[test]
fn kept_parses_never_change_what_is_rendered() {
    let p = Project::new();
    let parses = p.path(".cache/deployer/templates");
    let renders = p.path(".cache/deployer/rendered");
    p.run(&["synth", "--all", "--out", "first"]).expect(0);
    assert_eq!(
        cache_entries(&parses).len(),
        4,
        "one entry per template: {:?}",
        cache_entries(&parses)
    );
    assert_eq!(
        cache_entries(&renders).len(),
        6,
        "one entry per stack: {:?}",
        cache_entries(&renders)
    );
    let first = files(&p.path("first"));

    // An edit is rendered at once, not the kept parse (or render) of the text before it.
    p.edit(
        "templates/catalog.json.hbs",
        "{{prefix}} product catalog ({{env}})",
        "{{prefix}} catalogue ({{env}})",
    );
    p.run(&["synth", "sandbox", "--out", "edited"]).expect(0);
    assert!(
        p.read("edited/sandbox-catalog.json")
            .contains("catalog catalogue (sandbox)")
    );
    assert_eq!(
        cache_entries(&parses).len(),
        4,
        "the edit's parse replaces the old one"
    );
    assert_eq!(
        cache_entries(&renders).len(),
        6,
        "the edit's render replaces the old one"
    );
    p.edit(
        "templates/catalog.json.hbs",
        "{{prefix}} catalogue ({{env}})",
        "{{prefix}} product catalog ({{env}})",
    );

    // Damaged entries are parsed and rendered again, and rewritten: cut short, or with a byte of
    // the kept text changed (which its CRC shows).
    for entry in cache_entries(&parses) {
        let mut bytes = std::fs::read(&entry).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&entry, bytes).unwrap();
    }
    for entry in cache_entries(&renders) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&entry, bytes).unwrap();
    }
    p.run(&["synth", "--all", "--out", "damaged"]).expect(0);
    assert_eq!(files(&p.path("damaged")), first);
    p.run(&["synth", "--all", "--out", "kept"]).expect(0);
    assert_eq!(files(&p.path("kept")), first);

    // DEPLOYER_CACHE_DIR="" turns the cache off.
    std::fs::remove_dir_all(p.path(".cache")).unwrap();
    p.run_with(
        &["synth", "--all", "--out", "uncached"],
        &[("DEPLOYER_CACHE_DIR", "")],
    )
    .expect(0);
    assert_eq!(files(&p.path("uncached")), first);
    assert!(!p.path(".cache").exists());
}

/// Edits a value in an environment's file, then a setting's default declared beside the
/// template, each followed by `synth` (which checks the run and gives its files), and checks that
/// each reaches the stack it is about and no other; gives the files after the second.
fn edit_a_value_and_a_default(
    p: &Project,
    before: &BTreeMap<String, Vec<u8>>,
    synth: impl Fn(&str) -> BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    // (The first of them: the query function's.)
    p.edit(
        "environments/prod.toml",
        "memory_mb = 512",
        "memory_mb = 1024",
    );
    let memory = synth("memory");
    assert!(memory["prod-catalog.json"] != before["prod-catalog.json"]);
    assert_eq!(
        memory["sandbox-catalog.json"],
        before["sandbox-catalog.json"]
    );
    assert!(String::from_utf8_lossy(&memory["prod-catalog.json"]).contains("\"MemorySize\": 1024"));
    p.edit(
        "templates/catalog.settings.toml",
        "default = 100.0",
        "default = 75.0",
    );
    p.edit("environments/sandbox.toml", "rate_limit = 100.0\n", "");
    let default = synth("default");
    assert!(
        String::from_utf8_lossy(&default["sandbox-catalog.json"])
            .contains("\"ThrottlingRateLimit\": 75")
    );
    default
}

/// A kept render is used only while everything the render reads is the same: an environment's
/// value, a setting's declared default, the template. Each change below is rendered, and gives
/// what a run with no cache gives.
#[test]
fn kept_renders_follow_every_input() {
    let p = Project::new();
    let synth = |out: &str| {
        p.run(&["synth", "--all", "--out", out]).expect(0);
        p.run_with(
            &["synth", "--all", "--out", &format!("{out}-uncached")],
            &[("DEPLOYER_CACHE_DIR", "")],
        )
        .expect(0);
        let kept = files(&p.path(out));
        assert_eq!(kept, files(&p.path(&format!("{out}-uncached"))), "{out}");
        kept
    };
    let before = synth("before");
    // Nothing changed: each stack's kept render serves, and no entry is written again.
    let rendered = p.path(".cache/deployer/rendered");
    let written = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        cache_entries(&rendered)
            .into_iter()
            .map(|path| {
                let modified = path.metadata().unwrap().modified().unwrap();
                (path, modified)
            })
            .collect()
    };
    let kept = written();
    assert_eq!(kept.len(), 6, "{kept:?}");
    p.run(&["synth", "--all", "--out", "again"]).expect(0);
    assert_eq!(files(&p.path("again")), before);
    assert_eq!(written(), kept, "a kept render was rendered again");

    let default = edit_a_value_and_a_default(&p, &before, synth);

    // An account the pipeline deploys to, which other environments' stacks read.
    p.edit(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = \"444444444444\"",
    );
    let account = synth("account");
    assert!(account["pipeline-pipeline.json"] != default["pipeline-pipeline.json"]);
}

#[test]
fn synth_leaves_a_file_that_already_holds_its_bytes_alone() {
    let p = Project::new();
    p.run(&["synth", "--all", "--out", "out"]).expect(0);
    let modified = |name: &str| {
        std::fs::metadata(p.path(&format!("out/{name}")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for name in ["sandbox-catalog.json", "prod-catalog.json"] {
        std::fs::File::options()
            .write(true)
            .open(p.path(&format!("out/{name}")))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    p.edit(
        "environments/prod.toml",
        "log_retention_days = 90",
        "log_retention_days = 30",
    );
    p.run(&["synth", "--all", "--out", "out"]).expect(0);
    assert_eq!(
        modified("sandbox-catalog.json"),
        old,
        "unchanged: not written"
    );
    assert_ne!(modified("prod-catalog.json"), old, "changed: written");
    assert!(
        p.read("out/prod-catalog.json")
            .contains("\"RetentionInDays\": 30")
    );
    // Written aside and renamed: nothing else is left in the directory, and the file is readable
    // by others as `std::fs::write` makes it (a temporary file alone would be private).
    let names: Vec<String> = std::fs::read_dir(p.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".json") && !n.starts_with('.')),
        "{names:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.path("out/prod-catalog.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o044, 0o044, "{mode:o}");
}

/// What a command line wrote is kept and replayed while no file it reads changed and every file
/// it wrote holds its bytes (render/cache.rs `run_entry`). Each change below gives what a run with
/// no cache gives: its files, its report and its warnings.
#[test]
fn a_kept_run_gives_what_a_fresh_run_gives_after_any_change() {
    let p = Project::new();
    let same_as_fresh = |what: &str| {
        let kept = p.run(&["synth", "--all", "--out", "out"]).expect(0);
        let fresh = p
            .run_with(
                &["synth", "--all", "--out", "out"],
                &[("DEPLOYER_CACHE_DIR", "")],
            )
            .expect(0);
        assert_eq!(kept.stdout(), fresh.stdout(), "{what}");
        assert_eq!(kept.stderr(), fresh.stderr(), "{what}");
        let out = files(&p.path("out"));
        p.run_with(
            &["synth", "--all", "--out", "fresh"],
            &[("DEPLOYER_CACHE_DIR", "")],
        )
        .expect(0);
        assert_eq!(out, files(&p.path("fresh")), "{what}");
        out
    };
    let before = same_as_fresh("the first run");
    assert_eq!(
        cache_entries(&p.path(".cache/deployer/runs")).len(),
        1,
        "one kept run per command line"
    );
    same_as_fresh("nothing changed");
    let json = || {
        p.run(&["synth", "--all", "--out", "out", "-o", "json"])
            .expect(0)
            .json()
    };
    let kept_json = json();
    assert_eq!(kept_json["files"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(kept_json, json(), "the JSON report, digests included");

    // A file written is changed (same length), or removed: written again.
    let mut bytes = std::fs::read(p.path("out/prod-catalog.json")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(p.path("out/prod-catalog.json"), &bytes).unwrap();
    std::fs::remove_file(p.path("out/sandbox-catalog.json")).unwrap();
    assert_eq!(same_as_fresh("files written changed"), before);

    // Inputs: an environment's value, a setting's declared default, a template's text.
    edit_a_value_and_a_default(&p, &before, same_as_fresh);
    p.edit(
        "templates/catalog.json.hbs",
        "{{prefix}} product catalog ({{env}})",
        "{{prefix}} catalogue ({{env}})",
    );
    let edited = same_as_fresh("a template's text");
    assert!(String::from_utf8_lossy(&edited["sandbox-catalog.json"]).contains("catalogue"));

    // Files nothing uses: warned of on every run, a kept one too.
    p.write("templates/orders.json.hbs", "{}");
    p.write("environments/staging.toml", "");
    same_as_fresh("files nothing uses");
    let warned = p.run(&["synth", "--all", "--out", "out"]).expect(0);
    assert!(warned.stderr().contains("orders.json.hbs is not used"));
    assert!(warned.stderr().contains("staging.toml is not used"));
}
