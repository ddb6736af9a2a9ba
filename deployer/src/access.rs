//! How the deployer reaches an environment: its account's roles (sessions through STS), its
//! stacks by name, the bootstrap they need, and the tags every stack carries. Shared by the
//! commands; below them, above the engine.

use crate::aws::{self, Session};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::render::{BOOTSTRAP_VERSION, Options, Renderer, StackKind};
use crate::stack::{DeployReport, Observer, StackSpec, Stacks};

/// One of the roles an environment's bootstrap makes in its account (`deploy`, `read`,
/// `cfn-exec`, `branch-deployer`, ...): named for the environment, since IAM names are global to
/// the account and two environments may share one.
pub fn role_name(envs: &Environments, env: EnvName, role: &str) -> String {
    format!("{}-{env}-{role}", envs.prefix().as_str())
}

/// The stack a command acts on: `--stack`, or the environment's only one (for a branch too: a
/// branch may have a stack of each of the environment's).
pub fn service(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    verb: &str,
) -> Result<StackKind, Error> {
    let stages: Vec<&str> = envs.names().iter().skip(1).map(|e| e.as_str()).collect();
    if envs.target(env).is_none() {
        return Err(Error::Refused(format!(
            "`deployer {verb} {env}`: the {env} account holds no stack of the service; use one of {}",
            stages.join(", ")
        )));
    }
    let services = StackKind::services(envs, env);
    let names: Vec<&str> = services.iter().map(|k| k.template_name()).collect();
    let kind = match stack {
        Some(name) => *services
            .iter()
            .find(|k| k.template_name() == name)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{env} holds no stack {name:?}{}; its stacks are {} (stacks in {})",
                    crate::suggest::did_you_mean(name, &names),
                    names.join(", "),
                    envs.file(env).display()
                ))
            })?,
        None if services.len() == 1 => services[0],
        None => {
            return Err(Error::Refused(format!(
                "{env} holds the stacks {}: name one with --stack, e.g. `deployer {verb} {env} --stack {}`",
                names.join(", "),
                names[0]
            )));
        }
    };
    Ok(kind)
}

/// A stack's name and the base name of its resources, for the environment or for one of its
/// branches.
pub fn stack_names(
    envs: &Environments,
    env: EnvName,
    kind: StackKind,
    branch: Option<&str>,
) -> Result<(String, String), Error> {
    crate::render::names(envs, env, kind, branch).map_err(|e| Error::Refused(e.to_string()))
}

/// CloudFormation in `env`'s account, through one of its roles.
pub async fn stacks_in(
    envs: &Environments,
    env: EnvName,
    through: Through,
) -> Result<Stacks, Error> {
    Ok(Stacks::new(
        session_in(envs, env, through).await?.cloudformation(),
    ))
}

/// CodePipeline in the pipeline account, with the caller's own credentials there.
pub async fn codepipeline(
    envs: &Environments,
    verb: &str,
) -> Result<aws_sdk_codepipeline::Client, Error> {
    let session = operator_session(envs, EnvName::PIPELINE, verb).await?;
    Ok(aws_sdk_codepipeline::Client::new(&session.config))
}

/// Which of a target account's roles a command acts through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Through {
    /// `{prefix}-{env}-deploy`: change sets, artifacts, stack deletion.
    DeployRole,
    /// `{prefix}-{env}-read`: status, outputs, logs, drift; operators may read a protected
    /// environment through it.
    ReadRole,
    /// `{prefix}-{env}-propose`, where deploys need approval: change sets made for the approval
    /// to show, never executed (the pipeline's Prepare action).
    ProposeRole,
}

/// A session in `env`'s account: the role `through` names for a stage's environment (a caller that
/// already is one of the account's deployer roles goes on as it is); in the pipeline account,
/// which has neither, the caller's own.
pub async fn session_in(
    envs: &Environments,
    env: EnvName,
    through: Through,
) -> Result<aws::Session, Error> {
    if envs.target(env).is_none() {
        return operator_session(envs, env, &format!("status {env}")).await;
    }
    let (deploy, read, branch, propose) = (
        role_name(envs, env, "deploy"),
        role_name(envs, env, "read"),
        role_name(envs, env, "branch-deployer"),
        role_name(envs, env, "propose"),
    );
    // A reader's session never stands in for a deployer's: it assumes the deploy role instead.
    let roles: &[&str] = match through {
        Through::DeployRole => &[&deploy, &branch],
        Through::ReadRole => &[&read, &deploy, &branch],
        Through::ProposeRole => &[&propose],
    };
    let operator = aws::operator().await?;
    let session = operator
        .session_in(envs.account(env), envs.region(env), roles)
        .await
        .map_err(|e| match e {
            // Either the role is not there yet or it does not trust this caller: both are mended
            // by a bootstrap or by the environment file, not by trying again.
            aws::Error::AssumeRole { role_arn, message, .. } => Error::Refused(format!(
                "cannot assume {role_arn} as {}: {message}; run `deployer bootstrap {env}` with credentials in account {}, and check that {} lets this caller in ({})",
                operator.arn,
                envs.account(env),
                envs.file(env).display(),
                if through == Through::ReadRole {
                    "access.readers"
                } else if through == Through::ProposeRole {
                    "only the pipeline's Prepare action may; merge to the pipeline's branch"
                } else if envs.target(env).is_some_and(|t| t.safety.require_approval) {
                    "only the pipeline's Deploy action and access.break_glass_role_arn may; deploy through the pipeline"
                } else {
                    "access.operators"
                }
            )),
            other => other.into(),
        })?;
    announce(env, &session);
    Ok(session)
}

/// Says once on stderr where a command acts in `env` and as whom, before it does: a mistyped
/// variable must not send a deploy to an account nobody meant without a word.
fn announce(env: EnvName, session: &aws::Session) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let line = format!("{env}: {}", session.whereabouts());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.contains(&line) {
        eprintln!("{line}");
        said.push(line);
    }
}

/// The caller's own credentials, which must be in `env`'s account (`verb` names the command for
/// the message that says so): bootstrap, and the pipeline account's commands.
pub async fn operator_session(
    envs: &Environments,
    env: EnvName,
    verb: &str,
) -> Result<aws::Session, Error> {
    let operator = aws::operator().await?;
    let caller = &operator.account;
    let account = envs.account(env);
    if caller != account.as_str() {
        return Err(Error::Refused(format!(
            "`deployer {verb}` for {env} needs credentials in its account {account} ({}), but these are for account {caller}; sign in there first, e.g. AWS_PROFILE=<a profile of {account}> deployer {verb}",
            envs.file(env).display()
        )));
    }
    let session = operator.session_here(envs.region(env));
    announce(env, &session);
    Ok(session)
}

/// What the stack is made from: the same template, parameters and artifact give the same
/// fingerprint, and a stack tagged with it needs no change set.
pub fn fingerprint(template_body: &str, parameters: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(template_body.as_bytes());
    for (k, v) in parameters {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// When a branch stack was first deployed.
pub const CREATED_TAG: &str = "created";

/// The sha256 of the artifact the stack runs.
pub const ARTIFACT_TAG: &str = "artifact-sha256";

/// What every stack the deployer makes is tagged with.
pub fn stack_tags(
    envs: &Environments,
    env: EnvName,
    artifact_sha: Option<&str>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        ("app".into(), envs.prefix().as_str().into()),
        ("env".into(), env.to_string()),
        ("deployer-version".into(), env!("CARGO_PKG_VERSION").into()),
    ];
    if let Some(sha) = artifact_sha {
        tags.push((ARTIFACT_TAG.into(), sha.into()));
    }
    tags
}

/// The environment's artifact bucket (its bootstrap makes it): artifacts, large templates and
/// the deploy history.
pub fn artifact_bucket(envs: &Environments, env: EnvName) -> String {
    format!(
        "{}-artifacts-{}-{}",
        envs.prefix().as_str(),
        envs.account(env),
        envs.region(env).as_str()
    )
}

/// The SSM parameter the environment's bootstrap writes its version to: the pipeline account's
/// has a name of its own, since a target may share its account and region.
pub fn marker_name(envs: &Environments, env: EnvName) -> String {
    let prefix = envs.prefix().as_str();
    if env == EnvName::PIPELINE {
        format!("/{prefix}/bootstrap/pipeline/version")
    } else {
        format!("/{prefix}/bootstrap/version")
    }
}

/// Deploys a stack of `env` with the operator's own credentials, which must be in that account
/// (`verb` names the command for the message that says so).
pub async fn deploy_as_operator(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    kind: StackKind,
    options: &Options,
    verb: &str,
    on_event: &mut dyn Observer,
) -> Result<(DeployReport, Session), Error> {
    let rendered = renderer.render_with(envs, env, kind, options)?;
    let session = operator_session(envs, env, verb).await?;
    // The pipeline stack imports the roles and key its account's bootstrap exports: without
    // them AWS fails the change set (the emulator resolves no imports and goes on).
    if kind == StackKind::Pipeline {
        check_marker(envs, env, &session).await?;
    }
    let template_body = rendered.to_compact();
    let spec = StackSpec {
        name: rendered.stack_name.clone(),
        fingerprint: fingerprint(&template_body, &[]),
        template_body,
        template_url: None,
        parameters: vec![],
        tags: stack_tags(envs, env, None),
        termination_protection: false,
        // The pipeline stack goes through the pipeline account's execution role, the one the
        // UpdatePipeline action may pass; a bootstrap stack makes the roles, so it cannot.
        execution_role_arn: (kind == StackKind::Pipeline).then(|| {
            format!(
                "arn:aws:iam::{}:role/{}-pipeline-exec",
                envs.account(env),
                envs.prefix().as_str()
            )
        }),
    };
    let stacks = Stacks::new(session.cloudformation());
    let found = stacks.look(&spec, false).await?;
    // A stack that already matches changes no approval: its template was read once, by `look`.
    if kind == StackKind::Pipeline && !found.current {
        use crate::pipeline::Deployed;
        use aws_sdk_cloudformation::types::StackStatus;
        let template = stacks.template(&spec.name).await?;
        // A stack made by a change set that never ran holds nothing yet.
        let exists = found
            .stack
            .as_ref()
            .is_some_and(|s| s.stack_status() != Some(&StackStatus::ReviewInProgress));
        let deployed = match (exists, &template) {
            (false, _) => Deployed::None,
            (true, None) => Deployed::Unreadable,
            (true, Some(template)) => Deployed::Template(template),
        };
        let dropped = crate::pipeline::approvals_kept(
            deployed,
            &rendered.template,
            &aws::operator().await?.arn,
            envs.prefix().as_str(),
        )?;
        if !dropped.is_empty() {
            eprintln!(
                "warning: this removes the manual approval before {}: the pipeline will deploy there without one",
                dropped.join(", ")
            );
        }
        if matches!(deployed, Deployed::Unreadable) {
            eprintln!(
                "warning: the pipeline stack's template is not JSON (deployed by other means): whether this update keeps its approvals is not checked"
            );
        }
    }
    let report = stacks
        .deploy_found(&spec, found, &Default::default(), on_event)
        .await?;
    Ok((report, session))
}

/// Creates a signing secret once (an environment's at bootstrap, a branch stack's before its
/// first deploy), as a SecureString (CloudFormation cannot make those).
/// An existing secret is never read or replaced: rotating it signs everyone out.
pub async fn ensure_signing_secret(session: &Session, name: &str) -> Result<(), Error> {
    ensure_secret(
        session,
        name,
        "Signs one stack's login tokens; made once by the deployer",
    )
    .await
}

/// Creates a random SecureString once; one already there is kept as it is.
pub async fn ensure_secret(session: &Session, name: &str, description: &str) -> Result<(), Error> {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    let result = session
        .ssm()
        .put_parameter()
        .name(name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(hex::encode(bytes))
        .overwrite(false)
        .description(description)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_parameter_already_exists()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::Aws(aws::Error::Call {
            action: "ssm:PutParameter",
            target: name.to_string(),
            message: aws::error_text(&e),
        })),
    }
}

/// Deletes a branch stack's signing secret once its stack is gone; one already gone is fine.
pub async fn delete_signing_secret(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<(), Error> {
    match ssm.delete_parameter().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_parameter_not_found()) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::Aws(aws::Error::Call {
            action: "ssm:DeleteParameter",
            target: name.to_string(),
            message: aws::error_text(&e),
        })),
    }
}

/// Refuses an environment whose bootstrap is missing or older than this deployer needs.
pub async fn check_marker(
    envs: &Environments,
    env: EnvName,
    session: &Session,
) -> Result<(), Error> {
    let name = marker_name(envs, env);
    let fix = format!(
        "run `deployer bootstrap {env}` with credentials in account {}",
        envs.account(env)
    );
    let found = match session.ssm().get_parameter().name(&name).send().await {
        Ok(out) => out.parameter.and_then(|p| p.value),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_parameter_not_found()) =>
        {
            None
        }
        Err(e) => {
            return Err(Error::Aws(aws::Error::Call {
                action: "ssm:GetParameter",
                target: name,
                message: aws::error_text(&e),
            }));
        }
    };
    match found.as_deref().map(str::parse::<u32>) {
        None => Err(Error::Refused(format!(
            "{env} (account {}) is not bootstrapped, or was by a deployer older than its version marker: {name} does not exist; {fix}",
            envs.account(env)
        ))),
        Some(Ok(v)) if v >= BOOTSTRAP_VERSION => Ok(()),
        Some(_) => Err(Error::Refused(format!(
            "{env} (account {}) has bootstrap version {} but this deployer needs {BOOTSTRAP_VERSION}; {fix}",
            envs.account(env),
            found.unwrap_or_default()
        ))),
    }
}
