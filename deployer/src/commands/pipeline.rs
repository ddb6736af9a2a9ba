//! `deployer pipeline deploy|status`: the delivery pipeline in the pipeline account.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::render::{Options, Renderer, StackKind};
use clap::Subcommand;

/// The delivery pipeline in the pipeline account.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create or update the pipeline stack (credentials in the pipeline account).
    Deploy,
    /// Each stage's latest state, and what waits for approval.
    Status,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    match args.action {
        Action::Deploy => {
            let renderer = Renderer::load(&g.templates)?;
            let mut progress = crate::display::Progress::new(g.no_progress);
            let (report, _) = crate::access::deploy_as_operator(
                envs,
                &renderer,
                EnvName::PIPELINE,
                StackKind::Pipeline,
                &Options::default(),
                "pipeline deploy",
                &mut progress,
            )
            .await?;
            drop(progress);
            crate::output::emit(g.output, &report);
        }
        Action::Status => {
            let cp = crate::access::codepipeline(envs, "pipeline status").await?;
            crate::output::emit(
                g.output,
                &crate::pipeline::status(&cp, envs.prefix().as_str()).await?,
            );
        }
    }
    Ok(0)
}
