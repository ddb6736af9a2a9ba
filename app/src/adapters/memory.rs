//! Everything in one process's memory: the default for `app serve`, and the reference the
//! DynamoDB adapter's tests hold it to.

use crate::domain::{Email, Invitation, PageRequest, Product, ProductId, Role, User};
use crate::ports::{DeadLetters, ProductStore, StoreError, UserStore};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, RwLock};

#[derive(Default)]
pub struct MemoryStore {
    products: RwLock<BTreeMap<ProductId, Product>>,
    users: RwLock<HashMap<Email, User>>,
    invitations: RwLock<HashSet<Email>>,
}

#[async_trait]
impl ProductStore for MemoryStore {
    async fn list(&self, page: PageRequest) -> Result<Vec<Product>, StoreError> {
        let products = self.products.read().expect("lock");
        let start = page.after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(products
            .range((start, Bound::Unbounded))
            .take(page.limit + 1)
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn get(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        Ok(self.products.read().expect("lock").get(&id).cloned())
    }

    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        let mut products = self.products.write().expect("lock");
        if products.contains_key(&product.id) {
            return Err(StoreError::AlreadyExists);
        }
        products.insert(product.id, product.clone());
        Ok(())
    }

    async fn update(&self, product: &Product) -> Result<(), StoreError> {
        let mut products = self.products.write().expect("lock");
        match products.get_mut(&product.id) {
            None => Err(StoreError::NotFound),
            Some(current) if current.version + 1 != product.version => {
                Err(StoreError::VersionConflict)
            }
            Some(current) => {
                *current = product.clone();
                Ok(())
            }
        }
    }

    async fn delete(&self, id: ProductId) -> Result<(), StoreError> {
        match self.products.write().expect("lock").remove(&id) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let mut users = self.users.write().expect("lock");
        if users.contains_key(&user.email) {
            return Err(StoreError::AlreadyExists);
        }
        users.insert(user.email.clone(), user.clone());
        Ok(())
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(self.users.read().expect("lock").get(email).cloned())
    }

    async fn set_role(&self, email: &Email, role: Role) -> Result<(), StoreError> {
        match self.users.write().expect("lock").get_mut(email) {
            Some(user) => {
                user.role = role;
                Ok(())
            }
            None => Err(StoreError::NotFound),
        }
    }

    async fn invite(&self, invitation: &Invitation) -> Result<(), StoreError> {
        self.invitations
            .write()
            .expect("lock")
            .insert(invitation.email.clone());
        Ok(())
    }

    async fn invited(&self, email: &Email) -> Result<bool, StoreError> {
        Ok(self.invitations.read().expect("lock").contains(email))
    }
}

/// A message that could not be imported, as the dead-letter queue would hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub reason: String,
}

/// Dead letters kept in memory: for local imports, which report them instead of queueing them.
#[derive(Default)]
pub struct MemoryDeadLetters(Mutex<Vec<DeadLetter>>);

impl MemoryDeadLetters {
    pub fn taken(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.0.lock().expect("lock"))
    }
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, message_id: &str, body: &str, reason: &str) -> Result<(), StoreError> {
        self.0.lock().expect("lock").push(DeadLetter {
            message_id: message_id.into(),
            body: body.into(),
            reason: reason.into(),
        });
        Ok(())
    }
}
