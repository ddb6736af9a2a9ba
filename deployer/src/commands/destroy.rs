//! `deployer destroy ENV [--stack NAME] [--branch B]`: removes a stack; a protected
//! environment's never.

use crate::access::{Through, delete_signing_secret, service, session_in, stack_names};
use crate::config::{EnvName, Environments};
use crate::display::Progress;
use crate::error::Error;
use crate::output::Report;
use crate::stack::Stacks;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct DestroyReport {
    pub stack: String,
    pub deleted: bool,
}

impl Report for DestroyReport {
    fn human(&self) -> String {
        if self.deleted {
            format!("{}: deleted\n", self.stack)
        } else {
            format!("{}: there was no such stack\n", self.stack)
        }
    }
}

/// `deployer destroy ENV`: removes a stack; a protected environment's is never destroyed this way.
pub async fn destroy(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    retain: &[String],
    yes: bool,
    progress: &mut Progress,
) -> Result<DestroyReport, Error> {
    let kind = service(envs, env, stack, "destroy")?;
    if envs.target(env).is_some_and(|t| t.safety.require_approval) && branch.is_none() {
        return Err(Error::Refused(format!(
            "the deployer never destroys {env}, which is protected (safety.require_approval = true in {}); if it really must go, delete its stack in the AWS console after turning off termination protection",
            envs.file(env).display()
        )));
    }
    let (name, resources) = stack_names(envs, env, kind, branch)?;
    let session = session_in(envs, env, Through::DeployRole).await?;
    let data = if branch.is_none() && envs.target(env).is_some_and(|t| !t.safety.retain_data) {
        ", its data included (safety.retain_data = false)"
    } else {
        ""
    };
    super::confirm(
        &format!(
            "Delete stack {name} in {env} (account {}){data}?",
            session.account
        ),
        yes,
        "nothing was deleted",
    )
    .await?;
    let deleted = Stacks::new(session.cloudformation())
        .delete(&name, retain, progress)
        .await?;
    // A branch's secret goes with its stack (also when the stack was gone already).
    if branch.is_some() {
        let secret = crate::render::signing_secret(envs, env, Some(&resources));
        delete_signing_secret(&session.ssm(), &secret).await?;
    }
    Ok(DestroyReport {
        stack: name,
        deleted,
    })
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// Delete this feature branch's stack instead.
    #[arg(long)]
    branch: Option<String>,
    /// For a stack in DELETE_FAILED: delete it but keep these resources (logical ids), the
    /// ones the failure names; remove them by hand afterwards.
    #[arg(long, num_args = 1.., value_name = "ID")]
    retain: Vec<String>,
    /// Do not ask (a terminal asks; anything else needs this).
    #[arg(long)]
    yes: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let mut progress = Progress::new(g.no_progress);
    let report = destroy(
        envs,
        envs.env(&args.at.env)?,
        args.at.stack.as_deref(),
        args.branch.as_deref(),
        &args.retain,
        args.yes,
        &mut progress,
    )
    .await?;
    drop(progress);
    crate::output::emit(g.output, &report);
    Ok(0)
}
