//! Behind the ports: in memory (local runs, tests), DynamoDB for data and SQS for dead letters
//! (Lambda).

pub mod dynamodb;
pub mod memory;
pub mod sqs;

use crate::ports::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// How long one call to AWS may take, retries included. Under the API functions' 10 s Lambda
/// timeout (catalog.json.hbs): a store that stops answering is then a 503 the client may retry,
/// not a function killed mid-request; and locally a frozen endpoint is an error, not a wait for
/// ever (the SDK sets no limit of its own on a call).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt's limit: DynamoDB answers in milliseconds, so two attempts fit in a call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Any AWS SDK failure as a store error, with the service's code and message: busy where trying
/// again in a moment may work (throttling, no answer in time, no connection), else unavailable.
pub(crate) fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    // No answer in time, or no connection: worth trying again in a moment, as a 503 says.
    let unreachable = match &e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout() || d.is_io(),
        _ => false,
    };
    if unreachable {
        return StoreError::Busy(format!(
            "no answer from the store (time limit {}s a call): {text}",
            CALL_TIMEOUT.as_secs()
        ));
    }
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
