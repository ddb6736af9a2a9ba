use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("DEPLOYER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = deployer::cli::Cli::parse();
    let format = cli.global.output;
    let result = tokio::select! {
        // Ctrl-C's handler is installed when it is first polled: first, before any request.
        biased;
        // Ctrl-C: stop, delete the change set made and not executed (a deploy left waiting on
        // it would otherwise find it and give way), and say what goes on in AWS.
        _ = tokio::signal::ctrl_c() => {
            let cleanup =
                tokio::time::timeout(std::time::Duration::from_secs(15), deployer::stack::abandon())
                    .await;
            let left = match cleanup {
                Ok(None) => "no change set was waiting to run".to_string(),
                Ok(Some(Ok(deleted))) => deleted,
                Ok(Some(Err(e))) => format!(
                    "the change set made and not executed is left ({e}); the next deploy or diff deletes it"
                ),
                Err(_) => "deleting the change set made and not executed took more than 15s; the next deploy or diff deletes it".into(),
            };
            eprintln!(
                "interrupted: {left}. An operation already running in AWS goes on: `deployer status` shows it, and the next deploy waits for it to end"
            );
            return ExitCode::from(130);
        }
        result = deployer::run(cli) => result,
    };
    // For benchmarks: how many requests the command cost.
    if std::env::var_os("DEPLOYER_STATS").is_some() {
        eprintln!("aws api calls: {}", deployer::aws::calls());
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.report(format);
            ExitCode::from(e.exit_code())
        }
    }
}
