//! One CloudFormation stack: deploy through a change set, stream its events until it settles,
//! report what failed and why.

use crate::aws::error_text;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, Stack, StackEvent, Tag,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CloudFormation {action} on stack {stack} failed: {message}")]
    Api {
        action: &'static str,
        stack: String,
        message: String,
    },
    #[error("the change set for {stack} failed: {reason}")]
    ChangeSetFailed { stack: String, reason: String },
    #[error("{}", failed_message(stack, status, failure.as_deref()))]
    Failed {
        stack: String,
        status: String,
        failure: Option<Box<FailedResource>>,
    },
    #[error(
        "stack {stack} is in UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back its last update; fix the resource named in its events, then run the same command with --continue-rollback"
    )]
    RollbackFailed { stack: String },
    #[error("drift detection on stack {stack} failed: {reason}")]
    DriftFailed { stack: String, reason: String },
    #[error(
        "gave up waiting for {what} of stack {stack} after {} (--timeout): it is still {status}; the operation goes on in AWS: `deployer status` shows it, and the next deploy waits for it",
        humantime::format_duration(*limit)
    )]
    TimedOut {
        stack: String,
        what: &'static str,
        status: String,
        limit: Duration,
    },
}

fn failed_message(stack: &str, status: &str, failure: Option<&FailedResource>) -> String {
    match failure {
        Some(f) => format!(
            "stack {stack} ended in {status}: resource {} ({}) went {}: {}",
            f.logical_id, f.resource_type, f.status, f.reason
        ),
        None => format!(
            "stack {stack} ended in {status}; no resource event names a failure, see `aws cloudformation describe-stack-events --stack-name {stack}`"
        ),
    }
}

/// The first resource that failed, as its event tells.
#[derive(Debug, Clone, Serialize)]
pub struct FailedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// What a deploy is asked to make the stack look like.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub name: String,
    /// A digest of everything the stack is made from, kept in the `deployer-fingerprint` tag.
    pub fingerprint: String,
    pub template_body: String,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Keep the stack from being deleted (prod).
    pub termination_protection: bool,
    /// The role CloudFormation acts as; None acts as the caller.
    pub execution_role_arn: Option<String>,
}

/// Who watches a stack operation: each new event, and each poll while it waits.
pub trait Observer {
    fn event(&mut self, event: &Event);
    fn waiting(&mut self, _stack: &str, _status: &str, _elapsed: Duration) {}
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
}

/// One row of a change set.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Updated,
    NoChanges,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    pub sha256: String,
    /// False when the bucket already held it.
    pub uploaded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactInfo>,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

pub struct Backoff {
    delay: Duration,
    max: Duration,
    deadline: std::time::Instant,
    limit: Duration,
}

impl Backoff {
    /// Sleeps until the next poll, never past the deadline; Err(limit) once it has passed.
    pub async fn pause(&mut self) -> Result<(), Duration> {
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(self.limit);
        }
        tokio::time::sleep(self.delay.min(left)).await;
        self.delay = (self.delay * 2).min(self.max);
        Ok(())
    }
}

static WAIT_LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// How long a wait for a stack operation, a change set or drift detection may take (`--timeout`);
/// set once, from the command line.
pub fn set_wait_limit(limit: Duration) {
    let _ = WAIT_LIMIT.set(limit);
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
    fn started() -> Self {
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

/// The deployer's change set of a stack: one name, so an interrupted run's is found and removed.
const CHANGE_SET: &str = "deployer-change";

/// A change set made and ready to execute.
struct Proposal {
    made: Made,
    /// Its execution: the token sent with it (a retried call is then the same one) and the
    /// server's time the change set was made.
    operation: Operation,
    changes: Vec<Change>,
}

/// A change set made, by its ARN and its stack's id.
struct Made {
    change_set: String,
    stack: String,
    creating: bool,
}

/// The resource rows of one page of a change set.
fn rows(
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
        })
        .collect()
}

/// Talks to one account's CloudFormation.
pub struct Stacks {
    cfn: Client,
    /// The first wait between polls; it doubles up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
    /// How long one wait may last before it gives up, saying the operation goes on in AWS.
    pub timeout: Duration,
}

impl Stacks {
    pub fn new(cfn: Client) -> Self {
        Stacks {
            cfn,
            poll: Duration::from_millis(250),
            max_poll: Duration::from_secs(5),
            timeout: WAIT_LIMIT
                .get()
                .copied()
                .unwrap_or(Duration::from_secs(3600)),
        }
    }

    /// Every live stack in the account and region.
    pub async fn all(&self) -> Result<Vec<Stack>, Error> {
        let mut pages = self.cfn.describe_stacks().into_paginator().send();
        let mut stacks = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("DescribeStacks", "*", &e))?;
            stacks.extend(page.stacks.unwrap_or_default());
        }
        Ok(stacks)
    }

    /// The waits between polls: from `poll`, doubling up to `max_poll`, for `timeout` at most.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            delay: self.poll,
            max: self.max_poll,
            deadline: std::time::Instant::now() + self.timeout,
            limit: self.timeout,
        }
    }

    pub fn client(&self) -> &Client {
        &self.cfn
    }

    /// The stack, or None when it does not exist (or was deleted).
    pub async fn describe(&self, name: &str) -> Result<Option<Stack>, Error> {
        match self.cfn.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out
                .stacks
                .unwrap_or_default()
                .into_iter()
                .next()
                .filter(|s| status_of(s) != "DELETE_COMPLETE")),
            Err(e) if is_missing_stack(&e) => Ok(None),
            Err(e) => Err(api("DescribeStacks", name, &e)),
        }
    }

    /// Creates or updates the stack to match `spec`, calling `on_event` for each stack event,
    /// and turns termination protection on when the spec asks for it.
    pub async fn deploy(
        &self,
        spec: &StackSpec,
        on_event: &mut dyn Observer,
    ) -> Result<DeployReport, Error> {
        let existing = self.describe(&spec.name).await?;
        self.deploy_known(spec, existing, on_event).await
    }

    /// `deploy` for a caller that has just described the stack (`existing`), saving a call.
    pub async fn deploy_known(
        &self,
        spec: &StackSpec,
        existing: Option<Stack>,
        on_event: &mut dyn Observer,
    ) -> Result<DeployReport, Error> {
        let (report, stack) = self.apply(spec, existing, on_event).await?;
        let protected = stack.and_then(|s| s.enable_termination_protection);
        if spec.termination_protection && protected != Some(true) {
            self.cfn
                .update_termination_protection()
                .stack_name(&spec.name)
                .enable_termination_protection(true)
                .send()
                .await
                .map_err(|e| api("UpdateTerminationProtection", &spec.name, &e))?;
            on_event.event(&note(
                &spec.name,
                &report.status,
                "termination protection turned on",
            ));
        }
        Ok(report)
    }

    /// The change itself: the report, and the stack as it ended.
    async fn apply(
        &self,
        spec: &StackSpec,
        mut existing: Option<Stack>,
        on_event: &mut dyn Observer,
    ) -> Result<(DeployReport, Option<Stack>), Error> {
        let name = spec.name.as_str();
        if let Some(stack) = &existing {
            let status = status_of(stack);
            if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" {
                // Someone else's operation (or our own, interrupted): let it settle first.
                let theirs = Operation {
                    token: None,
                    since: stack.last_updated_time().or(stack.creation_time()).cloned(),
                };
                self.wait(name, &theirs, on_event).await.ok();
                existing = self.describe(name).await?;
            }
        }
        let mut deleted = false;
        let change_set_type = match existing.as_ref().map(status_of) {
            None | Some("REVIEW_IN_PROGRESS") => ChangeSetType::Create,
            Some("ROLLBACK_COMPLETE") => {
                // A failed first create leaves a stack that can only be deleted.
                on_event.event(&note(
                    name,
                    "ROLLBACK_COMPLETE",
                    "the first create had failed; deleting the stack to create it again",
                ));
                self.delete(name, on_event).await?;
                deleted = true;
                ChangeSetType::Create
            }
            Some("UPDATE_ROLLBACK_FAILED") => {
                return Err(Error::RollbackFailed { stack: name.into() });
            }
            // Already made from exactly this: no change set, no waiting.
            Some(_) if existing.as_ref().is_some_and(|s| is_current(s, spec)) => {
                return Ok((unchanged(name, existing.as_ref()), existing));
            }
            Some(_) => ChangeSetType::Update,
        };

        let Some(proposal) = self
            .propose(
                spec,
                change_set_type.clone(),
                existing.is_some() && !deleted,
            )
            .await?
        else {
            return Ok((unchanged(name, existing.as_ref()), existing));
        };
        let changes = proposal.changes;

        // The token makes an SDK retry of a call that timed out harmless while the update runs.
        self.cfn
            .execute_change_set()
            .change_set_name(&proposal.made.change_set)
            .set_client_request_token(proposal.operation.token.clone())
            .send()
            .await
            .map_err(|e| api("ExecuteChangeSet", name, &e))?;
        let stack = self
            .wait(name, &proposal.operation, on_event)
            .await?
            .ok_or_else(|| Error::Failed {
                stack: name.into(),
                status: "DELETE_COMPLETE".into(),
                failure: None,
            })?;
        let report = DeployReport {
            stack: name.into(),
            artifact: None,
            outcome: if change_set_type == ChangeSetType::Create {
                Outcome::Created
            } else {
                Outcome::Updated
            },
            changes,
            status: status_of(&stack).into(),
            outputs: outputs_of(&stack),
        };
        Ok((report, Some(stack)))
    }

    /// Makes a change set for `spec` and waits until it is ready, or None when the stack is
    /// already as asked. A change set that fails or is interrupted by an error is deleted (and the
    /// empty stack a CREATE change set made), so nothing is left behind.
    async fn propose(
        &self,
        spec: &StackSpec,
        change_set_type: ChangeSetType,
        stack_exists: bool,
    ) -> Result<Option<Proposal>, Error> {
        let name = spec.name.as_str();
        if stack_exists {
            // Change sets of an earlier, interrupted run: the name is fixed, so it must go.
            self.clear_change_sets(name).await?;
        }
        let mut operation = Operation::started();
        let token = operation.token.clone().unwrap_or_default();
        let created = self
            .cfn
            .create_change_set()
            .stack_name(name)
            .change_set_name(CHANGE_SET)
            .client_token(&token)
            .change_set_type(change_set_type.clone())
            .template_body(&spec.template_body)
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
            .send()
            .await;
        let created = match created {
            Ok(out) => out,
            Err(e) => {
                let text = error_text(&e);
                if is_no_changes(&text) {
                    return Ok(None);
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
            change_set: created.id().unwrap_or(CHANGE_SET).to_string(),
            stack: created.stack_id().unwrap_or(name).to_string(),
            creating: change_set_type == ChangeSetType::Create,
        };
        // A ready change set is executed even when it lists no resource changes: its parameters
        // or tags differ from the stack's (the fingerprint said so), and only executing applies
        // them. (AWS fails such a change set instead; the emulator, whose diff ignores
        // parameters, returns it ready and empty.)
        match self.await_change_set(name, &made.change_set).await {
            Ok(Some((changes, since))) => {
                operation.since = since;
                Ok(Some(Proposal {
                    made,
                    operation,
                    changes,
                }))
            }
            Ok(None) => {
                self.discard(name, &made).await?;
                Ok(None)
            }
            Err(e) => {
                // The change set's own failure is the one worth reporting.
                let _ = self.discard(name, &made).await;
                Err(e)
            }
        }
    }

    /// Deletes the deployer's change sets of a stack that nobody executed.
    async fn clear_change_sets(&self, name: &str) -> Result<(), Error> {
        let mut pages = self
            .cfn
            .list_change_sets()
            .stack_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListChangeSets", name, &e))?;
            for summary in page.summaries() {
                if summary.change_set_name() == Some(CHANGE_SET)
                    && let Some(id) = summary.change_set_id()
                {
                    self.delete_change_set(name, id).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes a change set that will not run, and the empty stack a CREATE change set made.
    async fn discard(&self, name: &str, made: &Made) -> Result<(), Error> {
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

    async fn delete_change_set(&self, name: &str, change_set: &str) -> Result<(), Error> {
        self.cfn
            .delete_change_set()
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| api("DeleteChangeSet", name, &e))?;
        Ok(())
    }

    /// What a deploy of `spec` would change, leaving nothing behind. None: nothing would.
    pub async fn diff(&self, spec: &StackSpec) -> Result<Option<Vec<Change>>, Error> {
        let existing = self.describe(&spec.name).await?;
        if existing
            .as_ref()
            .is_some_and(|s| has_fingerprint(s, &spec.fingerprint))
        {
            return Ok(None);
        }
        // A stack in REVIEW_IN_PROGRESS has never been created: it takes a CREATE.
        let change_set_type = match existing.as_ref().map(status_of) {
            None | Some("REVIEW_IN_PROGRESS") => ChangeSetType::Create,
            Some(_) => ChangeSetType::Update,
        };
        let Some(proposal) = self
            .propose(spec, change_set_type, existing.is_some())
            .await?
        else {
            return Ok(None);
        };
        self.discard(&spec.name, &proposal.made).await?;
        Ok(Some(proposal.changes))
    }

    /// Deletes the stack and waits until it is gone. Absent stacks are already gone.
    pub async fn delete(&self, name: &str, on_event: &mut dyn Observer) -> Result<bool, Error> {
        if self.describe(name).await?.is_none() {
            return Ok(false);
        }
        let operation = Operation::started();
        self.cfn
            .delete_stack()
            .stack_name(name)
            .set_client_request_token(operation.token.clone())
            .send()
            .await
            .map_err(|e| api("DeleteStack", name, &e))?;
        self.wait(name, &operation, on_event).await?;
        Ok(true)
    }

    /// Resumes the rollback of a stack in UPDATE_ROLLBACK_FAILED (after the operator fixed the
    /// resource that blocked it), and waits until it is rolled back.
    pub async fn continue_rollback(
        &self,
        name: &str,
        on_event: &mut dyn Observer,
    ) -> Result<(), Error> {
        let operation = Operation::started();
        self.cfn
            .continue_update_rollback()
            .stack_name(name)
            .set_client_request_token(operation.token.clone())
            .send()
            .await
            .map_err(|e| api("ContinueUpdateRollback", name, &e))?;
        match self.wait(name, &operation, on_event).await {
            Err(Error::Failed { status, .. }) if status == "UPDATE_ROLLBACK_COMPLETE" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The change set's rows, and the server's time it was made, once it is ready; None when it
    /// holds no changes.
    async fn await_change_set(
        &self,
        name: &str,
        change_set: &str,
    ) -> Result<Option<(Vec<Change>, Option<aws_smithy_types::DateTime>)>, Error> {
        let mut backoff = self.backoff();
        loop {
            let cs = self
                .cfn
                .describe_change_set()
                .change_set_name(change_set)
                .send()
                .await
                .map_err(|e| api("DescribeChangeSet", name, &e))?;
            match cs.status() {
                Some(ChangeSetStatus::CreateComplete) => {
                    // A large change set comes in pages.
                    let mut changes = rows(&cs);
                    let mut next = cs.next_token().map(str::to_string);
                    while let Some(token) = next {
                        let page = self
                            .cfn
                            .describe_change_set()
                            .change_set_name(change_set)
                            .next_token(token)
                            .send()
                            .await
                            .map_err(|e| api("DescribeChangeSet", name, &e))?;
                        changes.extend(rows(&page));
                        next = page.next_token().map(str::to_string);
                    }
                    return Ok(Some((changes, cs.creation_time().cloned())));
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = cs.status_reason().unwrap_or("no reason given").to_string();
                    if is_no_changes(&reason) {
                        return Ok(None);
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

    /// Polls until the stack leaves every *_IN_PROGRESS state, streaming new events. Success is
    /// a *_COMPLETE that is not a rollback (the stack), or the stack being gone (None).
    pub async fn wait(
        &self,
        name: &str,
        operation: &Operation,
        on_event: &mut dyn Observer,
    ) -> Result<Option<Stack>, Error> {
        let mut seen = HashSet::new();
        let mut first_failure: Option<Box<FailedResource>> = None;
        // Events without a token count from the operation's start on the server's clock, or,
        // where that is not known, on ours (a second early, for the rounding).
        let since_secs = operation.since.as_ref().map_or_else(
            || aws_smithy_types::DateTime::from(std::time::SystemTime::now()).secs() - 1,
            |t| t.secs(),
        );
        let started = std::time::Instant::now();
        let mut backoff = self.backoff();
        loop {
            let stack = match self.cfn.describe_stacks().stack_name(name).send().await {
                Ok(out) => out.stacks.unwrap_or_default().into_iter().next(),
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
            let events = self
                .new_events(name, operation, since_secs, &mut seen)
                .await?;
            for ev in &events {
                if first_failure.is_none() && ev.status.ends_with("_FAILED") {
                    first_failure = Some(Box::new(FailedResource {
                        logical_id: ev.logical_id.clone(),
                        resource_type: ev.resource_type.clone(),
                        status: ev.status.clone(),
                        reason: ev
                            .reason
                            .clone()
                            .unwrap_or_else(|| "no reason given".into()),
                    }));
                }
                on_event.event(ev);
            }
            let Some(stack) = stack else {
                return Ok(None);
            };
            let status = status_of(&stack).to_string();
            on_event.waiting(name, &status, started.elapsed());
            if !status.ends_with("_IN_PROGRESS") {
                return if is_settled_ok(&status) {
                    Ok(Some(stack))
                } else if status == "UPDATE_ROLLBACK_FAILED" {
                    Err(Error::RollbackFailed { stack: name.into() })
                } else {
                    Err(Error::Failed {
                        stack: name.into(),
                        status,
                        failure: first_failure,
                    })
                };
            }
            backoff.pause().await.map_err(|limit| Error::TimedOut {
                stack: name.into(),
                what: "the operation",
                status,
                limit,
            })?;
        }
    }

    /// Events not reported yet, oldest first.
    /// The operation's events not reported yet, oldest first. Pages back (newest first) until
    /// an event already looked at, or one from before the operation.
    async fn new_events(
        &self,
        name: &str,
        operation: &Operation,
        since_secs: i64,
        seen: &mut HashSet<String>,
    ) -> Result<Vec<Event>, Error> {
        let mut fresh: Vec<Event> = vec![];
        let mut next: Option<String> = None;
        loop {
            let out = match self
                .cfn
                .describe_stack_events()
                .stack_name(name)
                .set_next_token(next.take())
                .send()
                .await
            {
                Ok(out) => out,
                // Events missed now are read on the next poll.
                Err(e) if is_missing_stack(&e) || is_throttling(&e) => {
                    break;
                }
                Err(e) => return Err(api("DescribeStackEvents", name, &e)),
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
    }
}

/// A time as AWS writes timestamps (RFC 3339).
pub fn time_text(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()
}

/// The current time as AWS writes timestamps.
pub fn now_text() -> String {
    time_text(&aws_smithy_types::DateTime::from(
        std::time::SystemTime::now(),
    ))
    .unwrap_or_default()
}

/// An event of the deployer's own, for what CloudFormation does not report itself.
fn note(stack: &str, status: &str, reason: &str) -> Event {
    Event {
        timestamp: now_text(),
        logical_id: stack.into(),
        resource_type: "AWS::CloudFormation::Stack".into(),
        status: status.into(),
        reason: Some(reason.into()),
    }
}

pub fn status_of(stack: &Stack) -> &str {
    stack
        .stack_status()
        .map(|s| s.as_str())
        .unwrap_or("UNKNOWN")
}

/// The value of the stack's tag `key`, if it has one.
pub fn tag_of<'a>(stack: &'a Stack, key: &str) -> Option<&'a str> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub fn outputs_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect()
}

/// On AWS, executing a change set updates the stack's tags. The emulator keeps the tags the stack
/// was created with, so there a deploy of A, then B, then A again finds A's tag and reports no
/// changes for the third: tests on the emulator avoid going back to an earlier state.
pub const FINGERPRINT_TAG: &str = "deployer-fingerprint";

/// The report of a deploy that found `stack` already as asked.
fn unchanged(name: &str, stack: Option<&Stack>) -> DeployReport {
    DeployReport {
        stack: name.into(),
        artifact: None,
        outcome: Outcome::NoChanges,
        changes: vec![],
        status: stack.map(status_of).unwrap_or("NONE").into(),
        outputs: stack.map(outputs_of).unwrap_or_default(),
    }
}

fn has_fingerprint(stack: &Stack, fingerprint: &str) -> bool {
    tag_of(stack, FINGERPRINT_TAG) == Some(fingerprint)
}

/// Whether the stack already is what `spec` asks for, settled: a deploy of it changes nothing.
pub fn is_current(stack: &Stack, spec: &StackSpec) -> bool {
    is_settled_ok(status_of(stack)) && has_fingerprint(stack, &spec.fingerprint)
}

/// A finished operation that did what it was asked (not a rollback).
fn is_settled_ok(status: &str) -> bool {
    status.ends_with("_COMPLETE") && !status.contains("ROLLBACK")
}

/// CloudFormation's answer to a call on a stack that is not there: a ValidationError (it has no
/// error code of its own), "Stack with id NAME does not exist".
fn is_missing_stack<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        se.code() == Some("ValidationError")
            && se.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// Throttled by error code (CloudFormation says Throttling; others ThrottlingException).
fn is_throttling<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> bool {
    e.as_service_error().is_some_and(|se| {
        matches!(
            se.code(),
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        )
    })
}

/// AWS says "didn't contain changes" on a change set; the emulator refuses the change set
/// itself with "No updates are to be performed". Both mean the stack is already as asked.
fn is_no_changes(text: &str) -> bool {
    text.contains("didn't contain changes") || text.contains("No updates are to be performed")
}

pub(crate) fn api<E>(
    action: &'static str,
    stack: &str,
    e: &aws_sdk_cloudformation::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Error
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    Error::Api {
        action,
        stack: stack.into(),
        message: error_text(e),
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}
