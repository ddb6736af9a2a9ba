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
        result = deployer::run(cli) => result,
        // Ctrl-C: stop sending, and say what is left where. A change set made but not executed
        // is found and deleted by the next deploy (its name is fixed); an operation running in
        // AWS goes on, and the next deploy waits for it.
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "interrupted: nothing more is sent to AWS. A change set not yet executed is deleted by the next deploy or diff; an operation already running in AWS goes on: `deployer status` shows it, and the next deploy waits for it to end"
            );
            return ExitCode::from(130);
        }
    };
    // For benchmarks: how many requests the command cost.
    if std::env::var_os("DEPLOYER_STATS").is_some() {
        eprintln!("aws api calls: {}", deployer::aws::calls());
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            deployer::output::emit_error(format, &e);
            ExitCode::from(e.exit_code())
        }
    }
}
