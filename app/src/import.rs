//! The import path: SNS messages carrying one product or a batch, upserted idempotently. A
//! message that cannot be imported goes whole to the dead-letter queue with the reason, so no
//! part of it is applied and nothing is lost.

use crate::domain::{DomainError, Incoming, NewProduct, Price, ProductId};
use crate::ports::DeadLetters;
use crate::service::{Catalog, Error, Imported};
use aws_lambda_events::event::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One product as a message carries it: `{"id", "name", "description"?, "price",
/// "source_version"?}`; a batch is `{"products": [...]}`. Ids are ULIDs chosen by the sender, so
/// a resend updates in place; `source_version` (a counter or time the sender keeps, growing with
/// each change) keeps a message that arrives late from undoing a newer one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    price: Price,
    #[serde(default)]
    source_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    products: Vec<Item>,
}

/// The products a message holds, every one valid, or why the message cannot be imported.
pub fn parse(message: &str) -> Result<Vec<Incoming>, String> {
    let value: serde_json::Value =
        serde_json::from_str(message).map_err(|e| format!("the message is not JSON: {e}"))?;
    let (items, is_batch) = if value.get("products").is_some() {
        let batch: Batch = decode(value)?;
        if batch.products.is_empty() {
            return Err("products: the batch is empty".into());
        }
        (batch.products, true)
    } else {
        (vec![decode(value)?], false)
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            // A reason names the item in a batch, as `products[1].price.amount`.
            let at = if is_batch {
                format!("products[{i}].")
            } else {
                String::new()
            };
            let id = ProductId::parse("id", &item.id);
            let fields = NewProduct::parse(&item.name, &item.description, item.price);
            match (id, fields) {
                (Ok(id), Ok(fields)) => Ok(Incoming {
                    id,
                    fields,
                    source_version: item.source_version,
                }),
                (Err(DomainError::Invalid { field, message }), _)
                | (_, Err(DomainError::Invalid { field, message })) => {
                    Err(format!("{at}{field}: {message}"))
                }
                (Err(e), _) | (_, Err(e)) => Err(format!("{at}{e}")),
            }
        })
        .collect()
}

/// The value as `T`, or what does not fit, at the field's path.
fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let (field, message) = crate::decode::describe(&path, &e.into_inner().to_string());
        format!("{field}: {message}")
    })
}

/// What one invocation did, message by message.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub imported: Vec<ImportedProduct>,
    pub dead_lettered: Vec<DeadLettered>,
}

#[derive(Debug, Serialize)]
pub struct ImportedProduct {
    pub id: ProductId,
    pub outcome: Imported,
}

#[derive(Debug, Serialize)]
pub struct DeadLettered {
    pub message_id: String,
    pub reason: String,
}

pub struct Importer {
    catalog: Catalog,
    dead_letters: Arc<dyn DeadLetters>,
}

impl Importer {
    pub fn new(catalog: Catalog, dead_letters: Arc<dyn DeadLetters>) -> Self {
        Importer {
            catalog,
            dead_letters,
        }
    }

    /// Imports every record. A storage failure is an error, so Lambda retries the event (and
    /// after its retries sends it to the function's own dead-letter queue); redelivery is safe.
    pub async fn handle(&self, event: &SnsEvent) -> Result<Report, Error> {
        let mut report = Report::default();
        for record in &event.records {
            let message = &record.sns;
            match parse(&message.message) {
                Ok(products) => {
                    for incoming in products {
                        let id = incoming.id;
                        let outcome = self.catalog.import(incoming).await?;
                        tracing::info!(message_id = %message.message_id, product = %id, ?outcome, "imported");
                        report.imported.push(ImportedProduct { id, outcome });
                    }
                }
                Err(reason) => {
                    tracing::warn!(message_id = %message.message_id, %reason, "message sent to the dead-letter queue");
                    self.dead_letters
                        .send(&message.message_id, &message.message, &reason)
                        .await?;
                    report.dead_lettered.push(DeadLettered {
                        message_id: message.message_id.clone(),
                        reason,
                    });
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01JDQ6Y4M2X0R8V3T5W7Z9B1C3";

    #[test]
    fn one_product_or_a_batch() {
        let one =
            format!(r#"{{"id":"{ID}","name":"Tea","price":{{"amount":450,"currency":"EUR"}}}}"#);
        let parsed = parse(&one).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id.to_string(), ID);
        assert_eq!(parsed[0].fields.name, "Tea");
        assert_eq!(parsed[0].source_version, None);
        let batch = format!(r#"{{"products":[{one},{one}]}}"#);
        assert_eq!(parse(&batch).unwrap().len(), 2);
    }

    #[test]
    fn reasons_name_the_item_and_field() {
        let cases = [
            ("not json", "the message is not JSON"),
            (r#"{"products":[]}"#, "products: the batch is empty"),
            (r#"{"name":"Tea"}"#, "id: is required"),
            (
                &format!(
                    r#"{{"id":"{ID}","name":"Tea","price":{{"amount":1,"currency":"EUR"}},"colour":"red"}}"#
                ),
                "colour: is not a field here; the fields are id, name, description, price, source_version",
            ),
            (
                r#"{"id":"nope","name":"Tea","price":{"amount":1,"currency":"EUR"}}"#,
                "id: must be a ULID",
            ),
            (
                &format!(
                    r#"{{"products":[{{"id":"{ID}","name":"Tea","price":{{"amount":1,"currency":"EUR"}}}},{{"id":"{ID}","name":"Tea","price":{{"amount":-1,"currency":"EUR"}}}}]}}"#
                ),
                "products[1].price.amount: must be zero or more",
            ),
            (
                r#"{"products":[{"id":1}]}"#,
                "products[0].id: must be a string; got 1",
            ),
        ];
        for (message, reason) in cases {
            let err = parse(message).unwrap_err();
            assert!(err.contains(reason), "{message}: {err}");
        }
    }
}
