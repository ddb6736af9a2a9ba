//! `deployer logs ENV`: the catalog functions' CloudWatch logs, merged in time order, once or
//! followed.

use crate::error::Error;
use crate::output::{Format, Report};
use aws_sdk_cloudwatchlogs::Client;
use serde::Serialize;
use std::time::Duration;

/// How often `--follow` asks for new events.
pub const FOLLOW_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    pub timestamp: String,
    pub function: String,
    /// In JSON output, a line that is a JSON object (the app logs those) is that object, not a
    /// string holding it.
    #[serde(serialize_with = "parsed_when_json")]
    pub message: String,
    #[serde(skip)]
    millis: i64,
}

fn parsed_when_json<S: serde::Serializer>(message: &String, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(message.trim()) {
        Ok(object @ serde_json::Value::Object(_)) => object.serialize(s),
        _ => message.serialize(s),
    }
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

/// `30s`, `10m`, `2h`, `1d`, `1h30m`: how far back to start.
pub fn parse_since(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text).map_err(|e| {
        Error::Refused(format!(
            "--since {text:?} is not a duration ({e}): give a number and a unit, like 30s, 10m, 2h or 1d"
        ))
    })
}

/// Where each function logs: (function, log group).
pub fn groups(
    resource_name: &str,
    functions: &[impl AsRef<str>],
    only: Option<&str>,
) -> Vec<(String, String)> {
    functions
        .iter()
        .map(AsRef::as_ref)
        .filter(|f| only.is_none_or(|o| o == *f))
        .map(|f| (f.to_string(), format!("/aws/lambda/{resource_name}-{f}")))
        .collect()
}

/// CloudWatch Logs may ingest an event well after its timestamp (a busy stream, a retried
/// put, streams of one group ingested out of order): each read looks this far back from the
/// newest event seen and drops what it has shown already.
const LOOK_BACK_MS: i64 = 5 * 60 * 1000;

/// One log group's place in its stream of events.
struct Cursor {
    function: String,
    group: String,
    /// Nothing before this is asked for: the start `--since` set.
    floor_ms: i64,
    /// The newest timestamp seen in this group.
    newest_ms: i64,
    /// The events shown that a later read may return again (within LOOK_BACK_MS of
    /// `newest_ms`), by id, with their timestamps.
    shown: std::collections::HashMap<String, i64>,
}

/// Reads logs from several groups at once and hands back only events not seen before. Each group
/// keeps its own cursor: a quiet group is not skipped past because another's events are newer.
pub struct Reader {
    client: Client,
    cursors: Vec<Cursor>,
}

impl Reader {
    pub fn new(client: Client, groups: Vec<(String, String)>, since: Duration) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let floor_ms = now_ms - since.as_millis() as i64;
        Reader {
            client,
            cursors: groups
                .into_iter()
                .map(|(function, group)| Cursor {
                    function,
                    group,
                    floor_ms,
                    newest_ms: floor_ms,
                    shown: Default::default(),
                })
                .collect(),
        }
    }

    /// The events since the last read (or since `since`), oldest first; late ones too.
    pub async fn next_batch(&mut self) -> Result<Vec<LogEvent>, Error> {
        let client = &self.client;
        let reads = futures_util::future::join_all(
            self.cursors.iter_mut().map(|cursor| cursor.read(client)),
        )
        .await;
        let mut events = vec![];
        for read in reads {
            events.extend(read?);
        }
        events.sort_by(|a, b| (a.millis, &a.function).cmp(&(b.millis, &b.function)));
        Ok(events)
    }
}

impl Cursor {
    /// This group's events not shown yet, moving the cursor past them.
    async fn read(&mut self, client: &Client) -> Result<Vec<LogEvent>, Error> {
        let group = &self.group;
        let start = self.floor_ms.max(self.newest_ms - LOOK_BACK_MS);
        let mut pages = client
            .filter_log_events()
            .log_group_name(group)
            .start_time(start)
            .into_paginator()
            .send();
        let mut events = vec![];
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
            for e in page.events() {
                let millis = e.timestamp().unwrap_or_default();
                let id = e.event_id().unwrap_or_default().to_string();
                if self.shown.insert(id, millis).is_some() {
                    continue;
                }
                events.push(LogEvent {
                    millis,
                    timestamp: crate::stack::time_text(&aws_smithy_types::DateTime::from_millis(
                        millis,
                    ))
                    .unwrap_or_default(),
                    function: self.function.clone(),
                    message: e.message().unwrap_or_default().to_string(),
                });
            }
        }
        self.newest_ms = events
            .iter()
            .map(|e| e.millis)
            .fold(self.newest_ms, i64::max);
        // What the next read cannot return again need not be remembered: memory stays flat
        // however long a follow runs.
        let horizon = self.newest_ms - LOOK_BACK_MS;
        self.shown.retain(|_, millis| *millis >= horizon);
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
        assert_eq!(parse_since("1h30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "10", "m", "10x", "-5m"] {
            let err = parse_since(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("like 30s, 10m, 2h or 1d"), "{err}");
        }
    }

    use aws_sdk_cloudwatchlogs::operation::filter_log_events::{
        FilterLogEventsInput, FilterLogEventsOutput,
    };
    use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    /// FilterLogEvents as it answers while events are ingested: the n-th call sees `stages[n]`
    /// (the last one from then on), from the request's startTime on.
    fn ingested(
        stages: Vec<Vec<(&'static str, i64)>>,
    ) -> impl Fn(&FilterLogEventsInput) -> FilterLogEventsOutput + Send + Sync + 'static {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        move |request| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let start = request.start_time().unwrap_or_default();
            FilterLogEventsOutput::builder()
                .set_events(Some(
                    stages[n.min(stages.len() - 1)]
                        .iter()
                        .filter(|(_, millis)| *millis >= start)
                        .map(|(id, millis)| {
                            FilteredLogEvent::builder()
                                .event_id(*id)
                                .timestamp(*millis)
                                .message(format!("event {id}"))
                                .build()
                        })
                        .collect(),
                ))
                .build()
        }
    }

    fn ids(events: &[LogEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e.message.trim_start_matches("event "))
            .collect()
    }

    /// Events ingested late, behind newer ones, in the same group and in a quieter group: each
    /// shown once, none dropped. FilterLogEvents is served as the CloudWatch Logs API reference
    /// documents it; the emulator ingests at once and in order, so it cannot show this.
    #[tokio::test]
    async fn late_and_out_of_order_events_are_shown_once_each() {
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
            .to_millis()
            .unwrap();
        let busy = mock!(Client::filter_log_events)
            .match_requests(|r| r.log_group_name() == Some("/aws/lambda/x-query"))
            .then_compute_output(ingested(vec![
                vec![("q1", now - 1_000)],
                // q0 is older than q1 but ingested after q1 was read.
                vec![("q0", now - 2_000), ("q1", now - 1_000), ("q2", now)],
            ]));
        let quiet = mock!(Client::filter_log_events)
            .match_requests(|r| r.log_group_name() == Some("/aws/lambda/x-command"))
            .then_compute_output(ingested(vec![
                vec![],
                // Older than everything the busy group has shown.
                vec![("c1", now - 30_000)],
            ]));
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&busy, &quiet]);
        let mut reader = Reader::new(
            client,
            groups("x", &["query", "command"], None),
            Duration::from_secs(600),
        );
        assert_eq!(ids(&reader.next_batch().await.unwrap()), ["q1"]);
        assert_eq!(ids(&reader.next_batch().await.unwrap()), ["c1", "q0", "q2"]);
        assert!(reader.next_batch().await.unwrap().is_empty());
    }

    #[test]
    fn one_group_per_function_or_only_the_one_asked_for() {
        assert_eq!(
            groups("catalog-sandbox", &["query", "command", "import"], None),
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
            groups("x", &["query", "command", "import"], Some("import")),
            [("import".to_string(), "/aws/lambda/x-import".to_string())]
        );
    }
}
