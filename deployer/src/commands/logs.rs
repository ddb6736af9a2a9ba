//! `deployer logs ENV [--stack NAME] [--branch B]`: the functions' logs, oldest first.

use crate::access::{Through, service, session_in, stack_names};
use crate::config::{EnvName, Environments};
use crate::error::Error;

/// `deployer logs ENV`: a reader over the functions' log groups in the target account.
pub async fn logs(
    envs: &Environments,
    templates: &std::path::Path,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    function: Option<&str>,
    since: &str,
) -> Result<crate::logs::Reader, Error> {
    let kind = service(envs, env, stack, "logs")?;
    let since = crate::logs::parse_since(since)?;
    let (_, resource_name) = stack_names(envs, env, kind, branch)?;
    // The functions are the settings its template declares `type = "function"`.
    let stack_name = kind.template_name();
    let functions = crate::settings::functions(templates, stack_name)?;
    let declarations = crate::settings::declarations_path(templates, stack_name);
    if functions.is_empty() {
        return Err(Error::Refused(format!(
            "{stack_name} has no functions whose logs to read: {} declares no setting of type = \"function\"",
            declarations.display()
        )));
    }
    if let Some(name) = function
        && !functions.iter().any(|f| f == name)
    {
        return Err(Error::Refused(format!(
            "{stack_name} has no function {name:?}{}; its functions are {} (the settings {} declares type = \"function\")",
            crate::suggest::did_you_mean(name, &functions),
            functions.join(", "),
            declarations.display()
        )));
    }
    let session = session_in(envs, env, Through::ReadRole).await?;
    Ok(crate::logs::Reader::new(
        aws_sdk_cloudwatchlogs::Client::new(&session.config),
        crate::logs::groups(&resource_name, &functions, function),
        since,
    ))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// This feature branch's functions instead.
    #[arg(long)]
    branch: Option<String>,
    /// Keep printing new events until interrupted.
    #[arg(long)]
    follow: bool,
    /// How far back to start: 30s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m")]
    since: String,
    /// Only this function's logs.
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let mut reader = logs(
        envs,
        &g.templates,
        envs.env(&args.at.env)?,
        args.at.stack.as_deref(),
        args.branch.as_deref(),
        args.function.as_deref(),
        &args.since,
    )
    .await?;
    if !args.follow {
        let events = reader.next_batch().await?;
        crate::output::emit(g.output, &crate::logs::LogsReport { events });
        return Ok(0);
    }
    reader.follow(g.output).await?;
    Ok(0)
}
