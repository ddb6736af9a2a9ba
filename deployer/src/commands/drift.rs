//! `deployer drift ENV [--stack NAME] [--branch B]`: drift detection on a stack that must exist.

use crate::access::{Through, service, stack_names, stacks_in};
use crate::config::{EnvName, Environments};
use crate::display::Progress;
use crate::error::Error;

/// `deployer drift ENV`: detection on a stack that must exist.
pub async fn drift(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    progress: &mut Progress,
) -> Result<crate::drift::DriftReport, Error> {
    let kind = service(envs, env, stack, "drift")?;
    let (name, _) = stack_names(envs, env, kind, branch)?;
    let stacks = stacks_in(envs, env, Through::ReadRole).await?;
    if stacks.describe(&name).await?.is_none() {
        return Err(Error::Refused(format!(
            "stack {name} does not exist in account {}: nothing to compare; deploy it first",
            envs.account(env)
        )));
    }
    Ok(crate::drift::detect(&stacks, &name, progress).await?)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// Check this feature branch's stack instead.
    #[arg(long)]
    branch: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let mut progress = Progress::new(g.no_progress);
    let env = envs.env(&args.at.env)?;
    let report = drift(
        envs,
        env,
        args.at.stack.as_deref(),
        args.branch.as_deref(),
        &mut progress,
    )
    .await
    .map_err(Error::undecided)?;
    drop(progress);
    crate::output::emit(g.output, &report);
    Ok(if report.in_sync() { 0 } else { 1 })
}
