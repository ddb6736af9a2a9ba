//! Where the process starts: as a Lambda behind API Gateway, or as a server on localhost.

use crate::adapters;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::memory::{MemoryDeadLetters, MemoryStore};
use crate::adapters::sqs::SqsDeadLetters;
use crate::auth::Tokens;
use crate::domain::{Email, Signup};
use crate::http::{Identity, command_router, query_router, router};
use crate::import::Importer;
use crate::ports::DeadLetters;
use crate::service::Catalog;
use anyhow::Context;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::sns::SnsEvent;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use std::sync::Arc;

/// The table's name, set by the stack on Lambda.
pub const TABLE_VAR: &str = "CATALOG_TABLE";
/// On Lambda: the name of the SSM SecureString parameter holding the token secret.
pub const SECRET_PARAM_VAR: &str = "CATALOG_JWT_SECRET_PARAM";
/// Locally: the token secret itself.
pub const SECRET_VAR: &str = "CATALOG_JWT_SECRET";
/// The stack's name, which its tokens carry as issuer and audience (the template sets it).
pub const AUDIENCE_VAR: &str = "CATALOG_TOKEN_AUDIENCE";
/// The audience of tokens on localhost when none is set.
pub const LOCAL_AUDIENCE: &str = "catalog-local";

pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(adapters::CONNECT_TIMEOUT)
                .operation_attempt_timeout(adapters::ATTEMPT_TIMEOUT)
                .operation_timeout(adapters::CALL_TIMEOUT)
                .build(),
        )
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

/// Emails of users who are admins whatever their record says, comma-separated: how the first
/// admin comes to be (who then grants roles to others).
pub const ADMINS_VAR: &str = "CATALOG_ADMINS";

/// The admins `CATALOG_ADMINS` names; a value that is not an email is refused, naming it.
pub fn admins() -> anyhow::Result<Vec<Email>> {
    std::env::var(ADMINS_VAR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            Email::parse(e)
                .map_err(|err| anyhow::anyhow!("environment variable {ADMINS_VAR}: {e:?}: {err}"))
        })
        .collect()
}

/// Who may sign up: open, invite or closed (the environment's `[settings.catalog.users] signup`).
pub const SIGNUP_VAR: &str = "CATALOG_SIGNUP";

/// The sign-up policy `CATALOG_SIGNUP` names; open when unset (localhost).
pub fn signup() -> anyhow::Result<Signup> {
    match std::env::var(SIGNUP_VAR) {
        Err(_) => Ok(Signup::Open),
        Ok(raw) => Signup::parse(&raw)
            .map_err(|err| anyhow::anyhow!("environment variable {SIGNUP_VAR}: {raw:?}: {err}")),
    }
}

/// Behind the JWT authorizer: the scopes that make an admin and an editor (`[settings.catalog.auth]` in the
/// environment's file; the routes ask API Gateway for them too).
pub const ADMIN_SCOPE_VAR: &str = "CATALOG_ADMIN_SCOPE";
pub const EDITOR_SCOPE_VAR: &str = "CATALOG_EDITOR_SCOPE";

fn scopes() -> crate::http::Scopes {
    let default = crate::http::Scopes::default();
    crate::http::Scopes {
        admin: std::env::var(ADMIN_SCOPE_VAR).unwrap_or(default.admin),
        editor: std::env::var(EDITOR_SCOPE_VAR).unwrap_or(default.editor),
    }
}

/// On Lambda: "true" when API Gateway's JWT authorizer has checked the caller already.
pub const TRUST_AUTHORIZER_VAR: &str = "CATALOG_TRUST_AUTHORIZER";
/// On Lambda: the SQS queue URL for import messages that cannot be imported.
pub const DEAD_LETTER_VAR: &str = "CATALOG_DEAD_LETTER_QUEUE";

/// The three functions the stack makes from this one binary, told apart by their Handler
/// setting, which Lambda hands a custom runtime as `_HANDLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Query,
    Command,
    Import,
}

impl std::str::FromStr for Handler {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "query" => Ok(Handler::Query),
            "command" => Ok(Handler::Command),
            "import" => Ok(Handler::Import),
            other => anyhow::bail!(
                "unknown handler {other:?}: set the function's Handler to query, command or import"
            ),
        }
    }
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
    let name = required_var("_HANDLER")?;
    let handler: Handler = name.parse()?;
    // Which build runs, in the function's first log line: the label CATALOG_BUILD held when it
    // was compiled (a release tag, a commit), since a zip's sha256 says nothing to a reader.
    tracing::info!(
        handler = name.as_str(),
        build = option_env!("CATALOG_BUILD").unwrap_or("unlabelled"),
        "starting"
    );
    let config = aws_config().await;
    let table = required_var(TABLE_VAR)?;
    let run = |router| async {
        lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!(e))
    };
    match handler {
        Handler::Query => {
            run(query_router(tokenless_catalog(Store::Dynamo(
                dynamo_store(&config, &table),
            ))))
            .await
        }
        Handler::Command if std::env::var(TRUST_AUTHORIZER_VAR).as_deref() == Ok("true") => {
            run(command_router(
                tokenless_catalog(Store::Dynamo(dynamo_store(&config, &table))),
                Identity::Authorizer(scopes()),
            ))
            .await
        }
        Handler::Command => {
            run(command_router(
                lambda_catalog(
                    &config,
                    &required_var(SECRET_PARAM_VAR)?,
                    &table,
                    &required_var(AUDIENCE_VAR)?,
                )
                .await?,
                Identity::OwnTokens,
            ))
            .await
        }
        Handler::Import => {
            let dead_letters = sqs_dead_letters(&config, &required_var(DEAD_LETTER_VAR)?);
            let importer = importer(&config, &table, dead_letters);
            let importer = &importer;
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |event: lambda_http::LambdaEvent<SnsEvent>| async move {
                    // Only the kind of failure reaches Lambda's error report; details are logged.
                    importer
                        .handle(&event.payload)
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            tracing::error!(error = %e, "import failed; Lambda retries the event");
                            "import failed".to_string()
                        })
                },
            ))
            .await
            .map_err(|e| anyhow::anyhow!(e))
        }
    }
}

/// The import handler over `table`, rejected messages going to `dead_letters`.
pub fn importer(config: &SdkConfig, table: &str, dead_letters: Arc<dyn DeadLetters>) -> Importer {
    Importer::new(
        tokenless_catalog(Store::Dynamo(dynamo_store(config, table))),
        dead_letters,
    )
}

/// Dead letters into the SQS queue at `queue_url`.
pub fn sqs_dead_letters(config: &SdkConfig, queue_url: &str) -> Arc<dyn DeadLetters> {
    Arc::new(SqsDeadLetters::new(
        aws_sdk_sqs::Client::new(config),
        queue_url,
    ))
}

/// The import handler run once on the SNS event saved at `path` ("-": stdin), outside Lambda;
/// with no queue, dead letters are only reported.
pub async fn import_file(
    path: &std::path::Path,
    table: &str,
    queue_url: Option<&str>,
) -> anyhow::Result<crate::import::Report> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let event: SnsEvent = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an SNS event (Records[].Sns.Message)",
            path.display()
        )
    })?;
    let config = aws_config().await;
    let dead_letters = match queue_url {
        Some(url) => sqs_dead_letters(&config, url),
        None => Arc::new(MemoryDeadLetters::default()),
    };
    Ok(importer(&config, table, dead_letters)
        .handle(&event)
        .await?)
}

/// A catalog that never issues or checks tokens: reads, imports, and writes behind the JWT
/// authorizer.
pub fn tokenless_catalog(store: Store) -> Catalog {
    catalog_over(
        store,
        Tokens::ephemeral(LOCAL_AUDIENCE).expect("a fixed audience"),
    )
}

/// The command function's catalog: tokens signed with the SecureString `secret_param` for
/// `audience` (the stack's name), data in `table`.
pub async fn lambda_catalog(
    config: &SdkConfig,
    secret_param: &str,
    table: &str,
    audience: &str,
) -> anyhow::Result<Catalog> {
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
    let tokens = Tokens::new(secret.as_bytes(), audience)
        .with_context(|| format!("SSM parameter {secret_param}"))?;
    Ok(
        catalog_over(Store::Dynamo(dynamo_store(config, table)), tokens)
            .with_admins(admins()?)
            .with_signup(signup()?),
    )
}

/// Runs on localhost until Ctrl-C.
pub async fn serve(host: &str, port: u16, store: Store) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, never escape codes in a redirected log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let audience = std::env::var(AUDIENCE_VAR).unwrap_or_else(|_| LOCAL_AUDIENCE.into());
    let tokens = match std::env::var(SECRET_VAR) {
        Ok(secret) => Tokens::new(secret.as_bytes(), &audience)
            .with_context(|| format!("environment variables {SECRET_VAR}, {AUDIENCE_VAR}"))?,
        Err(_) => {
            tracing::warn!(
                "{SECRET_VAR} is not set: using a random secret; tokens end with this process"
            );
            Tokens::ephemeral(&audience)
                .with_context(|| format!("environment variable {AUDIENCE_VAR}"))?
        }
    };
    let app = router(
        catalog_over(store, tokens)
            .with_admins(admins()?)
            .with_signup(signup()?),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_setting_names_one_of_three_roles() {
        assert_eq!("query".parse::<Handler>().unwrap(), Handler::Query);
        assert_eq!("command".parse::<Handler>().unwrap(), Handler::Command);
        assert_eq!("import".parse::<Handler>().unwrap(), Handler::Import);
        // The default of a provided runtime, left in place by mistake.
        let err = "bootstrap".parse::<Handler>().unwrap_err().to_string();
        assert!(err.contains("unknown handler \"bootstrap\""), "{err}");
        assert!(err.contains("query, command or import"), "{err}");
    }
}
