//! `deployer logs ENV`: the catalog functions' CloudWatch logs, merged in time order, once or
//! followed.

use crate::error::Error;
use crate::output::{Format, Report};
use aws_sdk_cloudwatchlogs::Client;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// How often `--follow` asks for new events.
pub const FOLLOW_POLL: Duration = Duration::from_secs(2);

/// The functions a catalog stack runs; each logs to `/aws/lambda/{resource_name}-{function}`.
pub const FUNCTIONS: [&str; 3] = ["query", "command", "import"];

#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    pub timestamp: String,
    pub function: String,
    pub message: String,
    #[serde(skip)]
    millis: i64,
    #[serde(skip)]
    id: String,
}

impl LogEvent {
    pub fn line(&self) -> String {
        format!(
            "{} {:<7} {}\n",
            self.timestamp,
            self.function,
            self.message.trim_end()
        )
    }
}

#[derive(Debug, Serialize)]
pub struct LogsReport {
    pub events: Vec<LogEvent>,
}

impl Report for LogsReport {
    fn human(&self) -> String {
        if self.events.is_empty() {
            return "(no log events in that time)\n".into();
        }
        self.events.iter().map(LogEvent::line).collect()
    }
}

/// `30s`, `10m`, `2h`, `1d`: how far back to start.
pub fn parse_since(text: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::Refused(format!(
            "--since {text:?} is not a duration: give a number and a unit, like 30s, 10m, 2h or 1d"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(secs))
}

/// Where each function logs: (function, log group).
pub fn groups(resource_name: &str, only: Option<&str>) -> Vec<(String, String)> {
    FUNCTIONS
        .iter()
        .filter(|f| only.is_none_or(|o| o == **f))
        .map(|f| (f.to_string(), format!("/aws/lambda/{resource_name}-{f}")))
        .collect()
}

/// Reads logs from several groups at once and hands back only events not seen before.
pub struct Reader {
    client: Client,
    groups: Vec<(String, String)>,
    start_ms: i64,
    seen: HashSet<String>,
}

impl Reader {
    pub fn new(client: Client, groups: Vec<(String, String)>, since: Duration) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Reader {
            client,
            groups,
            start_ms: now_ms - since.as_millis() as i64,
            seen: HashSet::new(),
        }
    }

    /// The events since the last read (or since `since`), oldest first.
    pub async fn next_batch(&mut self) -> Result<Vec<LogEvent>, Error> {
        let mut events = vec![];
        for (function, group) in &self.groups {
            let mut pages = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .start_time(self.start_ms)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    let message = crate::aws::error_text(&e);
                    if e.as_service_error()
                        .is_some_and(|se| se.is_resource_not_found_exception())
                    {
                        Error::Refused(format!(
                            "log group {group} does not exist: is the stack deployed? (`deployer status`)"
                        ))
                    } else {
                        Error::Aws(crate::aws::Error::Call {
                            action: "logs:FilterLogEvents",
                            target: group.clone(),
                            message,
                        })
                    }
                })?;
                events.extend(page.events().iter().map(|e| {
                    LogEvent {
                        millis: e.timestamp().unwrap_or_default(),
                        timestamp: aws_smithy_types::DateTime::from_millis(
                            e.timestamp().unwrap_or_default(),
                        )
                        .fmt(aws_smithy_types::date_time::Format::DateTime)
                        .unwrap_or_default(),
                        function: function.clone(),
                        message: e.message().unwrap_or_default().to_string(),
                        id: e.event_id().unwrap_or_default().to_string(),
                    }
                }));
            }
        }
        // The next read starts at the newest timestamp seen, so it returns that millisecond's
        // events again: remembering just their ids drops the repeats and keeps memory flat
        // however long a follow runs.
        events.retain(|e| !self.seen.contains(&e.id));
        events.sort_by(|a, b| (a.millis, &a.function).cmp(&(b.millis, &b.function)));
        if let Some(last) = events.last()
            && last.millis > self.start_ms
        {
            self.start_ms = last.millis;
            self.seen.clear();
        }
        let newest = self.start_ms;
        self.seen.extend(
            events
                .iter()
                .filter(|e| e.millis == newest)
                .map(|e| e.id.clone()),
        );
        Ok(events)
    }
}

impl Reader {
    /// Prints each event as it arrives, one line (or one JSON object) each, until interrupted.
    pub async fn follow(&mut self, format: Format) -> Result<(), Error> {
        use std::io::Write;
        loop {
            for event in self.next_batch().await? {
                match format {
                    Format::Text => print!("{}", event.line()),
                    Format::Json => println!(
                        "{}",
                        serde_json::to_string(&event).expect("events serialize")
                    ),
                }
            }
            let _ = std::io::stdout().flush();
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "10", "m", "10 m", "10min", "-5m", "1.5h"] {
            let err = parse_since(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("like 30s, 10m, 2h or 1d"), "{err}");
        }
    }

    #[test]
    fn one_group_per_function_or_only_the_one_asked_for() {
        assert_eq!(
            groups("catalog-sandbox", None),
            [
                ("query".into(), "/aws/lambda/catalog-sandbox-query".into()),
                (
                    "command".into(),
                    "/aws/lambda/catalog-sandbox-command".into()
                ),
                ("import".into(), "/aws/lambda/catalog-sandbox-import".into()),
            ]
        );
        assert_eq!(
            groups("x", Some("import")),
            [("import".to_string(), "/aws/lambda/x-import".to_string())]
        );
    }
}
