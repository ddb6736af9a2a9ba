//! `deployer package`: the app built for Lambda, zipped deterministically, with a manifest.

use crate::config::Environments;
use crate::error::Error;
use std::path::PathBuf;

/// Build the app for Lambda, zip it deterministically and write a manifest with its sha256.
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

pub fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let env = match args.env {
        Some(name) => envs.env(&name)?,
        None => envs.names()[1],
    };
    let architecture = envs
        .target(env)
        .ok_or_else(|| {
            Error::Refused(
                "package for a stage's environment: the pipeline account runs no function".into(),
            )
        })?
        .lambda
        .architecture;
    let binary = match args.binary {
        Some(path) => path,
        None => crate::artifact::build_app(architecture)?,
    };
    crate::output::emit(
        g.output,
        &crate::artifact::package(&binary, architecture, &args.out)?,
    );
    Ok(0)
}
