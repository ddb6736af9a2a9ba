//! Test harness: the real `deployer` binary, run in a temporary copy of the project's
//! environments and templates, against an emulator instance of the test's own.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

#[path = "emulator.rs"]
mod emulator;
mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub use emulator::Emulator;
pub use proxy::{holding_proxy, silent_endpoint};

/// The accounts of the shipped environment files.
pub const PIPELINE: &str = "111111111111";
pub const SANDBOX: &str = "222222222222";
pub const PROD: &str = "333333333333";

/// A project signed in to the pipeline account, with sandbox bootstrapped and an artifact
/// packaged (a stand-in binary: the emulator never runs it).
pub fn bootstrapped(emu: &Emulator) -> Project {
    let p = Project::new().signed_in(emu, PIPELINE);
    p.run_as(emu, SANDBOX, &["bootstrap", "sandbox"]).expect(0);
    package(&p, "v1");
    p
}

pub fn package(p: &Project, version: &str) -> serde_json::Value {
    std::fs::write(p.path("app-binary"), stand_in_binary(version)).unwrap();
    p.run(&["package", "--binary", "app-binary", "--output", "json"])
        .expect(0)
        .json()
}

/// A small ELF executable standing in for the app (the emulator never runs it), with `text` in
/// it so that each version has bytes of its own: `scripts/stand-in-binary`.
pub fn stand_in_binary(text: &str) -> Vec<u8> {
    let out = Command::new(repo_root().join("scripts/stand-in-binary"))
        .arg(text)
        .output()
        .expect("python3 runs scripts/stand-in-binary");
    assert!(out.status.success());
    out.stdout
}

/// SDK settings acting as `account` in `emu`, for checks from outside the deployer.
pub fn sdk_config(emu: &Emulator, account: &str) -> aws_config::SdkConfig {
    let creds: std::collections::HashMap<_, _> = emu.credentials(account).into_iter().collect();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&emu.url)
        .http_client(deployer::aws::http_client())
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new(
                &creds["AWS_ACCESS_KEY_ID"],
                &creds["AWS_SECRET_ACCESS_KEY"],
                Some(creds["AWS_SESSION_TOKEN"].clone()),
                None,
                "test",
            ),
        ))
        .build()
}

pub fn cloudformation(emu: &Emulator, account: &str) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&sdk_config(emu, account))
}

/// The code Lambda holds for each of the stack's three functions (named `{base}-query` and so
/// on) in `account`, as it reports it.
pub async fn code_sha256s(emu: &Emulator, account: &str, base: &str) -> Vec<String> {
    let lambda = aws_sdk_lambda::Client::new(&sdk_config(emu, account));
    let mut shas = vec![];
    for role in ["query", "command", "import"] {
        let function = lambda
            .get_function()
            .function_name(format!("{base}-{role}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{base}-{role}: {e:?}"));
        shas.push(function.configuration.unwrap().code_sha256.unwrap());
    }
    shas
}

/// The lowercase hex sha256 of `bytes`, as manifests and error messages write it.
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifest's hex sha256 as Lambda reports CodeSha256: base64 of the digest.
pub fn lambda_sha(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A YAML document (a workflow, a buildspec) as a JSON value.
pub fn yaml(text: &str) -> serde_json::Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// A scratch project: copies of environments/ and templates/ that a test may break.
pub struct Project {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["environments", "templates"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(repo_root().join(sub)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).unwrap();
            }
        }
        Project { dir, env: vec![] }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// Replaces `from` by `to` in a file, failing loudly if `from` is not there.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Points every later run at `emu`, signed in as `account`.
    pub fn signed_in(mut self, emu: &Emulator, account: &str) -> Self {
        self.env = emu.credentials(account);
        self.env.push(("AWS_ENDPOINT_URL".into(), emu.url.clone()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs signed in to `account` of `emu` for this run only.
    pub fn run_as(&self, emu: &Emulator, account: &str, args: &[&str]) -> Run {
        let mut env = emu.credentials(account);
        env.push(("AWS_ENDPOINT_URL".into(), emu.url.clone()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.run_with(args, &env)
    }

    /// Runs from `sub`, a directory inside the project (made if missing).
    pub fn run_from(&self, sub: &str, args: &[&str]) -> Run {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        Run(self
            .command(args, &[], &[])
            .current_dir(dir)
            .output()
            .expect("deployer runs"))
    }

    /// Runs with extra environment variables on top of the project's.
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        self.run_unset(args, extra, &[])
    }

    /// Runs with extra environment variables, and without those `unset` names (the harness sets
    /// AWS_REGION and dummy keys by default).
    pub fn run_unset(&self, args: &[&str], extra: &[(&str, &str)], unset: &[&str]) -> Run {
        Run(self
            .command(args, extra, unset)
            .output()
            .expect("deployer runs"))
    }

    /// Runs on a pseudo-terminal (util-linux `script`), typing `input`: what a person at a
    /// terminal sees and answers. Both streams come back as stdout, as a terminal shows them.
    pub fn run_on_terminal(&self, args: &[&str], input: &str) -> Run {
        self.run_on_terminal_with(args, input, &[])
    }

    /// The same, with more environment variables.
    pub fn run_on_terminal_with(&self, args: &[&str], input: &str, extra: &[(&str, &str)]) -> Run {
        use std::io::Write;
        let mut child = self.spawn_on_terminal(args, extra);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run(child.wait_with_output().expect("script ends"))
    }

    /// Starts a run on a pseudo-terminal, for a test to read what it shows (stdout, both streams)
    /// and type into it (stdin; "\x03" is Ctrl-C) as it goes.
    pub fn spawn_on_terminal(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Child {
        let inner = self.command(args, extra, &[]);
        let quote =
            |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''"));
        let line: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(quote)
            .collect();
        Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .current_dir(self.dir.path())
            .env_clear()
            .envs(
                inner
                    .get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script runs")
    }

    /// Starts a run without waiting for it; its stderr is piped.
    pub fn spawn_with(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Child {
        self.command(args, extra, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("deployer starts")
    }

    fn command(&self, args: &[&str], extra: &[(&str, &str)], unset: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deployer"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_REGION", "us-east-1")
            // The emulator answers missing APIs with 500s: fail at once instead of retrying.
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(extra.iter().copied());
        for name in unset {
            cmd.env_remove(name);
        }
        cmd
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited normally")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout()))
    }
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The `app` binary beside the deployer's (the workspace builds both into one directory), serving
/// an in-memory catalog; its base URL.
pub struct App(std::process::Child, pub String);

impl App {
    pub fn start(signup: &str) -> App {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_deployer")).with_file_name("app");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace",
            bin.display()
        );
        let mut child = std::process::Command::new(bin)
            .args(["serve", "--port", "0"])
            .env(
                "CATALOG_JWT_SECRET",
                "verify-test-secret-that-is-32-bytes-long",
            )
            .env("CATALOG_ADMINS", "ann@example.com")
            .env("CATALOG_SIGNUP", signup)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let url = lines
            .find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_string))
            .expect("the app says where it listens");
        App(child, url)
    }
}

impl App {
    /// One HTTP/1.1 request to the app (no client tool needed: CI installs none), its status
    /// and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let host = self.1.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}
