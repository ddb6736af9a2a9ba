//! The smoke test of a stage's API, after a deploy: health, reads, a write refused without a
//! token, and (with a verifier's credentials) a throwaway product created, read, updated and
//! deleted, or (without) a throwaway sign-up whose reader role is refused a write. Each check
//! says what it sent and what came back; nothing waits for ever.

use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadUrl(String),
}

/// One check: what was asked, whether the answer was the expected one, and the answer.
#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub url: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl crate::output::Report for VerifyReport {
    fn human(&self) -> String {
        let mut out = format!("verify {}\n", self.url);
        for c in &self.checks {
            let stdout = crate::display::Stream::Stdout;
            out += &format!(
                "  {} {:<50} {}\n",
                if c.ok {
                    stdout.paint("ok  ", console::Color::Green)
                } else {
                    stdout.paint("FAIL", console::Color::Red)
                },
                c.check,
                c.detail
            );
        }
        out += if self.passed {
            "every check passed\n"
        } else {
            "a check failed: the stage is not serving as it should\n"
        };
        out
    }
}

/// A user allowed to write (an editor; delete needs an admin), kept for the checks.
pub struct Verifier {
    pub email: String,
    pub password: String,
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

struct Api {
    client: Client,
    base: String,
}

/// Each request gives up after this long: a dead endpoint fails the check, it does not hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl Api {
    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        use http_body_util::BodyExt;
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request
            .body(http_body_util::Full::new(hyper::body::Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                text
            })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        })
        .await
        .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))??;
        Ok(response)
    }
}

/// Runs the checks against `url` (the API's base URL).
pub async fn verify(url: &str, verifier: Option<&Verifier>) -> Result<VerifyReport, Error> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("https://") || base.starts_with("http://"))
        || base.parse::<hyper::Uri>().is_err()
    {
        return Err(Error::BadUrl(format!(
            "{url:?} is not an http(s) URL: give the API's base URL, like the stack's output ApiUrl"
        )));
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| Error::BadUrl(format!("no TLS root certificates on this machine: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let api = Api {
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
        base,
    };
    let mut checks = vec![];
    let mut check = |name: &str, result: Result<(u16, Value), String>, expect: &[u16]| {
        let (ok, detail, answer) = match result {
            Ok((status, body)) => (
                expect.contains(&status),
                format!("HTTP {status}"),
                Some((status, body)),
            ),
            Err(e) => (false, e, None),
        };
        checks.push(Check {
            check: name.to_string(),
            ok,
            detail,
        });
        answer.filter(|_| ok)
    };
    use hyper::Method;
    let health = api.call(Method::GET, "/health", None, None).await;
    check("GET /health answers 200", health, &[200]);
    let list = api.call(Method::GET, "/products?limit=1", None, None).await;
    check("GET /products answers 200", list, &[200]);
    let product = json!({"name": format!("deployer verify {}", fastrand::u32(..)), "price": {"amount": 1, "currency": "EUR"}});
    let anonymous = api
        .call(Method::POST, "/products", None, Some(product.clone()))
        .await;
    check(
        "POST /products without a token answers 401",
        anonymous,
        &[401],
    );
    match verifier {
        Some(v) => {
            let creds = json!({"email": v.email, "password": v.password});
            let mut login = api
                .call(Method::POST, "/login", None, Some(creds.clone()))
                .await;
            // The verifier's first run: it signs up (as a named admin it may, even where
            // sign-up is closed), then logs in.
            if matches!(login, Ok((401, _))) {
                let signup = api
                    .call(Method::POST, "/signup", None, Some(creds.clone()))
                    .await;
                if check(
                    &format!("POST /signup as {} (its first run)", v.email),
                    signup,
                    &[201],
                )
                .is_some()
                {
                    login = api.call(Method::POST, "/login", None, Some(creds)).await;
                }
            }
            let token = check(&format!("POST /login as {}", v.email), login, &[200])
                .and_then(|(_, body)| body["token"].as_str().map(str::to_string));
            if let Some(token) = token {
                let made = api
                    .call(
                        Method::POST,
                        "/products",
                        Some(&token),
                        Some(product.clone()),
                    )
                    .await;
                if let Some((_, made)) =
                    check("POST /products makes a throwaway product", made, &[201])
                {
                    let id = made["id"].as_str().unwrap_or_default().to_string();
                    let path = format!("/products/{id}");
                    let read = api.call(Method::GET, &path, None, None).await;
                    check("GET /products/{id} reads it", read, &[200]);
                    let mut changed = product.clone();
                    changed["price"]["amount"] = json!(2);
                    changed["version"] = made["version"].clone();
                    let update = api
                        .call(Method::PUT, &path, Some(&token), Some(changed))
                        .await;
                    check("PUT /products/{id} updates it", update, &[200]);
                    let delete = api.call(Method::DELETE, &path, Some(&token), None).await;
                    check(
                        "DELETE /products/{id} removes it (needs an admin)",
                        delete,
                        &[204],
                    );
                    let gone = api.call(Method::GET, &path, None, None).await;
                    check("GET /products/{id} then answers 404", gone, &[404]);
                }
            }
        }
        None => {
            let email = format!("verify-{:08x}@example.com", fastrand::u32(..));
            let password: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(24)
                .collect();
            let creds = json!({"email": email, "password": password});
            let signup = api
                .call(Method::POST, "/signup", None, Some(creds.clone()))
                .await;
            // Open: 201; invitation-only or closed: 403. Both are the API working.
            if let Some((201, _)) =
                check("POST /signup (201 open, 403 closed)", signup, &[201, 403])
            {
                let login = api.call(Method::POST, "/login", None, Some(creds)).await;
                let token = check("POST /login as the new user", login, &[200])
                    .and_then(|(_, body)| body["token"].as_str().map(str::to_string));
                if let Some(token) = token {
                    let write = api
                        .call(Method::POST, "/products", Some(&token), Some(product))
                        .await;
                    check("POST /products as a new reader answers 403", write, &[403]);
                }
            }
        }
    }
    Ok(VerifyReport {
        url: url.to_string(),
        passed: checks.iter().all(|c| c.ok),
        checks,
    })
}
