//! One CloudFormation stack: deploy through a change set, stream its events until it settles,
//! report what failed and why.
//!
//! One concept a file: `spec` (what a deploy is asked and reports), `client` (the account's
//! CloudFormation and what it reads), `deploy`, `change_set` (made, awaited, shown, cleaned up),
//! `states` (what a deploy does with the state it finds), `wait` (polling and events until an
//! operation ends), `delete`, `error` (what went wrong, with what to do), `events` (an operation's events as they
//! come, and who watches them). This file only names
//! what the rest of the deployer uses.

mod change_set;
mod client;
mod delete;
mod deploy;
mod error;
mod events;
mod spec;
mod states;
mod wait;

pub use change_set::abandon;
pub use client::{Backoff, DEFAULT_WAIT, Stacks, default_wait, set_wait_limit};
pub use error::Error;
pub(crate) use error::api;
pub use events::{Event, FailedResource, Go, Observer, Operation, now_text, time_text};
pub(crate) use events::{is_missing_stack, unix_millis};
pub use spec::{
    Action, ArtifactInfo, Change, DeployOptions, DeployReport, FINGERPRINT_TAG, Found, Outcome,
    PropertyChange, StackSpec, TEMPLATE_BODY_LIMIT, outputs_of, status_of, tag_of,
};
pub use wait::Expect;
