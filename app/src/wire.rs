//! What travels over HTTP: request and response bodies as the API document describes them. The
//! handlers read and write exactly these types, so the document (`/openapi.json`, generated from
//! them) cannot drift from the answers. The domain stays free of both. The limits written here
//! are the domain's (schema attributes take only literals; a test keeps them equal).

use crate::domain::{Price, Product, ProductId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// An amount in the currency's minor units (cents for EUR), so no float ever rounds a price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    /// Minor units of the currency, zero or more: 450 is 4.50 EUR.
    #[schema(minimum = 0, example = 450)]
    pub amount: i64,
    /// An active ISO 4217 code (the document lists them).
    #[schema(example = "EUR")]
    pub currency: String,
}

impl From<PriceBody> for Price {
    fn from(p: PriceBody) -> Price {
        Price {
            amount: p.amount,
            currency: p.currency,
        }
    }
}

/// The body of POST /products. PUT's is the same with the version it read (`ProductUpdate` in
/// the document, made from this one: see http::ApiDoc).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    /// Trimmed, normalised to NFC; no control or bidirectional-override characters.
    #[schema(min_length = 1, max_length = 200, example = "Green tea")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 2000, example = "Sencha, 100 g")]
    pub description: String,
    pub price: PriceBody,
    /// PUT only, and required there: the version the client read. POST refuses it, in words.
    #[schema(minimum = 1)]
    pub version: Option<u64>,
}

/// A product as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// A ULID in its one written form.
    #[schema(
        value_type = String,
        pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$",
        example = "01JDQ3Z8Q9S6X1V2W3Y4Z5A6B7"
    )]
    pub id: ProductId,
    pub name: String,
    pub description: String,
    pub price: PriceBody,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Starts at 1 and grows by one with each update; PUT must name the version it read.
    #[schema(minimum = 1)]
    pub version: u64,
    /// Who made it (a user id, or `import`); null for products stored before writes were
    /// attributed.
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    /// The import sender's version of what this product holds, where an import set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<u64>,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> ProductView {
        ProductView {
            id: p.id,
            name: p.name,
            description: p.description,
            price: PriceBody {
                amount: p.price.amount,
                currency: p.price.currency,
            },
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
            created_by: p.created_by.map(|u| u.0),
            updated_by: p.updated_by.map(|u| u.0),
            source_version: p.source_version,
        }
    }
}

/// One page of products, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductView>,
    /// Pass it as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `PUT /users/{email}/role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = RoleName)]
    pub role: String,
}

/// What a user may do: every signed-up user reads, an editor also creates and updates, an admin
/// also deletes, grants roles and invites.
#[derive(ToSchema)]
#[schema(as = RoleName)]
#[allow(dead_code)] // only its schema is used: the body is read as text for the app's own words
pub enum RoleName {
    #[schema(rename = "reader")]
    Reader,
    #[schema(rename = "editor")]
    Editor,
    #[schema(rename = "admin")]
    Admin,
}

/// `POST /invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    #[schema(format = Email, example = "ann@example.com")]
    pub email: String,
}

/// An invitation made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invited {
    pub email: String,
    /// The admin's user id.
    pub invited_by: String,
}

/// `POST /signup` and `POST /login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(format = Email, example = "ann@example.com")]
    pub email: String,
    /// At sign-up: hard to guess (zxcvbn score 3 or more), no control characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

/// A user signed up.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUp {
    pub id: String,
    pub email: String,
}

/// A login's bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Every error: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: bad_request, unauthenticated, bad_credentials, forbidden,
    /// not_found, method_not_allowed, conflict, payload_too_large, unsupported_media_type,
    /// validation_failed, busy, internal.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people; with `field`, it starts with the field's JSON path.
    #[schema(
        example = "price.amount: must be an integer number of minor units (cents for EUR); got 4.5"
    )]
    pub message: String,
    /// The JSON path of the field at fault (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
