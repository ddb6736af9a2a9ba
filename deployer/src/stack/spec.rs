//! What a deploy is asked for and what it reports: the stack's spec, its change rows, its
//! outcome; and what is read off a stack's description.

use aws_sdk_cloudformation::types::Stack;
use serde::Serialize;
use std::collections::BTreeMap;
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
pub(super) fn id_of<'a>(stack: &'a Stack, name: &'a str) -> &'a str {
    stack.stack_id().unwrap_or(name)
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
pub(super) fn unchanged(name: &str, stack: Option<&Stack>) -> DeployReport {
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
