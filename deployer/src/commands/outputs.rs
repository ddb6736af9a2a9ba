//! `deployer outputs ENV [--stack NAME] [--branch B]`: a stack's outputs.

use crate::access::{Through, service, stack_names, stacks_in};
use crate::config::{EnvName, Environments};
use crate::display::outputs_text;
use crate::error::Error;
use crate::output::Report;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct OutputsReport {
    pub stack: String,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

impl Report for OutputsReport {
    fn human(&self) -> String {
        format!(
            "{}: {}\n{}",
            self.stack,
            self.status,
            outputs_text(&self.outputs)
        )
    }
}

pub async fn outputs(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
) -> Result<OutputsReport, Error> {
    let kind = service(envs, env, stack, "outputs")?;
    let (name, _) = stack_names(envs, env, kind, branch)?;
    let stacks = stacks_in(envs, env, Through::ReadRole).await?;
    let stack = stacks.describe(&name).await?.ok_or_else(|| {
        Error::Refused(format!(
            "stack {name} does not exist in account {}; deploy it first with `deployer deploy {env}{}`",
            envs.account(env),
            branch.map(|b| format!(" --branch {b}")).unwrap_or_default()
        ))
    })?;
    Ok(OutputsReport {
        status: crate::stack::status_of(&stack).into(),
        outputs: crate::stack::outputs_of(&stack),
        stack: name,
    })
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// This feature branch's stack instead.
    #[arg(long)]
    branch: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let env = envs.env(&args.at.env)?;
    let report = outputs(envs, env, args.at.stack.as_deref(), args.branch.as_deref()).await?;
    crate::output::emit(g.output, &report);
    Ok(0)
}
