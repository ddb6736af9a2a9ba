//! The catalog's use cases, on top of the domain and the storage ports.

use crate::auth::{self, Tokens};
use crate::domain::{
    Actor, DomainError, Email, Incoming, Invitation, NewProduct, Page, PageRequest, Password,
    Product, ProductId, Role, Signup, User, UserId,
};
use crate::ports::{ProductStore, StoreError, UserStore};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("email or password is incorrect")]
    BadCredentials,
    /// The store sheds load: try again shortly. The text goes to logs only.
    #[error("busy: {0}")]
    Busy(String),
    /// Storage or hashing failed; the text goes to logs only.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(detail) => Error::Busy(detail),
            other => Error::Internal(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct Catalog {
    products: Arc<dyn ProductStore>,
    users: Arc<dyn UserStore>,
    /// Shared: a request clones the catalog, and the keys and validation rules are many
    /// allocations.
    tokens: Arc<Tokens>,
    /// Users who are admins whatever their record says: how the first admin comes to be.
    admins: Arc<Vec<Email>>,
    signup: Signup,
}

/// What an import did to one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Imported {
    Created,
    Updated,
    Unchanged,
    /// Older than what the product holds (its source_version): not applied.
    Stale,
}

/// What login hands back.
pub struct Session {
    pub token: String,
    pub expires_in: i64,
}

impl Catalog {
    pub fn new(products: Arc<dyn ProductStore>, users: Arc<dyn UserStore>, tokens: Tokens) -> Self {
        Catalog {
            products,
            users,
            tokens: Arc::new(tokens),
            admins: Arc::new(vec![]),
            signup: Signup::Open,
        }
    }

    /// The same catalog, with this sign-up policy (the environment's `CATALOG_SIGNUP`).
    pub fn with_signup(mut self, signup: Signup) -> Self {
        self.signup = signup;
        self
    }

    /// An admin lets `email` sign up where sign-up is by invitation.
    pub async fn invite(&self, actor: &Actor, email: Email) -> Result<Invitation, Error> {
        actor.may(Role::Admin, "inviting users")?;
        let invitation = Invitation {
            email,
            invited_by: actor.id.clone(),
            at: OffsetDateTime::now_utc(),
        };
        self.users.invite(&invitation).await?;
        tracing::info!(user = %actor.id, email = invitation.email.as_str(), "invited");
        Ok(invitation)
    }

    /// Whether `email` may make an account here; checked before any password is hashed.
    async fn may_sign_up(&self, email: &Email) -> Result<(), Error> {
        if self.admins.contains(email) {
            return Ok(());
        }
        let refused = |why: &str| Err(DomainError::Forbidden(why.into()).into());
        match self.signup {
            Signup::Open => Ok(()),
            Signup::Closed => refused("sign-up is closed here: this catalog takes no new accounts"),
            Signup::Invite if self.users.invited(email).await? => Ok(()),
            Signup::Invite => refused(
                "sign-up here is by invitation: ask an admin of the catalog to invite this email",
            ),
        }
    }

    /// The same catalog, where these users are admins (the environment's `CATALOG_ADMINS`).
    pub fn with_admins(mut self, admins: Vec<Email>) -> Self {
        self.admins = Arc::new(admins);
        self
    }

    pub async fn list(&self, page: PageRequest) -> Result<Page, Error> {
        let items = self.products.list(page).await?;
        Ok(Page::from_lookahead(items, page.limit))
    }

    pub async fn get(&self, id: ProductId) -> Result<Product, Error> {
        self.products
            .get(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("product {id}")).into())
    }

    pub async fn create(&self, actor: &Actor, fields: NewProduct) -> Result<Product, Error> {
        actor.may(Role::Editor, "creating a product")?;
        let product = fields.create(&actor.id, OffsetDateTime::now_utc());
        self.products.insert(&product).await?;
        tracing::info!(user = %actor.id, product = %product.id, "created product");
        Ok(product)
    }

    /// Creates or revises the product to hold the incoming fields; the same message twice leaves
    /// it as it is, so a redelivery changes nothing, and one older than what the product holds
    /// (by source_version) is not applied, so a late message never undoes a newer one. Every
    /// write is conditional on the version read: a race with another writer reads again.
    pub async fn import(&self, incoming: Incoming) -> Result<Imported, Error> {
        let Incoming {
            id,
            fields,
            source_version,
        } = incoming;
        let by = Actor::import().id;
        for _ in 0..3 {
            let now = OffsetDateTime::now_utc();
            let written = match self.products.get(id).await? {
                // A message without a version is last-writer-wins, as before versions.
                Some(current) => match (source_version, current.source_version) {
                    (Some(new), Some(held)) if new < held => return Ok(Imported::Stale),
                    (Some(new), Some(held)) if new == held && !current.holds(&fields) => {
                        return Ok(Imported::Stale);
                    }
                    (new, held) if current.holds(&fields) && (new.is_none() || new <= held) => {
                        return Ok(Imported::Unchanged);
                    }
                    _ => {
                        let mut next = current.revised(fields.clone(), &by, now);
                        next.source_version = source_version.or(current.source_version);
                        self.products
                            .update(&next)
                            .await
                            .map(|()| Imported::Updated)
                    }
                },
                None => {
                    let mut product = fields.clone().create_as(id, &by, now);
                    product.source_version = source_version;
                    self.products
                        .insert(&product)
                        .await
                        .map(|()| Imported::Created)
                }
            };
            match written {
                Ok(outcome) => return Ok(outcome),
                Err(
                    StoreError::AlreadyExists | StoreError::VersionConflict | StoreError::NotFound,
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!("product {id} kept changing during its import")).into())
    }

    /// Applies `fields` if the product is still at `read_version`.
    pub async fn update(
        &self,
        actor: &Actor,
        id: ProductId,
        fields: NewProduct,
        read_version: u64,
    ) -> Result<Product, Error> {
        actor.may(Role::Editor, "changing a product")?;
        let current = self.get(id).await?;
        let stale = || {
            DomainError::Conflict(format!(
                "product {id} changed since version {read_version}; read it again and retry"
            ))
        };
        if current.version != read_version {
            return Err(stale().into());
        }
        let next = current.revised(fields, &actor.id, OffsetDateTime::now_utc());
        match self.products.update(&next).await {
            Ok(()) => {
                tracing::info!(user = %actor.id, product = %id, version = next.version, "updated product");
                Ok(next)
            }
            Err(StoreError::VersionConflict) => Err(stale().into()),
            Err(StoreError::NotFound) => Err(DomainError::NotFound(format!("product {id}")).into()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, actor: &Actor, id: ProductId) -> Result<(), Error> {
        actor.may(Role::Admin, "deleting a product")?;
        match self.products.delete(id).await {
            Err(StoreError::NotFound) => Err(DomainError::NotFound(format!("product {id}")).into()),
            other => {
                other?;
                tracing::info!(user = %actor.id, product = %id, "deleted product");
                Ok(())
            }
        }
    }

    /// Gives the user with `email` the role `role`: an admin's decision.
    pub async fn grant(&self, actor: &Actor, email: &Email, role: Role) -> Result<(), Error> {
        actor.may(Role::Admin, "granting a role")?;
        self.set_role(email, role).await?;
        tracing::info!(user = %actor.id, email = email.as_str(), role = %role, "granted role");
        Ok(())
    }

    /// Sets a user's role without asking who: for the operator at the table (`app users grant`).
    pub async fn set_role(&self, email: &Email, role: Role) -> Result<(), Error> {
        match self.users.set_role(email, role).await {
            Err(StoreError::NotFound) => Err(DomainError::NotFound(format!(
                "user {}: they sign up first",
                email.as_str()
            ))
            .into()),
            other => Ok(other?),
        }
    }

    pub async fn signup(&self, email: Email, password: Password) -> Result<User, Error> {
        self.may_sign_up(&email).await?;
        // Argon2 is deliberately slow: keep it off the async workers.
        let password_hash = auth::on_hashing_threads(move || auth::hash_password(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))?;
        let user = User {
            id: UserId::generate(),
            email,
            password_hash,
            created_at: OffsetDateTime::now_utc(),
            role: Role::Reader,
        };
        match self.users.insert(&user).await {
            Err(StoreError::AlreadyExists) => Err(DomainError::Conflict(
                "an account with this email already exists; log in instead".into(),
            )
            .into()),
            other => other.map(|()| user).map_err(Error::from),
        }
    }

    /// A token for the user, or BadCredentials alike for an unknown email and a wrong password.
    pub async fn login(&self, email: &str, password: String) -> Result<Session, Error> {
        let user = match Email::parse(email) {
            Ok(email) => self.users.by_email(&email).await?,
            Err(_) => None,
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok =
            auth::on_hashing_threads(move || auth::verify_password(&password, hash.as_deref()))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
        match user {
            Some(user) if ok => Ok(Session {
                token: self
                    .tokens
                    .issue(&user.id, &user.email, OffsetDateTime::now_utc()),
                expires_in: auth::TOKEN_TTL_SECS,
            }),
            _ => Err(Error::BadCredentials),
        }
    }

    /// The user a bearer token speaks for, with the role their record holds now (so a role
    /// taken away counts at once, not when the token expires).
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor, Error> {
        let subject = self
            .tokens
            .verify(bearer)
            .ok_or(Error::Domain(DomainError::Unauthenticated))?;
        let user = self
            .users
            .by_email(&subject.email)
            .await?
            .filter(|u| u.id == subject.id)
            .ok_or(Error::Domain(DomainError::Unauthenticated))?;
        Ok(Actor {
            role: if self.admins.contains(&user.email) {
                Role::Admin
            } else {
                user.role
            },
            id: user.id,
        })
    }
}
