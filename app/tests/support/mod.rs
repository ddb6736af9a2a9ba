//! What the app's emulator tests share: the emulator and SDK settings pointing at it.
#![allow(dead_code)] // each test binary uses a different part

#[path = "../../../deployer/tests/common/emulator.rs"]
pub mod emulator;

pub use emulator::Emulator;

/// SDK settings for the emulator at `url`, through the app's own HTTP client.
pub fn config(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .http_client(app::entry::http_client())
        .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(
            aws_sdk_ssm::config::Credentials::new("testing", "testing", None, None, "test"),
        ))
        .build()
}
