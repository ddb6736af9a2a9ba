//! `deployer verify ENV [--stack NAME] [--url URL]`: the smoke test of a stage's API.

use crate::config::{EnvName, Environments};
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// The API's base URL, instead of the stack's output ApiUrl (e.g. `app serve` on this
    /// machine, since the local emulator runs no API Gateway).
    #[arg(long, value_name = "URL", env = "DEPLOYER_VERIFY_URL")]
    url: Option<String>,
    /// A user who may write (an admin, for the delete) that the checks log in as; the password
    /// comes from DEPLOYER_VERIFY_PASSWORD. Default: the environment's `[verify] email`, whose
    /// password bootstrap made (read through the read role); without either, a throwaway
    /// sign-up is checked instead.
    #[arg(long, value_name = "EMAIL", env = "DEPLOYER_VERIFY_EMAIL")]
    email: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let env = envs.env(&args.at.env)?;
    let url = match args.url {
        Some(url) => url,
        None => {
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
    let verifier = match (args.email, envs.target(env).and_then(|t| t.verify.as_ref())) {
        (Some(email), _) => Some(crate::verify::Verifier {
            email,
            password: std::env::var("DEPLOYER_VERIFY_PASSWORD").map_err(|_| {
                Error::Refused(
                    "--email needs that user's password in DEPLOYER_VERIFY_PASSWORD".into(),
                )
            })?,
        }),
        (None, Some(configured)) => Some(crate::verify::Verifier {
            email: configured.email.clone(),
            password: verifier_password(envs, env).await?,
        }),
        (None, None) => None,
    };
    let report = crate::verify::verify(&url, verifier.as_ref())
        .await
        .map_err(|e| Error::Refused(e.to_string()))?;
    crate::output::emit(g.output, &report);
    Ok(if report.passed { 0 } else { 1 })
}

/// The verifier's password, which bootstrap made in `env`'s account: read through its read role.
async fn verifier_password(envs: &Environments, env: EnvName) -> Result<String, Error> {
    let name = crate::render::verify_password(envs, env);
    let session = crate::access::session_in(envs, env, crate::access::Through::ReadRole).await?;
    match session
        .ssm()
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => out
            .parameter
            .and_then(|p| p.value)
            .ok_or_else(|| Error::Refused(format!("{name} has no value"))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_parameter_not_found()) =>
        {
            Err(Error::Refused(format!(
                "{env}'s verifier has no password yet ({name}): run `deployer bootstrap {env}` with credentials in account {}, which makes it",
                envs.account(env)
            )))
        }
        Err(e) => Err(Error::Aws(crate::aws::Error::Call {
            action: "ssm:GetParameter",
            target: name,
            message: crate::aws::error_text(&e),
        })),
    }
}
