//! The published contract: `/openapi.json` (OpenAPI 3.1, generated from the handlers and wire
//! types) and `/docs`, which must work with no internet. That every answer matches the document
//! is shown by the API fuzzer over `app serve` (scripts/test runs schemathesis).

use app::domain::product::{DESCRIPTION_MAX, NAME_MAX};
use app::domain::user::{PASSWORD_MAX, PASSWORD_MIN};
use app::domain::{PAGE_DEFAULT, PAGE_MAX, Role};
use app::entry::{Store, tokenless_catalog};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, String, String) {
    let router = app::http::router(tokenless_catalog(Store::Memory));
    let res = router
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn document() -> Value {
    let (status, content_type, body) = get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_every_route_and_its_errors() {
    let doc = document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
            let answers = op["responses"].as_object().unwrap();
            // Any route may fail inside or find the store busy; a body can be malformed; a
            // token can be missing. The document says so where it applies.
            for status in ["500", "503"] {
                assert!(
                    answers.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        answers.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(answers.contains_key("401"), "{method} {path} lacks 401");
            }
            for (status, answer) in answers {
                assert!(
                    !answer["description"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty(),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /health",
        "GET /products",
        "POST /products",
        "GET /products/{id}",
        "PUT /products/{id}",
        "DELETE /products/{id}",
        "POST /signup",
        "POST /login",
        "PUT /users/{email}/role",
        "POST /invitations",
    ]
    .map(String::from)
    .into();
    assert_eq!(operations, expected);
    // Writes name the bearer scheme; reads do not.
    assert_eq!(
        doc["paths"]["/products"]["post"]["security"],
        json!([{"bearer": []}])
    );
    assert!(doc["paths"]["/products"]["get"].get("security").is_none());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_document_states_the_domain_s_own_limits() {
    let doc = document().await;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let body = schema("ProductBody");
    assert_eq!(body["properties"]["name"]["maxLength"], json!(NAME_MAX));
    assert_eq!(
        body["properties"]["description"]["maxLength"],
        json!(DESCRIPTION_MAX)
    );
    assert_eq!(body["additionalProperties"], json!(false));
    let credentials = schema("Credentials");
    assert_eq!(
        credentials["properties"]["password"]["minLength"],
        json!(PASSWORD_MIN)
    );
    assert_eq!(
        credentials["properties"]["password"]["maxLength"],
        json!(PASSWORD_MAX)
    );
    let limit = doc["paths"]["/products"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    assert_eq!(limit["maximum"], json!(PAGE_MAX));
    assert_eq!(limit["default"], json!(PAGE_DEFAULT));
    let roles: Vec<&str> = [Role::Reader, Role::Editor, Role::Admin]
        .map(Role::as_str)
        .to_vec();
    assert_eq!(schema("RoleName")["enum"], json!(roles));
}

#[tokio::test]
async fn docs_are_served_from_the_binary_with_nothing_fetched_elsewhere() {
    let (status, content_type, page) = get("/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    // Every script and style the page loads is the binary's own, and answers.
    let mut loaded = vec![];
    for attr in ["src=\"", "href=\""] {
        for piece in page.split(attr).skip(1) {
            let url = piece.split('"').next().unwrap();
            assert!(!url.contains("://"), "the page loads {url} from elsewhere");
            loaded.push(url.trim_start_matches("./").to_string());
        }
    }
    assert!(loaded.iter().any(|u| u.ends_with(".js")), "{page}");
    for url in &loaded {
        let (status, _, _) = get(&format!("/docs/{url}")).await;
        assert_eq!(status, StatusCode::OK, "/docs/{url}");
    }
    // And it shows this document.
    let (_, _, init) = get("/docs/swagger-initializer.js").await;
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(!init.contains("://"), "{init}");
}
