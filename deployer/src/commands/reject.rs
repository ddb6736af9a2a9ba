//! `deployer reject`: the pipeline execution waiting at an approval, rejected with a reason.

use crate::config::Environments;
use crate::error::Error;

/// Reject the pipeline execution waiting for approval.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Why: it is recorded with the rejection.
    #[arg(long)]
    comment: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let report = super::approve::answer(envs, false, &args.comment, args.yes).await?;
    crate::output::emit(g.output, &report);
    Ok(0)
}
