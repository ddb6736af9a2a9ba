//! Change sets: made, awaited, shown as rows, executed or cleaned up, never left behind.

use super::client::Stacks;
use super::error::{Error, api};
use super::events::{Observer, Operation, is_missing_stack};
use super::spec::{
    Change, FINGERPRINT_TAG, PropertyChange, StackSpec, TEMPLATE_BODY_LIMIT, status_of,
};
use super::states::{Next, next_step};
use crate::aws::error_text;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Parameter, Tag};

/// The deployer's change set of a stack: one name, so an interrupted run's is found and removed.
pub(super) const CHANGE_SET: &str = "deployer-change";
/// Change sets left for review (`deploy --no-execute`) are named with this and the time; a
/// deploy never removes them (CloudFormation marks them obsolete once the stack changes).
pub(super) const REVIEW_PREFIX: &str = "deployer-review-";
/// A change set's description: what it was made from, so `--change-set` runs only the one made
/// from the same spec.
pub(super) const DESCRIPTION_PREFIX: &str = "deployer fingerprint ";

/// A change set made and ready to execute.
pub(super) struct Proposal {
    pub(super) made: Made,
    /// Its execution: the token sent with it (a retried call is then the same one) and the
    /// server's time the change set was made.
    pub(super) operation: Operation,
    pub(super) changes: Vec<Change>,
}

/// A change set made, by its ARN (and the name it was given) and its stack's id.
#[derive(Debug, Clone)]
pub(super) struct Made {
    pub(super) change_set: String,
    pub(super) name: String,
    pub(super) stack: String,
    pub(super) creating: bool,
}

/// What making a change set came to.
pub(super) enum Step {
    Ready(Proposal),
    /// The stack already is as asked; the change set is gone again.
    NoChanges,
    /// Another deploy of the same stack got there first: why, as CloudFormation said it.
    Busy(String),
}

/// What a change set became while we waited for it.
pub(super) enum Awaited {
    Ready(Vec<Change>, Option<aws_smithy_types::DateTime>),
    Empty,
    /// Deleted under us: another deploy cleared it to make its own.
    Gone,
}

/// The change set this process made and has not executed, so Ctrl-C can delete it.
pub(super) static PENDING: std::sync::Mutex<Option<(Client, Made)>> = std::sync::Mutex::new(None);

pub(super) fn pending() -> std::sync::MutexGuard<'static, Option<(Client, Made)>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// On Ctrl-C: deletes the change set this process made and did not execute, and the empty stack
/// a CREATE change set made. None when nothing was pending; else what was deleted.
pub async fn abandon() -> Option<Result<String, Error>> {
    let (client, made) = pending().take()?;
    let stacks = Stacks::new(client);
    Some(stacks.discard(&made.stack, &made).await.map(|()| {
        if made.creating {
            format!(
                "deleted change set {} and the empty stack it made",
                made.change_set
            )
        } else {
            format!("deleted change set {}", made.change_set)
        }
    }))
}

/// The resource rows of one page of a change set.
pub(super) fn rows(
    cs: &aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput,
) -> Vec<Change> {
    cs.changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .map(|rc| Change {
            action: rc
                .action()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            logical_id: rc.logical_resource_id().unwrap_or_default().into(),
            resource_type: rc.resource_type().unwrap_or_default().into(),
            replacement: rc.replacement().map(|r| r.as_str().to_string()),
            properties: properties(rc),
        })
        .collect()
}

/// The properties a resource change touches, each once (CloudFormation lists a property again
/// for each cause: the template, a parameter, another resource).
pub(super) fn properties(
    rc: &aws_sdk_cloudformation::types::ResourceChange,
) -> Vec<PropertyChange> {
    let mut out: Vec<PropertyChange> = vec![];
    for target in rc.details().iter().filter_map(|d| d.target()) {
        let attribute = target.attribute().map(|a| a.as_str()).unwrap_or_default();
        // `/Properties/Environment/Variables/X` where given; else the attribute and the name.
        let path = match (target.path(), target.name()) {
            (Some(path), _) => path.trim_start_matches('/').replace('/', "."),
            (None, Some(name)) => format!("{attribute}.{name}"),
            (None, None) => attribute.to_string(),
        };
        let change = PropertyChange {
            path,
            recreation: target.requires_recreation().map(|r| r.as_str().to_string()),
            before: target.before_value().map(str::to_string),
            after: target.after_value().map(str::to_string),
        };
        match out.iter_mut().find(|c| c.path == change.path) {
            // The one that may replace the resource says more.
            Some(known) if known.recreation.as_deref() == Some("Never") => *known = change,
            Some(_) => {}
            None => out.push(change),
        }
    }
    out
}

impl Stacks {
    /// Whether another deploy's change set of the stack is being made or waits to run.
    pub(super) async fn others_pending(&self, name: &str) -> Result<bool, Error> {
        use aws_sdk_cloudformation::types::ExecutionStatus;
        Ok(self.our_change_sets(name).await?.iter().any(|s| {
            s.status() != Some(&ChangeSetStatus::Failed)
                && matches!(
                    s.execution_status(),
                    Some(ExecutionStatus::Available | ExecutionStatus::Unavailable)
                )
        }))
    }

    /// The change sets named `deployer-change` on the stack; none when the stack is gone.
    pub(super) async fn our_change_sets(
        &self,
        name: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::ChangeSetSummary>, Error> {
        let mut ours = self.change_sets(name).await?;
        ours.retain(|s| s.change_set_name() == Some(CHANGE_SET));
        Ok(ours)
    }

    /// Every change set of the stack, every page; none when the stack is gone.
    pub async fn change_sets(
        &self,
        name: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::ChangeSetSummary>, Error> {
        let mut pages = self
            .cfn
            .list_change_sets()
            .stack_name(name)
            .into_paginator()
            .send();
        let mut all = vec![];
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => all.extend(page.summaries.unwrap_or_default()),
                Err(e) if is_missing_stack(&e) => return Ok(vec![]),
                Err(e) => return Err(api("ListChangeSets", name, &e)),
            }
        }
        Ok(all)
    }

    /// The parameters a change set (by its id) would give its stack; none when it is gone.
    pub async fn change_set_parameters(
        &self,
        id: &str,
    ) -> Result<Vec<aws_sdk_cloudformation::types::Parameter>, Error> {
        match self
            .cfn
            .describe_change_set()
            .change_set_name(id)
            .send()
            .await
        {
            Ok(cs) => Ok(cs.parameters.unwrap_or_default()),
            Err(e) if is_change_set_gone(&e) => Ok(vec![]),
            Err(e) => Err(api("DescribeChangeSet", id, &e)),
        }
    }

    /// Makes change set `change_set` for `spec` and waits until it is ready. A change set that
    /// fails or is interrupted by an error is deleted (and the empty stack a CREATE change set
    /// made), so nothing is left behind.
    pub(super) async fn propose(
        &self,
        spec: &StackSpec,
        change_set: &str,
        creating: bool,
        stack_exists: bool,
    ) -> Result<Step, Error> {
        let name = spec.name.as_str();
        if spec.template_url.is_none() && spec.template_body.len() > TEMPLATE_BODY_LIMIT {
            return Err(Error::Refused(format!(
                "the template of stack {name} is {} bytes, more than the {TEMPLATE_BODY_LIMIT} CloudFormation takes inline, and this stack has no bucket to send it through",
                spec.template_body.len()
            )));
        }
        if stack_exists && change_set == CHANGE_SET {
            // Change sets of an earlier, interrupted run: the name is fixed, so it must go.
            self.clear_change_sets(name).await?;
        }
        let mut operation = Operation::started();
        let token = operation.token.clone().unwrap_or_default();
        let (body, url) = match &spec.template_url {
            Some(url) => (None, Some(url.clone())),
            None => (Some(spec.template_body.clone()), None),
        };
        let created = self
            .cfn
            .create_change_set()
            .stack_name(name)
            .change_set_name(change_set)
            .client_token(&token)
            .change_set_type(if creating {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .set_template_body(body)
            .set_template_url(url)
            .set_parameters(Some(
                spec.parameters
                    .iter()
                    .map(|(k, v)| {
                        Parameter::builder()
                            .parameter_key(k)
                            .parameter_value(v)
                            .build()
                    })
                    .collect(),
            ))
            .set_tags(Some(
                spec.tags
                    .iter()
                    .chain([&(FINGERPRINT_TAG.to_string(), spec.fingerprint.clone())])
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .set_role_arn(spec.execution_role_arn.clone())
            .description(format!("{DESCRIPTION_PREFIX}{}", spec.fingerprint))
            .send()
            .await;
        let created = match created {
            Ok(out) => out,
            Err(e) => {
                let text = error_text(&e);
                if is_no_changes(&text) {
                    return Ok(Step::NoChanges);
                }
                if e.as_service_error()
                    .is_some_and(|se| se.is_already_exists_exception())
                    || is_operation_running(&e)
                {
                    return Ok(Step::Busy(text));
                }
                return Err(Error::Api {
                    action: "CreateChangeSet",
                    stack: name.into(),
                    message: text,
                });
            }
        };
        // By its ARN from here on: a name can stand for a second, older stack (a CREATE change
        // set for a name whose earlier one was never executed).
        let made = Made {
            change_set: created.id().unwrap_or(change_set).to_string(),
            name: change_set.to_string(),
            stack: created.stack_id().unwrap_or(name).to_string(),
            creating,
        };
        *pending() = Some((self.cfn.clone(), made.clone()));
        // A ready change set is executed even when it lists no resource changes: its parameters
        // or tags differ from the stack's, and only executing applies them. (AWS fails such a
        // change set instead; the emulator, whose diff ignores parameters, returns it ready and
        // empty.)
        let awaited = self.await_change_set(name, &made.change_set).await;
        if !matches!(awaited, Ok(Awaited::Ready(..))) {
            pending().take();
        }
        match awaited {
            Ok(Awaited::Ready(changes, since)) => {
                operation.since = since;
                Ok(Step::Ready(Proposal {
                    made,
                    operation,
                    changes,
                }))
            }
            Ok(Awaited::Empty) => {
                self.discard(name, &made).await?;
                Ok(Step::NoChanges)
            }
            Ok(Awaited::Gone) => Ok(Step::Busy(format!(
                "change set {change_set} was deleted while it was being made"
            ))),
            Err(e) => {
                // The change set's own failure is the one worth reporting.
                let _ = self.discard(name, &made).await;
                Err(e)
            }
        }
    }

    /// The change set `change_set`, made earlier by `--no-execute` from this very spec, ready
    /// to execute: anything else is refused, naming what differs.
    pub(super) async fn adopt(
        &self,
        spec: &StackSpec,
        change_set: &str,
        creating: bool,
    ) -> Result<Proposal, Error> {
        use aws_sdk_cloudformation::types::ExecutionStatus;
        let name = spec.name.as_str();
        let cs = match self
            .cfn
            .describe_change_set()
            .stack_name(name)
            .change_set_name(change_set)
            .send()
            .await
        {
            Ok(cs) => cs,
            Err(e) if is_change_set_gone(&e) => {
                return Err(Error::Refused(format!(
                    "stack {name} has no change set {change_set}: make one with `deployer deploy --no-execute`, which prints its name"
                )));
            }
            Err(e) => return Err(api("DescribeChangeSet", name, &e)),
        };
        // By the description: the emulator returns a change set's tags empty.
        let made_from = cs
            .description()
            .and_then(|d| d.strip_prefix(DESCRIPTION_PREFIX));
        if made_from != Some(spec.fingerprint.as_str()) {
            return Err(Error::Refused(format!(
                "change set {change_set} of stack {name} was made from another template, parameters or artifact than this deploy's (fingerprint {} here, {} there): refusing to execute it; make a new one with --no-execute",
                spec.fingerprint,
                made_from.unwrap_or("none")
            )));
        }
        if cs.status() != Some(&ChangeSetStatus::CreateComplete)
            || cs.execution_status() != Some(&ExecutionStatus::Available)
        {
            return Err(Error::Refused(format!(
                "change set {change_set} of stack {name} cannot be executed: it is {} and {}{}; make a new one with --no-execute",
                cs.status().map_or("of no status", |s| s.as_str()),
                cs.execution_status()
                    .map_or("of no execution status", |s| s.as_str()),
                cs.status_reason()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
        }
        let made = Made {
            change_set: cs.change_set_id().unwrap_or(change_set).to_string(),
            name: change_set.to_string(),
            stack: cs.stack_id().unwrap_or(name).to_string(),
            creating,
        };
        let changes = self.all_rows(name, &made.change_set, &cs).await?;
        let mut operation = Operation::started();
        operation.since = cs.creation_time().cloned();
        Ok(Proposal {
            made,
            operation,
            changes,
        })
    }

    /// Deletes the deployer's change sets of a stack that nobody executed.
    pub(super) async fn clear_change_sets(&self, name: &str) -> Result<(), Error> {
        for summary in self.our_change_sets(name).await? {
            if let Some(id) = summary.change_set_id() {
                self.delete_change_set(name, id).await?;
            }
        }
        Ok(())
    }

    /// Removes a change set that will not run, and the empty stack a CREATE change set made.
    pub(super) async fn discard(&self, name: &str, made: &Made) -> Result<(), Error> {
        self.delete_change_set(name, &made.change_set).await?;
        if made.creating {
            self.cfn
                .delete_stack()
                .stack_name(&made.stack)
                .send()
                .await
                .map_err(|e| api("DeleteStack", name, &e))?;
        }
        Ok(())
    }

    /// Deletes a change set; one already gone is fine.
    pub(super) async fn delete_change_set(
        &self,
        name: &str,
        change_set: &str,
    ) -> Result<(), Error> {
        match self
            .cfn
            .delete_change_set()
            .change_set_name(change_set)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(e) => Err(api("DeleteChangeSet", name, &e)),
        }
    }

    /// What a deploy of `spec` would change, leaving nothing behind. None: nothing would.
    pub async fn diff(
        &self,
        spec: &StackSpec,
        on_event: &mut dyn Observer,
    ) -> Result<Option<Vec<Change>>, Error> {
        let mut found = self.look(spec, false).await?;
        loop {
            if found.current {
                return Ok(None);
            }
            let next = match next_step(&spec.name, found.stack.as_ref()) {
                Ok(next) => next,
                Err(e) => return Err(self.name_blocking(e, found.stack.as_ref()).await),
            };
            match (next, found.stack.as_ref()) {
                (Next::Wait, Some(stack)) => {
                    self.clear_the_way(&spec.name, stack, next, on_event)
                        .await?;
                    found = self.look(spec, false).await?;
                    continue;
                }
                (Next::Recreate, Some(stack)) => {
                    return Err(Error::Refused(format!(
                        "stack {} is in {}: its first create failed, and the next deploy deletes it and creates it again; a diff has nothing to compare with",
                        spec.name,
                        status_of(stack)
                    )));
                }
                _ => {}
            }
            return match self
                .propose(
                    spec,
                    CHANGE_SET,
                    next == Next::Create,
                    found.stack.is_some(),
                )
                .await?
            {
                Step::Ready(proposal) => {
                    pending().take();
                    self.discard(&spec.name, &proposal.made).await?;
                    Ok(Some(proposal.changes))
                }
                Step::NoChanges => Ok(None),
                Step::Busy(why) => Err(Error::Refused(format!(
                    "another deploy is changing stack {} right now ({why}); diff again when it is done",
                    spec.name
                ))),
            };
        }
    }

    /// The change set's rows, and the server's time it was made, once it is ready.
    pub(super) async fn await_change_set(
        &self,
        name: &str,
        change_set: &str,
    ) -> Result<Awaited, Error> {
        let mut backoff = self.backoff();
        loop {
            let cs = match self
                .cfn
                .describe_change_set()
                // Property-level rows, with values before and after.
                .include_property_values(true)
                .change_set_name(change_set)
                .send()
                .await
            {
                Ok(cs) => cs,
                Err(e) if is_change_set_gone(&e) => return Ok(Awaited::Gone),
                Err(e) => return Err(api("DescribeChangeSet", name, &e)),
            };
            match cs.status() {
                Some(ChangeSetStatus::CreateComplete) => {
                    let changes = self.all_rows(name, change_set, &cs).await?;
                    return Ok(Awaited::Ready(changes, cs.creation_time().cloned()));
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = cs.status_reason().unwrap_or("no reason given").to_string();
                    if is_no_changes(&reason) {
                        return Ok(Awaited::Empty);
                    }
                    return Err(Error::ChangeSetFailed {
                        stack: name.into(),
                        reason,
                    });
                }
                other => {
                    let status = other.map_or("CREATE_PENDING", |s| s.as_str()).to_string();
                    backoff.pause().await.map_err(|limit| Error::TimedOut {
                        stack: name.into(),
                        what: "its change set",
                        status,
                        limit,
                    })?;
                }
            }
        }
    }

    /// Every row of the change set `change_set` of `stack`, for a reviewer.
    pub async fn change_set_rows(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<Vec<Change>, Error> {
        let first = self
            .cfn
            .describe_change_set()
            // Property-level rows, with values before and after.
            .include_property_values(true)
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| api("DescribeChangeSet", stack, &e))?;
        self.all_rows(stack, change_set, &first).await
    }

    /// Every row of a change set whose first page is `first`: a large one comes in pages.
    pub(super) async fn all_rows(
        &self,
        name: &str,
        change_set: &str,
        first: &aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput,
    ) -> Result<Vec<Change>, Error> {
        let mut changes = rows(first);
        let mut next = first.next_token().map(str::to_string);
        while let Some(token) = next {
            let page = self
                .cfn
                .describe_change_set()
                // Property-level rows, with values before and after.
                .include_property_values(true)
                .change_set_name(change_set)
                .next_token(token)
                .send()
                .await
                .map_err(|e| api("DescribeChangeSet", name, &e))?;
            changes.extend(rows(&page));
            next = page.next_token().map(str::to_string);
        }
        Ok(changes)
    }
}

/// DescribeChangeSet of a change set that is not there: ChangeSetNotFound on AWS (and a
/// ValidationError "does not exist" when its stack is gone); the emulator says the latter for both.
pub(super) fn is_change_set_gone(
    e: &aws_sdk_cloudformation::error::SdkError<
        aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    is_missing_stack(e)
        || e.as_service_error()
            .is_some_and(|se| se.is_change_set_not_found_exception())
}

/// CloudFormation refusing a change set because an operation is running on the stack: a
/// ValidationError (no code of its own), "... is in UPDATE_IN_PROGRESS state and can not be
/// updated".
pub(super) fn is_operation_running<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        se.code() == Some("ValidationError")
            && se
                .message()
                .is_some_and(|m| m.contains("_IN_PROGRESS state"))
    })
}

/// AWS says "didn't contain changes" on a change set; the emulator refuses the change set
/// itself with "No updates are to be performed". Both mean the stack is already as asked.
pub(super) fn is_no_changes(text: &str) -> bool {
    text.contains("didn't contain changes") || text.contains("No updates are to be performed")
}
