//! Waiting on a stack: polling with backoff, streaming its events, until its operation ends.

use super::client::Stacks;
use super::error::{Error, api};
use super::events::{EventStream, Observer, Operation, is_missing_stack, is_throttling};
use super::spec::status_of;
use aws_sdk_cloudformation::types::{Stack, StackStatus};

/// What a wait counts as having worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A create, update or import that completed (or the stack gone, for the caller to judge).
    Done,
    /// The stack deleted.
    Gone,
    /// UPDATE_ROLLBACK_COMPLETE: a continued rollback that finished.
    RolledBack,
    /// Any state the stack settles in: someone else's operation, whose outcome is not ours.
    Settled,
}

impl Stacks {
    /// Polls the stack by its id (`id`; by name a deleted stack cannot be told from one made
    /// again since) until its operation ends, streaming new events. What counts as success is
    /// `expect`'s; the stack as it settled, or None once it is gone.
    pub async fn wait(
        &self,
        name: &str,
        id: &str,
        operation: &Operation,
        expect: Expect,
        on_event: &mut dyn Observer,
    ) -> Result<Option<Stack>, Error> {
        use StackStatus as S;
        let mut stream = EventStream::new(id, operation);
        let started = std::time::Instant::now();
        let mut backoff = self.backoff();
        loop {
            let stack = match self.cfn.describe_stacks().stack_name(id).send().await {
                Ok(out) => out
                    .stacks
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .filter(|s| s.stack_status() != Some(&S::DeleteComplete)),
                Err(e) if is_missing_stack(&e) => None,
                // The SDK already retried; a long wait outlasts throttling rather than failing.
                Err(e) if is_throttling(&e) => {
                    backoff.pause().await.map_err(|limit| Error::TimedOut {
                        stack: name.into(),
                        what: "the operation",
                        status: "unknown (CloudFormation throttled every look)".into(),
                        limit,
                    })?;
                    continue;
                }
                Err(e) => return Err(api("DescribeStacks", name, &e)),
            };
            stream
                .poll(&self.cfn, on_event)
                .await
                .map_err(|e| api("DescribeStackEvents", name, &e))?;
            let Some(stack) = stack else {
                return Ok(None);
            };
            let status = stack.stack_status().cloned();
            on_event.waiting(name, status_of(&stack), started.elapsed());
            // REVIEW_IN_PROGRESS while waiting: an executed CREATE that has not started yet.
            let running = status
                .as_ref()
                .is_none_or(|s| in_progress(s) || *s == S::ReviewInProgress);
            if !running {
                let status = status.expect("checked above");
                let ok = match expect {
                    Expect::Done => {
                        matches!(
                            status,
                            S::CreateComplete | S::UpdateComplete | S::ImportComplete
                        )
                    }
                    Expect::RolledBack => status == S::UpdateRollbackComplete,
                    Expect::Gone => false,
                    Expect::Settled => true,
                };
                if ok {
                    return Ok(Some(stack));
                }
                let stack_name = name.to_string();
                return Err(match status {
                    S::UpdateRollbackFailed => Error::RollbackFailed {
                        stack: stack_name,
                        blocking: stream.failures,
                    },
                    S::DeleteFailed => Error::DeleteFailed {
                        stack: stack_name,
                        blocking: stream
                            .failures
                            .into_iter()
                            .filter(|f| f.status == "DELETE_FAILED")
                            .collect(),
                    },
                    other => Error::Failed {
                        stack: stack_name,
                        status: other.as_str().into(),
                        failure: stream.cause().map(Box::new),
                    },
                });
            }
            backoff.pause().await.map_err(|limit| Error::TimedOut {
                stack: name.into(),
                what: "the operation",
                status: status_of(&stack).into(),
                limit,
            })?;
        }
    }
}

/// The states of an operation still running.
pub(super) fn in_progress(status: &StackStatus) -> bool {
    use StackStatus as S;
    matches!(
        status,
        S::CreateInProgress
            | S::UpdateInProgress
            | S::UpdateCompleteCleanupInProgress
            | S::UpdateRollbackInProgress
            | S::UpdateRollbackCompleteCleanupInProgress
            | S::RollbackInProgress
            | S::DeleteInProgress
            | S::ImportInProgress
            | S::ImportRollbackInProgress
    )
}
