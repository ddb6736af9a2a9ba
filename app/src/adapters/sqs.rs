//! Dead letters in an SQS queue: the message as it came, with the reason as an attribute.

use super::unavailable;
use crate::ports::{DeadLetters, StoreError};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;

pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn text(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type set")
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn send(&self, message_id: &str, body: &str, reason: &str) -> Result<(), StoreError> {
        // SQS refuses an empty body; an empty message is still worth keeping with its reason.
        let body = if body.is_empty() {
            "(empty message)"
        } else {
            body
        };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", text(reason))
            .message_attributes("sns_message_id", text(message_id))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
