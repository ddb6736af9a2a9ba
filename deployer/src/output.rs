//! Text for people, JSON for machines: every command's result is one serializable report.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A command's result, printable both ways.
pub trait Report: Serialize {
    fn human(&self) -> String;
}

pub fn emit(format: Format, report: &impl Report) {
    match format {
        Format::Text => print!("{}", report.human()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports always serialize")
        ),
    }
}

/// A failed command: the message on stderr for people and, with `--output json`, also one JSON
/// document on stdout, so a script reading stdout always gets JSON.
pub fn emit_error(format: Format, error: &crate::error::Error) {
    eprintln!("error: {error}");
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({"error": {"message": error.to_string(), "exit_code": error.exit_code()}})
        );
    }
}
