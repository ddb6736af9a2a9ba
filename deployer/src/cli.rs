//! The command line, defined once: every flag lives here.

use crate::output::Format;
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

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

#[derive(Debug, Args)]
pub struct Global {
    /// Human-readable text, or one JSON document on stdout (progress still goes to stderr).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Directory holding pipeline.toml and a file for each environment its stages name.
    #[arg(
        long,
        global = true,
        default_value = "environments",
        env = "DEPLOYER_ENVIRONMENTS"
    )]
    pub environments: PathBuf,
    /// Directory holding the *.json.hbs templates.
    #[arg(
        long,
        global = true,
        default_value = "templates",
        env = "DEPLOYER_TEMPLATES"
    )]
    pub templates: PathBuf,
    /// Plain event lines instead of a progress display, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Sign in with this profile of the AWS config files (over AWS_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Your own session's region (over AWS_REGION and the profile's; default: the pipeline
    /// account's). Each environment's stacks live in the region its file names.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// How long to wait for a stack operation, a change set or drift detection (like 90s, 30m,
    /// 2h); past it the deployer stops waiting, says what is still in progress, exits 1, and the
    /// operation goes on in AWS.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the CloudFormation templates of one environment (the pipeline or a stage's), or
    /// all, into a directory.
    #[command(group(ArgGroup::new("which").required(true).args(["env", "all"])))]
    Synth {
        /// The environment to render.
        env: Option<String>,
        /// Render every environment.
        #[arg(long)]
        all: bool,
        /// Where the JSON files go.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Create or update an account's bootstrap stack: roles, artifact bucket, version marker
    /// (and for pipeline: KMS key, ECR repository). Needs credentials in that account.
    Bootstrap {
        env: String,
        /// Give the CloudFormation execution role AdministratorAccess instead of its scoped
        /// policy (sandbox and prod). Each bootstrap without it takes it away again.
        #[arg(long)]
        admin_execution_role: bool,
    },
    /// Create or update an environment's stack through a change set.
    Deploy {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// Deploy this feature branch's own stack instead (sandbox only).
        #[arg(long)]
        branch: Option<String>,
        /// The manifest `deployer package` wrote; its zip is what the function runs.
        #[arg(long, default_value = "dist/manifest.json")]
        artifact: PathBuf,
        /// First finish the rollback of a stack left in UPDATE_ROLLBACK_FAILED (ContinueUpdateRollback).
        #[arg(long)]
        continue_rollback: bool,
        /// With --continue-rollback: resources (logical ids) CloudFormation cannot roll back and
        /// should leave as they are; make them match the template by hand afterwards.
        #[arg(long, num_args = 1.., value_name = "ID", requires = "continue_rollback")]
        skip_resources: Vec<String>,
        /// Make a change set even when the stack already matches (it is then executed only if
        /// CloudFormation finds a change).
        #[arg(long)]
        force: bool,
        /// Make the change set and leave it for review: prints its name; nothing is executed.
        #[arg(long, conflicts_with_all = ["change_set", "continue_rollback"])]
        no_execute: bool,
        /// Execute exactly this change set, made by `--no-execute` from the same templates,
        /// settings and artifact (anything else is refused).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["force", "continue_rollback"])]
        change_set: Option<String>,
        /// Also write the stack's outputs to this file, as one JSON object.
        #[arg(long, value_name = "FILE")]
        outputs_file: Option<PathBuf>,
        /// Refuse unless the artifact's sha256 is this one (the pipeline passes the sha256 its
        /// Build exported, which the approval names).
        #[arg(long, value_name = "SHA256")]
        expect_sha256: Option<String>,
    },
    /// Show what `deploy` would change (through a change set that is then deleted).
    Diff {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// The manifest the deploy would ship.
        #[arg(long, default_value = "dist/manifest.json")]
        artifact: PathBuf,
    },
    /// Delete an environment's stack (a protected environment's is refused).
    Destroy {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// Delete this feature branch's stack instead.
        #[arg(long)]
        branch: Option<String>,
        /// For a stack in DELETE_FAILED: delete it but keep these resources (logical ids), the
        /// ones the failure names; remove them by hand afterwards.
        #[arg(long, num_args = 1.., value_name = "ID")]
        retain: Vec<String>,
    },
    /// Build the app for Lambda, zip it deterministically and write a manifest with its sha256.
    Package {
        /// The environment whose lambda.architecture to build for (default: the first stage's;
        /// every stage shares it).
        #[arg(long)]
        env: Option<String>,
        /// Zip this prebuilt binary instead of building (e.g. one cross-built for arm64).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Where the zip and manifest.json go.
        #[arg(long, default_value = "dist")]
        out: PathBuf,
    },
    /// The state of every stack the deployer keeps, in one environment or all.
    Status { env: Option<String> },
    /// The delivery pipeline in the pipeline account.
    Pipeline {
        #[command(subcommand)]
        action: PipelineAction,
    },
    /// Approve the pipeline execution waiting to promote sandbox's artifact to prod.
    Approve {
        #[arg(long)]
        comment: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Reject the pipeline execution waiting for approval.
    Reject {
        /// Why: it is recorded with the rejection.
        #[arg(long)]
        comment: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Feature-branch stacks in sandbox.
    Branches {
        #[command(subcommand)]
        action: BranchesAction,
    },
    /// Print the outputs of an environment's stack.
    Outputs {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// This feature branch's stack instead.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Compare a stack's resources with its template (CloudFormation drift
    /// detection). Exit status 0 in sync, 1 drifted.
    Drift {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// Check this feature branch's stack instead.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Print the catalog functions' logs, oldest first.
    Logs {
        env: String,
        /// The stack to act on, where the environment holds more than one (its `stacks`).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// This feature branch's functions instead.
        #[arg(long)]
        branch: Option<String>,
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
        /// How far back to start: 30s, 10m, 2h, 1d.
        #[arg(long, default_value = "10m")]
        since: String,
        /// Only this function's logs.
        #[arg(long, value_parser = crate::logs::FUNCTIONS)]
        function: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum PipelineAction {
    /// Create or update the pipeline stack (credentials in the pipeline account).
    Deploy,
    /// Each stage's latest state, and what waits for approval.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum BranchesAction {
    /// Every branch stack with its branch, state and age.
    List,
    /// Remove branch stacks whose branch is gone or that outlived branches.ttl_days.
    #[command(group(ArgGroup::new("branches").required(true).args(["keep", "keep_from_git"])))]
    Gc {
        /// The branches that still exist.
        #[arg(long, num_args = 1..)]
        keep: Vec<String>,
        /// Read the branches that still exist from `git ls-remote --heads origin`.
        #[arg(long)]
        keep_from_git: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
