//! Deleting a stack, and waiting until it is gone.

use super::client::Stacks;
use super::error::{Error, api};
use super::events::{Observer, Operation};
use super::spec::{id_of, status_of};
use super::states::Next;
use super::wait::{Expect, in_progress};
use aws_sdk_cloudformation::types::StackStatus;

impl Stacks {
    /// Deletes the stack and waits until it is gone; `retain` keeps those resources of a stack
    /// in DELETE_FAILED. Absent stacks are already gone.
    pub async fn delete(
        &self,
        name: &str,
        retain: &[String],
        on_event: &mut dyn Observer,
    ) -> Result<bool, Error> {
        let mut stack = self.describe(name).await?;
        if let Some(s) = stack
            .as_ref()
            .filter(|s| s.stack_status().is_some_and(in_progress))
        {
            self.clear_the_way(name, s, Next::Wait, on_event).await?;
            stack = self.describe(name).await?;
        }
        let Some(stack) = stack else {
            return Ok(false);
        };
        if !retain.is_empty() && stack.stack_status() != Some(&StackStatus::DeleteFailed) {
            return Err(Error::Refused(format!(
                "--retain keeps resources of a stack in DELETE_FAILED only; {name} is {}: delete it without --retain",
                status_of(&stack)
            )));
        }
        self.delete_stack(name, id_of(&stack, name), retain, on_event)
            .await?;
        Ok(true)
    }

    /// Deletes a stack a listing has described (its id and state): no second look. Waits for an
    /// operation running on it first, then until it is gone.
    pub async fn delete_listed(
        &self,
        name: &str,
        id: &str,
        status: &str,
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        if in_progress(&StackStatus::from(status)) {
            self.wait_for_running(name, id, status, None, on_event)
                .await?;
        }
        self.delete_stack(name, id, &[], on_event).await
    }

    pub(super) async fn delete_stack(
        &self,
        name: &str,
        id: &str,
        retain: &[String],
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        let operation = Operation::started();
        self.cfn
            .delete_stack()
            .stack_name(id)
            .set_retain_resources((!retain.is_empty()).then(|| retain.to_vec()))
            .set_client_request_token(operation.token.clone())
            .send()
            .await
            .map_err(|e| api("DeleteStack", name, &e))?;
        self.wait(name, id, &operation, Expect::Gone, on_event)
            .await
            .map(|_| ())
    }
}
