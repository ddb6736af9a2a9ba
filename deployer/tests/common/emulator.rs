//! The emulator as tests use it: an instance of the test's own, through `scripts/emulator`.
//! Shared by the deployer's and the app's tests (the app includes this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("scripts/emulator")
}

/// A moto server started through `scripts/emulator`, stopped on drop.
pub struct Emulator {
    pub url: String,
    state: tempfile::TempDir,
}

impl Emulator {
    pub fn start() -> Self {
        Emulator::start_with(&["111111111111", "222222222222", "333333333333"])
    }

    /// An emulator with an operator in each of `accounts` (the shipped files' three, or more).
    pub fn start_with(accounts: &[&str]) -> Self {
        let state = tempfile::tempdir().unwrap();
        let out = Command::new(script())
            .arg("start")
            .env("EMULATOR_STATE", state.path())
            .env("EMULATOR_ACCOUNTS", accounts.join(" "))
            .output()
            .expect("scripts/emulator runs");
        assert!(
            out.status.success(),
            "emulator failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Emulator { url, state }
    }

    /// Credentials that act as `account`, as an operator signed in there would hold.
    pub fn credentials(&self, account: &str) -> Vec<(String, String)> {
        self.credentials_of(account, None)
    }

    /// A session of `role` in `account`, taken the way the service its trust names would (the
    /// emulator's stand-in session, see scripts/moto_server.py): what CodeBuild or GitHub's OIDC
    /// would hand the commands they run.
    pub fn role_credentials(&self, account: &str, role: &str) -> Vec<(String, String)> {
        self.credentials_of(account, Some(role))
    }

    fn credentials_of(&self, account: &str, role: Option<&str>) -> Vec<(String, String)> {
        let out = Command::new(script())
            .args(["credentials", account])
            .args(role)
            .env("EMULATOR_STATE", self.state.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .env("EMULATOR_STATE", self.state.path())
            .output();
    }
}
