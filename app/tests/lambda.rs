//! API Gateway HTTP API events (payload format 2.0) through the lambda_http entry: the same
//! adapter `lambda_http::run` wraps the router in on Lambda.

use app::auth::Tokens;
use app::domain::Email;
use app::entry::{Store, catalog_over};
use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};
use tower::ServiceExt;

/// An event as API Gateway sends it for the `$default` route and stage.
fn event(
    method: &str,
    path: &str,
    query: &str,
    headers: Value,
    body: Option<&str>,
    base64: bool,
) -> Value {
    let body = body.map(|b| {
        if base64 {
            base64::engine::general_purpose::STANDARD.encode(b)
        } else {
            b.to_string()
        }
    });
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "222222222222",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795514400000u64
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

/// The query and the command function over one store, as the stack deploys them.
struct Lambda {
    query: axum::Router,
    command: axum::Router,
}

impl Lambda {
    fn new() -> Self {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", "catalog-test").unwrap();
        let catalog = catalog_over(Store::Memory, tokens)
            .with_admins(vec![Email::parse("ann@example.com").unwrap()]);
        Lambda {
            query: app::http::query_router(catalog.clone()),
            command: app::http::command_router(catalog, app::http::Identity::OwnTokens),
        }
    }

    /// The response as API Gateway receives it (statusCode, headers, body), from the function
    /// the stack routes the event to: GET to query, every other method to command.
    async fn invoke(&self, event: Value) -> Value {
        let router = if event["requestContext"]["http"]["method"] == "GET" {
            &self.query
        } else {
            &self.command
        };
        invoke(router, event).await
    }
}

async fn invoke(router: &axum::Router, event: Value) -> Value {
    let request: LambdaRequest = serde_json::from_value(event).expect("a valid v2 event");
    let response = Adapter::from(router.clone())
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the router never fails");
    serde_json::to_value(response).unwrap()
}

fn body_of(response: &Value) -> Value {
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

fn json_headers() -> Value {
    json!({"content-type": "application/json"})
}

#[tokio::test]
async fn health_answers_through_the_lambda_adapter() {
    let lambda = Lambda::new();
    let r = lambda
        .invoke(event("GET", "/health", "", json!({}), None, false))
        .await;
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert_eq!(body_of(&r), json!({"status": "ok"}));
}

#[tokio::test]
async fn signup_login_and_create_through_events() {
    let lambda = Lambda::new();
    let creds = r#"{"email":"ann@example.com","password":"correct horse battery"}"#;
    let r = lambda
        .invoke(event(
            "POST",
            "/signup",
            "",
            json_headers(),
            Some(creds),
            false,
        ))
        .await;
    assert_eq!(r["statusCode"], 201, "{r}");
    // API Gateway may hand the body over base64-encoded.
    let r = lambda
        .invoke(event(
            "POST",
            "/login",
            "",
            json_headers(),
            Some(creds),
            true,
        ))
        .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let token = body_of(&r)["token"].as_str().unwrap().to_string();

    let product = r#"{"name":"Tea","price":{"amount":450,"currency":"EUR"}}"#;
    let unauthenticated = lambda
        .invoke(event(
            "POST",
            "/products",
            "",
            json_headers(),
            Some(product),
            false,
        ))
        .await;
    assert_eq!(unauthenticated["statusCode"], 401);
    let headers =
        json!({"content-type": "application/json", "authorization": format!("Bearer {token}")});
    let r = lambda
        .invoke(event(
            "POST",
            "/products",
            "",
            headers,
            Some(product),
            false,
        ))
        .await;
    assert_eq!(r["statusCode"], 201, "{r}");
    let id = body_of(&r)["id"].as_str().unwrap().to_string();
    assert_eq!(r["headers"]["location"], format!("/products/{id}"));

    let r = lambda
        .invoke(event("GET", "/products", "limit=1", json!({}), None, false))
        .await;
    assert_eq!(r["statusCode"], 200);
    assert_eq!(body_of(&r)["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn errors_keep_their_status_and_json_body_through_events() {
    let lambda = Lambda::new();
    let r = lambda
        .invoke(event(
            "GET",
            "/products",
            "limit=abc",
            json!({}),
            None,
            false,
        ))
        .await;
    assert_eq!(r["statusCode"], 400);
    assert_eq!(body_of(&r)["error"]["code"], "bad_request");
    let r = lambda
        .invoke(event(
            "GET",
            "/products/unknown",
            "",
            json!({}),
            None,
            false,
        ))
        .await;
    assert_eq!(r["statusCode"], 404);
    let r = lambda
        .invoke(event(
            "POST",
            "/signup",
            "",
            json_headers(),
            Some("{not json"),
            false,
        ))
        .await;
    assert_eq!(r["statusCode"], 400);
}

#[tokio::test]
async fn each_function_serves_only_its_own_routes() {
    let lambda = Lambda::new();
    let product = Some(r#"{"name":"Tea","price":{"amount":450,"currency":"EUR"}}"#);
    let r = invoke(
        &lambda.query,
        event("POST", "/products", "", json_headers(), product, false),
    )
    .await;
    assert_eq!(r["statusCode"], 405, "{r}");
    let r = invoke(
        &lambda.query,
        event("POST", "/login", "", json_headers(), Some("{}"), false),
    )
    .await;
    assert_eq!(r["statusCode"], 404, "{r}");
    let r = invoke(
        &lambda.command,
        event("GET", "/products", "", json!({}), None, false),
    )
    .await;
    assert_eq!(r["statusCode"], 405, "{r}");
    let r = invoke(
        &lambda.command,
        event("GET", "/health", "", json!({}), None, false),
    )
    .await;
    assert_eq!(r["statusCode"], 404, "{r}");
}

#[tokio::test]
async fn behind_the_jwt_authorizer_the_command_function_trusts_its_claims() {
    let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", "catalog-test").unwrap();
    let command = app::http::command_router(
        catalog_over(Store::Memory, tokens),
        app::http::Identity::Authorizer(app::http::Scopes::default()),
    );
    let product = Some(r#"{"name":"Tea","price":{"amount":450,"currency":"EUR"}}"#);
    let mut with_claims = event("POST", "/products", "", json_headers(), product, false);
    let claims = json!({"sub": "auth0|ann", "iss": "https://example.eu.auth0.com/", "aud": "https://catalog.example.org"});
    // Without a write scope the caller is a reader.
    with_claims["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": claims, "scopes": null}});
    let r = invoke(&command, with_claims.clone()).await;
    assert_eq!(r["statusCode"], 403, "{r}");
    // The write scope, as the authorizer lists it or in the token's `scope` claim, makes an editor.
    with_claims["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": claims, "scopes": ["openid", "catalog/write"]}});
    let r = invoke(&command, with_claims.clone()).await;
    assert_eq!(r["statusCode"], 201, "{r}");
    let mut scoped = claims.clone();
    scoped["scope"] = json!("openid catalog/write");
    with_claims["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": scoped, "scopes": null}});
    let r = invoke(&command, with_claims).await;
    assert_eq!(r["statusCode"], 201, "{r}");

    // No claims, as if invoked around the gateway: refused, whatever the header says.
    let mut no_claims = event(
        "POST",
        "/products",
        "",
        json!({"content-type": "application/json", "authorization": "Bearer anything"}),
        product,
        false,
    );
    let r = invoke(&command, no_claims.clone()).await;
    assert_eq!(r["statusCode"], 401, "{r}");
    no_claims["requestContext"]["authorizer"] = json!({"jwt": {"claims": {}, "scopes": null}});
    let r = invoke(&command, no_claims).await;
    assert_eq!(r["statusCode"], 401, "{r}");

    // The environment names its provider's scopes: only those make an editor.
    let command = app::http::command_router(
        catalog_over(
            Store::Memory,
            Tokens::new(b"0123456789abcdef0123456789abcdef", "catalog-test").unwrap(),
        ),
        app::http::Identity::Authorizer(app::http::Scopes {
            admin: "catalog.admin".into(),
            editor: "catalog.edit".into(),
        }),
    );
    let mut with_claims = event("POST", "/products", "", json_headers(), product, false);
    for (scope, status) in [("catalog/write", 403), ("catalog.edit", 201)] {
        with_claims["requestContext"]["authorizer"] =
            json!({"jwt": {"claims": claims, "scopes": [scope]}});
        let r = invoke(&command, with_claims.clone()).await;
        assert_eq!(r["statusCode"], status, "{scope}: {r}");
    }
}
