//! What people see on a terminal while a command runs: stack events as lines on stderr, a live
//! line with the stack's state and time, and the text of deploy reports.

use crate::output::Report;
use crate::stack::{DeployReport, Event, Go, Observer, Outcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::IsTerminal;

/// Where a text goes: it is coloured only where that stream is a terminal that takes colour
/// (console honours NO_COLOR and CLICOLOR), never in a pipe or a file.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn paint<D>(self, value: D, colour: console::Color) -> console::StyledObject<D> {
        let styled = console::style(value).fg(colour);
        match self {
            Stream::Stdout => styled.for_stdout(),
            Stream::Stderr => styled.for_stderr(),
        }
    }
}

/// A stack or resource status in the colour of how it went.
fn status_colour(status: &str) -> Option<console::Color> {
    if status.contains("FAILED") || status.contains("ROLLBACK") {
        Some(console::Color::Red)
    } else if status.ends_with("_COMPLETE") {
        Some(console::Color::Green)
    } else {
        None
    }
}

/// Stack events as lines on stderr, so stdout stays one clean report; on a terminal, also a
/// live line (indicatif) with the stack's state, the resources done of those the change set
/// touches, and the time the operation has taken so far.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The stack a change set runs on and how many resources it changes, once known.
    plan: Option<(String, usize)>,
    /// Resources that reached a final state in this operation.
    done: HashSet<String>,
    /// Ask on a terminal before a change set that adds or modifies IAM or security resources
    /// runs (`deploy` without `--yes`).
    ask_before_security: bool,
}

impl Progress {
    pub fn new(no_progress: bool) -> Self {
        let bar = (!no_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
            );
            bar
        });
        Progress {
            bar,
            plan: None,
            done: HashSet::new(),
            ask_before_security: false,
        }
    }

    /// On a terminal, ask before IAM or security changes run (CDK's `--require-approval
    /// broadening`); elsewhere (CI) nothing asks.
    pub fn asking_before_security_changes(mut self, ask: bool) -> Self {
        self.ask_before_security = ask;
        self
    }

    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprint!("{text}")),
            None => eprint!("{text}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event) {
        let status = match status_colour(&e.status) {
            Some(colour) => Stream::Stderr.paint(&e.status, colour).to_string(),
            None => e.status.clone(),
        };
        let line = format!(
            "{}  {:<28} {:<36} {}{}",
            e.timestamp,
            e.logical_id,
            e.resource_type,
            status,
            e.reason
                .as_deref()
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        );
        let finished = ["_COMPLETE", "_FAILED", "_SKIPPED"]
            .iter()
            .any(|end| e.status.ends_with(end));
        if finished
            && self
                .plan
                .as_ref()
                .is_some_and(|(stack, _)| *stack != e.logical_id)
        {
            self.done.insert(e.logical_id.clone());
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn waiting(&mut self, stack: &str, status: &str, elapsed: std::time::Duration) {
        if let Some(bar) = &self.bar {
            let resources = match &self.plan {
                Some((planned, total)) if planned == stack => {
                    format!(" {}/{total} resources", self.done.len().min(*total))
                }
                _ => String::new(),
            };
            bar.set_message(format!(
                "{stack} {status}{resources} {}",
                humantime::format_duration(std::time::Duration::from_secs(elapsed.as_secs()))
            ));
            bar.tick();
        }
    }

    fn planned(&mut self, stack: &str, changes: &[crate::stack::Change]) -> Go {
        // The plan before it runs, on stderr (the report on stdout repeats it at the end).
        self.say(&format!(
            "{stack} will change:\n{}",
            changes_text(changes, Stream::Stderr)
        ));
        let widening = security_rows(changes)
            .into_iter()
            .filter(|c| c.action != "Remove")
            .collect::<Vec<_>>();
        self.plan = Some((stack.to_string(), changes.len()));
        self.done.clear();
        if self.ask_before_security && !widening.is_empty() && std::io::stdin().is_terminal() {
            self.say(&format!(
                "  IAM and security changes:\n{}Deploy them? [y/N] ",
                changes_text(&widening, Stream::Stderr)
            ));
            return Go::IfConfirmed;
        }
        Go::Now
    }
}

impl Report for DeployReport {
    fn human(&self) -> String {
        let mut s = String::new();
        match self.outcome {
            Outcome::NoChanges => {
                let _ = writeln!(s, "{}: no changes ({})", self.stack, self.status);
            }
            Outcome::Proposed => {
                let _ = writeln!(
                    s,
                    "{}: change set {name} made and left for review, not executed; run exactly it with the same artifact and `deploy --change-set {name}`",
                    self.stack,
                    name = self.change_set.as_deref().unwrap_or("(unnamed)")
                );
                s.push_str(&changes_text(&self.changes, Stream::Stdout));
                return s;
            }
            Outcome::Created | Outcome::Updated => {
                let _ = writeln!(s, "{}: {}", self.stack, self.status);
                s.push_str(&changes_text(&self.changes, Stream::Stdout));
            }
        }
        s.push_str(&outputs_text(&self.outputs));
        s
    }
}

/// A change set's rows for `stream`: Add green, Modify yellow, Remove red, replacements red.
pub fn changes_text(changes: &[crate::stack::Change], stream: Stream) -> String {
    use console::Color;
    if changes.is_empty() {
        return "  (no resource changes: parameters or tags only)\n".into();
    }
    changes.iter().fold(String::new(), |mut s, c| {
        let colour = match c.action.as_str() {
            "Add" => Color::Green,
            "Modify" => Color::Yellow,
            "Remove" => Color::Red,
            _ => Color::Cyan,
        };
        let _ = writeln!(
            s,
            "  {:<8} {:<28} {}{}",
            stream.paint(&c.action, colour),
            c.logical_id,
            c.resource_type,
            c.replacement
                .as_deref()
                .filter(|r| *r != "False")
                .map(|r| stream
                    .paint(format!(" (replacement: {r})"), Color::Red)
                    .to_string())
                .unwrap_or_default()
        );
        for p in &c.properties {
            let values = match (&p.before, &p.after) {
                (None, None) => String::new(),
                (before, after) => format!(
                    ": {} -> {}",
                    shorten(before.as_deref().unwrap_or("(none)")),
                    shorten(after.as_deref().unwrap_or("(none)"))
                ),
            };
            let replaces = match p.recreation.as_deref() {
                Some("Always") => " (replaces the resource)",
                Some("Conditionally") => " (may replace the resource)",
                _ => "",
            };
            let replaces = stream.paint(replaces, Color::Red);
            let _ = writeln!(s, "             ~ {}{values}{replaces}", p.path);
        }
        s
    })
}

/// A value on one line: a long policy document is cut, with how much was left out.
fn shorten(value: &str) -> String {
    const MAX: usize = 60;
    let one_line = value.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!(
            "{}... ({} characters)",
            &one_line[..cut],
            one_line.chars().count()
        ),
        None => one_line,
    }
}

/// Resource types whose change widens or narrows who may do what: an approver reads these first.
const SECURITY_TYPES: [&str; 8] = [
    "AWS::IAM::",
    "AWS::KMS::",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::EC2::SecurityGroup",
    "AWS::ApiGatewayV2::Authorizer",
];

/// The rows of `changes` that touch who may do what.
fn security_rows(changes: &[crate::stack::Change]) -> Vec<crate::stack::Change> {
    changes
        .iter()
        .filter(|c| {
            SECURITY_TYPES
                .iter()
                .any(|t| c.resource_type.starts_with(t))
        })
        .cloned()
        .collect()
}

/// A change set for an approver: its name, every row, then the IAM and security rows again
/// under their own heading.
pub fn review_text(
    env: &str,
    stack: &str,
    change_set: &str,
    changes: &[crate::stack::Change],
    stream: Stream,
) -> String {
    let mut text = format!("{env}'s change set for {stack}: {change_set}\n");
    text += &changes_text(changes, stream);
    let security = security_rows(changes);
    if !security.is_empty() {
        text += "  IAM and security changes, read these first:\n";
        text += &changes_text(&security, stream);
    }
    text
}

pub fn outputs_text(outputs: &BTreeMap<String, String>) -> String {
    if outputs.is_empty() {
        // The emulator leaves Outputs empty after a change-set deploy; AWS fills them.
        return "  (the stack reports no outputs)\n".into();
    }
    outputs.iter().fold(String::new(), |mut s, (k, v)| {
        let _ = writeln!(s, "  {k:<20} {v}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(logical_id: &str, status: &str) -> Event {
        Event {
            timestamp: "2026-11-30T00:00:00Z".into(),
            logical_id: logical_id.into(),
            resource_type: "AWS::SNS::Topic".into(),
            status: status.into(),
            reason: None,
            nested_stack: None,
        }
    }

    #[test]
    fn the_live_line_counts_resources_done_of_those_the_change_set_touches() {
        let mut p = Progress {
            bar: Some(ProgressBar::hidden()),
            plan: None,
            done: HashSet::new(),
            ask_before_security: false,
        };
        let change = |id: &str| crate::stack::Change {
            action: "Modify".into(),
            logical_id: id.into(),
            resource_type: "AWS::SNS::Topic".into(),
            replacement: None,
            properties: vec![],
        };
        assert_eq!(
            p.planned(
                "catalog-sandbox",
                &[change("Topic"), change("Queue"), change("Table")]
            ),
            Go::Now
        );
        p.event(&event("catalog-sandbox", "UPDATE_IN_PROGRESS"));
        p.event(&event("Topic", "CREATE_IN_PROGRESS"));
        p.event(&event("Topic", "CREATE_COMPLETE"));
        p.event(&event("Queue", "UPDATE_COMPLETE"));
        p.waiting(
            "catalog-sandbox",
            "UPDATE_IN_PROGRESS",
            std::time::Duration::from_millis(75_400),
        );
        let line = p.bar.as_ref().unwrap().message();
        assert_eq!(
            line,
            "catalog-sandbox UPDATE_IN_PROGRESS 2/3 resources 1m 15s"
        );
    }
}
