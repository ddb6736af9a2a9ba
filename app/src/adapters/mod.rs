//! Behind the ports: in memory (local runs, tests), DynamoDB for data and SQS for dead letters
//! (Lambda).

pub mod dynamodb;
pub mod memory;
pub mod sqs;

use crate::ports::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Any AWS SDK failure as the store being unavailable, with the service's code and message.
pub(crate) fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    // What DynamoDB (and the SDK, once its retries are spent) says when it sheds load.
    match e.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Busy(text),
        _ => StoreError::Unavailable(text),
    }
}
