//! One file per subcommand: its arguments and `run`. Commands sit above `access` (sessions,
//! stack names) and the engine (config, render, stack, aws); `lib.rs` only dispatches.

pub mod approve;
pub mod bootstrap;
pub mod branches;
pub mod deploy;
pub mod destroy;
pub mod diff;
pub mod doctor;
pub mod drift;
pub mod gc;
pub mod history;
pub mod logs;
pub mod outputs;
pub mod package;
pub mod pipeline;
pub mod reject;
pub mod rollback;
pub mod status;
pub mod synth;
pub mod verify;

use crate::output::Format;
use clap::Args;
use std::path::PathBuf;

/// The flags every command takes: listed apart, under their own heading, in each command's help.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Human-readable text, or one JSON document on stdout (progress still goes to stderr).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Directory holding pipeline.toml and a file for each environment its stages name; a
    /// relative one is looked for from here upward, as cargo finds its workspace, and the
    /// directory holding it is the project's root.
    #[arg(
        long,
        global = true,
        default_value = "environments",
        env = "DEPLOYER_ENVIRONMENTS"
    )]
    pub environments: PathBuf,
    /// Directory holding the *.json.hbs templates (a relative one: in the project's root).
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
    #[arg(long, global = true, value_name = "DURATION", default_value = crate::stack::DEFAULT_WAIT, value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The project's root where it is not the current directory (see `locate`).
    #[arg(skip)]
    pub root: Option<PathBuf>,
}

impl Global {
    /// Finds the project's root as cargo finds its workspace: the nearest directory, from here
    /// upward, holding the environments directory (with its pipeline.toml). Relative
    /// --environments and --templates are read there, and dist/, out/ and .deployer/ go there.
    pub fn locate(&mut self) -> Result<(), crate::error::Error> {
        if self.environments.is_absolute() {
            return Ok(());
        }
        let here = std::env::current_dir().map_err(|source| crate::error::Error::Write {
            path: ".".into(),
            source,
        })?;
        let Some(root) = here
            .ancestors()
            .find(|d| d.join(&self.environments).join("pipeline.toml").is_file())
        else {
            return Err(crate::error::Error::Refused(format!(
                "no {}/pipeline.toml in {} or any directory above it: run the deployer inside the project (the directory holding environments/ and templates/, or below it), or pass --environments DIR",
                self.environments.display(),
                here.display()
            )));
        };
        if root != here {
            self.environments = root.join(&self.environments);
            self.templates = root.join(&self.templates);
            self.root = Some(root.to_path_buf());
        }
        Ok(())
    }

    /// `path` in the project's root (as given when the root is the current directory, so that
    /// what the deployer prints stays short).
    pub fn at_root(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path),
            None => PathBuf::from(path),
        }
    }
}

/// The environments, with the files in them or in the templates directory that nothing uses said
/// on stderr (and returned: `synth` says them again when it replays a run).
pub fn load(g: &Global) -> Result<(crate::config::Environments, Vec<String>), crate::error::Error> {
    let envs = crate::config::Environments::load(&g.environments)?;
    let warnings: Vec<String> = envs
        .warnings
        .iter()
        .cloned()
        .chain(crate::render::unused_templates(&envs, &g.templates))
        .collect();
    warn(&warnings);
    Ok((envs, warnings))
}

/// Says each warning on stderr, where progress goes too.
pub fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// Asks `question` on a terminal; `--yes` answers for a script, and without it nothing that
/// cannot ask goes ahead. `nothing_done` says what a "no" left alone.
pub async fn confirm(
    question: &str,
    yes: bool,
    nothing_done: &str,
) -> Result<(), crate::error::Error> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::error::Error::Refused(format!(
            "not a terminal, so nothing can be confirmed ({question}): pass --yes; {nothing_done}"
        )));
    }
    eprint!("{question} [y/N] ");
    if !crate::prompt::answered_yes().await {
        return Err(crate::error::Error::Declined(format!(
            "not confirmed; {nothing_done}"
        )));
    }
    Ok(())
}

// Which stack a command acts on: the environment, and the stack where it holds several. Not a doc
// comment: on a flattened struct clap would take one for the description of the command it is in.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// The environment (a stage's; see pipeline.toml).
    pub env: String,
    /// The stack to act on, where the environment holds more than one (its `stacks`).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
}

/// The environment a command line names, or all of them.
pub fn one_or_all(
    envs: &crate::config::Environments,
    name: Option<&str>,
) -> Result<Vec<crate::config::EnvName>, crate::error::Error> {
    Ok(match name {
        Some(name) => vec![envs.env(name)?],
        None => envs.names(),
    })
}
