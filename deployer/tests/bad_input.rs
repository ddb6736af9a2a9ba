//! Bad environment files and templates: exit 2 with a message that names the file, the key or
//! variable, the line where known, and what to do.

mod common;
use common::Project;

/// Runs `synth --all` after one edit and returns stderr, asserting exit status 2.
fn synth_fails_after(file: &str, from: &str, to: &str) -> String {
    let p = Project::new();
    p.edit(file, from, to);
    let run = p.run(&["synth", "--all"]).expect(2);
    assert!(
        !p.path("out").exists(),
        "nothing may be written when input is bad"
    );
    run.stderr()
}

/// The 1-based line of the shipped file that holds `needle`.
fn line_of(file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(common::repo_root().join(file)).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in file")
        + 1
}

fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected {part:?} in:\n{text}");
    }
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let err = synth_fails_after(
        "environments/pipeline.toml",
        "account_id = \"111111111111\"",
        "account_id = \"111111111111",
    );
    let line = line_of("environments/pipeline.toml", "account_id = ");
    assert_has(&err, &[&format!("environments/pipeline.toml:{line}:")]);
}

#[test]
fn unknown_key_names_file_line_key_and_the_keys_allowed() {
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "retain_data = false",
        "retian_data = false",
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/sandbox.toml:{}:",
                line_of("environments/sandbox.toml", "retain_data = false")
            ),
            "unknown key `retian_data`",
            "`retain_data`",
            "fix its spelling",
        ],
    );
    // Below it, the lines around the mistake with the spot marked (no colour: not a terminal).
    let line = line_of("environments/sandbox.toml", "retain_data = false");
    assert_has(
        &err,
        &[
            &format!("╭─[environments/sandbox.toml:{line}:1]"),
            &format!(" {line} │ retian_data = false"),
            "╰── here",
        ],
    );
    assert!(!err.contains('\x1b'), "no colour off a terminal: {err}");
}

#[test]
fn missing_key_names_file_table_and_key() {
    let err = synth_fails_after("environments/sandbox.toml", "log_retention_days = 14\n", "");
    assert_has(
        &err,
        &[
            "environments/sandbox.toml",
            "missing key `log_retention_days` in [lambda]",
            "add it",
        ],
    );
    let err = synth_fails_after("environments/prod.toml", "region = \"us-east-1\"\n", "");
    assert_has(
        &err,
        &[
            "environments/prod.toml",
            "missing key `region` at the top level",
        ],
    );
}

#[test]
fn malformed_account_id_is_refused_with_the_expected_form() {
    let err = synth_fails_after(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = \"3333-3333-3333\"",
    );
    assert_has(
        &err,
        &[
            "environments/prod.toml:4:",
            "account_id must be 12 digits",
            "\"3333-3333-3333\"",
        ],
    );
    // An unquoted number loses leading zeros in other tools: it must be a string.
    let err = synth_fails_after(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = 333333333333",
    );
    assert_has(&err, &["environments/prod.toml:4:", "expected a string"]);
}

#[test]
fn malformed_region_is_refused() {
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "region = \"us-east-1\"",
        "region = \"US East\"",
    );
    assert_has(
        &err,
        &[
            "environments/sandbox.toml:7:",
            "region must be an AWS region name like \"us-east-1\"",
        ],
    );
}

#[test]
fn values_out_of_range_name_their_key() {
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "memory_mb = 256",
        "memory_mb = 64",
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/sandbox.toml:{}:",
                line_of("environments/sandbox.toml", "memory_mb = 256")
            ),
            "settings.catalog.functions.query.memory_mb must be at least 128; got 64",
        ],
    );
    let err = synth_fails_after(
        "environments/prod.toml",
        "architecture = \"x86_64\"",
        "architecture = \"arm\"",
    );
    let line = line_of("environments/prod.toml", "architecture = \"x86_64\"");
    assert_has(
        &err,
        &[
            &format!("environments/prod.toml:{line}:"),
            "`arm64` or `x86_64`",
        ],
    );
    let err = synth_fails_after(
        "environments/prod.toml",
        "log_retention_days = 90",
        "log_retention_days = 10",
    );
    assert_has(&err, &["lambda.log_retention_days must be one of"]);
}

#[test]
fn prod_sharing_an_account_is_refused_naming_both_files() {
    let err = synth_fails_after(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = \"222222222222\"",
    );
    assert_has(
        &err,
        &[
            "environments/sandbox.toml and environments/prod.toml",
            "\"222222222222\"",
            "prod takes approved changes only, so it shares its account with nothing that does not",
        ],
    );
    let err = synth_fails_after(
        "environments/prod.toml",
        "account_id = \"333333333333\"",
        "account_id = \"111111111111\"",
    );
    assert_has(
        &err,
        &["environments/pipeline.toml and environments/prod.toml"],
    );
}

#[test]
fn pipeline_and_sandbox_may_share_an_account() {
    let p = Project::new();
    p.edit(
        "environments/sandbox.toml",
        "account_id = \"222222222222\"",
        "account_id = \"111111111111\"",
    );
    p.run(&["synth", "--all"]).expect(0);
}

#[test]
fn prod_keeps_its_data_its_stack_and_the_approval() {
    for key in ["retain_data", "termination_protection"] {
        let err = synth_fails_after(
            "environments/prod.toml",
            &format!("{key} = true"),
            &format!("{key} = false"),
        );
        assert_has(
            &err,
            &[
                "environments/prod.toml",
                &format!(
                    "safety.{key} = false is not allowed where safety.require_approval = true"
                ),
            ],
        );
    }
    // Its stage waits for an approval: the environment must say it takes approved changes only.
    let err = synth_fails_after(
        "environments/prod.toml",
        "require_approval = true",
        "require_approval = false",
    );
    assert_has(
        &err,
        &[
            "environments/prod.toml",
            "safety.require_approval = false but its stage in pipeline.toml says approval = true",
        ],
    );
}

#[test]
fn who_may_enter_an_account_is_checked() {
    let with_access = |file: &str, table: &str| {
        synth_fails_after(
            file,
            "[branches]",
            &format!("[access]\n{table}\n\n[branches]"),
        )
    };
    let err = with_access(
        "environments/prod.toml",
        "operators = [\"arn:aws:iam::111111111111:role/dev\"]",
    );
    assert_has(
        &err,
        &[
            "environments/prod.toml",
            "access.operators is not allowed where safety.require_approval = true",
            "access.readers",
        ],
    );
    let err = with_access("environments/sandbox.toml", "operators = [\"dev\"]");
    assert_has(
        &err,
        &[
            "environments/sandbox.toml",
            "access.operators holds \"dev\"",
        ],
    );
    // Not ASCII, not an ARN: refused with its key, never a crash.
    let err = with_access("environments/sandbox.toml", "readers = [\"añññññññ\"]");
    assert_has(&err, &["access.readers holds \"añññññññ\""]);
    let err = with_access("environments/sandbox.toml", "readers = []");
    assert_has(&err, &["access.readers = [] would lock everybody out"]);
    let err = with_access(
        "environments/prod.toml",
        "break_glass_role_arn = \"arn:aws:iam::333333333333:user/root\"",
    );
    assert_has(&err, &["access.break_glass_role_arn must be a role ARN"]);
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "github_repository = \"example-org/catalog\"",
        "github_repository = \"example-org/catalog\"\noidc_provider_arn = \"arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com\"",
    );
    assert_has(
        &err,
        &["branches.oidc_provider_arn must be GitHub's OIDC provider in this account"],
    );
}

#[test]
fn a_timeout_that_is_not_a_duration_is_refused() {
    let p = Project::new();
    let err = p.run(&["status", "--timeout", "soon"]).expect(2).stderr();
    assert_has(&err, &["--timeout", "soon"]);
}

#[test]
fn branch_stacks_in_prod_are_refused() {
    let err = synth_fails_after(
        "environments/prod.toml",
        "enabled = false",
        "enabled = true",
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/prod.toml:{}: branches.enabled = true is not allowed where safety.require_approval = true",
                line_of("environments/prod.toml", "enabled = false")
            ),
            // The spot is shown, as for a syntax error.
            "enabled = true\n",
            "╰── here",
        ],
    );
}

#[test]
fn missing_environment_file_is_named() {
    let p = Project::new();
    std::fs::remove_file(p.path("environments/prod.toml")).unwrap();
    let err = p.run(&["synth", "--all"]).expect(2).stderr();
    assert_has(
        &err,
        &[
            &format!(
                "environments/pipeline.toml:{}: stages names prod, but there is no environments/prod.toml",
                line_of("environments/pipeline.toml", "environment = \"prod\"")
            ),
            "environment = \"prod\"\n",
        ],
    );
}

#[test]
fn undefined_template_variable_names_template_line_and_variable() {
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        "\"RetentionInDays\": {{json target.lambda.log_retention_days}}",
        "\"RetentionInDays\": {{json target.lambda.retention}}",
    );
    assert_has(
        &err,
        &[
            &format!(
                "templates/catalog.json.hbs:{}:",
                line_of("templates/catalog.json.hbs", "log_retention_days")
            ),
            "the variable `target.lambda.retention` is not defined",
            "environments/sandbox.toml gives no lambda.retention",
            "rendering for sandbox",
        ],
    );
    let err = synth_fails_after(
        "templates/bootstrap-target.json.hbs",
        "\"RoleName\": \"{{prefix}}-{{env}}-deploy\"",
        "\"RoleName\": \"{{prefx}}-{{env}}-deploy\"",
    );
    let line = line_of(
        "templates/bootstrap-target.json.hbs",
        "\"RoleName\": \"{{prefix}}-{{env}}-deploy\"",
    );
    assert_has(
        &err,
        &[
            &format!("templates/bootstrap-target.json.hbs:{line}:"),
            "the variable `prefx` is not defined",
        ],
    );
}

#[test]
fn if_on_an_undefined_value_is_an_error() {
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        "{{#if target.safety.retain_data}}\"Retain\"",
        "{{#if target.safety.retain}}\"Retain\"",
    );
    assert_has(
        &err,
        &[
            &format!(
                "templates/catalog.json.hbs:{}:",
                line_of(
                    "templates/catalog.json.hbs",
                    "{{#if target.safety.retain_data}}"
                )
            ),
            "`target.safety.retain` is not defined",
        ],
    );
}

#[test]
fn handlebars_syntax_error_names_template() {
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        "\"Delete\"{{/if}},",
        "\"Delete\",",
    );
    assert_has(&err, &["templates/catalog.json.hbs:", "never closed"]);
}

/// Templates parse side by side; with two broken, every run names the same one: the first the
/// environments render, not the first whose parser gave up. Here that is bootstrap-pipeline,
/// broken at its end (parsed whole first), while bootstrap-target, rendered later (for sandbox),
/// fails at its first tag.
#[test]
fn of_two_broken_templates_the_first_rendered_is_named_every_time() {
    let p = Project::new();
    p.edit(
        "templates/bootstrap-target.json.hbs",
        "{{!-- What",
        "{{ % }}{{!-- What",
    );
    p.edit(
        "templates/bootstrap-pipeline.json.hbs",
        "\n{{/each}}\n    \"PipelineExecutionRoleArn\"",
        "\n    \"PipelineExecutionRoleArn\"",
    );
    for _ in 0..5 {
        let err = p.run(&["synth", "--all"]).expect(2).stderr();
        assert_has(
            &err,
            &["templates/bootstrap-pipeline.json.hbs:", "never closed"],
        );
        assert!(!err.contains("bootstrap-target.json.hbs"), "{err}");
    }
    // Each alone is named too.
    p.edit(
        "templates/bootstrap-pipeline.json.hbs",
        "\n    \"PipelineExecutionRoleArn\"",
        "\n{{/each}}\n    \"PipelineExecutionRoleArn\"",
    );
    let err = p.run(&["synth", "--all"]).expect(2).stderr();
    assert_has(&err, &["templates/bootstrap-target.json.hbs:1:"]);
}

/// Each template renders alone: one that includes another template as a partial is refused the
/// same way whichever command renders it (synth of one environment or of all, deploy), not only
/// where that other template happened to be parsed first.
#[test]
fn a_template_cannot_include_another_template() {
    let p = Project::new();
    p.edit(
        "templates/catalog.json.hbs",
        "\"ProtocolType\": \"HTTP\",",
        "\"ProtocolType\": \"HTTP\", {{> bootstrap-target}}",
    );
    for args in [&["synth", "--all"][..], &["synth", "sandbox"]] {
        let err = p.run(args).expect(2).stderr();
        assert_has(
            &err,
            &[
                "templates/catalog.json.hbs:",
                "the partial `bootstrap-target` is not defined in this template",
                "cannot include another template",
            ],
        );
    }
}

#[test]
fn template_that_renders_to_invalid_json_is_named_with_the_offending_line() {
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        "\"ProtocolType\": \"HTTP\",",
        "\"ProtocolType\": \"HTTP\",,",
    );
    assert_has(
        &err,
        &[
            "templates/catalog.json.hbs rendered for sandbox is not valid JSON",
            "\"ProtocolType\": \"HTTP\",,",
        ],
    );
}

#[test]
fn template_without_resources_is_not_cloudformation() {
    let p = Project::new();
    p.write(
        "templates/pipeline.json.hbs",
        "{ \"AWSTemplateFormatVersion\": \"2010-09-09\", \"Resource\": {} }",
    );
    let err = p.run(&["synth", "pipeline"]).expect(2).stderr();
    assert_has(
        &err,
        &[
            "templates/pipeline.json.hbs rendered for pipeline is not a CloudFormation template",
            "unknown top-level section \"Resource\"",
        ],
    );
}

#[test]
fn a_malformed_github_repository_is_refused() {
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "github_repository = \"example-org/catalog\"",
        "github_repository = \"https://github.com/example-org/catalog\"",
    );
    assert_has(
        &err,
        &[
            "environments/sandbox.toml",
            "branches.github_repository must be \"owner/name\"",
        ],
    );
}

#[test]
fn a_malformed_notification_email_is_refused_with_its_line() {
    let err = synth_fails_after(
        "environments/pipeline.toml",
        "notify_emails = []",
        "notify_emails = [\"ops@example.org\", \"ops at example\"]",
    );
    let line = line_of("environments/pipeline.toml", "notify_emails = []");
    assert_has(
        &err,
        &[
            &format!("environments/pipeline.toml:{line}:"),
            "\"ops at example\"",
            "not an email address",
        ],
    );
}

#[test]
fn function_auth_and_domain_settings_are_checked() {
    let err = synth_fails_after(
        "environments/prod.toml",
        "reserved_concurrency = 10",
        "reserved_concurrency = 0",
    );
    assert_has(
        &err,
        &[
            "environments/prod.toml",
            "settings.catalog.functions.command.reserved_concurrency must be at least 1; got 0",
            "0 would stop it from ever running); leave it out",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "# [settings.catalog.auth]\n# oidc_issuer = \"https://example.eu.auth0.com/\"\n# oidc_audience = [\"https://catalog.example.org\"]",
        "[settings.catalog.auth]\noidc_issuer = \"http://example.eu.auth0.com/\"\noidc_audience = [\"x\"]",
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/sandbox.toml:{}:",
                line_of("environments/sandbox.toml", "# oidc_issuer")
            ),
            "settings.catalog.auth.oidc_issuer must be an https URL",
            "got \"http://example.eu.auth0.com/\"",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "# [settings.catalog.domain]\n# name = \"api.example.org\"\n# certificate_arn = \"arn:aws:acm:us-east-1:ACCOUNT:certificate/...\"",
        "[settings.catalog.domain]\nname = \"api.example.org\"\ncertificate_arn = \"arn:aws:acm:eu-west-1:222222222222:certificate/abc\"",
    );
    assert_has(
        &err,
        &[
            "settings.catalog.domain.certificate_arn must be an ACM certificate in this account and region (arn:aws:acm:us-east-1:222222222222:certificate/...); got \"arn:aws:acm:eu-west-1:222222222222:certificate/abc\"",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "# [settings.catalog.domain]\n# name = \"api.example.org\"\n# certificate_arn = \"arn:aws:acm:us-east-1:ACCOUNT:certificate/...\"",
        "[settings.catalog.domain]\nname = \"API.example.org\"\ncertificate_arn = \"arn:aws:acm:us-east-1:222222222222:certificate/abc\"",
    );
    assert_has(
        &err,
        &[
            "settings.catalog.domain.name must be a lowercase DNS name like \"api.example.org\"; got \"API.example.org\"",
        ],
    );
}

#[test]
fn with_json_output_an_error_is_also_a_json_document_on_stdout() {
    let p = Project::new();
    p.edit("environments/prod.toml", "region = \"us-east-1\"\n", "");
    let run = p.run(&["synth", "--all", "--output", "json"]).expect(2);
    let doc = run.json();
    assert_eq!(doc["error"]["exit_code"], 2);
    assert_eq!(doc["error"]["kind"], "config");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("missing key `region`"), "{message}");
    // A command line clap refuses is one JSON document too, with its own kind.
    for json in [&["-o", "json"][..], &["--output=json"][..]] {
        let run = p
            .run(&[&["deploy", "sandbox", "--nope"][..], json].concat())
            .expect(2);
        let doc = run.json();
        assert_eq!(doc["error"]["kind"], "usage");
        assert_eq!(
            doc["error"]["message"],
            "unexpected argument '--nope' found"
        );
        assert!(
            run.stderr().contains("Usage: deployer deploy"),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(p.run(&["deploy", "--nope"]).expect(2).stdout(), "");
    assert!(run.stderr().contains(message), "{}", run.stderr());
    // Text output keeps stdout empty on failure.
    assert_eq!(p.run(&["synth", "--all"]).expect(2).stdout(), "");
}

#[test]
fn a_misspelt_resource_type_or_property_is_refused_before_any_aws_call() {
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        r#""Handler": "query","#,
        r#""Handlr": "query","#,
    );
    assert_has(
        &err,
        &[
            "templates/catalog.json.hbs rendered for sandbox is not a CloudFormation template",
            "(AWS::Lambda::Function) has property \"Handlr\", which its schema does not list; did you mean Handler?",
        ],
    );
    let err = synth_fails_after(
        "templates/catalog.json.hbs",
        r#""Type": "AWS::Lambda::Function""#,
        r#""Type": "AWS::Lambda::Functon""#,
    );
    assert_has(
        &err,
        &[
            "type AWS::Lambda::Functon",
            "did you mean AWS::Lambda::Function?",
        ],
    );
    // A deploy stops there too: an endpoint that never answers shows no call was tried.
    let p = Project::new();
    p.edit(
        "templates/catalog.json.hbs",
        r#""Handler": "query","#,
        r#""Handlr": "query","#,
    );
    common::package(&p, "v1");
    let (url, _held) = common::silent_endpoint(1);
    let err = p
        .run_with(&["deploy", "sandbox"], &[("AWS_ENDPOINT_URL", &url)])
        .expect(2)
        .stderr();
    assert_has(&err, &["has property \"Handlr\""]);
}

/// The compiled-in schema table is what `scripts/resource-schemas` makes from the cfn-lint CI
/// lints with: raising cfn-lint without running the script fails here.
#[test]
fn the_resource_schemas_are_those_of_the_pinned_cfn_lint() {
    let fresh = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(common::repo_root().join("scripts/resource-schemas"))
        .arg(fresh.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read(fresh.path()).unwrap()
            == std::fs::read(common::repo_root().join("deployer/schemas/resources.json")).unwrap(),
        "deployer/schemas/resources.json is stale: run scripts/resource-schemas"
    );
}

#[test]
fn package_refuses_what_is_not_an_executable_for_lambda() {
    let p = Project::new();
    let err = p
        .run(&["package", "--binary", "environments/sandbox.toml"])
        .expect(2)
        .stderr();
    assert_has(
        &err,
        &["environments/sandbox.toml is not an executable (no ELF header)"],
    );
    assert!(!p.path("dist").exists(), "nothing is written");
}

#[test]
fn an_authorizer_scope_must_be_one_scope_and_the_two_must_differ() {
    let on = "[settings.catalog.auth]\noidc_issuer = \"https://example.eu.auth0.com/\"\noidc_audience = [\"https://catalog.example.org\"]\nadmin_scope = \"catalog/admin\"\neditor_scope = \"catalog/write\"";
    let off = "# [settings.catalog.auth]\n# oidc_issuer = \"https://example.eu.auth0.com/\"\n# oidc_audience = [\"https://catalog.example.org\"]\n# admin_scope = \"catalog/admin\"\n# editor_scope = \"catalog/write\"";
    let err = synth_fails_after(
        "environments/sandbox.toml",
        off,
        &on.replace("\"catalog/write\"", "\"catalog write\""),
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/sandbox.toml:{}:",
                line_of("environments/sandbox.toml", "# editor_scope")
            ),
            "settings.catalog.auth.editor_scope must be one OAuth scope, without spaces",
            "got \"catalog write\"",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        off,
        &on.replace("\"catalog/write\"", "\"catalog/admin\""),
    );
    assert_has(
        &err,
        &[
            "settings.catalog.auth.admin_scope and editor_scope are both \"catalog/admin\": they must differ",
        ],
    );
}

#[test]
fn functions_are_settings_of_their_stack_and_a_stray_key_is_named() {
    let p = Project::new();
    let err = p
        .run(&["logs", "sandbox", "--function", "qery"])
        .expect(2)
        .stderr();
    assert_has(
        &err,
        &[
            "catalog has no function \"qery\"; did you mean query?",
            "its functions are command, import, query",
            "templates/catalog.settings.toml declares type = \"function\"",
        ],
    );
    // A function's settings: a misspelt one named at its line, and a table left where functions
    // were set before they became their stack's settings told where it goes.
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "memory_mb = 256",
        "memroy_mb = 256",
    );
    assert_has(
        &err,
        &[
            &format!(
                "environments/sandbox.toml:{}:",
                line_of("environments/sandbox.toml", "memory_mb = 256")
            ),
            "settings.catalog.functions.query.memroy_mb is not a setting",
            "did you mean memory_mb?",
        ],
    );
    // A declared function the template does not make.
    let err = synth_fails_after(
        "templates/catalog.settings.toml",
        "[functions.fields.import]",
        "[functions.fields.worker]\ntype = \"function\"\ndoc = \"d\"\n\n[functions.fields.import]",
    );
    assert_has(
        &err,
        &[
            "templates/catalog.json.hbs rendered for",
            "declare the function `worker`, but no AWS::Lambda::Function is named catalog-",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "log_retention_days = 14",
        "log_retention_days = 14\n\n[lambda.query]\nmemory_mb = 256",
    );
    assert_has(
        &err,
        &[
            "environments/sandbox.toml:",
            "unknown key `query` in [lambda]",
            "move them to [settings.<stack>.functions.query]",
        ],
    );
    let err = synth_fails_after(
        "environments/sandbox.toml",
        "log_retention_days = 14",
        "log_retention_days = 14\nlog_retention_dys = 14",
    );
    assert_has(
        &err,
        &[
            "environments/sandbox.toml:",
            "unknown key `log_retention_dys` in [lambda]; did you mean log_retention_days?",
        ],
    );
}

#[test]
fn from_inside_the_project_it_works_in_the_projects_root() {
    let p = Project::new();
    // As cargo finds its workspace: environments/ and templates/ are read in the root, and
    // what the deployer writes by default (out/, dist/) goes there too.
    p.run_from("app/src", &["synth", "--all"]).expect(0);
    assert!(p.path("out/sandbox-catalog.json").is_file());
    assert!(!p.path("app/src/out").exists());
    // A path given on the command line is where the person typing it means: from here.
    p.run_from("app/src", &["synth", "sandbox", "--out", "mine"])
        .expect(0);
    assert!(p.path("app/src/mine/sandbox-catalog.json").is_file());
    std::fs::write(p.path("app-binary"), common::stand_in_binary("v1")).unwrap();
    p.run_from("app/src", &["package", "--binary", "../../app-binary"])
        .expect(0);
    assert!(p.path("dist/manifest.json").is_file());
    // Outside any project: said so, with what to do.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(["synth", "--all"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("or any directory above it: run the deployer inside the project"),
        "{err}"
    );
}
