use clap::Parser;
use std::process::ExitCode;

/// A command line clap refused: its message (and help) as clap prints it, and, where the line
/// asked for JSON, also one JSON document on stdout, as every other error gives.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "--output=json" | "-ojson" | "-o=json")
            || (matches!(a.as_str(), "--output" | "-o")
                && args.get(i + 1).map(String::as_str) == Some("json"))
    });
    let _ = e.print();
    if json {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({"error": {
                "kind": "usage",
                "message": first.trim_start_matches("error: "),
                "exit_code": 2,
            }})
        );
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = match deployer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let format = cli.global.output;
    let result = if cli.command.calls_aws() {
        // What the SDK and its HTTP client log (DEPLOYER_LOG=debug shows each request); nothing
        // else logs, so a local command needs no subscriber.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("DEPLOYER_LOG"))
            .with_writer(std::io::stderr)
            .init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the tokio runtime starts");
        match runtime.block_on(interruptible(cli)) {
            Ok(result) => result,
            Err(interrupted) => return interrupted,
        }
    } else {
        // Nothing in AWS to clean up after a Ctrl-C, so no handler, no I/O driver and no worker
        // threads, whose start would cost a local command (synth) more than its work.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("the tokio runtime starts")
            .block_on(deployer::run(cli))
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

/// `run`, stopped by Ctrl-C: then the change set made and not executed is deleted, and what goes
/// on in AWS is said; the exit status is 130.
async fn interruptible(
    cli: deployer::cli::Cli,
) -> Result<Result<u8, deployer::error::Error>, ExitCode> {
    tokio::select! {
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
            Err(ExitCode::from(130))
        }
        result = deployer::run(cli) => Ok(result),
    }
}
