//! The state a deploy finds a stack in, and what it does about it: wait, clear, give way, resume.

use super::client::Stacks;
use super::error::{Error, api};
use super::events::{FailedResource, Observer, Operation, note, time_text};
use super::spec::{id_of, status_of};
use super::wait::{Expect, in_progress};
use aws_sdk_cloudformation::types::{Stack, StackStatus};
use std::time::Duration;

/// How often one deploy gives way to another that got to the same stack first.
const MAX_CONFLICTS: u32 = 5;

/// What a deploy does with a stack in the state it finds it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Create,
    Update,
    /// An operation is running: wait for it, then look again.
    Wait,
    /// A first create failed: delete what it left, then create.
    Recreate,
}

/// Every state CloudFormation documents, decided one by one; an error is the way out of a state
/// the deployer cannot leave by itself (its `blocking` list is filled in by the caller).
pub(super) fn next_step(name: &str, stack: Option<&Stack>) -> Result<Next, Error> {
    use StackStatus as S;
    let Some(stack) = stack else {
        return Ok(Next::Create);
    };
    let status = match stack.stack_status() {
        Some(s) if in_progress(s) => return Ok(Next::Wait),
        Some(s) => s,
        None => {
            return Err(Error::Stuck {
                stack: name.into(),
                status: "no state".into(),
                what_to_do:
                    "CloudFormation described the stack without a state; look at it in the console"
                        .into(),
            });
        }
    };
    Ok(match status {
        // A stack made by a change set that never ran holds nothing yet.
        S::ReviewInProgress | S::DeleteComplete => Next::Create,
        // UPDATE_FAILED is where a stack with rollback turned off stops; it takes updates.
        S::CreateComplete
        | S::UpdateComplete
        | S::UpdateRollbackComplete
        | S::ImportComplete
        | S::ImportRollbackComplete
        | S::UpdateFailed => Next::Update,
        // The first create failed (rolled back, or not): the stack can only be deleted.
        S::RollbackComplete | S::RollbackFailed | S::CreateFailed => Next::Recreate,
        S::UpdateRollbackFailed => {
            return Err(Error::RollbackFailed {
                stack: name.into(),
                blocking: vec![],
            });
        }
        S::DeleteFailed => {
            return Err(Error::DeleteFailed {
                stack: name.into(),
                blocking: vec![],
            });
        }
        S::ImportRollbackFailed => {
            return Err(Error::Stuck {
                stack: name.into(),
                status: status.as_str().into(),
                what_to_do: format!(
                    "a resource import failed and so did its rollback; fix the resources its events name (`aws cloudformation describe-stack-events --stack-name {name}`), then deploy again"
                ),
            });
        }
        other => {
            return Err(Error::Stuck {
                stack: name.into(),
                status: other.as_str().into(),
                what_to_do: "a state this deployer does not know; look at the stack in the CloudFormation console, and update the deployer".into(),
            });
        }
    })
}

impl Stacks {
    /// Waits for the operation running on `stack`, or deletes what a failed first create left.
    pub(super) async fn clear_the_way(
        &self,
        name: &str,
        stack: &Stack,
        next: Next,
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        let status = status_of(stack);
        let id = id_of(stack, name);
        if next == Next::Recreate {
            on_event.event(&note(
                name,
                status,
                "the first create had failed; deleting what it left to create the stack again",
            ));
            return self.delete_stack(name, id, &[], on_event).await;
        }
        let since = stack.last_updated_time().or(stack.creation_time()).cloned();
        self.wait_for_running(name, id, status, since, on_event)
            .await
    }

    /// Waits for the operation someone started on stack `id` (in `status` since `since`).
    pub(super) async fn wait_for_running(
        &self,
        name: &str,
        id: &str,
        status: &str,
        since: Option<aws_smithy_types::DateTime>,
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        on_event.event(&note(
            name,
            status,
            &format!(
                "another operation on this stack is running{}; waiting for it to end (--timeout)",
                since
                    .as_ref()
                    .and_then(time_text)
                    .map(|t| format!(" since {t}"))
                    .unwrap_or_default()
            ),
        ));
        let theirs = Operation { token: None, since };
        self.wait(name, id, &theirs, Expect::Settled, on_event)
            .await
            .map(|_| ())
    }

    /// Another deploy got to the stack first: waits until its change set has run (or for five
    /// minutes, after which it counts as left behind), then a moment more, so two deploys that
    /// met do not meet again at once.
    pub(super) async fn give_way(
        &self,
        name: &str,
        why: &str,
        conflicts: u32,
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        if conflicts > MAX_CONFLICTS {
            return Err(Error::Refused(format!(
                "another deploy of stack {name} got there first {MAX_CONFLICTS} times ({why}); let it finish (`deployer status`), then deploy again"
            )));
        }
        on_event.event(&note(
            name,
            "WAITING",
            &format!(
                "another deploy is changing this stack ({why}); waiting for it, then looking again"
            ),
        ));
        let give_up = std::time::Instant::now() + self.timeout.min(Duration::from_secs(300));
        let mut backoff = self.backoff();
        while std::time::Instant::now() < give_up && self.others_pending(name).await? {
            backoff.pause().await.map_err(|limit| Error::TimedOut {
                stack: name.into(),
                what: "another deploy's change set",
                status: "waiting to be executed".into(),
                limit,
            })?;
        }
        tokio::time::sleep(self.poll * fastrand::u32(1..=4)).await;
        Ok(())
    }

    /// `e` with the resources that block the stack, where its state names some.
    pub(super) async fn name_blocking(&self, e: Error, stack: Option<&Stack>) -> Error {
        let Some(stack) = stack else { return e };
        let blocked = || async {
            self.cfn
                .describe_stack_resources()
                .stack_name(id_of(stack, ""))
                .send()
                .await
                .map(|out| {
                    out.stack_resources()
                        .iter()
                        .filter(|r| {
                            r.resource_status()
                                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
                        })
                        .map(|r| FailedResource {
                            logical_id: r.logical_resource_id().unwrap_or_default().into(),
                            resource_type: r.resource_type().unwrap_or_default().into(),
                            status: r
                                .resource_status()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            reason: r
                                .resource_status_reason()
                                .unwrap_or("no reason given")
                                .into(),
                        })
                        .collect::<Vec<_>>()
                })
                // The way out is still right without the names.
                .unwrap_or_default()
        };
        match e {
            Error::RollbackFailed { stack, .. } => Error::RollbackFailed {
                stack,
                blocking: blocked().await,
            },
            Error::DeleteFailed { stack, .. } => Error::DeleteFailed {
                stack,
                blocking: blocked().await,
            },
            other => other,
        }
    }

    /// Resumes the rollback of a stack in UPDATE_ROLLBACK_FAILED (after the operator fixed the
    /// resources that blocked it, or chose to `skip` them), and waits until it is rolled back.
    pub async fn continue_rollback(
        &self,
        name: &str,
        skip: &[String],
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        let stack = self.describe(name).await?;
        let Some(stack) =
            stack.filter(|s| s.stack_status() == Some(&StackStatus::UpdateRollbackFailed))
        else {
            return Err(Error::Refused(format!(
                "--continue-rollback resumes a stack in UPDATE_ROLLBACK_FAILED, and {name} is not in it (`deployer status` shows its state): deploy without it"
            )));
        };
        let id = id_of(&stack, name);
        let operation = Operation::started();
        self.cfn
            .continue_update_rollback()
            .stack_name(id)
            .set_resources_to_skip((!skip.is_empty()).then(|| skip.to_vec()))
            .set_client_request_token(operation.token.clone())
            .send()
            .await
            .map_err(|e| api("ContinueUpdateRollback", name, &e))?;
        self.wait(name, id, &operation, Expect::RolledBack, on_event)
            .await
            .map(|_| ())
    }
}
