//! One account's CloudFormation: the client, how it polls, and what it reads of a stack (its
//! description, its template, whether it already is what a spec asks).

use super::error::{Error, api};
use super::events::is_missing_stack;
use super::spec::{FINGERPRINT_TAG, Found, StackSpec, id_of};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Stack, StackStatus, TemplateStage};
use std::collections::BTreeMap;
use std::time::Duration;
/// Talks to one account's CloudFormation.
pub struct Stacks {
    pub(super) cfn: Client,
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
            timeout: WAIT_LIMIT.get().copied().unwrap_or_else(default_wait),
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

pub struct Backoff {
    pub(super) delay: Duration,
    pub(super) max: Duration,
    pub(super) deadline: std::time::Instant,
    pub(super) limit: Duration,
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

pub(super) static WAIT_LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// How long a wait may take where `--timeout` says nothing.
pub const DEFAULT_WAIT: &str = "60m";

/// [`DEFAULT_WAIT`], as a duration.
pub fn default_wait() -> Duration {
    humantime::parse_duration(DEFAULT_WAIT).expect("DEFAULT_WAIT is a duration")
}

/// How long a wait for a stack operation, a change set or drift detection may take (`--timeout`);
/// set once, from the command line.
pub fn set_wait_limit(limit: Duration) {
    let _ = WAIT_LIMIT.set(limit);
}
