//! `deployer reject`: the pipeline execution waiting at an approval, rejected with a reason.

use crate::config::Environments;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Why: it is recorded with the rejection.
    #[arg(long)]
    comment: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// The execution `deployer pipeline run --local` left waiting, instead of CodePipeline's.
    #[arg(long)]
    local: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    if args.local {
        let execution =
            super::approve::answer_local(g, envs, false, &args.comment, args.yes).await?;
        crate::output::emit(g.output, &execution);
        return Ok(0);
    }
    let report = super::approve::answer(envs, false, &args.comment, args.yes).await?;
    crate::output::emit(g.output, &report);
    Ok(0)
}
