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

/// Each command's description is here, on its variant, rather than on its `Args`: the flags of a
/// command are built only when it runs (`defer`), so that a run does not pay for building every
/// other command's, while `deployer --help` still lists every command with its description.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Render the CloudFormation templates of one environment (the pipeline or a stage's), or all,
    /// into a directory.
    Synth(commands::synth::Args),
    /// Create or update an account's bootstrap stack: roles, artifact bucket, version marker (and for
    /// pipeline: KMS key, ECR repository). Needs credentials in that account.
    Bootstrap(commands::bootstrap::Args),
    /// Create or update an environment's stack through a change set.
    Deploy(commands::deploy::Args),
    /// Show what `deploy` would change (through a change set that is then deleted).
    Diff(commands::diff::Args),
    /// Delete an environment's stack (a protected environment's is refused).
    Destroy(commands::destroy::Args),
    /// Build the app for Lambda, zip it deterministically and write a manifest with its sha256.
    Package(commands::package::Args),
    /// The state of every stack the deployer keeps, in one environment or all.
    Status(commands::status::Args),
    /// The delivery pipeline in the pipeline account.
    Pipeline(commands::pipeline::Args),
    /// Approve the pipeline execution waiting to promote an artifact to the next stage.
    Approve(commands::approve::Args),
    /// Reject the pipeline execution waiting for approval.
    Reject(commands::reject::Args),
    /// Feature-branch stacks, in the environment that holds them.
    Branches(commands::branches::Args),
    /// Print the outputs of an environment's stack.
    Outputs(commands::outputs::Args),
    /// Compare a stack's resources with its template (CloudFormation drift detection). Exit status
    /// 0 in sync, 1 drifted, 2 bad input, 3 detection failed (nobody can tell).
    Drift(commands::drift::Args),
    /// Print the functions' logs, oldest first.
    Logs(commands::logs::Args),
    /// List the artifacts a stack ran, newest first (what `rollback` chooses from).
    History(commands::history::Args),
    /// Redeploy the artifact a stack ran before the current one (see `deployer history`).
    Rollback(commands::rollback::Args),
    /// Smoke-test an environment's API: health, reads, refused writes, and with a verifier's
    /// credentials a throwaway product made, read, changed and deleted. Exit 1 when a check fails.
    Verify(commands::verify::Args),
    /// Run the checks for one environment (or all): credentials, the roles each command assumes,
    /// bootstrap versions, GitHub's OIDC provider where branch stacks live. Exit 1 when one fails.
    Doctor(commands::doctor::Args),
    /// Remove artifacts no stack, change set or history entry references from an environment's
    /// artifact bucket.
    Gc(commands::gc::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// The whole command line with every command's flags built, for completion scripts. The
    /// commands are built first and put back: the `help` command's tree of names is copied when
    /// its parent is built, and copied from deferred commands it would lack `help pipeline run`.
    pub fn completion_command() -> clap::Command {
        use clap::CommandFactory;
        let mut built = Cli::command();
        built.build();
        let mut cmd = Cli::command();
        for sub in built.get_subcommands().filter(|s| s.get_name() != "help") {
            cmd = cmd.mut_subcommand(sub.get_name(), |_| sub.clone());
        }
        cmd
    }
}

impl Command {
    /// Whether the command may call AWS (and so needs the runtime's I/O and a Ctrl-C handler that
    /// cleans up there); `synth` and `completions` work on local files alone.
    pub fn calls_aws(&self) -> bool {
        !matches!(self, Command::Synth(_) | Command::Completions { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Each command keeps its own description once its deferred flags are built: a doc comment
    /// on a struct flattened into it would replace it.
    #[test]
    fn every_command_keeps_its_own_description() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = std::collections::BTreeMap::new();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
            assert!(!about.is_empty(), "{} has no description", sub.get_name());
            if let Some(other) = seen.insert(about.clone(), sub.get_name()) {
                panic!(
                    "{other} and {} share the description {about:?}",
                    sub.get_name()
                );
            }
        }
        let deploy = cmd.find_subcommand("deploy").unwrap();
        assert!(
            deploy
                .get_about()
                .unwrap()
                .to_string()
                .starts_with("Create or update"),
            "{:?}",
            deploy.get_about()
        );
    }

    /// `help` completes to every command and the commands nested in it, as without `defer`.
    #[test]
    fn completions_know_the_commands_under_help() {
        let mut cmd = Cli::completion_command();
        cmd.build();
        let help = cmd.find_subcommand("help").unwrap();
        for (parent, child) in [("pipeline", "run"), ("branches", "gc")] {
            let nested = help
                .find_subcommand(parent)
                .and_then(|p| p.find_subcommand(child));
            assert!(nested.is_some(), "help {parent} {child} is not completed");
        }
        let deploy = cmd.find_subcommand("deploy").unwrap();
        assert!(
            deploy
                .get_arguments()
                .any(|a| a.get_long() == Some("change-set"))
        );
    }
}
