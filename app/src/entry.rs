//! Where the process starts: as a Lambda behind API Gateway, or as a server on localhost.

use crate::adapters::{dynamodb::DynamoStore, memory::MemoryStore};
use crate::auth::Tokens;
use crate::http::router;
use crate::service::Catalog;
use anyhow::Context;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use std::sync::Arc;

/// The table's name, set by the stack on Lambda.
pub const TABLE_VAR: &str = "CATALOG_TABLE";
/// On Lambda: the name of the SSM SecureString parameter holding the token secret.
pub const SECRET_PARAM_VAR: &str = "CATALOG_JWT_SECRET_PARAM";
/// Locally: the token secret itself.
pub const SECRET_VAR: &str = "CATALOG_JWT_SECRET";

pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}

/// rustls with ring: no OpenSSL, no aws-lc C build.
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

pub fn dynamo_store(config: &SdkConfig, table: &str) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(config), table)
}

/// The catalog over DynamoDB or over memory.
pub fn catalog_over(store: Store, tokens: Tokens) -> Catalog {
    match store {
        Store::Memory => {
            let memory = Arc::new(MemoryStore::default());
            Catalog::new(memory.clone(), memory, tokens)
        }
        Store::Dynamo(dynamo) => {
            let dynamo = Arc::new(dynamo);
            Catalog::new(dynamo.clone(), dynamo, tokens)
        }
    }
}

pub enum Store {
    Memory,
    Dynamo(DynamoStore),
}

fn required_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("environment variable {name} is not set"))
}

/// Runs as a Lambda: the secret is read once per cold start, never logged.
pub async fn lambda() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time() // CloudWatch stamps each line
        .init();
    let config = aws_config().await;
    let app = lambda_router(
        &config,
        &required_var(SECRET_PARAM_VAR)?,
        &required_var(TABLE_VAR)?,
    )
    .await?;
    lambda_http::run(app).await.map_err(|e| anyhow::anyhow!(e))
}

/// The router a Lambda serves: tokens signed with the SecureString `secret_param`, data in `table`.
pub async fn lambda_router(
    config: &SdkConfig,
    secret_param: &str,
    table: &str,
) -> anyhow::Result<axum::Router> {
    let secret = aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(secret_param)
        .with_decryption(true)
        .send()
        .await
        .with_context(|| format!("reading SSM parameter {secret_param}"))?
        .parameter
        .and_then(|p| p.value)
        .with_context(|| format!("SSM parameter {secret_param} has no value"))?;
    let tokens =
        Tokens::new(secret.as_bytes()).with_context(|| format!("SSM parameter {secret_param}"))?;
    Ok(router(catalog_over(
        Store::Dynamo(dynamo_store(config, table)),
        tokens,
    )))
}

/// Runs on localhost until Ctrl-C.
pub async fn serve(host: &str, port: u16, store: Store) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let tokens = match std::env::var(SECRET_VAR) {
        Ok(secret) => Tokens::new(secret.as_bytes())
            .with_context(|| format!("environment variable {SECRET_VAR}"))?,
        Err(_) => {
            tracing::warn!(
                "{SECRET_VAR} is not set: using a random secret; tokens end with this process"
            );
            Tokens::ephemeral()
        }
    };
    let app = router(catalog_over(store, tokens));
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    // The one line on stdout: scripts read the address from it.
    println!("listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
