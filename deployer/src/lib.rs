//! The deployer: renders a service's CloudFormation templates and deploys them through the stages
//! of one pipeline, each environment in its own account and region.

pub mod access;
pub mod artifact;
pub mod aws;
pub mod branch;
pub mod cli;
pub mod commands;
pub mod config;
pub mod display;
pub mod drift;
pub mod error;
pub mod files;
pub mod history;
pub mod hotswap;
pub mod json;
pub mod local_api;
pub mod local_pipeline;
pub mod logs;
pub mod output;
pub mod pipeline;
pub mod prompt;
pub mod render;
pub mod schema;
pub mod settings;
pub mod stack;
pub mod suggest;
pub mod verify;

use cli::{Cli, Command};
use config::EnvName;
use error::Error;

/// Runs one command line to completion; the exit status when it did not fail (`drift` says 1
/// for a drifted stack, `branches gc` for a stack it could not remove).
pub async fn run(mut cli: Cli) -> Result<u8, Error> {
    // Needs no environment files: it works anywhere the binary is installed.
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::completion_command(),
            "deployer",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    cli.global.locate()?;
    let g = &cli.global;
    if let Command::Synth(args) = cli.command {
        // Loads the environments itself: a run it kept is replayed before any file is parsed.
        return commands::synth::run(g, args);
    }
    let (envs, _) = commands::load(g)?;
    stack::set_wait_limit(g.timeout);
    aws::sign_in(aws::SignIn {
        profile: g.profile.clone(),
        region: g.region.clone(),
        fallback_region: envs.region(EnvName::PIPELINE).as_str().to_string(),
    });
    let envs = &envs;
    match cli.command {
        Command::Bootstrap(args) => commands::bootstrap::run(g, envs, args).await,
        Command::Deploy(args) => commands::deploy::run(g, envs, args).await,
        Command::Diff(args) => commands::diff::run(g, envs, args).await,
        Command::Destroy(args) => commands::destroy::run(g, envs, args).await,
        Command::Package(args) => commands::package::run(g, envs, args),
        Command::Status(args) => commands::status::run(g, envs, args).await,
        Command::Pipeline(args) => commands::pipeline::run(g, envs, args).await,
        Command::Approve(args) => commands::approve::run(g, envs, args).await,
        Command::Reject(args) => commands::reject::run(g, envs, args).await,
        Command::Branches(args) => commands::branches::run(g, envs, args).await,
        Command::Outputs(args) => commands::outputs::run(g, envs, args).await,
        Command::Drift(args) => commands::drift::run(g, envs, args).await,
        Command::Logs(args) => commands::logs::run(g, envs, args).await,
        Command::History(args) => commands::history::run(g, envs, args).await,
        Command::Rollback(args) => commands::rollback::run(g, envs, args).await,
        Command::Verify(args) => commands::verify::run(g, envs, args).await,
        Command::Doctor(args) => commands::doctor::run(g, envs, args).await,
        Command::Gc(args) => commands::gc::run(g, envs, args).await,
        Command::Completions { .. } | Command::Synth(_) => {
            unreachable!("handled before the environments load")
        }
    }
}
