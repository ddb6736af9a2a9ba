//! `deployer status [ENV]`: every stack the deployer keeps, its state and artifact.

use crate::access::{ARTIFACT_TAG, Through, stacks_in};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::StackKind;
use crate::stack::tag_of;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Serialize)]
pub struct StackState {
    pub env: EnvName,
    pub stack: String,
    /// None when the stack does not exist.
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
    /// Why the account could not be read (prod's deploy role trusts only the pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub stacks: Vec<StackState>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        let header = format!(
            "{:<8} {:<24} {:<24} {}\n",
            "ENV", "STACK", "STATUS", "UPDATED"
        );
        self.stacks.iter().fold(header, |mut s, st| {
            let _ = writeln!(
                s,
                "{:<8} {:<24} {:<24} {}{}",
                st.env.as_str(),
                st.stack,
                st.status.as_deref().unwrap_or(if st.unreachable.is_some() {
                    "(unreachable)"
                } else {
                    "(none)"
                }),
                st.unreachable
                    .as_deref()
                    .or(st.updated.as_deref())
                    .unwrap_or(""),
                st.artifact_sha256
                    .as_deref()
                    .map(|sha| format!("  artifact {}", &sha[..sha.len().min(12)]))
                    .unwrap_or_default()
            );
            s
        })
    }
}

/// `deployer status [ENV]`: every stack the deployer keeps in the environment's account.
pub async fn status(envs: &Environments, which: &[EnvName]) -> Result<StatusReport, Error> {
    // Accounts are asked at the same time; the rows keep the order of `which`.
    let per_env =
        futures_util::future::join_all(which.iter().map(|&env| status_of_env(envs, env))).await;
    let mut rows = vec![];
    for env_rows in per_env {
        rows.extend(env_rows?);
    }
    Ok(StatusReport { stacks: rows })
}

/// The rows of one environment: its stacks, both asked at once.
async fn status_of_env(envs: &Environments, env: EnvName) -> Result<Vec<StackState>, Error> {
    // An account this caller may not enter is a row that says so, not the end of the report.
    let stacks = match stacks_in(envs, env, Through::ReadRole).await {
        Ok(stacks) => stacks,
        Err(Error::Refused(why)) => {
            return Ok(StackKind::for_env(envs, env)
                .into_iter()
                .map(|kind| StackState {
                    env,
                    stack: kind.stack_name(envs, env),
                    status: None,
                    updated: None,
                    artifact_sha256: None,
                    unreachable: Some(why.clone()),
                })
                .collect());
        }
        Err(e) => return Err(e),
    };
    let names: Vec<String> = StackKind::for_env(envs, env)
        .into_iter()
        .map(|kind| kind.stack_name(envs, env))
        .collect();
    let described =
        futures_util::future::join_all(names.iter().map(|name| stacks.describe(name))).await;
    names
        .into_iter()
        .zip(described)
        .map(|(name, stack)| {
            let stack = stack?;
            Ok(StackState {
                env,
                status: stack
                    .as_ref()
                    .map(|s| crate::stack::status_of(s).to_string()),
                updated: stack.as_ref().and_then(|s| {
                    s.last_updated_time()
                        .or(s.creation_time())
                        .and_then(crate::stack::time_text)
                }),
                artifact_sha256: stack
                    .as_ref()
                    .and_then(|s| tag_of(s, ARTIFACT_TAG))
                    .map(str::to_string),
                stack: name,
                unreachable: None,
            })
        })
        .collect()
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this environment (default: the pipeline account and every stage's).
    env: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let which = super::one_or_all(envs, args.env.as_deref())?;
    crate::output::emit(g.output, &status(envs, &which).await?);
    Ok(0)
}
