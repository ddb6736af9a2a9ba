//! One CloudFormation stack: deploy through a change set, stream its events until it settles,
//! report what failed and why.
//!
//! The engine's parts, one concept each: `error` (what went wrong, said with what to do),
//! `change_set` (made, awaited, shown, cleaned up), `states` (what a deploy does with the state it
//! finds), `wait` (polling and events until an operation ends), `delete`.

mod change_set;
mod delete;
mod error;
mod states;
mod wait;

use crate::aws::error_text;
pub use crate::events::{Event, FailedResource, Go, Observer, Operation, now_text, time_text};
use crate::events::{is_missing_stack, note, unix_millis};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Stack, StackStatus, TemplateStage};
pub use change_set::abandon;
use change_set::{CHANGE_SET, REVIEW_PREFIX, Step, pending};
pub use error::Error;
pub(crate) use error::api;
use serde::Serialize;
use states::{Next, next_step};
use std::collections::BTreeMap;
use std::time::Duration;
use wait::WAIT_LIMIT;
pub use wait::{Backoff, Expect, set_wait_limit};

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
