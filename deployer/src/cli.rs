//! The command line: the global flags and the subcommands, each with its flags in its own file
//! under `commands/`.

use crate::commands::{self, Global};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "deployer",
    version,
    about = "Renders, bootstraps and deploys a service's CloudFormation stacks through the stages of one pipeline, each environment in its own account",
    after_help = "Exit status: 0 done (also \"no changes\"), 1 the operation failed, 2 bad input or refused."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Synth(commands::synth::Args),
    Bootstrap(commands::bootstrap::Args),
    Deploy(commands::deploy::Args),
    Diff(commands::diff::Args),
    Destroy(commands::destroy::Args),
    Package(commands::package::Args),
    Status(commands::status::Args),
    Pipeline(commands::pipeline::Args),
    Approve(commands::approve::Args),
    Reject(commands::reject::Args),
    Branches(commands::branches::Args),
    Outputs(commands::outputs::Args),
    Drift(commands::drift::Args),
    Logs(commands::logs::Args),
    History(commands::history::Args),
    Rollback(commands::rollback::Args),
    Verify(commands::verify::Args),
    Doctor(commands::doctor::Args),
    Gc(commands::gc::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command may call AWS (and so needs the runtime's I/O and a Ctrl-C handler that
    /// cleans up there); `synth` and `completions` work on local files alone.
    pub fn calls_aws(&self) -> bool {
        !matches!(self, Command::Synth(_) | Command::Completions { .. })
    }
}
