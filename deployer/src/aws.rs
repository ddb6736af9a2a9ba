//! Credentials and clients: the operator's own session, and sessions in target accounts reached
//! through STS.

use crate::config::{AccountId, Region};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot tell which AWS account these credentials belong to: {message}; sign in first (aws sso login, --profile or AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or for the local emulator set AWS_ENDPOINT_URL"
    )]
    Identity { message: String },
    /// Nothing answered, or not in time: a network or endpoint problem, not a credentials one.
    #[error("{message}")]
    Unreachable { message: String },
    #[error("{action} on {target} failed: {message}")]
    Call {
        action: &'static str,
        target: String,
        message: String,
    },
    #[error(
        "cannot assume {role_arn} from account {from}: {message}; check that `deployer bootstrap` ran for that account and trusts account {from}"
    )]
    AssumeRole {
        role_arn: String,
        from: String,
        message: String,
    },
}

/// Whoever runs the deployer: their credentials, from wherever aws-config finds them (profile,
/// SSO, environment, `AWS_ENDPOINT_URL` for the emulator), and the account they belong to.
pub struct Operator {
    pub config: SdkConfig,
    pub account: String,
    /// The caller's ARN: for an assumed role, `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    pub arn: String,
}

static OPERATOR: tokio::sync::OnceCell<Operator> = tokio::sync::OnceCell::const_new();

/// How the operator signs in: set once, before the first AWS call, from the command line.
#[derive(Debug, Clone, Default)]
pub struct SignIn {
    /// `--profile`: a profile of the shared config files, over AWS_PROFILE.
    pub profile: Option<String>,
    /// `--region`: the operator's own region, over AWS_REGION and the profile's.
    pub region: Option<String>,
    /// Where no region is set anywhere: the pipeline account's, from pipeline.toml.
    pub fallback_region: String,
}

static SIGN_IN: std::sync::OnceLock<SignIn> = std::sync::OnceLock::new();

/// Sets how the operator signs in; the first setting wins.
pub fn sign_in(settings: SignIn) {
    let _ = SIGN_IN.set(settings);
}

/// How long one attempt of one AWS call may take before it counts as unanswered: a frozen
/// endpoint must not hold a deploy for ever. `DEPLOYER_CALL_TIMEOUT` (seconds) changes it.
pub fn call_timeout() -> std::time::Duration {
    let secs = std::env::var("DEPLOYER_CALL_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    std::time::Duration::from_secs(secs)
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The operator, resolved once per process: one config load, one GetCallerIdentity.
pub async fn operator() -> Result<&'static Operator, Error> {
    OPERATOR
        .get_or_try_init(|| async {
            let settings = SIGN_IN.get().cloned().unwrap_or_default();
            // Retries are the SDK's standard policy (three attempts with backoff, throttling
            // included; AWS_MAX_ATTEMPTS and AWS_RETRY_MODE=adaptive change it): no call retries
            // by hand. Only a long wait outlasts throttling beyond it, by polling on.
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http_client())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .operation_attempt_timeout(call_timeout())
                        .build(),
                );
            if let Some(profile) = &settings.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(region) = &settings.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            let mut config = loader.load().await;
            if config.region().is_none() && !settings.fallback_region.is_empty() {
                config = config
                    .to_builder()
                    .region(aws_config::Region::new(settings.fallback_region))
                    .build();
            }
            let (account, arn) = caller(&config).await?;
            Ok(Operator {
                config,
                account,
                arn,
            })
        })
        .await
}

/// rustls with ring: no OpenSSL and no aws-lc C build. Every request through it is counted.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(Counting(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    ))
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// HTTP requests sent to AWS by this process so far, retries included.
pub fn calls() -> usize {
    CALLS.load(Ordering::Relaxed)
}

#[derive(Debug)]
struct Counting(SharedHttpClient);

impl HttpClient for Counting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector(
            self.0.http_connector(settings, components),
        ))
    }
}

#[derive(Debug)]
struct CountingConnector(SharedHttpConnector);

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        CALLS.fetch_add(1, Ordering::Relaxed);
        self.0.call(request)
    }
}

/// A set of credentials in one account and region.
#[derive(Clone, Debug)]
pub struct Session {
    pub config: SdkConfig,
    pub account: String,
    /// Whose rights the session's calls have: the role assumed, or the caller's own ARN.
    pub acting_as: String,
}

impl Session {
    /// Where the session's calls go and as whom, in one line: what a command is about to act on.
    pub fn whereabouts(&self) -> String {
        let region = self.config.region().map_or("no region", |r| r.as_ref());
        let endpoint = match self.config.endpoint_url() {
            Some(url) => format!(", at {url} (not AWS)"),
            None => String::new(),
        };
        format!(
            "account {}, {region}, as {}{endpoint}",
            self.account, self.acting_as
        )
    }

    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        // Emulators answer on one host name, not on bucket subdomains.
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.config.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config)
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.config)
    }
}

/// The account and ARN the credentials in `config` belong to.
async fn caller(config: &SdkConfig) -> Result<(String, String), Error> {
    use aws_sdk_sts::error::SdkError;
    let who = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| match e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
                if !is_credentials_error(&e) =>
            {
                Error::Unreachable {
                    message: error_text(&e),
                }
            }
            e => Error::Identity {
                message: error_text(&e),
            },
        })?;
    match (who.account, who.arn) {
        (Some(account), Some(arn)) => Ok((account, arn)),
        _ => Err(Error::Identity {
            message: "STS returned no account or ARN".into(),
        }),
    }
}

impl Operator {
    /// A session in the operator's own account, in `region`.
    pub fn session_here(&self, region: &Region) -> Session {
        Session {
            config: self
                .config
                .to_builder()
                .region(aws_config::Region::new(region.as_str().to_string()))
                .build(),
            account: self.account.clone(),
            acting_as: self.arn.clone(),
        }
    }

    /// A session of `role_names[0]` in `account`, assumed through STS even from that account, so
    /// that what a command may do there is what the role may do, never the caller's own (often
    /// administrator) rights. A caller that already is one of `role_names` in that account (the
    /// pipeline's session of the deploy role, GitHub's of the branch role) goes on as it is.
    pub async fn session_in(
        &self,
        account: &AccountId,
        region: &Region,
        role_names: &[&str],
    ) -> Result<Session, Error> {
        let here = self.session_here(region);
        let already = role_names.iter().any(|role| {
            self.arn
                .strip_prefix(&format!("arn:aws:sts::{account}:assumed-role/{role}/"))
                .is_some()
        });
        if already {
            return Ok(here);
        }
        let role_name = role_names[0];
        let from = &self.account;
        let role_arn = format!("arn:aws:iam::{account}:role/{role_name}");
        // Who deployed, for CloudTrail: the caller's own name (user, or role session).
        let who: String = self
            .arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
            .collect();
        let session_name: String = format!("deployer-{who}").chars().take(64).collect();
        // Assumed now, so that a refusal is reported here, naming the role.
        let assumed = aws_sdk_sts::Client::new(&here.config)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(&session_name)
            .send()
            .await
            .map_err(|e| Error::AssumeRole {
                role_arn: role_arn.clone(),
                from: from.clone(),
                message: error_text(&e),
            })?;
        let c = assumed.credentials.ok_or_else(|| Error::AssumeRole {
            role_arn: role_arn.clone(),
            from: from.clone(),
            message: "STS returned no credentials".into(),
        })?;
        let first = Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            std::time::SystemTime::try_from(c.expiration).ok(),
            "deployer-assume-role",
        );
        // A wait can outlast the session (an hour for a chained role): the SDK's identity cache
        // asks again when these expire, and the SDK's own provider assumes the role afresh.
        let refresh = aws_config::sts::AssumeRoleProvider::builder(&role_arn)
            .session_name(&session_name)
            .configure(&here.config)
            .build()
            .await;
        Ok(Session {
            config: here
                .config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(Refreshing {
                    first: std::sync::Mutex::new(Some(first)),
                    refresh,
                }))
                .build(),
            account: account.to_string(),
            acting_as: role_arn,
        })
    }
}

/// The credentials of the AssumeRole already made, handed out once, then the SDK's provider.
#[derive(Debug)]
struct Refreshing {
    first: std::sync::Mutex<Option<Credentials>>,
    refresh: aws_config::sts::AssumeRoleProvider,
}

impl aws_sdk_sts::config::ProvideCredentials for Refreshing {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.first.lock().expect("not poisoned").take();
        match first {
            Some(c) => aws_credential_types::provider::future::ProvideCredentials::ready(Ok(c)),
            None => self.refresh.provide_credentials(),
        }
    }
}

/// Whether an SDK error is about missing or unusable credentials rather than the network.
fn is_credentials_error<E, R>(e: &aws_sdk_sts::error::SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Where calls go, for messages: the emulator's URL, or AWS itself.
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .map(|url| format!("the endpoint {url} (AWS_ENDPOINT_URL)"))
        .unwrap_or_else(|_| "AWS".into())
}

/// Whether an error is the local emulator's answer to an API it does not implement: HTTP 500
/// with no AWS error code, from an endpoint AWS_ENDPOINT_URL names (AWS always sends a code).
pub fn unimplemented_by_emulator<E>(
    e: &aws_sdk_sts::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> bool
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sts::error::SdkError;
    std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty())
        && matches!(e, SdkError::ServiceError(se)
            if se.err().code().is_none() && se.raw().status().as_u16() == 500)
}

/// The most useful line of an SDK error: the service's code and message when there is one, else
/// what the endpoint actually answered (a proxy's page, an API the endpoint does not implement).
pub fn error_text<E>(
    e: &aws_sdk_sts::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> String
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sts::error::SdkError;
    if unimplemented_by_emulator(e) {
        return format!(
            "the local emulator ({}) does not implement this call (it answered HTTP 500 with no AWS error code, which AWS always sends); on AWS it gets a real answer",
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
        );
    }
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => {
                    let raw = se.raw();
                    let body = String::from_utf8_lossy(raw.body().bytes().unwrap_or_default());
                    // An HTML or XML error page reads better without its tags; each tag becomes
                    // a space so that the texts of neighbouring elements stay apart.
                    let mut in_tag = false;
                    let text: String = body
                        .chars()
                        .filter_map(|c| {
                            let was = in_tag;
                            in_tag = (in_tag || c == '<') && c != '>';
                            match (was, c) {
                                (false, '<') => Some(' '),
                                (false, c) => Some(c),
                                (true, _) => None,
                            }
                        })
                        .collect();
                    let body: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    let body: String = body.chars().take(200).collect();
                    format!(
                        "HTTP {} without an AWS error code{}",
                        raw.status().as_u16(),
                        if body.is_empty() {
                            String::new()
                        } else {
                            format!(": {body}")
                        }
                    )
                }
            }
        }
        SdkError::TimeoutError(_) => format!(
            "no answer from {} within {} s; it accepts connections but does not respond (DEPLOYER_CALL_TIMEOUT sets the limit)",
            endpoint(),
            call_timeout().as_secs()
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => format!(
            "cannot connect to {} within {} s",
            endpoint(),
            CONNECT_TIMEOUT.as_secs()
        ),
        SdkError::DispatchFailure(d) if d.is_io() => format!(
            "cannot reach {}: {}",
            endpoint(),
            aws_sdk_sts::error::DisplayErrorContext(e)
        ),
        // With its causes: "dispatch failure" alone says nothing.
        other => aws_sdk_sts::error::DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_async::test_util::ManualTimeSource;
    use aws_smithy_async::time::SharedTimeSource;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    /// A session's credentials run out during a wait (an hour for a chained role): the next call
    /// is signed with credentials assumed afresh, not refused with ExpiredToken. STS and the
    /// clock are stand-ins: no emulator session can be made to expire within a test.
    #[tokio::test]
    async fn assumed_credentials_are_renewed_when_they_run_out_during_a_wait() {
        let start = SystemTime::now();
        let clock = ManualTimeSource::new(start);
        // The access key each GetCallerIdentity (the calls of the wait) was signed with.
        let signed_with = Arc::new(Mutex::new(vec![]));
        let seen = signed_with.clone();
        let http = aws_smithy_http_client::test_util::infallible_client_fn(move |req| {
            let body = std::str::from_utf8(req.body().bytes().unwrap_or_default())
                .unwrap_or_default()
                .to_string();
            let key = req
                .headers()
                .get("authorization")
                .and_then(|a| a.to_str().ok())
                .and_then(|a| a.split("Credential=").nth(1))
                .and_then(|c| c.split('/').next())
                .unwrap_or_default()
                .to_string();
            let xml = if body.contains("Action=AssumeRole") {
                assert_eq!(
                    key, "OPERATOR",
                    "the role is assumed with the caller's own keys"
                );
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>FRESH</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::222222222222:assumed-role/catalog-deploy/deployer-op</Arn><AssumedRoleId>AROA:deployer-op</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
            } else {
                seen.lock().unwrap().push(key);
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::222222222222:assumed-role/catalog-deploy/deployer-op</Arn><UserId>AROA:deployer-op</UserId><Account>222222222222</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
            };
            http::Response::builder().status(200).body(xml).unwrap()
        });
        let operator = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .http_client(http)
            .time_source(SharedTimeSource::new(clock.clone()))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "OPERATOR", "s", None, None, "test",
            )))
            .build();
        let refresh = aws_config::sts::AssumeRoleProvider::builder(
            "arn:aws:iam::222222222222:role/catalog-sandbox-deploy",
        )
        .session_name("deployer-op")
        .configure(&operator)
        .build()
        .await;
        let first = Credentials::new(
            "FIRST",
            "s",
            Some("t".into()),
            Some(start + Duration::from_secs(3600)),
            "test",
        );
        let session = operator
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(Refreshing {
                first: Mutex::new(Some(first)),
                refresh,
            }))
            .build();
        let sts = aws_sdk_sts::Client::new(&session);
        sts.get_caller_identity().send().await.unwrap();
        sts.get_caller_identity().send().await.unwrap();
        // An hour into the wait: the first credentials are gone.
        clock.advance(Duration::from_secs(3600));
        sts.get_caller_identity().send().await.unwrap();
        assert_eq!(*signed_with.lock().unwrap(), ["FIRST", "FIRST", "FRESH"]);
    }
}
