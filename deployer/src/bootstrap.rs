//! `deployer bootstrap ENV`: the stack that prepares an account (roles, artifact bucket, KMS key,
//! ECR repository, version marker), and the check that `deploy` makes against its marker.

use crate::aws::{self, Session};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::render::{BOOTSTRAP_VERSION, Options, Renderer, StackKind};
use crate::stack::{DeployReport, Observer, StackSpec, Stacks};

/// The SSM parameter the target bootstrap writes its version to.
pub fn marker_name(envs: &Environments) -> String {
    format!("/{}/bootstrap/version", envs.prefix().as_str())
}

pub async fn bootstrap(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    options: &Options,
    on_event: &mut dyn Observer,
) -> Result<DeployReport, Error> {
    let kind = StackKind::for_env(envs, env)[0];
    // The deploy role does not exist before the first bootstrap: bootstrapping needs the
    // operator's own credentials in that account.
    let (report, session) =
        deploy_as_operator(envs, renderer, env, kind, options, "bootstrap", on_event).await?;
    if kind == StackKind::BootstrapTarget {
        ensure_signing_secret(envs, env, &session).await?;
    }
    Ok(report)
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
    let session = crate::deploy::operator_session(envs, env, verb).await?;
    let template_body = rendered.to_compact();
    let spec = StackSpec {
        name: rendered.stack_name.clone(),
        fingerprint: crate::deploy::fingerprint(&template_body, &[]),
        template_body,
        template_url: None,
        parameters: vec![],
        tags: crate::deploy::stack_tags(envs, env, None),
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
    let report = Stacks::new(session.cloudformation())
        .deploy(&spec, on_event)
        .await?;
    Ok((report, session))
}

/// The SSM parameter holding the app's token signing secret in `env`.
pub fn secret_name(envs: &Environments, env: EnvName) -> String {
    format!("/{}/{env}/jwt-secret", envs.prefix().as_str())
}

/// Creates the app's signing secret once, as a SecureString (CloudFormation cannot make those).
/// An existing secret is never read or replaced: rotating it signs everyone out.
async fn ensure_signing_secret(
    envs: &Environments,
    env: EnvName,
    session: &Session,
) -> Result<(), Error> {
    let name = secret_name(envs, env);
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    let result = session
        .ssm()
        .put_parameter()
        .name(&name)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(crate::synth::hex(&bytes))
        .overwrite(false)
        .description("Signs the catalog's login tokens; made once by deployer bootstrap")
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
            target: name,
            message: aws::error_text(&e),
        })),
    }
}

/// Refuses targets whose bootstrap is missing or older than this deployer needs.
pub async fn check_marker(
    envs: &Environments,
    env: EnvName,
    session: &Session,
) -> Result<(), Error> {
    let name = marker_name(envs);
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
            "{env} (account {}) is not bootstrapped: {name} does not exist; {fix}",
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
