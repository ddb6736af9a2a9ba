//! The HTTP layer: routes, request parsing with errors that name what was wrong, JSON errors,
//! and one log line per request.

use crate::domain::product::Product;
use crate::domain::{
    Actor, DomainError, NewProduct, PAGE_DEFAULT, PAGE_MAX, PageRequest, Price, ProductId, Role,
    UserId,
};
use crate::service::{Catalog, Error as ServiceError};
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request,
    State,
};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;

pub const BODY_LIMIT: usize = 64 * 1024;

/// Who the caller is, as the routes that need a signed-in user learn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A bearer token this app issued at login.
    OwnTokens,
    /// The claims of API Gateway's JWT authorizer, which checked the token (and, per route, its
    /// scopes) before the request got here (the function may be invoked by this API only).
    Authorizer(Scopes),
}

/// The identity provider's scopes that make an admin and an editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    pub admin: String,
    pub editor: String,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            admin: "catalog/admin".into(),
            editor: "catalog/write".into(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct Api {
    catalog: Catalog,
    identity: Identity,
}

impl FromRef<Api> for Catalog {
    fn from_ref(api: &Api) -> Catalog {
        api.catalog.clone()
    }
}

/// Every route: the catalog as one server on localhost.
pub fn router(catalog: Catalog) -> Router {
    finish(
        query_routes().merge(command_routes()),
        catalog,
        Identity::OwnTokens,
    )
}

/// The reads, for the query function: cheap, cacheable, scaled apart from the writes.
pub fn query_router(catalog: Catalog) -> Router {
    finish(query_routes(), catalog, Identity::OwnTokens)
}

/// The writes, sign-up and login, for the command function.
pub fn command_router(catalog: Catalog, identity: Identity) -> Router {
    finish(command_routes(), catalog, identity)
}

fn query_routes() -> Router<Api> {
    Router::new()
        .route("/health", get(health))
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product))
}

fn command_routes() -> Router<Api> {
    Router::new()
        .route("/products", post(create_product))
        .route("/products/{id}", put(update_product).delete(delete_product))
        .route("/signup", post(signup))
        .route("/login", post(login))
        .route("/users/{email}/role", put(grant_role))
        .route("/invitations", post(invite))
}

fn finish(routes: Router<Api>, catalog: Catalog, identity: Identity) -> Router {
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(Api { catalog, identity })
}

/// The one error shape clients see: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        ApiError {
            message: format!("{field}: {}", message.into()),
            field: Some(field),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "")
        }
    }

    fn unauthenticated() -> Self {
        // The same words for a missing, malformed, forged or expired token.
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required; log in at POST /login",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(DomainError::Invalid { field, message }) => {
                ApiError::invalid(field, message)
            }
            ServiceError::Domain(DomainError::NotFound(what)) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} does not exist"),
            ),
            ServiceError::Domain(DomainError::Conflict(message)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            ServiceError::Domain(DomainError::Unauthenticated) => ApiError::unauthenticated(),
            ServiceError::Domain(DomainError::Forbidden(message)) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ServiceError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string())
            }
            ServiceError::Busy(detail) => {
                tracing::warn!(error = %detail, "store busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the catalog is busy; try again in a second",
                )
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; try again later",
                )
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ServiceError::Domain(e).into()
    }
}

/// A JSON body: 413 past the limit, 415 without a JSON content type, 400 when it is not JSON,
/// 422 naming the field when it does not fit.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("the body is over {} KiB", BODY_LIMIT / 1024),
                    )
                } else {
                    ApiError::bad_request(format!("cannot read the body: {e}"))
                }
            })?;
        // Checked only on paths that are already failing, to spare the happy path a second parse.
        let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        // serde would also read a struct from a JSON array, by position: only objects are bodies.
        if bytes.trim_ascii_start().first() == Some(&b'[') && well_formed() {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // Valid JSON of the wrong shape is a validation error; anything else is malformed.
                if inner.is_data() && well_formed() {
                    let (field, message) = crate::decode::describe(&path, &inner.to_string());
                    ApiError::invalid(field, message)
                } else {
                    ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
                }
            })
    }
}

/// The signed-in user and their role: from `Authorization: Bearer <token>` and the user's
/// record, or from the JWT authorizer's `sub` and scopes.
pub struct SignedIn(pub Actor);

impl FromRequestParts<Api> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        if let Identity::Authorizer(roles) = &api.identity {
            let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.request_context_ref()
            else {
                return Err(ApiError::unauthenticated());
            };
            let jwt = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .ok_or_else(ApiError::unauthenticated)?;
            let sub = jwt
                .claims
                .get("sub")
                .filter(|sub| !sub.is_empty())
                .ok_or_else(ApiError::unauthenticated)?;
            // OAuth scopes, as the authorizer lists them or as the token's `scope` claim has them.
            let scopes: Vec<&str> = jwt
                .scopes
                .iter()
                .flatten()
                .map(String::as_str)
                .chain(
                    jwt.claims
                        .get("scope")
                        .into_iter()
                        .flat_map(|s| s.split(' ')),
                )
                .collect();
            let role = if scopes.contains(&roles.admin.as_str()) {
                Role::Admin
            } else if scopes.contains(&roles.editor.as_str()) {
                Role::Editor
            } else {
                Role::Reader
            };
            return Ok(SignedIn(Actor {
                id: UserId(sub.clone()),
                role,
            }));
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthenticated)?;
        match api.catalog.authenticate(token.trim()).await {
            Ok(actor) => Ok(SignedIn(actor)),
            Err(e @ (ServiceError::Internal(_) | ServiceError::Busy(_))) => Err(e.into()),
            Err(_) => Err(ApiError::unauthenticated()),
        }
    }
}

async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(req).await;
    // Route templates, never raw paths, headers or bodies: no token or password reaches a log.
    tracing::info!(
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct ProductList {
    items: Vec<Product>,
    next_cursor: Option<String>,
}

fn encode_cursor(id: ProductId) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(cursor: &str) -> Option<ProductId> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

fn page_request(q: ListQuery) -> Result<PageRequest, ApiError> {
    let limit = match q.limit.as_deref() {
        None => PAGE_DEFAULT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter limit must be a whole number from 1 to {PAGE_MAX}, got {raw:?}"
                ))
            })?,
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(raw) => Some(decode_cursor(raw).ok_or_else(|| {
            ApiError::bad_request(
                "query parameter cursor is not valid; pass next_cursor from the previous page unchanged",
            )
        })?),
    };
    Ok(PageRequest { limit, after })
}

async fn list_products(
    State(catalog): State<Catalog>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ProductList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let page = catalog.list(page_request(q)?).await?;
    Ok(Json(ProductList {
        next_cursor: page.next.map(encode_cursor),
        items: page.items,
    }))
}

/// A product id from the path; an id that cannot exist is simply not found.
fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    Ok(raw.parse::<ProductId>()?)
}

async fn get_product(
    State(catalog): State<Catalog>,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(catalog.get(product_id(&id)?).await?))
}

/// The body of POST and PUT /products; PUT also carries the version it read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    name: String,
    #[serde(default)]
    description: String,
    price: Price,
    version: Option<u64>,
}

impl ProductBody {
    fn fields(self) -> Result<NewProduct, ApiError> {
        Ok(NewProduct::parse(
            &self.name,
            &self.description,
            self.price,
        )?)
    }
}

async fn create_product(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<Response, ApiError> {
    if body.version.is_some() {
        return Err(ApiError::invalid(
            "version",
            "is set by the server; send it only with PUT",
        ));
    }
    let product = catalog.create(&actor, body.fields()?).await?;
    let location = format!("/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    )
        .into_response())
}

async fn update_product(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<Json<Product>, ApiError> {
    let id = product_id(&id)?;
    let version = body
        .version
        .ok_or_else(|| ApiError::invalid("version", "is required: send the version you read"))?;
    Ok(Json(
        catalog.update(&actor, id, body.fields()?, version).await?,
    ))
}

async fn delete_product(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    catalog.delete(&actor, product_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

/// `PUT /users/{email}/role {"role": "editor"}`: an admin gives a user a role.
async fn grant_role(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    Path(email): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<StatusCode, ApiError> {
    let email = crate::domain::Email::parse(&email)?;
    let role = Role::parse(&body.role)?;
    catalog.grant(&actor, &email, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationBody {
    email: String,
}

/// `POST /invitations {"email": ...}`: an admin lets someone sign up where sign-up is by
/// invitation.
async fn invite(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    JsonBody(body): JsonBody<InvitationBody>,
) -> Result<Response, ApiError> {
    let email = crate::domain::Email::parse(&body.email)?;
    let invitation = catalog.invite(&actor, email).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "email": invitation.email,
            "invited_by": invitation.invited_by,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

async fn signup(
    State(catalog): State<Catalog>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let email = crate::domain::Email::parse(&body.email)?;
    let password = crate::domain::Password::parse(&body.password, &email)?;
    let user = catalog.signup(email, password).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": user.id, "email": user.email})),
    )
        .into_response())
}

async fn login(
    State(catalog): State<Catalog>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session = catalog.login(&body.email, body.password).await?;
    Ok(Json(json!({
        "token": session.token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
    })))
}
