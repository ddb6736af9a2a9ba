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
