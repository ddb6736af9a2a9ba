//! A deploy: look at the stack, clear the way, make the change set, execute it, wait.

use super::change_set::{CHANGE_SET, REVIEW_PREFIX, Step, pending};
use super::client::Stacks;
use super::error::{Error, api};
use super::events::{Go, Observer, is_missing_stack, note, unix_millis};
use super::spec::{
    Action, DeployOptions, DeployReport, Found, Outcome, StackSpec, outputs_of, status_of,
    unchanged,
};
use super::states::{Next, next_step};
use super::wait::Expect;
use crate::aws::error_text;
use aws_sdk_cloudformation::types::Stack;

impl Stacks {
    /// Creates or updates the stack to match `spec`, calling `on_event` for each stack event,
    /// and turns termination protection on when the spec asks for it.
    pub async fn deploy(
        &self,
        spec: &StackSpec,
        on_event: &mut dyn Observer,
    ) -> Result<DeployReport, Error> {
        let found = self.look(spec, false).await?;
        self.deploy_found(spec, found, &DeployOptions::default(), on_event)
            .await
    }

    /// `deploy` for a caller that has already looked at the stack (`found`), saving the calls.
    pub async fn deploy_found(
        &self,
        spec: &StackSpec,
        found: Found,
        options: &DeployOptions,
        on_event: &mut dyn Observer,
    ) -> Result<DeployReport, Error> {
        let (report, stack) = self.apply(spec, found, options, on_event).await?;
        let protected = stack.and_then(|s| s.enable_termination_protection);
        // A proposal changes nothing, even where it found the stack current: its role may not.
        if spec.termination_protection
            && protected != Some(true)
            && !matches!(options.action, Action::Propose)
        {
            let turned_on = self
                .cfn
                .update_termination_protection()
                .stack_name(&spec.name)
                .enable_termination_protection(true)
                .send()
                .await;
            let said = match turned_on {
                Ok(_) => "termination protection turned on",
                // Said, not fatal, so the whole flow runs locally; AWS implements the call.
                Err(e) if crate::aws::unimplemented_by_emulator(&e) => {
                    "termination protection NOT turned on: the local emulator does not implement UpdateTerminationProtection (AWS does)"
                }
                Err(e) => return Err(api("UpdateTerminationProtection", &spec.name, &e)),
            };
            on_event.event(&note(&spec.name, &report.status, said));
        }
        Ok(report)
    }

    /// The change itself: the report, and the stack as it ended. Waits for an operation already
    /// running, recreates a stack whose first create failed, and gives way to another deploy that
    /// got to the stack first, then looks again.
    async fn apply(
        &self,
        spec: &StackSpec,
        found: Found,
        options: &DeployOptions,
        on_event: &mut dyn Observer,
    ) -> Result<(DeployReport, Option<Stack>), Error> {
        let name = spec.name.as_str();
        let mut existing = found.stack;
        // None: not known for the stack as it is now (it changed since the caller looked).
        let mut current = Some(found.current);
        let mut conflicts = 0;
        loop {
            let next = match next_step(name, existing.as_ref()) {
                Ok(next) => next,
                Err(e) => return Err(self.name_blocking(e, existing.as_ref()).await),
            };
            if let (Next::Wait | Next::Recreate, Some(stack)) = (next, existing.as_ref()) {
                self.clear_the_way(name, stack, next, on_event).await?;
                existing = self.describe(name).await?;
                current = None;
                continue;
            }
            let creating = next == Next::Create;
            let executing = matches!(options.action, Action::Execute(_));
            if let Some(stack) = existing.as_ref().filter(|_| !creating)
                && !options.force
                && !executing
            {
                let is_current = match current {
                    Some(known) => known,
                    None => self.is_current(stack, spec).await?,
                };
                if is_current {
                    return Ok((unchanged(name, Some(stack)), existing));
                }
            }
            let proposal = match &options.action {
                Action::Execute(change_set) => self.adopt(spec, change_set, creating).await?,
                Action::Apply | Action::Propose => {
                    let change_set = match options.action {
                        Action::Propose => format!("{REVIEW_PREFIX}{}", unix_millis()),
                        _ => CHANGE_SET.to_string(),
                    };
                    match self
                        .propose(spec, &change_set, creating, existing.is_some())
                        .await?
                    {
                        Step::Ready(proposal) => proposal,
                        Step::NoChanges => {
                            return Ok((unchanged(name, existing.as_ref()), existing));
                        }
                        Step::Busy(why) => {
                            conflicts += 1;
                            self.give_way(name, &why, conflicts, on_event).await?;
                            existing = self.describe(name).await?;
                            current = None;
                            continue;
                        }
                    }
                }
            };
            if let Action::Propose = options.action {
                // Left for review: Ctrl-C from here on must not delete it.
                pending().take();
                let report = DeployReport {
                    stack: name.into(),
                    artifact: None,
                    outcome: Outcome::Proposed,
                    change_set: Some(proposal.made.name),
                    changes: proposal.changes,
                    status: existing
                        .as_ref()
                        .map_or("REVIEW_IN_PROGRESS", status_of)
                        .into(),
                    outputs: existing.as_ref().map(outputs_of).unwrap_or_default(),
                };
                return Ok((report, existing));
            }
            if on_event.planned(name, &proposal.changes) == Go::IfConfirmed
                && !crate::prompt::answered_yes().await
            {
                pending().take();
                self.discard(name, &proposal.made).await?;
                return Err(Error::Declined { stack: name.into() });
            }
            // The token makes an SDK retry of a call that timed out harmless while the update
            // runs.
            let executed = self
                .cfn
                .execute_change_set()
                .change_set_name(&proposal.made.change_set)
                .set_client_request_token(proposal.operation.token.clone())
                .send()
                .await;
            pending().take();
            if let Err(e) = executed {
                let lost = is_missing_stack(&e)
                    || e.as_service_error().is_some_and(|se| {
                        se.is_change_set_not_found_exception()
                            || se.is_invalid_change_set_status_exception()
                    });
                if lost && !executing {
                    // Another deploy cleared it, or ran first and made it obsolete.
                    conflicts += 1;
                    let _ = self
                        .delete_change_set(name, &proposal.made.change_set)
                        .await;
                    self.give_way(name, &error_text(&e), conflicts, on_event)
                        .await?;
                    existing = self.describe(name).await?;
                    current = None;
                    continue;
                }
                if !executing {
                    let _ = self.discard(name, &proposal.made).await;
                }
                return Err(api("ExecuteChangeSet", name, &e));
            }
            let stack = self
                .wait(
                    name,
                    &proposal.made.stack,
                    &proposal.operation,
                    Expect::Done,
                    on_event,
                )
                .await?
                .ok_or_else(|| Error::Failed {
                    stack: name.into(),
                    status: "DELETE_COMPLETE".into(),
                    failure: None,
                })?;
            let report = DeployReport {
                stack: name.into(),
                artifact: None,
                outcome: if creating {
                    Outcome::Created
                } else {
                    Outcome::Updated
                },
                change_set: None,
                changes: proposal.changes,
                status: status_of(&stack).into(),
                outputs: outputs_of(&stack),
            };
            return Ok((report, Some(stack)));
        }
    }
}
