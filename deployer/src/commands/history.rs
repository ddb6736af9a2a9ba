//! `deployer history ENV [--stack NAME]`: which artifact the stack ran, since when, deployed by
//! whom, newest first.

use crate::access::{Through, artifact_bucket, service, stack_names};
use crate::config::Environments;
use crate::error::Error;
use crate::history::Entry;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub stack: String,
    pub entries: Vec<Entry>,
}

impl crate::output::Report for HistoryReport {
    fn human(&self) -> String {
        if self.entries.is_empty() {
            return format!("{}: no deploys recorded\n", self.stack);
        }
        let mut out = format!(
            "{}\n{:<24}  {:<12}  {:<11}  by\n",
            self.stack, "time (UTC)", "artifact", "outcome"
        );
        for (i, e) in self.entries.iter().enumerate() {
            out += &format!(
                "{:<24}  {:<12}  {:<11}  {}{}\n",
                e.time,
                &e.manifest.sha256[..12],
                e.outcome,
                e.by,
                if i == 0 { "  (running now)" } else { "" }
            );
        }
        out
    }
}

/// The stack `at` names, and a session in its environment to read its history through.
pub async fn open(
    envs: &Environments,
    at: &super::StackArgs,
    through: Through,
) -> Result<(crate::aws::Session, String), Error> {
    let env = envs.env(&at.env)?;
    let kind = service(envs, env, at.stack.as_deref(), "history")?;
    let (stack, _) = stack_names(envs, env, kind, None)?;
    Ok((crate::access::session_in(envs, env, through).await?, stack))
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let (session, stack) = open(envs, &args.at, Through::ReadRole).await?;
    let bucket = artifact_bucket(envs, envs.env(&args.at.env)?);
    let entries = crate::history::list(&session.s3(), &bucket, &stack, args.limit).await?;
    let report = HistoryReport { stack, entries };
    crate::output::emit(g.output, &report);
    Ok(0)
}
