//! Every route and every error, run once over the in-memory store and once over DynamoDB in the
//! local emulator.

mod support;

use app::adapters::dynamodb::DynamoStore;
use app::auth::Tokens;
use app::domain::{Email, Signup};
use app::entry::{Store, catalog_over};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::Emulator;
use tower::ServiceExt;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The app over one store; holds the emulator (if any) for the test's lifetime.
struct Api {
    router: Router,
    _emulator: Option<Emulator>,
}

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Dynamo,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    async fn new(kind: Kind) -> Api {
        Api::with_signup(kind, Signup::Open).await
    }

    async fn with_signup(kind: Kind, signup: Signup) -> Api {
        let tokens = Tokens::new(SECRET, "catalog-test").unwrap();
        let (store, emu) = match kind {
            Kind::Memory => (Store::Memory, None),
            Kind::Dynamo => {
                let emu = Emulator::start();
                let store = DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(&support::config(&emu)),
                    "catalog",
                );
                assert!(store.create_table().await.unwrap(), "a new table");
                assert!(
                    !store.create_table().await.unwrap(),
                    "creating it again is a no-op"
                );
                (Store::Dynamo(store), Some(emu))
            }
        };
        Api {
            // ann is the admin the environment names; everyone else starts as a reader.
            router: app::http::router(
                catalog_over(store, tokens)
                    .with_admins(vec![Email::parse("ann@example.com").unwrap()])
                    .with_signup(signup),
            ),
            _emulator: emu,
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("every response body is JSON")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
        token: &str,
    ) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    /// Signs up and logs in a user; returns the token.
    async fn user(&self, email: &str) -> String {
        let creds = json!({"email": email, "password": "correct horse battery"});
        assert_eq!(
            self.call("POST", "/signup", Some(creds.clone()), None)
                .await
                .status,
            StatusCode::CREATED
        );
        let login = self.call("POST", "/login", Some(creds), None).await;
        assert_eq!(login.status, StatusCode::OK);
        login.body["token"].as_str().unwrap().to_string()
    }

    async fn product(&self, token: &str, name: &str) -> Value {
        let r = self
            .call(
                "POST",
                "/products",
                Some(json!({"name": name, "price": {"amount": 450, "currency": "EUR"}})),
                Some(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

fn error_code(r: &Reply) -> &str {
    r.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error body: {}", r.body))
}

fn error_field(r: &Reply) -> &str {
    r.body["error"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field: {}", r.body))
}

async fn health(kind: Kind) {
    let api = Api::new(kind).await;
    let r = api.call("GET", "/health", None, None).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

async fn signup_normalises_email_and_never_overwrites(kind: Kind) {
    let api = Api::new(kind).await;
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": " Ann@Example.com", "password": "correct horse battery"})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["email"], "ann@example.com");
    assert!(r.body.get("password").is_none() && r.body.get("password_hash").is_none());
    let again = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "ANN@example.com", "password": "another password!"})),
            None,
        )
        .await;
    assert_eq!(
        (again.status, error_code(&again)),
        (StatusCode::CONFLICT, "conflict")
    );
    // The first password still works: the second signup did not overwrite the user.
    let login = api
        .call(
            "POST",
            "/login",
            Some(json!({"email": "ann@example.com", "password": "correct horse battery"})),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 3600);
}

async fn signup_validation_names_the_field(kind: Kind) {
    let api = Api::new(kind).await;
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "ann", "password": "correct horse battery"})),
            None,
        )
        .await;
    assert_eq!(
        (r.status, error_field(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "email")
    );
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "ann@example.com", "password": "short"})),
            None,
        )
        .await;
    assert_eq!(
        (r.status, error_field(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "password")
    );
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "ann@example.com"})),
            None,
        )
        .await;
    // A missing field is named, in the API's words rather than serde's.
    assert_eq!(
        (r.status, error_field(&r), &r.body["error"]["message"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "password",
            &json!("password: is required")
        )
    );
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "ann@example.com", "password": 123456789012_i64})),
            None,
        )
        .await;
    assert_eq!(
        r.body["error"]["message"],
        "password: must be a string; got 123456789012"
    );
}

async fn failed_logins_look_the_same(kind: Kind) {
    let api = Api::new(kind).await;
    api.user("ann@example.com").await;
    let wrong_password = api
        .call(
            "POST",
            "/login",
            Some(json!({"email": "ann@example.com", "password": "wrong password!!"})),
            None,
        )
        .await;
    let unknown_email = api
        .call(
            "POST",
            "/login",
            Some(json!({"email": "bob@example.com", "password": "correct horse battery"})),
            None,
        )
        .await;
    let malformed_email = api
        .call(
            "POST",
            "/login",
            Some(json!({"email": "bob", "password": "correct horse battery"})),
            None,
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(wrong_password.body, malformed_email.body);
    assert_eq!(
        (unknown_email.status, malformed_email.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
}

async fn writes_need_a_valid_token(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let id = api.product(&token, "Tea").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}, "version": 1});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = sign(
        &json!({"sub": "u", "iat": now - 7200, "exp": now - 3600}),
        SECRET,
    );
    let forged = sign(
        &json!({"sub": "u", "iat": now, "exp": now + 3600}),
        b"another secret, also 32 bytes long",
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(json!({"sub": "u", "exp": now + 3600})
            .to_string()
            .as_bytes())
    );
    let bad_header = format!("{}.{}", "e30x", token.split_once('.').unwrap().1);
    let mut bodies = vec![];
    for (method, path) in [
        ("POST", "/products".to_string()),
        ("PUT", format!("/products/{id}")),
        ("DELETE", format!("/products/{id}")),
    ] {
        for t in [
            None,
            Some("garbage"),
            Some(expired.as_str()),
            Some(forged.as_str()),
            Some(alg_none.as_str()),
            Some(bad_header.as_str()),
        ] {
            let r = api.call(method, &path, Some(body.clone()), t).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {t:?}: {}",
                r.body
            );
            assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
            bodies.push(r.body);
        }
    }
    // Nothing in the answer tells a missing token from a forged or expired one.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    // A token in another scheme is no token.
    let req = Request::builder()
        .method("DELETE")
        .uri(format!("/products/{id}"))
        .header(header::AUTHORIZATION, format!("Basic {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(req).await.status, StatusCode::UNAUTHORIZED);
    // Reads are public.
    assert_eq!(
        api.call("GET", &format!("/products/{id}"), None, None)
            .await
            .status,
        StatusCode::OK
    );
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn create_get_and_not_found(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let r = api
        .call("POST", "/products", Some(json!({"name": " Green tea ", "description": "Sencha", "price": {"amount": 1299, "currency": "JPY"}})), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(r.headers[header::LOCATION], format!("/products/{id}"));
    assert_eq!(r.body["name"], "Green tea");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["price"], json!({"amount": 1299, "currency": "JPY"}));
    let got = api
        .call("GET", &format!("/products/{id}"), None, None)
        .await;
    assert_eq!((got.status, &got.body), (StatusCode::OK, &r.body));
    for missing in ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-an-id"] {
        let r = api
            .call("GET", &format!("/products/{missing}"), None, None)
            .await;
        assert_eq!(
            (r.status, error_code(&r)),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
}

async fn product_validation_names_the_field(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let cases = [
        (
            json!({"name": "", "price": {"amount": 1, "currency": "EUR"}}),
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "price": {"amount": 1, "currency": "EUR"}}),
            "name",
        ),
        (
            json!({"name": "a", "description": "d".repeat(2001), "price": {"amount": 1, "currency": "EUR"}}),
            "description",
        ),
        (
            json!({"name": "a", "price": {"amount": -1, "currency": "EUR"}}),
            "price.amount",
        ),
        (
            json!({"name": "a", "price": {"amount": 1.5, "currency": "EUR"}}),
            "price.amount",
        ),
        (
            json!({"name": "a", "price": {"amount": 1, "currency": "euro"}}),
            "price.currency",
        ),
        (
            json!({"name": "a", "price": {"amount": 1}}),
            "price.currency",
        ),
        (
            json!({"name": "a", "price": {"amount": 1, "currency": "EUR"}, "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "a", "price": {"amount": 1, "currency": "EUR"}, "version": 3}),
            "version",
        ),
    ];
    for (body, field) in cases {
        let r = api
            .call("POST", "/products", Some(body.clone()), Some(&token))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(error_field(&r), field, "{body}: {}", r.body);
    }
    let listed = api.call("GET", "/products", None, None).await;
    assert_eq!(
        listed.body["items"],
        json!([]),
        "nothing invalid was stored"
    );
}

async fn malformed_bodies(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let r = api
        .raw(
            "POST",
            "/products",
            "application/json",
            "{\"name\": ",
            &token,
        )
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let r = api
        .raw("POST", "/products", "text/plain", "{}", &token)
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = json!({"name": "a", "description": "x".repeat(64 * 1024), "price": {"amount": 1, "currency": "EUR"}});
    let r = api
        .raw(
            "POST",
            "/products",
            "application/json",
            big.to_string(),
            &token,
        )
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let r = api
        .raw(
            "POST",
            "/signup",
            "application/json; charset=utf-8",
            "[1,2",
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Well-formed JSON of the wrong shape is a validation error of the whole body.
    let r = api
        .raw(
            "POST",
            "/signup",
            "application/json",
            "[\"ann@example.com\", \"correct horse battery\"]",
            &token,
        )
        .await;
    assert_eq!(
        (r.status, error_field(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "body")
    );
}

async fn pagination_walks_every_product_once_in_creation_order(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let mut created = vec![];
    for i in 0..5 {
        created.push(
            api.product(&token, &format!("p{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = vec![];
    let mut path = "/products?limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = api.call("GET", &path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        pages += 1;
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/products?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((seen, pages), (created.clone(), 3));
    let all = api.call("GET", "/products", None, None).await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        5,
        "default limit is 20"
    );
    assert_eq!(all.body["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=101", "limit=abc", "limit=-1"] {
        let r = api
            .call("GET", &format!("/products?{bad}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit"),
            "{bad}: {}",
            r.body
        );
    }
    let r = api.call("GET", "/products?cursor=%%%", None, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .call("GET", "/products?cursor=bm90LWFuLWlk", None, None)
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"),
        "{}",
        r.body
    );
}

async fn updates_are_versioned_and_never_revive_deleted_products(kind: Kind) {
    let api = Api::new(kind).await;
    let token = api.user("ann@example.com").await;
    let p = api.product(&token, "Tea").await;
    let path = format!("/products/{}", p["id"].as_str().unwrap());
    let edit = |version: u64| json!({"name": "Black tea", "price": {"amount": 500, "currency": "EUR"}, "version": version});
    let r = api.call("PUT", &path, Some(edit(1)), Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["version"].as_u64(), r.body["name"].as_str()),
        (Some(2), Some("Black tea"))
    );
    assert_eq!(r.body["created_at"], p["created_at"]);
    let stale = api.call("PUT", &path, Some(edit(1)), Some(&token)).await;
    assert_eq!(
        (stale.status, error_code(&stale)),
        (StatusCode::CONFLICT, "conflict")
    );
    let no_version = api
        .call(
            "PUT",
            &path,
            Some(json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}})),
            Some(&token),
        )
        .await;
    assert_eq!(
        (no_version.status, error_field(&no_version)),
        (StatusCode::UNPROCESSABLE_ENTITY, "version")
    );
    assert_eq!(
        api.call("DELETE", &path, None, Some(&token)).await.status,
        StatusCode::NO_CONTENT
    );
    let revive = api.call("PUT", &path, Some(edit(2)), Some(&token)).await;
    assert_eq!(revive.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("GET", &path, None, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("DELETE", &path, None, Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn unknown_routes_and_methods_answer_in_json(kind: Kind) {
    let api = Api::new(kind).await;
    let r = api.call("GET", "/nope", None, None).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = api.call("PATCH", "/products", None, None).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

async fn roles_decide_who_may_write(kind: Kind) {
    let api = Api::new(kind).await;
    let admin = api.user("ann@example.com").await;
    let reader = api.user("bob@example.com").await;
    let editor = api.user("carol@example.com").await;
    let tea = json!({"name": "Tea", "price": {"amount": 450, "currency": "EUR"}});
    // Every signed-up user starts as a reader: reads, never writes.
    let r = api
        .call("POST", "/products", Some(tea.clone()), Some(&reader))
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        r.body["error"]["message"],
        "creating a product needs the editor role, and you have the reader role: ask an admin"
    );
    // Only an admin grants roles.
    let grant = |role: &str| Some(json!({"role": role}));
    let r = api
        .call(
            "PUT",
            "/users/carol@example.com/role",
            grant("editor"),
            Some(&reader),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            "PUT",
            "/users/carol@example.com/role",
            grant("editor"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .call(
            "PUT",
            "/users/nobody@example.com/role",
            grant("editor"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(
            "PUT",
            "/users/bob@example.com/role",
            grant("root"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (r.status, error_field(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "role")
    );
    // The editor's token is the one from before the grant: the role is read at each write.
    let made = api
        .call("POST", "/products", Some(tea.clone()), Some(&editor))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(made.body["created_by"], made.body["updated_by"]);
    let mut changed = tea.clone();
    changed["version"] = json!(1);
    changed["name"] = json!("Green tea");
    let r = api
        .call(
            "PUT",
            &format!("/products/{id}"),
            Some(changed),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["created_by"], made.body["created_by"]);
    assert_ne!(
        r.body["updated_by"], made.body["created_by"],
        "the admin changed it"
    );
    let r = api
        .call("DELETE", &format!("/products/{id}"), None, Some(&editor))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("deleting a product needs the admin role"),
        "{}",
        r.body
    );
    let r = api
        .call("DELETE", &format!("/products/{id}"), None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A role taken away counts at once.
    api.call(
        "PUT",
        "/users/carol@example.com/role",
        grant("reader"),
        Some(&admin),
    )
    .await;
    let r = api
        .call("POST", "/products", Some(tea), Some(&editor))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn guessable_passwords_and_control_characters_are_refused(kind: Kind) {
    let api = Api::new(kind).await;
    for password in [
        "aaaaaaaaaaaa",
        "123456789012",
        "password1234",
        "            ",
        "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        "dan@example.com!",
    ] {
        let r = api
            .call(
                "POST",
                "/signup",
                Some(json!({"email": "dan@example.com", "password": password})),
                None,
            )
            .await;
        assert_eq!(
            (r.status, error_field(&r)),
            (StatusCode::UNPROCESSABLE_ENTITY, "password"),
            "{password:?}: {}",
            r.body
        );
    }
    // Nobody was made: the name is still free.
    let r = api
        .call(
            "POST",
            "/signup",
            Some(json!({"email": "dan@example.com", "password": "plover quartz ferry"})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn an_id_answers_only_in_its_one_written_form(kind: Kind) {
    let api = Api::new(kind).await;
    let admin = api.user("ann@example.com").await;
    let id = api.product(&admin, "Tea").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The ULID decoder would take these for the same id.
    for alias in [
        id.to_lowercase(),
        format!("8{}", &id[1..]),
        format!("G{}", &id[1..]),
    ] {
        for method in ["GET", "DELETE"] {
            let r = api
                .call(method, &format!("/products/{alias}"), None, Some(&admin))
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {alias}");
        }
    }
    let r = api
        .call("GET", &format!("/products/{id}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn signup_follows_the_environment_s_policy(kind: Kind) {
    let creds = |email: &str| Some(json!({"email": email, "password": "correct horse battery"}));
    // Closed: no new accounts, but the admins the environment names.
    let api = Api::with_signup(kind, Signup::Closed).await;
    let r = api
        .call("POST", "/signup", creds("bob@example.com"), None)
        .await;
    assert_eq!(
        (r.status, error_code(&r)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        r.body["error"]["message"],
        "sign-up is closed here: this catalog takes no new accounts"
    );
    api.user("ann@example.com").await;

    // By invitation: an admin invites, a reader may not, the invited sign up.
    let api = Api::with_signup(kind, Signup::Invite).await;
    let r = api
        .call("POST", "/signup", creds("bob@example.com"), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ask an admin of the catalog to invite this email"),
        "{}",
        r.body
    );
    let admin = api.user("ann@example.com").await;
    let invite = |email: &str| Some(json!({"email": email}));
    let r = api
        .call(
            "POST",
            "/invitations",
            invite("Bob@Example.com"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["email"], "bob@example.com");
    let bob = api.user("bob@example.com").await;
    let r = api
        .call(
            "POST",
            "/invitations",
            invite("carol@example.com"),
            Some(&bob),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call("POST", "/signup", creds("carol@example.com"), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call("POST", "/invitations", invite("not an email"), Some(&admin))
        .await;
    assert_eq!(
        (r.status, error_field(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "email")
    );
}

macro_rules! over_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Memory).await } )* }
        mod dynamodb { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Dynamo).await } )* }
    };
}

over_both_stores!(
    health,
    signup_normalises_email_and_never_overwrites,
    signup_validation_names_the_field,
    failed_logins_look_the_same,
    writes_need_a_valid_token,
    create_get_and_not_found,
    product_validation_names_the_field,
    malformed_bodies,
    pagination_walks_every_product_once_in_creation_order,
    updates_are_versioned_and_never_revive_deleted_products,
    unknown_routes_and_methods_answer_in_json,
    roles_decide_who_may_write,
    guessable_passwords_and_control_characters_are_refused,
    an_id_answers_only_in_its_one_written_form,
    signup_follows_the_environment_s_policy,
);

/// DynamoDB shedding load (the emulator never does) answers 503 with Retry-After, not 500.
#[tokio::test]
async fn a_throttled_store_answers_503_with_retry_after() {
    use aws_sdk_dynamodb::operation::query::QueryError;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let throttled = mock!(aws_sdk_dynamodb::Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .meta(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled]);
    let router = app::http::router(catalog_over(
        Store::Dynamo(DynamoStore::new(client, "catalog")),
        Tokens::new(SECRET, "catalog-test").unwrap(),
    ));
    let res = router
        .oneshot(Request::get("/products").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "busy");
}
