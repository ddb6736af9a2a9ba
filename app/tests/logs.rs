//! One structured line per request, with method, route, status and latency, and never a
//! password or a token.

mod support;

use app::auth::Tokens;
use app::entry::{Store, catalog_over};
use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn each_request_logs_one_line_without_secrets() {
    let (captured, _guard) = support::capture_logs();

    let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", "catalog-test").unwrap();
    let router = app::http::router(
        catalog_over(Store::Memory, tokens)
            .with_admins(vec![app::domain::Email::parse("ann@example.com").unwrap()]),
    );
    let password = "a very secret passphrase";
    let creds = format!(r#"{{"email":"ann@example.com","password":"{password}"}}"#);
    let send = |method: &str, uri: &str, body: String, token: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        router.clone().oneshot(req.body(Body::from(body)).unwrap())
    };
    send("POST", "/signup", creds.clone(), None).await.unwrap();
    let login = send("POST", "/login", creds, None).await.unwrap();
    let login: Value = serde_json::from_slice(
        &axum::body::to_bytes(login.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    let token = login["token"].as_str().unwrap();
    let product = r#"{"name":"Tea","price":{"amount":1,"currency":"EUR"}}"#.to_string();
    send("POST", "/products", product, Some(token))
        .await
        .unwrap();
    send(
        "GET",
        "/products/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        String::new(),
        Some(token),
    )
    .await
    .unwrap();

    let text = captured.text();
    assert!(
        !text.contains(password),
        "a password reached the log:\n{text}"
    );
    assert!(!text.contains(token), "a token reached the log:\n{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests: Vec<(String, String, u64)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .map(|l| {
            let f = &l["fields"];
            assert!(f["latency_ms"].as_f64().is_some(), "{l}");
            (
                f["method"].as_str().unwrap().into(),
                f["route"].as_str().unwrap().into(),
                f["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        requests,
        [
            ("POST".into(), "/signup".into(), 201),
            ("POST".into(), "/login".into(), 200),
            ("POST".into(), "/products".into(), 201),
            // The route template, not the raw path.
            ("GET".into(), "/products/{id}".into(), 404),
        ]
    );
}
