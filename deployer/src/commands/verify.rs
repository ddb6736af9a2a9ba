//! `deployer verify ENV [--stack NAME] [--url URL]`: the smoke test of a stage's API.

use crate::config::Environments;
use crate::error::Error;

/// Smoke-test an environment's API: health, reads, refused writes, and with a verifier's
/// credentials a throwaway product made, read, changed and deleted. Exit 1 when a check fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// The API's base URL, instead of the stack's output ApiUrl (e.g. `app serve` on this
    /// machine, since the local emulator runs no API Gateway).
    #[arg(long, value_name = "URL", env = "DEPLOYER_VERIFY_URL")]
    url: Option<String>,
    /// A user who may write (an admin, for the delete) that the checks log in as; the password
    /// comes from DEPLOYER_VERIFY_PASSWORD. Without it, a throwaway sign-up is checked instead.
    #[arg(long, value_name = "EMAIL", env = "DEPLOYER_VERIFY_EMAIL")]
    email: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let url = match args.url {
        Some(url) => url,
        None => {
            let env = envs.env(&args.at.env)?;
            let outputs =
                super::outputs::outputs(envs, env, args.at.stack.as_deref(), None).await?;
            outputs.outputs.get("ApiUrl").cloned().ok_or_else(|| {
                Error::Refused(format!(
                    "stack {} has no output ApiUrl to verify (the local emulator reports no outputs and runs no API Gateway): pass --url",
                    outputs.stack
                ))
            })?
        }
    };
    let verifier = match args.email {
        Some(email) => Some(crate::verify::Verifier {
            email,
            password: std::env::var("DEPLOYER_VERIFY_PASSWORD").map_err(|_| {
                Error::Refused(
                    "--email needs that user's password in DEPLOYER_VERIFY_PASSWORD".into(),
                )
            })?,
        }),
        None => None,
    };
    let report = crate::verify::verify(&url, verifier.as_ref())
        .await
        .map_err(|e| Error::Refused(e.to_string()))?;
    crate::output::emit(g.output, &report);
    Ok(if report.passed { 0 } else { 1 })
}
