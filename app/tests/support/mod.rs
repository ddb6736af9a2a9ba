//! What the app's emulator tests share: the emulator and SDK settings pointing at it.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

#[path = "../../../deployer/tests/common/emulator.rs"]
pub mod emulator;

pub use emulator::Emulator;

#[path = "../../../deployer/tests/common/proxy.rs"]
pub mod proxy;

/// The account the app's tests act in; the emulator enforces IAM, so they sign in as its operator.
pub const ACCOUNT: &str = "222222222222";

/// SDK settings for `emu`, signed in as the operator of [`ACCOUNT`], through the app's own HTTP
/// client.
pub fn config(emu: &Emulator) -> aws_config::SdkConfig {
    let creds: std::collections::HashMap<_, _> = emu.credentials(ACCOUNT).into_iter().collect();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&emu.url)
        .http_client(app::entry::http_client())
        .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(
            aws_sdk_ssm::config::Credentials::new(
                &creds["AWS_ACCESS_KEY_ID"],
                &creds["AWS_SECRET_ACCESS_KEY"],
                Some(creds["AWS_SESSION_TOKEN"].clone()),
                None,
                "emulator operator",
            ),
        ))
        .build()
}

/// Captures this thread's JSON log lines until the guard drops.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish(),
    );
    (captured, guard)
}

/// A tracing writer that keeps what it is given, for tests that read the logs.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
