//! `deployer diff ENV [--stack NAME]`: the change set a deploy would make, then deleted.

use super::deploy::{Artifact, prepare, send_large_template};
use crate::access::{check_marker, service};
use crate::config::{EnvName, Environments};
use crate::display::Progress;
use crate::display::{Stream, changes_text};
use crate::error::Error;
use crate::output::Report;
use crate::render::Renderer;
use crate::stack::Stacks;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub stack: String,
    pub changed: bool,
    pub changes: Vec<crate::stack::Change>,
}

impl Report for DiffReport {
    fn human(&self) -> String {
        if !self.changed {
            return format!("{}: no changes\n", self.stack);
        }
        let mut s = format!("{}: would change\n", self.stack);
        s.push_str(&changes_text(&self.changes, Stream::Stdout));
        s
    }
}

/// `deployer diff ENV`: the change set a deploy would make, then deleted.
pub async fn diff(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    stack: Option<&str>,
    artifact: &Artifact<'_>,
    progress: &mut Progress,
) -> Result<DiffReport, Error> {
    let kind = service(envs, env, stack, "diff")?;
    let mut p = prepare(
        envs,
        renderer,
        env,
        kind,
        None,
        artifact,
        crate::access::Through::DeployRole,
    )
    .await?;
    check_marker(envs, env, &p.session).await?;
    send_large_template(envs, env, &mut p).await?;
    let changes = Stacks::new(p.session.cloudformation())
        .diff(&p.spec, progress)
        .await?;
    Ok(DiffReport {
        stack: p.spec.name,
        changed: changes.is_some(),
        changes: changes.unwrap_or_default(),
    })
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// The manifest the deploy would ship [default: dist/manifest.json in the project's root].
    #[arg(long, value_name = "PATH")]
    artifact: Option<std::path::PathBuf>,
    /// For CI: exit 1 when the stack would change, 3 when that cannot be told (0: no changes).
    #[arg(long)]
    fail: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let mut progress = Progress::new(g.no_progress);
    let report = diff(
        envs,
        &renderer,
        envs.env(&args.at.env)?,
        args.at.stack.as_deref(),
        &super::deploy::Artifact {
            path: &args
                .artifact
                .unwrap_or_else(|| g.at_root("dist/manifest.json")),
            expect_sha256: None,
        },
        &mut progress,
    )
    .await
    .map_err(|e| if args.fail { e.undecided() } else { e })?;
    drop(progress);
    crate::output::emit(g.output, &report);
    Ok(u8::from(args.fail && report.changed))
}
