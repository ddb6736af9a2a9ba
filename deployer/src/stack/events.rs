//! A stack operation's events as they come: only the operation's own, across pages, whatever
//! the local clock says, with its nested stacks' too; and who watches them.

use super::spec::Change;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsError;
use aws_sdk_cloudformation::types::StackEvent;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// Who watches a stack operation: each new event, and each poll while it waits.
pub trait Observer {
    fn event(&mut self, event: &Event);
    fn waiting(&mut self, _stack: &str, _status: &str, _elapsed: Duration) {}
    /// A change set of `changes` is about to run on `stack`: whether it runs now, or only once
    /// the person at the terminal answers the question the observer asked with a yes (a no
    /// deletes the change set; nothing runs).
    fn planned(&mut self, _stack: &str, _changes: &[Change]) -> Go {
        Go::Now
    }
}

/// What an observer says to a change set about to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    Now,
    IfConfirmed,
}

/// Any closure over events observes; it ignores the waiting.
impl<F: FnMut(&Event)> Observer for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// One line of the stack's event stream.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The id of the nested stack this event's resource is, whose events are followed too.
    #[serde(skip)]
    pub nested_stack: Option<String>,
}

/// A nested stack whose events a wait follows, shown as `{logical}/{resource}`.
struct Nested {
    id: String,
    logical: String,
    seen: HashSet<String>,
}

/// The first resource that failed, as its event tells.
#[derive(Debug, Clone, Serialize)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// The operation a wait follows, so that its events, and only its, are shown. CloudFormation puts
/// the ClientRequestToken of the call that started an operation on each of its events; events
/// without a token (another tool's operation, or the emulator, which records none) count from
/// `since`, the server's time when the operation began, or else the local clock.
#[derive(Debug, Clone, Default)]
pub struct Operation {
    pub token: Option<String>,
    pub since: Option<aws_smithy_types::DateTime>,
}

impl Operation {
    /// A new operation of ours: the token to start it with.
    pub(crate) fn started() -> Self {
        Operation {
            token: Some(format!("deployer-{}", unix_millis())),
            since: None,
        }
    }

    fn owns(&self, e: &StackEvent, floor_secs: i64) -> bool {
        match (e.client_request_token(), &self.token) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => e.timestamp().is_some_and(|t| t.secs() >= floor_secs),
        }
    }
}

/// The events of one operation on a stack and its nested stacks, read poll by poll.
pub(crate) struct EventStream {
    id: String,
    operation: Operation,
    /// Events without a token count from the operation's start on the server's clock, or,
    /// where that is not known, on ours (a second early, for the rounding).
    since_secs: i64,
    seen: HashSet<String>,
    nested: Vec<Nested>,
    /// Every resource that failed so far, in order.
    pub failures: Vec<FailedResource>,
}

impl EventStream {
    pub fn new(id: &str, operation: &Operation) -> Self {
        EventStream {
            id: id.to_string(),
            operation: operation.clone(),
            since_secs: operation.since.as_ref().map_or_else(
                || aws_smithy_types::DateTime::from(std::time::SystemTime::now()).secs() - 1,
                |t| t.secs(),
            ),
            seen: HashSet::new(),
            nested: vec![],
            failures: vec![],
        }
    }

    /// Hands each event not shown yet to `on_event`, oldest first, and notes the failures.
    pub async fn poll(
        &mut self,
        cfn: &Client,
        on_event: &mut dyn Observer,
    ) -> Result<(), SdkError<DescribeStackEventsError, HttpResponse>> {
        let mut fresh = new_events(
            cfn,
            &self.id,
            &self.operation,
            self.since_secs,
            &mut self.seen,
        )
        .await?;
        // Nested stacks (and theirs), found as their resources appear: their events say what
        // failed inside, where the parent only says that the nested stack failed.
        let (mut looked, mut polled) = (0, 0);
        loop {
            for ev in &fresh[looked..] {
                if let Some(nested_id) = &ev.nested_stack
                    && !self.nested.iter().any(|n| &n.id == nested_id)
                {
                    self.nested.push(Nested {
                        id: nested_id.clone(),
                        logical: ev.logical_id.clone(),
                        seen: HashSet::new(),
                    });
                }
            }
            looked = fresh.len();
            let Some(n) = self.nested.get_mut(polled) else {
                break;
            };
            polled += 1;
            let theirs = Operation {
                token: None,
                since: self.operation.since,
            };
            let inside = new_events(cfn, &n.id, &theirs, self.since_secs, &mut n.seen).await?;
            fresh.extend(inside.into_iter().map(|mut ev| {
                ev.logical_id = format!("{}/{}", n.logical, ev.logical_id);
                ev
            }));
        }
        for ev in fresh {
            if ev.status.ends_with("_FAILED") {
                self.failures.push(FailedResource {
                    logical_id: ev.logical_id.clone(),
                    resource_type: ev.resource_type.clone(),
                    status: ev.status.clone(),
                    reason: ev
                        .reason
                        .clone()
                        .unwrap_or_else(|| "no reason given".into()),
                });
            }
            on_event.event(&ev);
        }
        Ok(())
    }

    /// The failure that explains the outcome: the first, unless it is a nested stack's, whose
    /// inside says more than that it failed.
    pub fn cause(mut self) -> Option<FailedResource> {
        let i = self
            .failures
            .iter()
            .position(|f| f.resource_type != NESTED_STACK_TYPE)
            .or((!self.failures.is_empty()).then_some(0))?;
        Some(self.failures.swap_remove(i))
    }
}

/// The operation's events not reported yet, oldest first. Pages back (newest first) until
/// an event already looked at, or one from before the operation.
async fn new_events(
    cfn: &Client,
    id: &str,
    operation: &Operation,
    since_secs: i64,
    seen: &mut HashSet<String>,
) -> Result<Vec<Event>, SdkError<DescribeStackEventsError, HttpResponse>> {
    let mut fresh: Vec<Event> = vec![];
    let mut next: Option<String> = None;
    loop {
        let out = match cfn
            .describe_stack_events()
            .stack_name(id)
            .set_next_token(next.take())
            .send()
            .await
        {
            Ok(out) => out,
            // Events missed now are read on the next poll.
            Err(e) if is_missing_stack(&e) || is_throttling(&e) => {
                break;
            }
            Err(e) => return Err(e),
        };
        let mut reached_known = false;
        for e in out.stack_events() {
            let id = e.event_id().unwrap_or_default().to_string();
            let before = e.timestamp().is_some_and(|t| t.secs() < since_secs);
            let owned = operation.owns(e, since_secs);
            // Our own events count whatever the clocks say; others from before the start
            // belong to earlier operations, and so does everything past them.
            if !seen.insert(id) || (before && !owned) {
                reached_known = true;
                break;
            }
            if owned {
                fresh.push(event_of(e));
            }
        }
        match out.next_token() {
            Some(token) if !reached_known => next = Some(token.to_string()),
            _ => break,
        }
    }
    fresh.reverse();
    Ok(fresh)
}

fn event_of(e: &StackEvent) -> Event {
    Event {
        timestamp: e.timestamp().and_then(time_text).unwrap_or_default(),
        logical_id: e.logical_resource_id().unwrap_or_default().into(),
        resource_type: e.resource_type().unwrap_or_default().into(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_string),
        nested_stack: e
            .physical_resource_id()
            .filter(|id| {
                e.resource_type() == Some(NESTED_STACK_TYPE)
                    && id.starts_with("arn:")
                    && Some(*id) != e.stack_id()
            })
            .map(str::to_string),
    }
}

const NESTED_STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// A time as AWS writes timestamps (RFC 3339, UTC), always to the millisecond, so that lines of
/// events and logs keep their columns (the SDK's own format drops trailing zeros).
pub fn time_text(t: &aws_smithy_types::DateTime) -> Option<String> {
    let text = t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()?;
    let (seconds, fraction) = text
        .strip_suffix('Z')?
        .split_once('.')
        .unwrap_or((text.strip_suffix('Z')?, ""));
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    Some(format!("{seconds}.{millis}Z"))
}

/// The current time as AWS writes timestamps.
pub fn now_text() -> String {
    time_text(&aws_smithy_types::DateTime::from(
        std::time::SystemTime::now(),
    ))
    .unwrap_or_default()
}

/// An event of the deployer's own, for what CloudFormation does not report itself.
pub(crate) fn note(stack: &str, status: &str, reason: &str) -> Event {
    Event {
        timestamp: now_text(),
        logical_id: stack.into(),
        resource_type: "AWS::CloudFormation::Stack".into(),
        status: status.into(),
        reason: Some(reason.into()),
        nested_stack: None,
    }
}

/// CloudFormation's answer to a call on a stack that is not there: a ValidationError (it has no
/// error code of its own), "Stack with id NAME does not exist".
pub(crate) fn is_missing_stack<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        se.code() == Some("ValidationError")
            && se.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// Throttled by error code (CloudFormation says Throttling; others ThrottlingException).
pub(crate) fn is_throttling<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        matches!(
            se.code(),
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        )
    })
}

pub(crate) fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_to_the_millisecond_in_one_width() {
        use aws_smithy_types::DateTime;
        let at =
            |secs: i64, nanos: u32| time_text(&DateTime::from_secs_and_nanos(secs, nanos)).unwrap();
        assert_eq!(at(1_796_115_319, 0), "2026-12-01T08:55:19.000Z");
        assert_eq!(at(1_796_115_319, 500_000_000), "2026-12-01T08:55:19.500Z");
        assert_eq!(at(1_796_115_319, 560_763_000), "2026-12-01T08:55:19.560Z");
    }
}
