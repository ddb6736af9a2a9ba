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
    let result = deployer::run(cli).await;
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
