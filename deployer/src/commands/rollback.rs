//! `deployer rollback ENV [--stack NAME] [--to SHA]`: the stack back on an artifact it ran
//! before (by default the one before the current), with today's templates and settings. A
//! protected environment goes back only through the pipeline: a new execution ships the old
//! artifact through every stage, and the approval, as it would a new one.

use crate::access::{Through, artifact_bucket};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::history::{Entry, artifact_of_key};
use crate::render::Renderer;
use crate::stack::{Action, DeployOptions};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// The artifact to go back to: its sha256, or the start of it (at least 7 characters), as
    /// `deployer history` lists it. Default: the newest one that is not running now.
    #[arg(long, value_name = "SHA")]
    to: Option<String>,
    /// Where the environment needs the pipeline's approval: run the rollback's execution on
    /// this machine against the local emulator (`deployer pipeline run --local`) instead of
    /// starting CodePipeline.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    run: super::pipeline::LocalRun,
}

/// A rollback handed to the pipeline.
#[derive(Debug, Serialize)]
struct Started {
    env: EnvName,
    stack: String,
    from: String,
    to: String,
    pipeline: String,
    execution_id: String,
}

impl crate::output::Report for Started {
    fn human(&self) -> String {
        format!(
            "pipeline {} execution {}: ships artifact {} through every stage; {} goes back to it (from {}) once `deployer approve` approves\n",
            self.pipeline,
            self.execution_id,
            &self.to[..12],
            self.stack,
            &self.from[..12]
        )
    }
}

/// The keys of the stack's current entry and of the one to go back to, from the keys of its
/// whole history (oldest first), which name their artifacts: however long ago it ran, `--to`
/// finds it.
fn pick<'k>(
    keys: &'k [String],
    stack: &str,
    to: Option<&str>,
    env: EnvName,
) -> Result<(&'k str, &'k str), Error> {
    let Some((current, running)) = keys
        .iter()
        .rev()
        .find_map(|k| Some((k, artifact_of_key(k)?)))
    else {
        return Err(Error::Refused(format!(
            "{stack} has no recorded deploys to go back to; its history starts with the first deploy that records one"
        )));
    };
    let named =
        |key: &&String, wanted: &dyn Fn(&str) -> bool| artifact_of_key(key).is_some_and(wanted);
    let target = match to {
        Some(sha) if sha.len() >= 7 => keys.iter().rfind(|k| named(k, &|a| a.starts_with(sha))),
        Some(_) => {
            return Err(Error::Refused(
                "--to needs at least 7 characters of the sha256".into(),
            ));
        }
        None => keys.iter().rfind(|k| named(k, &|a| a != running)),
    }
    .ok_or_else(|| {
        Error::Refused(format!(
            "{stack} ran no other artifact{}: `deployer history {env}` lists what it ran",
            to.map(|s| format!(" starting {s}")).unwrap_or_default(),
        ))
    })?;
    if artifact_of_key(target) == Some(running) {
        return Err(Error::Refused(format!("{stack} already runs {running}")));
    }
    Ok((current, target))
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let env = envs.env(&args.at.env)?;
    let protected = envs.target(env).is_some_and(|t| t.safety.require_approval);
    if args.local && !protected {
        return Err(Error::Refused(format!(
            "--local runs a protected environment's rollback through the local pipeline; {env} needs no approval (safety.require_approval = false in {}), so `deployer rollback {env}` deploys it directly",
            envs.file(env).display()
        )));
    }
    // Where the rollback deploys itself, the deploy role reads the history, fetches the artifact
    // and deploys; where the pipeline deploys, the read role only reads.
    let through = if protected {
        Through::ReadRole
    } else {
        Through::DeployRole
    };
    let (session, stack) = super::history::open(envs, &args.at, through).await?;
    let bucket = artifact_bucket(envs, env);
    let s3 = session.s3();
    let keys = crate::history::keys(&s3, &bucket, &stack).await?;
    let (current, target) = pick(&keys, &stack, args.to.as_deref(), env)?;
    let (current, target) = (
        crate::history::read(&s3, &bucket, current).await?,
        crate::history::read(&s3, &bucket, target).await?,
    );
    eprintln!(
        "{stack}: from {} back to {}, which it ran from {}",
        &current.manifest.sha256[..12],
        &target.manifest.sha256[..12],
        target.time
    );
    if protected {
        return through_pipeline(g, envs, env, &args, &stack, &current, &target).await;
    }
    let zip = crate::artifact::fetch(&s3, &bucket, &target.manifest).await?;
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

/// A protected environment's rollback: an execution of the pipeline whose Build recalls the old
/// artifact (RollbackTo); every stage deploys it from its own history, and this environment
/// only after the approval.
async fn through_pipeline(
    g: &super::Global,
    envs: &Environments,
    env: EnvName,
    args: &Args,
    stack: &str,
    current: &Entry,
    target: &Entry,
) -> Result<u8, Error> {
    let sha256 = &target.manifest.sha256;
    if args.local {
        let runner = super::pipeline::local_runner(
            g,
            envs,
            crate::local_pipeline::Options {
                skip_tests: args.run.skip_tests,
                verify_url: args.run.verify_url.clone(),
                variables: vec![(
                    crate::pipeline::ROLLBACK_VARIABLE.to_string(),
                    sha256.clone(),
                )],
                ..Default::default()
            },
        )?;
        let execution = runner.start().await?;
        crate::output::emit(g.output, &execution);
        return Ok(0);
    }
    let cp = crate::access::codepipeline(envs, "rollback").await?;
    let pipeline = envs.prefix().as_str().to_string();
    let execution_id = crate::pipeline::start_rollback(&cp, &pipeline, sha256).await?;
    crate::output::emit(
        g.output,
        &Started {
            env,
            stack: stack.to_string(),
            from: current.manifest.sha256.clone(),
            to: sha256.clone(),
            pipeline,
            execution_id,
        },
    );
    Ok(0)
}
