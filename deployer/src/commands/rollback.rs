//! `deployer rollback ENV [--stack NAME] [--to SHA]`: the stack back on an artifact it ran
//! before (by default the one before the current), with today's templates and settings.

use crate::access::{Through, artifact_bucket};
use crate::config::Environments;
use crate::error::Error;
use crate::render::Renderer;
use crate::stack::{Action, DeployOptions};

/// Redeploy the artifact a stack ran before the current one (see `deployer history`).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// The artifact to go back to: its sha256, or the start of it (at least 7 characters), as
    /// `deployer history` lists it. Default: the newest one that is not running now.
    #[arg(long, value_name = "SHA")]
    to: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let env = envs.env(&args.at.env)?;
    if envs.target(env).is_some_and(|t| t.safety.require_approval) {
        return Err(Error::Refused(format!(
            "{env} changes only through the pipeline's approval (safety.require_approval = true in {}): revert the change on the pipeline's branch, and approve what the pipeline then promotes; `deployer history {env}` names the artifacts it ran",
            envs.file(env).display()
        )));
    }
    // Read through the deploy role: the same session then fetches the artifact and deploys.
    let (session, history) =
        super::history::history(envs, &args.at, 100, Through::DeployRole).await?;
    let Some(current) = history.entries.first() else {
        return Err(Error::Refused(format!(
            "{} has no recorded deploys to go back to; its history starts with the first deploy that records one",
            history.stack
        )));
    };
    let target = match &args.to {
        Some(sha) if sha.len() >= 7 => history
            .entries
            .iter()
            .find(|e| e.manifest.sha256.starts_with(sha.as_str())),
        Some(_) => {
            return Err(Error::Refused(
                "--to needs at least 7 characters of the sha256".into(),
            ));
        }
        None => history
            .entries
            .iter()
            .find(|e| e.manifest.sha256 != current.manifest.sha256),
    }
    .ok_or_else(|| {
        Error::Refused(format!(
            "{} ran no other artifact{}: `deployer history {}` lists what it ran",
            history.stack,
            args.to
                .as_deref()
                .map(|s| format!(" starting {s}"))
                .unwrap_or_default(),
            env
        ))
    })?;
    if target.manifest.sha256 == current.manifest.sha256 {
        return Err(Error::Refused(format!(
            "{} already runs {}",
            history.stack, target.manifest.sha256
        )));
    }
    eprintln!(
        "{}: from {} back to {} (running since {})",
        history.stack,
        &current.manifest.sha256[..12],
        &target.manifest.sha256[..12],
        target.time
    );
    let bucket = artifact_bucket(envs, env);
    let zip = crate::artifact::fetch(&session.s3(), &bucket, &target.manifest).await?;
    let dir = tempfile::Builder::new()
        .prefix("deployer-rollback-")
        .tempdir()
        .map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let manifest = crate::artifact::write(dir.path(), &target.manifest, &zip)?;
    let renderer = Renderer::load(&g.templates)?;
    let mut progress = crate::display::Progress::new(g.no_progress);
    let deployed = super::deploy::deploy(
        envs,
        &renderer,
        env,
        args.at.stack.as_deref(),
        None,
        &super::deploy::Artifact {
            path: &manifest,
            expect_sha256: Some(&target.manifest.sha256),
        },
        &super::deploy::Request {
            continue_rollback: None,
            options: DeployOptions {
                force: false,
                action: Action::Apply,
            },
            unchanged: false,
            history_outcome: "rolled-back",
        },
        &mut progress,
    )
    .await;
    drop(progress);
    crate::output::emit(g.output, &deployed?);
    Ok(0)
}
