//! One CloudFormation stack: deploy through a change set, stream its events until it settles,
//! report what failed and why.

use crate::aws::error_text;
pub use crate::events::{Event, FailedResource, Go, Observer, Operation, now_text, time_text};
use crate::events::{EventStream, is_missing_stack, is_throttling, note, unix_millis};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, Stack, StackStatus, Tag, TemplateStage,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CloudFormation {action} on stack {stack} failed: {message}")]
    Api {
        action: &'static str,
        stack: String,
        message: String,
    },
    #[error("the change set for {stack} failed: {reason}{}", import_hint(reason))]
    ChangeSetFailed { stack: String, reason: String },
    #[error("{}", failed_message(stack, status, failure.as_deref()))]
    Failed {
        stack: String,
        status: String,
        failure: Option<Box<FailedResource>>,
    },
    #[error(
        "stack {stack} is in UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back its last update{}. Fix what blocks them, then run the same deploy with --continue-rollback; a resource that cannot be fixed is left as it is with --continue-rollback --skip-resources ID... (CloudFormation then counts it rolled back: make it match the template by hand)",
        blocked_by(blocking)
    )]
    RollbackFailed {
        stack: String,
        blocking: Vec<FailedResource>,
    },
    #[error(
        "stack {stack} is in DELETE_FAILED: CloudFormation could not delete it{}. Fix what blocks them and run `deployer destroy` again, or delete the stack keeping them with `deployer destroy ... --retain {}` and remove them by hand",
        blocked_by(blocking),
        ids(blocking)
    )]
    DeleteFailed {
        stack: String,
        blocking: Vec<FailedResource>,
    },
    /// A state the deployer cannot move the stack out of by itself.
    #[error("stack {stack} is in {status}: {what_to_do}")]
    Stuck {
        stack: String,
        status: String,
        what_to_do: String,
    },
    /// Something asked of this stack that its state or the request rules out.
    #[error("{0}")]
    Refused(String),
    #[error("drift detection on stack {stack} failed: {reason}")]
    DriftFailed { stack: String, reason: String },
    /// The person at the terminal did not confirm the plan.
    #[error("not confirmed; nothing was changed in {stack} (its change set is deleted)")]
    Declined { stack: String },
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

/// What to do when a change set fails on an `Fn::ImportValue` no stack exports (AWS's reason:
/// "No export named X found"). The emulator resolves no imports, so it never fails this way.
fn import_hint(reason: &str) -> &'static str {
    if reason.contains("No export named") {
        " (the stack that exports it is missing or older than this template: our templates import only from the bootstrap stack of the account and region they go to, so run `deployer bootstrap ENV` there first)"
    } else {
        ""
    }
}

/// ": blocked by A (AWS::X, reason); B (...)", or nothing when no resource says.
fn blocked_by(blocking: &[FailedResource]) -> String {
    if blocking.is_empty() {
        return String::new();
    }
    let list: Vec<String> = blocking
        .iter()
        .map(|f| format!("{} ({}: {})", f.logical_id, f.resource_type, f.reason))
        .collect();
    format!(": blocked by {}", list.join("; "))
}

fn ids(blocking: &[FailedResource]) -> String {
    if blocking.is_empty() {
        return "ID...".into();
    }
    blocking
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect::<Vec<_>>()
        .join(" ")
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

/// What a deploy is asked to make the stack look like.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub name: String,
    /// A digest of everything the stack is made from, kept in the `deployer-fingerprint` tag.
    pub fingerprint: String,
    pub template_body: String,
    /// Where CloudFormation reads a template over TEMPLATE_BODY_LIMIT: the deployer uploads it
    /// first (the body is still what the live template is compared with).
    pub template_url: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Keep the stack from being deleted (prod).
    pub termination_protection: bool,
    /// The role CloudFormation acts as; None acts as the caller.
    pub execution_role_arn: Option<String>,
}

/// The most a template sent inline (TemplateBody) may hold; larger ones go by TemplateURL.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;

/// What a deploy does once the stack is ready for a change.
#[derive(Debug, Clone, Default)]
pub enum Action {
    /// Make a change set and execute it.
    #[default]
    Apply,
    /// Make a change set under a name of its own and leave it for review (`--no-execute`).
    Propose,
    /// Execute this change set, made earlier by a `Propose` of the same spec (`--change-set`).
    Execute(String),
}

/// How a deploy goes about it.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Make a change set even when the stack already matches the spec (`--force`).
    pub force: bool,
    pub action: Action,
}

/// The stack as a deploy found it: its description, and whether it already is what the spec
/// asks for (then nothing needs to be uploaded or changed).
#[derive(Debug, Clone)]
pub struct Found {
    pub stack: Option<Stack>,
    pub current: bool,
}

/// One row of a change set.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Change {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// What a Modify changes, property by property, as CloudFormation describes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<PropertyChange>,
}

/// One property (or the tags, or the metadata) a Modify row changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PropertyChange {
    /// Where in the resource: `Properties.MemorySize`, `Properties.Environment.Variables.X`, `Tags`.
    pub path: String,
    /// Whether changing it replaces the resource: Never, Conditionally or Always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreation: Option<String>,
    /// The values before and after, where CloudFormation gives them (AWS does, with
    /// IncludePropertyValues; the emulator gives none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Updated,
    NoChanges,
    /// A change set made and left for review.
    Proposed,
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
    /// The change set left for review (`--no-execute`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_set: Option<String>,
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

/// The deployer's change set of a stack: one name, so an interrupted run's is found and removed.
const CHANGE_SET: &str = "deployer-change";
/// Change sets left for review (`deploy --no-execute`) are named with this and the time; a
/// deploy never removes them (CloudFormation marks them obsolete once the stack changes).
const REVIEW_PREFIX: &str = "deployer-review-";
/// A change set's description: what it was made from, so `--change-set` runs only the one made
/// from the same spec.
const DESCRIPTION_PREFIX: &str = "deployer fingerprint ";
/// How often one deploy gives way to another that got to the same stack first.
const MAX_CONFLICTS: u32 = 5;

/// A change set made and ready to execute.
struct Proposal {
    made: Made,
    /// Its execution: the token sent with it (a retried call is then the same one) and the
    /// server's time the change set was made.
    operation: Operation,
    changes: Vec<Change>,
}

/// A change set made, by its ARN (and the name it was given) and its stack's id.
#[derive(Debug, Clone)]
struct Made {
    change_set: String,
    name: String,
    stack: String,
    creating: bool,
}

/// What making a change set came to.
enum Step {
    Ready(Proposal),
    /// The stack already is as asked; the change set is gone again.
    NoChanges,
    /// Another deploy of the same stack got there first: why, as CloudFormation said it.
    Busy(String),
}

/// What a change set became while we waited for it.
enum Awaited {
    Ready(Vec<Change>, Option<aws_smithy_types::DateTime>),
    Empty,
    /// Deleted under us: another deploy cleared it to make its own.
    Gone,
}

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

/// The change set this process made and has not executed, so Ctrl-C can delete it.
static PENDING: std::sync::Mutex<Option<(Client, Made)>> = std::sync::Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<(Client, Made)>> {
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

/// What a deploy does with a stack in the state it finds it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Create,
    Update,
    /// An operation is running: wait for it, then look again.
    Wait,
    /// A first create failed: delete what it left, then create.
    Recreate,
}

/// Every state CloudFormation documents, decided one by one; an error is the way out of a state
/// the deployer cannot leave by itself (its `blocking` list is filled in by the caller).
fn next_step(name: &str, stack: Option<&Stack>) -> Result<Next, Error> {
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

/// The states of an operation still running.
fn in_progress(status: &StackStatus) -> bool {
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
            properties: properties(rc),
        })
        .collect()
}

/// The properties a resource change touches, each once (CloudFormation lists a property again
/// for each cause: the template, a parameter, another resource).
fn properties(rc: &aws_sdk_cloudformation::types::ResourceChange) -> Vec<PropertyChange> {
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

/// The stack's id where the description has one (calls by id still find it once deleted).
fn id_of<'a>(stack: &'a Stack, name: &'a str) -> &'a str {
    stack.stack_id().unwrap_or(name)
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
                .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))),
            Err(e) if is_missing_stack(&e) => Ok(None),
            Err(e) => Err(api("DescribeStacks", name, &e)),
        }
    }

    /// The template the stack was last deployed with, as JSON; None without the stack, or with a
    /// template that is not JSON (which the deployer never writes: the caller tells the two apart
    /// by the stack).
    pub async fn template(&self, name: &str) -> Result<Option<serde_json::Value>, Error> {
        match self
            .cfn
            .get_template()
            .stack_name(name)
            .template_stage(TemplateStage::Original)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .template_body()
                .and_then(|body| serde_json::from_str(body).ok())),
            Err(e) if is_missing_stack(&e) => Ok(None),
            Err(e) => Err(api("GetTemplate", name, &e)),
        }
    }

    /// The stack as a deploy of `spec` finds it; `force` counts it as not current whatever it is.
    pub async fn look(&self, spec: &StackSpec, force: bool) -> Result<Found, Error> {
        let stack = self.describe(&spec.name).await?;
        let current = match &stack {
            Some(s) if !force => self.is_current(s, spec).await?,
            _ => false,
        };
        Ok(Found { stack, current })
    }

    /// Whether a deploy of `spec` would change nothing: the stack settled in a state an update
    /// left, and its live template, parameters, tags and execution role all as asked. Only when
    /// everything cheaper matches is the template read (GetTemplate). Values CloudFormation
    /// resolves at deploy time (SSM-typed parameters, `{{resolve:...}}`) may have changed
    /// without a trace here, so a template with any always counts as changed.
    pub async fn is_current(&self, stack: &Stack, spec: &StackSpec) -> Result<bool, Error> {
        use StackStatus as S;
        let settled = matches!(
            stack.stack_status(),
            Some(S::CreateComplete | S::UpdateComplete | S::ImportComplete)
        );
        let tags: BTreeMap<&str, &str> = stack
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
            .collect();
        let wanted_tags: BTreeMap<&str, &str> = spec
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([(FINGERPRINT_TAG, spec.fingerprint.as_str())])
            .collect();
        let parameters: BTreeMap<&str, &str> = stack
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default(),
                    p.parameter_value().unwrap_or_default(),
                )
            })
            .collect();
        let wanted_parameters: BTreeMap<&str, &str> = spec
            .parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !settled
            || tags != wanted_tags
            || parameters != wanted_parameters
            || stack
                .parameters()
                .iter()
                .any(|p| p.resolved_value().is_some())
            || stack.role_arn() != spec.execution_role_arn.as_deref()
            || resolves_at_deploy(&spec.template_body)
        {
            return Ok(false);
        }
        let live = self
            .cfn
            .get_template()
            .stack_name(id_of(stack, &spec.name))
            .template_stage(TemplateStage::Original)
            .send()
            .await
            .map_err(|e| api("GetTemplate", &spec.name, &e))?;
        Ok(live
            .template_body()
            .is_some_and(|live| same_template(live, &spec.template_body)))
    }

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

    /// Waits for the operation running on `stack`, or deletes what a failed first create left.
    async fn clear_the_way(
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
    async fn wait_for_running(
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
    async fn give_way(
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

    /// Whether another deploy's change set of the stack is being made or waits to run.
    async fn others_pending(&self, name: &str) -> Result<bool, Error> {
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
    async fn our_change_sets(
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

    /// `e` with the resources that block the stack, where its state names some.
    async fn name_blocking(&self, e: Error, stack: Option<&Stack>) -> Error {
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

    /// Makes change set `change_set` for `spec` and waits until it is ready. A change set that
    /// fails or is interrupted by an error is deleted (and the empty stack a CREATE change set
    /// made), so nothing is left behind.
    async fn propose(
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
    async fn adopt(
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
    async fn clear_change_sets(&self, name: &str) -> Result<(), Error> {
        for summary in self.our_change_sets(name).await? {
            if let Some(id) = summary.change_set_id() {
                self.delete_change_set(name, id).await?;
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

    /// Deletes a change set; one already gone is fine.
    async fn delete_change_set(&self, name: &str, change_set: &str) -> Result<(), Error> {
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

    async fn delete_stack(
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

    /// The change set's rows, and the server's time it was made, once it is ready.
    async fn await_change_set(&self, name: &str, change_set: &str) -> Result<Awaited, Error> {
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
    async fn all_rows(
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
        change_set: None,
        changes: vec![],
        status: stack.map(status_of).unwrap_or("NONE").into(),
        outputs: stack.map(outputs_of).unwrap_or_default(),
    }
}

/// Whether CloudFormation fills in values of the template at deploy time (SSM-typed parameters,
/// `{{resolve:...}}` dynamic references), which may have changed since the stack was made.
fn resolves_at_deploy(template_body: &str) -> bool {
    if template_body.contains("{{resolve:") {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(template_body).is_ok_and(|t| {
        t["Parameters"].as_object().is_some_and(|ps| {
            ps.values().any(|p| {
                p["Type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("AWS::SSM::Parameter::Value"))
            })
        })
    })
}

/// Two templates alike as JSON (CloudFormation may hand the body back formatted otherwise).
fn same_template(live: &str, ours: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(live),
        serde_json::from_str::<serde_json::Value>(ours),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => live == ours,
    }
}

/// DescribeChangeSet of a change set that is not there: ChangeSetNotFound on AWS (and a
/// ValidationError "does not exist" when its stack is gone); the emulator says the latter for both.
fn is_change_set_gone(
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
fn is_operation_running<E: ProvideErrorMetadata, R>(
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
