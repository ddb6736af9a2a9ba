//! One DynamoDB table for everything, keyed `pk`/`sk`: products under `pk = "PRODUCT"` sorted by
//! id (so by creation), each user under `pk = "USER#<email>"`. Conditional writes keep the rules
//! that the domain states: no signup overwrites a user, no update revives a deleted product.

use super::unavailable;
use crate::domain::{
    Email, Invitation, PageRequest, Price, Product, ProductId, Role, User, UserId,
};
use crate::ports::{ProductStore, StoreError, UserStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::collections::HashMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type Item = HashMap<String, AttributeValue>;

const PRODUCT_PK: &str = "PRODUCT";
const USER_SK: &str = "USER";
/// An invitation to sign up: `pk = "INVITE#<email>"`.
const INVITE_SK: &str = "INVITE";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Creates the table for local development; an existing table is left as it is.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type set")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type set")
        };
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Whether the table exists, asked once before serving: without it every request would
    /// answer 500.
    pub async fn exists(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn key(pk: &str, sk: &str) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.into())),
            ("sk".to_string(), AttributeValue::S(sk.into())),
        ])
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }
}

fn is_condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// A failed write condition means `meaning`; any other error is the store failing.
fn write_error<E, R>(e: SdkError<E, R>, meaning: StoreError) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if is_condition_failed(&e) {
        meaning
    } else {
        unavailable(e)
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn time_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("any OffsetDateTime formats as RFC 3339")
}

fn product_item(p: &Product) -> Item {
    let mut item = DynamoStore::key(PRODUCT_PK, &p.id.to_string());
    item.extend([
        ("name".to_string(), s(&p.name)),
        ("description".to_string(), s(&p.description)),
        ("amount".to_string(), n(p.price.amount)),
        ("currency".to_string(), s(&p.price.currency)),
        ("created_at".to_string(), s(time_text(p.created_at))),
        ("updated_at".to_string(), s(time_text(p.updated_at))),
        ("version".to_string(), n(p.version)),
    ]);
    for (name, by) in [("created_by", &p.created_by), ("updated_by", &p.updated_by)] {
        if let Some(by) = by {
            item.insert(name.to_string(), s(&by.0));
        }
    }
    if let Some(v) = p.source_version {
        item.insert("source_version".to_string(), n(v));
    }
    item
}

/// Reads an attribute, or says which one is missing or malformed.
fn attr<T>(
    item: &Item,
    name: &str,
    parse: impl Fn(&AttributeValue) -> Option<T>,
) -> Result<T, StoreError> {
    item.get(name).and_then(parse).ok_or_else(|| {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str);
        StoreError::Unavailable(format!(
            "item {sk}: attribute {name} is missing or malformed"
        ))
    })
}

fn text(v: &AttributeValue) -> Option<String> {
    v.as_s().ok().cloned()
}

fn number<T: std::str::FromStr>(v: &AttributeValue) -> Option<T> {
    v.as_n().ok()?.parse().ok()
}

fn timestamp(v: &AttributeValue) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_s().ok()?, &Rfc3339).ok()
}

fn product_of(item: &Item) -> Result<Product, StoreError> {
    Ok(Product {
        id: attr(item, "sk", |v| v.as_s().ok()?.parse().ok())?,
        name: attr(item, "name", text)?,
        description: attr(item, "description", text)?,
        price: Price {
            amount: attr(item, "amount", number)?,
            currency: attr(item, "currency", text)?,
        },
        created_at: attr(item, "created_at", timestamp)?,
        updated_at: attr(item, "updated_at", timestamp)?,
        version: attr(item, "version", number)?,
        // Absent on products stored before writes were attributed.
        created_by: item.get("created_by").and_then(text).map(UserId),
        updated_by: item.get("updated_by").and_then(text).map(UserId),
        source_version: item.get("source_version").and_then(number),
    })
}

#[async_trait]
impl ProductStore for DynamoStore {
    async fn list(&self, page: PageRequest) -> Result<Vec<Product>, StoreError> {
        // A query stops at 1 MB (or sooner) and says where with LastEvaluatedKey: read on from
        // there until the page is full, so a page is never cut short. Listing reads eventually
        // consistent (half the read capacity); a product just written may show a moment later.
        let want = page.limit + 1;
        let mut products = Vec::with_capacity(want);
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(false)
                .expression_attribute_values(":pk", s(PRODUCT_PK))
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(want - products.len()).unwrap_or(i32::MAX));
            query = match page.after {
                Some(after) => query
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(after.to_string())),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query.send().await.map_err(unavailable)?;
            for item in out.items() {
                products.push(product_of(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if products.len() < want && !key.is_empty() => start = Some(key),
                _ => return Ok(products),
            }
        }
    }

    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        self.get_item(PRODUCT_PK, &id.to_string())
            .await?
            .as_ref()
            .map(product_of)
            .transpose()
    }

    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(product_item(product)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| write_error(e, StoreError::AlreadyExists))?;
        Ok(())
    }

    async fn update(&self, product: &Product) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(product_item(product)))
            .condition_expression("attribute_exists(pk) AND version = :read")
            .expression_attribute_values(":read", n(product.version - 1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Gone or moved on? One read tells, on the failure path only.
            Err(e) if is_condition_failed(&e) => match self.get(product.id).await? {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::VersionConflict),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, id: ProductId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(PRODUCT_PK, &id.to_string())))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| write_error(e, StoreError::NotFound))?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let mut item = Self::key(&format!("USER#{}", user.email.as_str()), USER_SK);
        item.extend([
            ("id".to_string(), s(&user.id.0)),
            ("email".to_string(), s(user.email.as_str())),
            ("password_hash".to_string(), s(&user.password_hash)),
            ("created_at".to_string(), s(time_text(user.created_at))),
            ("role".to_string(), s(user.role.as_str())),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| write_error(e, StoreError::AlreadyExists))?;
        Ok(())
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let Some(item) = self
            .get_item(&format!("USER#{}", email.as_str()), USER_SK)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(User {
            id: UserId(attr(&item, "id", text)?),
            email: Email::parse(&attr(&item, "email", text)?)
                .map_err(|e| StoreError::Unavailable(format!("stored email: {e}")))?,
            password_hash: attr(&item, "password_hash", text)?,
            created_at: attr(&item, "created_at", timestamp)?,
            // Users who signed up before roles are readers.
            role: match item.get("role").and_then(text) {
                Some(role) => Role::parse(&role)
                    .map_err(|e| StoreError::Unavailable(format!("stored role: {e}")))?,
                None => Role::Reader,
            },
        }))
    }

    async fn set_role(&self, email: &Email, role: Role) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &format!("USER#{}", email.as_str()),
                USER_SK,
            )))
            .update_expression("SET #role = :role")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", s(role.as_str()))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| write_error(e, StoreError::NotFound))?;
        Ok(())
    }

    async fn invite(&self, invitation: &Invitation) -> Result<(), StoreError> {
        let mut item = Self::key(&format!("INVITE#{}", invitation.email.as_str()), INVITE_SK);
        item.extend([
            ("invited_by".to_string(), s(&invitation.invited_by.0)),
            ("invited_at".to_string(), s(time_text(invitation.at))),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn invited(&self, email: &Email) -> Result<bool, StoreError> {
        Ok(self
            .get_item(&format!("INVITE#{}", email.as_str()), INVITE_SK)
            .await?
            .is_some())
    }
}

/// What the emulator cannot show: a query cut short by DynamoDB's 1 MB limit, and throttling.
/// Responses shaped as the DynamoDB API reference documents them, served by aws-smithy-mocks.
#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn stored(name: &str) -> Item {
        let now = OffsetDateTime::now_utc();
        product_item(
            &crate::domain::NewProduct::parse(
                name,
                "",
                Price {
                    amount: 1,
                    currency: "EUR".into(),
                },
            )
            .unwrap()
            .create(&UserId("ann".into()), now),
        )
    }

    #[tokio::test]
    async fn a_page_cut_short_by_dynamodb_is_read_on_to_the_end() {
        let first = stored("a");
        let resume = DynamoStore::key(PRODUCT_PK, &first["sk"].as_s().unwrap().clone());
        let expected_start = resume.clone();
        let cut_short = mock!(Client::query)
            .match_requests(|q| q.exclusive_start_key().is_none())
            .then_output(move || {
                QueryOutput::builder()
                    .items(first.clone())
                    .set_last_evaluated_key(Some(resume.clone()))
                    .build()
            });
        let rest = mock!(Client::query)
            .match_requests(move |q| {
                q.exclusive_start_key() == Some(&expected_start)
                    && q.limit() == Some(2)
                    && q.consistent_read() == Some(false)
            })
            .then_output(|| {
                QueryOutput::builder()
                    .items(stored("b"))
                    .items(stored("c"))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&cut_short, &rest]);
        let products = DynamoStore::new(client, "t")
            .list(PageRequest {
                limit: 2,
                after: None,
            })
            .await
            .unwrap();
        let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"], "the page and its look-ahead, whole");
        assert_eq!((cut_short.num_calls(), rest.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn throttling_is_busy_not_a_failure() {
        let throttled = mock!(Client::query).then_error(|| {
            QueryError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("Rate of requests exceeds the allowed throughput.")
                    .meta(
                        aws_sdk_dynamodb::error::ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled]);
        let err = DynamoStore::new(client, "t")
            .list(PageRequest {
                limit: 2,
                after: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    }
}
