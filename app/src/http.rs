//! The HTTP layer: routes, request parsing with errors that name what was wrong, JSON errors,
//! and one log line per request.

use crate::domain::{
    Actor, DomainError, NewProduct, PAGE_DEFAULT, PAGE_MAX, PageRequest, ProductId, Role, UserId,
};
use crate::service::{Catalog, Error as ServiceError};
use crate::wire::{
    Credentials, ErrorBody, ErrorDetail, Health, InvitationBody, Invited, ProductBody, ProductList,
    ProductView, RoleBody, SignedUp, Token,
};
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request,
    State,
};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Instant;
use utoipa::{IntoParams, OpenApi};

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON answer, written by sonic-rs: its SIMD string escaping is most of the work of a page of
/// products, which is mostly strings. (Bodies are read with serde_json, for its error paths.)
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match sonic_rs::to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "writing an answer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

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
    /// Shared: every request clones the state.
    identity: std::sync::Arc<Identity>,
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
        .route("/openapi.json", get(openapi_json))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        )
}

/// The document, made on first ask: a cold start that serves no one the document pays nothing.
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the document is made of JSON values")
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.as_str(),
    )
        .into_response()
}

/// The API document, generated from the handlers and the wire types: `GET /openapi.json`, shown
/// at `/docs` (Swagger UI, built into the binary: no internet needed).
#[derive(OpenApi)]
#[openapi(
    info(title = "Product catalog", description = "Anyone lists and reads products; editors create and update them, admins delete them and grant roles. Users sign up and log in for a bearer token."),
    paths(health, list_products, get_product, create_product, update_product, delete_product, signup, login, grant_role, invite),
    modifiers(&CommonAnswers),
    tags((name = "products"), (name = "users"), (name = "service"))
)]
pub struct ApiDoc;

/// What any route may answer besides its own: the body's problems where it takes one, 401 where
/// it needs a token, and 500 and 503 everywhere. And PUT's body: POST's with the version read.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{RefOr, ResponseBuilder, Schema, content::ContentBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        // The currencies the domain takes, listed rather than described.
        if let Some(RefOr::T(Schema::Object(price))) = components.schemas.get_mut("PriceBody")
            && let Some(RefOr::T(Schema::Object(currency))) = price.properties.get_mut("currency")
        {
            currency.enum_values = Some(
                crate::domain::product::currencies()
                    .map(Into::into)
                    .collect(),
            );
            currency.pattern = None;
        }
        // One Rust type reads both bodies (so a misplaced version gets the app's words); the
        // document states each as it is.
        if let Some(RefOr::T(Schema::Object(post))) = components.schemas.get_mut("ProductBody") {
            let mut put = post.clone();
            put.required.push("version".into());
            put.properties.insert(
                "version".into(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .description(Some(
                        "The version read: the update applies only if the product is still at it",
                    ))
                    .into(),
            );
            put.description = Some(
                "The body of PUT /products/{id}: the product's fields and the version read".into(),
            );
            post.properties.remove("version");
            components
                .schemas
                .insert("ProductUpdate".into(), RefOr::T(Schema::Object(put)));
        }
        if let Some(body) = doc
            .paths
            .paths
            .get_mut("/products/{id}")
            .and_then(|item| item.put.as_mut())
            .and_then(|op| op.request_body.as_mut())
        {
            for content in body.content.values_mut() {
                content.schema =
                    Some(utoipa::openapi::Ref::from_schema_name("ProductUpdate").into());
            }
        }
        components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some("From POST /login (or the identity provider's token where the environment has [settings.catalog.auth])"))
                        .build(),
                ),
            );
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                if op.request_body.is_some() {
                    add("400", "The body is not JSON");
                    add("413", "The body is over 64 KiB");
                    add("415", "The body is not sent as application/json");
                    add("422", "A field breaks a rule; `field` names it");
                }
                if op.security.is_some() {
                    add("401", "No valid bearer token");
                }
                add("500", "Internal error");
                add(
                    "503",
                    "The store is busy; try again after Retry-After seconds",
                );
            }
        }
    }
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
        .with_state(Api {
            catalog,
            identity: std::sync::Arc::new(identity),
        })
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
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
        if let Identity::Authorizer(roles) = api.identity.as_ref() {
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
        // Whole microseconds, so the figure prints as 0.412, not 0.41200000000000003.
        latency_ms = started.elapsed().as_micros() as f64 / 1000.0,
        "request"
    );
    response
}

/// Whether the function answers (it reads nothing).
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, description = "It answers", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Read as text, so that a bad value gets the app's words rather than serde's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Products per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `next_cursor` of the previous page, unchanged.
    #[param(min_length = 1)]
    cursor: Option<String>,
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

/// Every product, oldest first, a page at a time; anyone may list.
#[utoipa::path(get, path = "/products", tag = "products", params(ListQuery),
    responses((status = 200, description = "One page", body = ProductList), (status = 400, body = ErrorBody, description = "A bad limit or cursor")))]
async fn list_products(
    State(catalog): State<Catalog>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ProductList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let page = catalog.list(page_request(q)?).await?;
    Ok(Json(ProductList {
        next_cursor: page.next.map(encode_cursor),
        items: page.items.into_iter().map(ProductView::from).collect(),
    }))
}

/// A product id from the path; an id that cannot exist is simply not found.
fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    Ok(raw.parse::<ProductId>()?)
}

/// One product; anyone may read it.
#[utoipa::path(get, path = "/products/{id}", tag = "products", params(ProductPath),
    responses((status = 200, description = "The product", body = ProductView), (status = 404, description = "No such product", body = ErrorBody)))]
async fn get_product(
    State(catalog): State<Catalog>,
    Path(id): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    Ok(Json(catalog.get(product_id(&id)?).await?.into()))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // only its description is used: the path is read as text, and 404s
struct ProductPath {
    /// The product's id, a ULID in its one written form (other spellings are not found).
    id: String,
}

fn fields(body: ProductBody) -> Result<NewProduct, ApiError> {
    Ok(NewProduct::parse(
        &body.name,
        &body.description,
        body.price.into(),
    )?)
}

/// Add a product: editors and admins.
#[utoipa::path(post, path = "/products", tag = "products", request_body = ProductBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Made", body = ProductView, headers(("Location" = String, description = "The product's URL"))),
        (status = 403, body = ErrorBody, description = "Readers may not")))]
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
    let product = catalog.create(&actor, fields(body)?).await?;
    let location = format!("/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ProductView::from(product)),
    )
        .into_response())
}

/// Change a product, naming the version read: editors and admins.
#[utoipa::path(put, path = "/products/{id}", tag = "products", params(ProductPath), request_body = ProductBody,
    security(("bearer" = [])),
    responses((status = 200, description = "Changed", body = ProductView), (status = 403, body = ErrorBody, description = "Readers may not"),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The product changed since that version")))]
async fn update_product(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<Json<ProductView>, ApiError> {
    let id = product_id(&id)?;
    let version = body
        .version
        .ok_or_else(|| ApiError::invalid("version", "is required: send the version you read"))?;
    let fields = fields(body)?;
    Ok(Json(
        catalog.update(&actor, id, fields, version).await?.into(),
    ))
}

/// Remove a product: admins.
#[utoipa::path(delete, path = "/products/{id}", tag = "products", params(ProductPath),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody, description = "Only admins may"),
        (status = 404, description = "No such product", body = ErrorBody)))]
async fn delete_product(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    catalog.delete(&actor, product_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a signed-up user a role: admins.
#[utoipa::path(put, path = "/users/{email}/role", tag = "users", request_body = RoleBody,
    params(("email" = String, Path, format = Email, description = "The user's email")),
    security(("bearer" = [])),
    responses((status = 204, description = "Granted"), (status = 403, body = ErrorBody, description = "Only admins may"),
        (status = 404, body = ErrorBody, description = "No such user")))]
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

/// Let someone sign up where sign-up is by invitation: admins.
#[utoipa::path(post, path = "/invitations", tag = "users", request_body = InvitationBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Invited", body = Invited), (status = 403, body = ErrorBody, description = "Only admins may"),
        (status = 409, body = ErrorBody, description = "Already a user")))]
async fn invite(
    State(catalog): State<Catalog>,
    SignedIn(actor): SignedIn,
    JsonBody(body): JsonBody<InvitationBody>,
) -> Result<Response, ApiError> {
    let email = crate::domain::Email::parse(&body.email)?;
    let invitation = catalog.invite(&actor, email).await?;
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            email: invitation.email.as_str().to_string(),
            invited_by: invitation.invited_by.0,
        }),
    )
        .into_response())
}

/// Make an account (a reader), where the environment's sign-up policy lets this email.
#[utoipa::path(post, path = "/signup", tag = "users", request_body = Credentials,
    responses((status = 201, description = "Signed up, as a reader", body = SignedUp),
        (status = 403, body = ErrorBody, description = "Sign-up is closed, or by invitation and this email has none"),
        (status = 409, body = ErrorBody, description = "The email has an account")))]
async fn signup(
    State(catalog): State<Catalog>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let email = crate::domain::Email::parse(&body.email)?;
    let password = crate::domain::Password::parse(&body.password, &email)?;
    let user = catalog.signup(email, password).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignedUp {
            id: user.id.0,
            email: user.email.as_str().to_string(),
        }),
    )
        .into_response())
}

/// A bearer token for an email and password.
#[utoipa::path(post, path = "/login", tag = "users", request_body = Credentials,
    responses((status = 200, description = "Logged in", body = Token),
        (status = 401, body = ErrorBody, description = "Wrong email or password (which, it does not say)")))]
async fn login(
    State(catalog): State<Catalog>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Token>, ApiError> {
    let session = catalog.login(&body.email, body.password).await?;
    Ok(Json(Token {
        token: session.token,
        token_type: "Bearer".into(),
        expires_in: session.expires_in,
    }))
}
