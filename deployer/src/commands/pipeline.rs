//! `deployer pipeline deploy|status`: the delivery pipeline in the pipeline account.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::render::{Options, Renderer, StackKind};
use clap::Subcommand;

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
    Status {
        /// The executions `pipeline run --local` keeps instead (the emulator has no
        /// GetPipelineState).
        #[arg(long)]
        local: bool,
    },
    /// Run the pipeline's stages on this machine against the local emulator (needs --local):
    /// the rendered definition's actions in order, each with its own role, stopping at each
    /// approval until `deployer approve --local`.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Run here, against the emulator AWS_ENDPOINT_URL names (the only way this runs: on AWS,
    /// a merge to the pipeline's branch starts CodePipeline).
    #[arg(long, required = true)]
    local: bool,
    /// Approve at each approval instead of stopping there.
    #[arg(long)]
    approve: bool,
    #[command(flatten)]
    run: LocalRun,
}

// How a local run goes: `pipeline run --local`'s and `rollback --local`'s (not a doc comment: see
// StackArgs).
#[derive(Debug, clap::Args)]
pub struct LocalRun {
    /// Build leaves out the project's tests (scripts/test), saying so: for a quick demo.
    #[arg(long, requires = "local")]
    pub skip_tests: bool,
    /// The API every Verify action smoke-tests, instead of the local stand-in for API Gateway
    /// and Lambda (each stage's deployed functions, run here under cargo-lambda's runtime API).
    #[arg(long, value_name = "URL", requires = "local")]
    pub verify_url: Option<String>,
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
        Action::Run(run) => {
            let runner = local_runner(
                g,
                envs,
                crate::local_pipeline::Options {
                    approve: run.approve,
                    skip_tests: run.run.skip_tests,
                    verify_url: run.run.verify_url,
                    ..Default::default()
                },
            )?;
            let execution = runner.start().await?;
            crate::output::emit(g.output, &execution);
        }
        Action::Status { local: true } => {
            let runner = local_runner(g, envs, Default::default())?;
            crate::output::emit(g.output, &runner.executions()?);
        }
        Action::Status { local: false } => {
            let cp = crate::access::codepipeline(envs, "pipeline status").await?;
            crate::output::emit(
                g.output,
                &crate::pipeline::status(&cp, envs.prefix().as_str()).await?,
            );
        }
    }
    Ok(0)
}

/// The local runner over the pipeline rendered from the working tree.
pub fn local_runner<'a>(
    g: &super::Global,
    envs: &'a Environments,
    options: crate::local_pipeline::Options,
) -> Result<crate::local_pipeline::Runner<'a>, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let render = |kind| renderer.render_with(envs, EnvName::PIPELINE, kind, &Options::default());
    let (pipeline, bootstrap) = (
        render(StackKind::Pipeline)?,
        render(StackKind::BootstrapPipeline)?,
    );
    let root = match &g.root {
        Some(root) => root.clone(),
        None => std::env::current_dir().map_err(|source| Error::Write {
            path: ".".into(),
            source,
        })?,
    };
    Ok(crate::local_pipeline::Runner::new(
        envs,
        &pipeline.template,
        &bootstrap.template,
        &root,
        options,
    )?)
}
