//! What can go wrong with a stack, said so that the operator knows the resource, the reason and
//! what to do.

use super::events::FailedResource;
use crate::aws::error_text;
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
pub(super) fn import_hint(reason: &str) -> &'static str {
    if reason.contains("No export named") {
        " (the stack that exports it is missing or older than this template: our templates import only from the bootstrap stack of the account and region they go to, so run `deployer bootstrap ENV` there first)"
    } else {
        ""
    }
}

/// ": blocked by A (AWS::X, reason); B (...)", or nothing when no resource says.
pub(super) fn blocked_by(blocking: &[FailedResource]) -> String {
    if blocking.is_empty() {
        return String::new();
    }
    let list: Vec<String> = blocking
        .iter()
        .map(|f| format!("{} ({}: {})", f.logical_id, f.resource_type, f.reason))
        .collect();
    format!(": blocked by {}", list.join("; "))
}

pub(super) fn ids(blocking: &[FailedResource]) -> String {
    if blocking.is_empty() {
        return "ID...".into();
    }
    blocking
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn failed_message(
    stack: &str,
    status: &str,
    failure: Option<&FailedResource>,
) -> String {
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
