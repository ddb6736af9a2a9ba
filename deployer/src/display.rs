//! What people see on a terminal while a command runs: stack events as lines on stderr, a live
//! line with the stack's state and time, and the text of deploy reports.

use crate::output::Report;
use crate::stack::{DeployReport, Event, Observer, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};

/// Stack events as lines on stderr, so stdout stays one clean report; on a terminal, also a
/// line that shows the stack's state and the time it has taken so far.
pub struct Progress {
    live: bool,
    spinner: usize,
}

impl Progress {
    pub fn new(no_progress: bool) -> Self {
        Progress {
            live: !no_progress && std::io::stderr().is_terminal(),
            spinner: 0,
        }
    }

    fn clear(&self) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event) {
        self.clear();
        eprintln!(
            "{}  {:<28} {:<36} {}{}",
            e.timestamp,
            e.logical_id,
            e.resource_type,
            e.status,
            e.reason
                .as_deref()
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        );
    }

    fn waiting(&mut self, stack: &str, status: &str, elapsed: std::time::Duration) {
        if self.live {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            self.spinner = (self.spinner + 1) % FRAMES.len();
            eprint!(
                "\r\x1b[2K{} {stack} {status} {:.0}s",
                FRAMES[self.spinner],
                elapsed.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
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
                s.push_str(&changes_text(&self.changes));
                return s;
            }
            Outcome::Created | Outcome::Updated => {
                let _ = writeln!(s, "{}: {}", self.stack, self.status);
                s.push_str(&changes_text(&self.changes));
            }
        }
        s.push_str(&outputs_text(&self.outputs));
        s
    }
}

pub fn changes_text(changes: &[crate::stack::Change]) -> String {
    if changes.is_empty() {
        return "  (no resource changes: parameters or tags only)\n".into();
    }
    changes.iter().fold(String::new(), |mut s, c| {
        let _ = writeln!(
            s,
            "  {:<8} {:<28} {}{}",
            c.action,
            c.logical_id,
            c.resource_type,
            c.replacement
                .as_deref()
                .filter(|r| *r != "False")
                .map(|r| format!(" (replacement: {r})"))
                .unwrap_or_default()
        );
        s
    })
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
