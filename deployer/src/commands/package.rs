//! `deployer package`: the app built for Lambda, zipped deterministically, with a manifest.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose lambda.architecture to build for (default: the first stage's;
    /// every stage shares it).
    #[arg(long)]
    env: Option<String>,
    /// Zip this prebuilt binary instead of building [artifact] (e.g. one cross-built for arm64).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where the zip and manifest.json go [default: dist/ in the project's root].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build nothing: write a manifest that recalls this artifact (its sha256) from the history
    /// of each stack it is deployed to, which must list it (the pipeline's Build, in a
    /// rollback started by `deployer rollback ENV`).
    #[arg(long, value_name = "SHA256", conflicts_with_all = ["env", "binary"])]
    from_history: Option<String>,
}

/// What `package --from-history` wrote.
#[derive(Debug, serde::Serialize)]
struct Recall {
    manifest: PathBuf,
    from_history: String,
}

impl crate::output::Report for Recall {
    fn human(&self) -> String {
        format!(
            "{} recalls artifact {}: each deploy takes it from its stack's history and bucket (nothing built)\n",
            self.manifest.display(),
            self.from_history
        )
    }
}

pub fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let out = args.out.unwrap_or_else(|| g.at_root("dist"));
    if let Some(sha256) = args.from_history {
        let manifest = crate::artifact::write_recall(&out, &sha256)?;
        crate::output::emit(
            g.output,
            &Recall {
                manifest,
                from_history: sha256,
            },
        );
        return Ok(0);
    }
    let env = match args.env {
        Some(name) => envs.env(&name)?,
        // Every stage that runs the artifact shares its architecture: the first says it.
        None => envs
            .stages()
            .find(|(_, t, _)| t.lambda.is_some())
            .map_or(EnvName::PIPELINE, |(env, _, _)| env),
    };
    let architecture = envs
        .target(env)
        .and_then(|t| t.lambda.as_ref())
        .ok_or_else(|| {
            Error::Refused(format!(
                "{env} runs no function: package for an environment whose file has a [lambda] table"
            ))
        })?
        .architecture;
    let source = &envs.pipeline.artifact;
    let binary = match args.binary {
        Some(path) => path,
        None => crate::artifact::build(source, architecture)?,
    };
    crate::output::emit(
        g.output,
        &crate::artifact::package(&binary, source.package.as_str(), architecture, &out)?,
    );
    Ok(0)
}
