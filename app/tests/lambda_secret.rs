//! On Lambda the signing secret comes from an SSM SecureString (here in the emulator).

mod support;

use aws_sdk_ssm::types::ParameterType;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

async fn put_secret(config: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(config)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn tokens_are_checked_with_the_secret_from_ssm() {
    let emu = support::Emulator::start();
    let config = support::config(&emu);
    let secret = "a secret of at least thirty-two bytes, from SSM";
    put_secret(&config, "/catalog/sandbox/jwt-secret", secret).await;
    let table = app::entry::dynamo_store(&config, "catalog");
    table.create_table().await.unwrap();
    let router = app::http::command_router(
        app::entry::lambda_catalog(
            &config,
            "/catalog/sandbox/jwt-secret",
            "catalog",
            "catalog-sandbox",
        )
        .await
        .unwrap(),
        app::http::Identity::OwnTokens,
    );

    // A signed-up reader; tokens for them are made here with either secret.
    let signup = Request::builder()
        .method("POST")
        .uri("/signup")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"email":"ann@example.com","password":"plover quartz ferry"}"#,
        ))
        .unwrap();
    let res = router.clone().oneshot(signup).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({"sub": user["id"], "email": "ann@example.com", "iss": "catalog-sandbox", "aud": "catalog-sandbox", "iat": now, "exp": now + 60});
    let delete_with = |key: &[u8]| {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap();
        Request::builder()
            .method("DELETE")
            .uri("/products/01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Signed with the SSM secret: authenticated, and a reader may not delete.
    let res = router
        .clone()
        .oneshot(delete_with(secret.as_bytes()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = router
        .oneshot(delete_with(b"some other secret of thirty-two bytes"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_missing_or_weak_secret_stops_the_cold_start_naming_the_parameter() {
    let emu = support::Emulator::start();
    let config = support::config(&emu);
    let Err(err) = app::entry::lambda_catalog(&config, "/nope", "catalog", "catalog-sandbox").await
    else {
        panic!("a missing parameter must fail");
    };
    assert!(
        format!("{err:#}").contains("reading SSM parameter /nope"),
        "{err:#}"
    );
    put_secret(&config, "/short", "too short").await;
    let Err(err) =
        app::entry::lambda_catalog(&config, "/short", "catalog", "catalog-sandbox").await
    else {
        panic!("a short secret must fail");
    };
    let text = format!("{err:#}");
    assert!(
        text.contains("SSM parameter /short") && text.contains("at least 32 bytes"),
        "{text}"
    );
    assert!(
        !text.contains("too short"),
        "the secret itself must not appear: {text}"
    );
}
