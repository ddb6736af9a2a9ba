//! The one error type commands return, with the exit status it maps to.

use crate::{artifact, aws, config, hotswap, local_pipeline, render, stack};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Render(#[from] render::Error),
    #[error(transparent)]
    Aws(#[from] aws::Error),
    #[error(transparent)]
    Stack(#[from] stack::Error),
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    #[error(transparent)]
    Local(#[from] local_pipeline::Error),
    #[error(transparent)]
    Hotswap(#[from] hotswap::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system's random number source failed: {0}")]
    Random(getrandom::Error),
    /// The input was understood but the deployer will not do it; the message says what instead.
    #[error("{0}")]
    Refused(String),
    /// The person at the terminal said no: nothing went wrong, and nothing was done (exit 1).
    #[error("{0}")]
    Declined(String),
    /// A comparison (drift, `diff --fail`) that failed, so nobody can tell whether anything
    /// differs: exit 3, apart from 1, which there means "it differs".
    #[error("{0}")]
    Undecided(Box<Error>),
}

impl Error {
    /// A failed command: the message on stderr for people and, with `--output json`, also one
    /// JSON document on stdout, so a script reading stdout always gets JSON.
    pub fn report(&self, format: crate::output::Format) {
        use std::io::IsTerminal;
        match self {
            Error::Declined(_) | Error::Stack(stack::Error::Declined { .. }) => {
                eprintln!("{self}")
            }
            _ => eprintln!("error: {self}"),
        }
        let config = match self {
            Error::Config(e) | Error::Render(render::Error::Settings(e)) => Some(e),
            _ => None,
        };
        if let Some(snippet) = config.and_then(|e| e.snippet(std::io::stderr().is_terminal())) {
            eprint!("{snippet}");
        }
        if format == crate::output::Format::Json {
            println!(
                "{}",
                serde_json::json!({"error": {
                    "kind": self.kind(),
                    "message": self.to_string(),
                    "exit_code": self.exit_code(),
                }})
            );
        }
    }

    /// What went wrong, as a word scripts can match on (stable; the message is for people).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) | Error::Render(render::Error::Settings(_)) => "config",
            Error::Render(_) => "template",
            Error::Aws(_) => "aws",
            Error::Stack(stack::Error::Refused(_)) | Error::Refused(_) => "refused",
            Error::Stack(stack::Error::Declined { .. }) | Error::Declined(_) => "declined",
            Error::Stack(_) => "stack",
            Error::Artifact(_) => "artifact",
            Error::Local(_) => "local-pipeline",
            Error::Hotswap(_) => "hotswap",
            Error::Write { .. } | Error::Random(_) => "local-system",
            Error::Undecided(_) => "undecided",
        }
    }

    /// A failure of a comparison whose exit status 1 means "it differs": a failure that is not
    /// the caller's input becomes exit 3.
    pub fn undecided(self) -> Error {
        match self.exit_code() {
            1 => Error::Undecided(Box::new(self)),
            _ => self,
        }
    }

    /// 1: the operation failed; 2: bad input or refused (as clap does for bad flags); 3: a
    /// comparison could not be made (1 is then "it differs").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Render(_)
            | Error::Refused(_)
            | Error::Stack(stack::Error::Refused(_)) => 2,
            Error::Artifact(
                artifact::Error::Build(_)
                | artifact::Error::Zip(_)
                | artifact::Error::Write { .. }
                | artifact::Error::Aws(_),
            ) => 1,
            // A missing, malformed or mismatched manifest is the caller's input.
            Error::Artifact(_) => 2,
            Error::Local(
                local_pipeline::Error::Refused(_) | local_pipeline::Error::Definition(_),
            )
            | Error::Hotswap(hotswap::Error::NotHotswappable(_)) => 2,
            Error::Aws(_)
            | Error::Stack(_)
            | Error::Local(_)
            | Error::Hotswap(_)
            | Error::Write { .. }
            | Error::Random(_)
            | Error::Declined(_) => 1,
            Error::Undecided(_) => 3,
        }
    }
}
