//! `deployer bootstrap ENV`: the stack that prepares an account (roles, artifact bucket, KMS key,
//! ECR repository, version marker), and the app's signing secret.

use crate::access::{deploy_as_operator, ensure_secret, ensure_signing_secret};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::render::{Options, Renderer, StackKind};
use crate::stack::{DeployReport, Observer};

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
        let name = crate::render::signing_secret(envs, env, None);
        ensure_signing_secret(&session, &name).await?;
        if envs.target(env).is_some_and(|t| t.verify.is_some()) {
            ensure_secret(
                &session,
                &crate::render::verify_password(envs, env),
                "The password of the pipeline's Verify user; made once by the deployer",
            )
            .await?;
        }
    }
    Ok(report)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose account to prepare (`pipeline` or a stage's); sign in to that
    /// account first.
    env: String,
    /// Give the CloudFormation execution role AdministratorAccess instead of its scoped policy.
    /// Each bootstrap without it takes it away again.
    #[arg(long)]
    admin_execution_role: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let options = Options {
        admin_execution_role: args.admin_execution_role,
        ..Default::default()
    };
    let mut progress = crate::display::Progress::new(g.no_progress);
    let report = bootstrap(
        envs,
        &renderer,
        envs.env(&args.env)?,
        &options,
        &mut progress,
    )
    .await?;
    drop(progress); // clears the progress line before the report prints
    crate::output::emit(g.output, &report);
    Ok(0)
}
