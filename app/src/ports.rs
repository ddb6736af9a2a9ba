//! What the catalog needs from storage. Adapters implement these; the service only sees them.

use crate::domain::{Email, Invitation, PageRequest, Product, ProductId, Role, User};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record's version is not the one the write expected: someone changed it first.
    #[error("version conflict")]
    VersionConflict,
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// The store is throttling (DynamoDB past a partition's or the table's throughput): worth
    /// trying again in a moment, unlike a failure.
    #[error("storage busy: {0}")]
    Busy(String),
    /// The store itself failed; the message is for logs, never for clients.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ProductStore: Send + Sync {
    /// Up to `page.limit + 1` products after `page.after`, in id order (see `Page::from_lookahead`).
    async fn list(&self, page: PageRequest) -> Result<Vec<Product>, StoreError>;
    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError>;
    /// Stores a new product; fails with AlreadyExists if the id is taken.
    async fn insert(&self, product: &Product) -> Result<(), StoreError>;
    /// Replaces the product if it exists with version `product.version - 1`: NotFound if it is
    /// gone (an update never brings a deleted product back), VersionConflict if it moved on.
    async fn update(&self, product: &Product) -> Result<(), StoreError>;
    /// NotFound if there was nothing to delete.
    async fn delete(&self, id: ProductId) -> Result<(), StoreError>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user; AlreadyExists if the email is taken. Never overwrites.
    async fn insert(&self, user: &User) -> Result<(), StoreError>;
    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// NotFound if there is no such user.
    async fn set_role(&self, email: &Email, role: Role) -> Result<(), StoreError>;
    /// Records (or renews) an invitation to sign up.
    async fn invite(&self, invitation: &Invitation) -> Result<(), StoreError>;
    async fn invited(&self, email: &Email) -> Result<bool, StoreError>;
}

/// Where messages that cannot be imported go, with the reason, for someone to look at.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, message_id: &str, body: &str, reason: &str) -> Result<(), StoreError>;
}
