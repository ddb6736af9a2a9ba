//! The deployer: renders the catalog's CloudFormation templates and deploys them across the
//! pipeline, sandbox and prod accounts.

pub mod artifact;
pub mod aws;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod error;
pub mod output;
pub mod render;
pub mod stack;
pub mod synth;

use cli::{Cli, Command};
use config::{EnvName, Environments};
use error::Error;
use output::emit;
use render::Renderer;

/// Runs one command line to completion.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    let envs = Environments::load(&g.environments)?;
    match cli.command {
        Command::Synth { env, all: _, out } => {
            let renderer = Renderer::load(&g.templates)?;
            let which = one_or_all(env);
            emit(g.output, &synth::synth(&envs, &renderer, &which, &out)?);
        }
        Command::Deploy {
            env,
            artifact,
            continue_rollback,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::deploy(
                &envs,
                &renderer,
                env,
                &artifact,
                continue_rollback,
                &mut progress,
            )
            .await?;
            drop(progress);
            emit(g.output, &report);
        }
        Command::Bootstrap {
            env,
            admin_execution_role,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let options = render::Options {
                admin_execution_role,
            };
            let mut progress = deploy::Progress::new(g.no_progress);
            let report =
                bootstrap::bootstrap(&envs, &renderer, env, &options, &mut progress).await?;
            drop(progress); // clears the progress line before the report prints
            emit(g.output, &report);
        }
        Command::Diff { env, artifact } => {
            let renderer = Renderer::load(&g.templates)?;
            emit(
                g.output,
                &deploy::diff(&envs, &renderer, env, &artifact).await?,
            );
        }
        Command::Destroy { env } => {
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::destroy(&envs, env, &mut progress).await?;
            drop(progress);
            emit(g.output, &report);
        }
        Command::Package { env, binary, out } => {
            let architecture = envs
                .target(env)
                .ok_or_else(|| {
                    Error::Refused(
                        "package for sandbox or prod: the pipeline account runs no function".into(),
                    )
                })?
                .lambda
                .architecture;
            let binary = match binary {
                Some(path) => path,
                None => artifact::build_app(architecture)?,
            };
            emit(g.output, &artifact::package(&binary, architecture, &out)?);
        }
        Command::Status { env } => {
            emit(g.output, &deploy::status(&envs, &one_or_all(env)).await?);
        }
        Command::Outputs { env } => emit(g.output, &deploy::outputs(&envs, env).await?),
    }
    Ok(())
}

fn one_or_all(env: Option<EnvName>) -> Vec<EnvName> {
    env.map_or_else(|| EnvName::ALL.to_vec(), |e| vec![e])
}
