//! The domain's one error type, apart so that the rules of products and users can both use it.

/// What can go wrong in the domain, independent of how it is served or stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// A value breaks a rule; `field` names it as the client sent it (e.g. `price.currency`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The write lost a race or repeats an existing record.
    #[error("{0}")]
    Conflict(String),
    #[error("authentication required")]
    Unauthenticated,
    /// Signed in, but the role does not allow it; the text says which role would.
    #[error("{0}")]
    Forbidden(String),
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
