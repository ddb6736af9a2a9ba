//! `deployer package` and the artifact a deploy ships: the app's `bootstrap` binary in a zip
//! whose bytes depend on the binary only, and a manifest naming its sha256.

use crate::config::{Architecture, ArtifactSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a deployer manifest: {message}; make a new one with `deployer package`")]
    BadManifest { path: PathBuf, message: String },
    #[error(
        "{zip} does not match {manifest}: its sha256 is {actual}, the manifest says {expected}; run `deployer package` again rather than editing either"
    )]
    Tampered {
        zip: PathBuf,
        manifest: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("building the app failed: {0}")]
    Build(String),
    /// The binary would not run on Lambda.
    #[error("{0}")]
    Unfit(String),
    #[error("zipping failed: {0}")]
    Zip(String),
    /// The object under the artifact's key is not the artifact: replaced or corrupted in S3.
    #[error(
        "s3://{bucket}/{key} is not the artifact the manifest names: S3 holds sha256 {actual}, the manifest says {expected}; find out who wrote it (CloudTrail), then deploy a new build: its key differs"
    )]
    Replaced {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    /// A recalled artifact (a rollback through the pipeline) the stack never ran.
    #[error(
        "{stack} never ran artifact {sha256}: a rollback goes back only to an artifact the stack's own history lists (`deployer history ENV`); start it again with one of those"
    )]
    NotInHistory { stack: String, sha256: String },
    #[error(transparent)]
    Aws(#[from] crate::aws::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// sha256 of the zip, lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub architecture: Architecture,
    /// The zip's file name, beside the manifest.
    pub zip: String,
    /// The workspace package it was built from (`[artifact]` in pipeline.toml).
    pub package: String,
}

impl Manifest {
    /// Where the zip lives in a target's artifact bucket: by content, so it is uploaded once.
    pub fn s3_key(&self) -> String {
        format!("{}/{}.zip", self.package, self.sha256)
    }
}

/// Builds the artifact's executable in release mode for Lambda and returns its path, as cargo
/// reports it (so CARGO_TARGET_DIR and a run from a subdirectory find the binary just built).
pub fn build(source: &ArtifactSource, architecture: Architecture) -> Result<PathBuf, Error> {
    let host = match std::env::consts::ARCH {
        "x86_64" => Architecture::X86_64,
        "aarch64" => Architecture::Arm64,
        other => {
            return Err(Error::Build(format!(
                "no Lambda architecture for host {other}"
            )));
        }
    };
    if host != architecture {
        return Err(Error::Build(format!(
            "this machine builds {host} binaries but the environment asks for {architecture}; build the app for that target yourself (e.g. with cargo zigbuild) and pass it with --binary, or set lambda.architecture"
        )));
    }
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            source.package.as_str(),
            "--bin",
            source.bin(),
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Build(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(Error::Build(format!(
            "cargo build exited with {}",
            out.status
        )));
    }
    built_executable(&String::from_utf8_lossy(&out.stdout), source.bin()).ok_or_else(|| {
        Error::Build(format!(
            "cargo built no executable named {} ([artifact] in pipeline.toml)",
            source.bin()
        ))
    })
}

/// The executable named `name` among cargo's JSON build messages (the last, if several).
fn built_executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

/// The newest glibc that Lambda's provided.al2023 runtime has.
pub const LAMBDA_GLIBC: (u32, u32) = (2, 34);

/// Reads the binary as Lambda would load it and refuses what could not run there: a file that
/// is not a 64-bit Linux ELF executable, one built for another architecture than the
/// environment's, or one that needs a newer glibc than Lambda has (it would fail at its first
/// cold start, not here).
fn check_binary(path: &Path, bytes: &[u8], architecture: Architecture) -> Result<(), Error> {
    use object::read::elf::ElfFile64;
    use object::{Object, ObjectKind};
    let unfit = |why: String| Error::Unfit(format!("{} {why}", path.display()));
    let file = match object::FileKind::parse(bytes) {
        Ok(object::FileKind::Elf64) => ElfFile64::<object::Endianness>::parse(bytes)
            .map_err(|e| unfit(format!("is a damaged ELF file ({e})")))?,
        Ok(kind) => {
            return Err(unfit(format!(
                "is a {kind:?} file, not the 64-bit Linux ELF executable Lambda runs; pass the app's release binary"
            )));
        }
        Err(_) => {
            return Err(unfit(
                "is not an executable (no ELF header); pass the app's release binary".into(),
            ));
        }
    };
    if !matches!(file.kind(), ObjectKind::Executable | ObjectKind::Dynamic) || file.entry() == 0 {
        return Err(unfit(format!(
            "is an ELF {:?} file, not an executable; pass the app's release binary",
            file.kind()
        )));
    }
    let built_for = match file.architecture() {
        object::Architecture::X86_64 => Some(Architecture::X86_64),
        object::Architecture::Aarch64 => Some(Architecture::Arm64),
        _ => None,
    };
    if built_for != Some(architecture) {
        return Err(unfit(format!(
            "is built for {}, but the environment's lambda.architecture is {architecture}; build for {architecture} or change the setting",
            built_for.map_or_else(|| format!("{:?}", file.architecture()), |a| a.to_string())
        )));
    }
    let needed =
        newest_glibc(&file).map_err(|e| unfit(format!("has unreadable symbol versions ({e})")))?;
    if let Some(needed) = needed.filter(|n| *n > LAMBDA_GLIBC) {
        return Err(unfit(format!(
            "needs glibc {}.{} but Lambda's provided.al2023 has {}.{}; build against an older glibc, e.g. cargo zigbuild --release -p app --target x86_64-unknown-linux-gnu.2.34, and pass it with --binary",
            needed.0, needed.1, LAMBDA_GLIBC.0, LAMBDA_GLIBC.1
        )));
    }
    Ok(())
}

/// The newest `GLIBC_x.y` version the executable needs (its GNU version-needed entries); None
/// for a binary that needs no glibc (static).
fn newest_glibc(
    file: &object::read::elf::ElfFile64<object::Endianness>,
) -> object::Result<Option<(u32, u32)>> {
    let (endian, data) = (file.endian(), file.data());
    let sections = file.elf_section_table();
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, data, link)?;
    let mut newest = None;
    while let Some((_, mut versions)) = needs.next()? {
        while let Some(version) = versions.next()? {
            let name = String::from_utf8_lossy(version.name(endian, strings)?).into_owned();
            newest = newest.max(glibc_version(&name));
        }
    }
    Ok(newest)
}

/// `GLIBC_2.34` as (2, 34).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("GLIBC_")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}

/// Zips `binary` as `bootstrap` into `out`, writes `out/manifest.json`, returns the manifest.
pub fn package(
    binary: &Path,
    package: &str,
    architecture: Architecture,
    out: &Path,
) -> Result<Manifest, Error> {
    let bytes = std::fs::read(binary).map_err(|source| Error::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    check_binary(binary, &bytes, architecture)?;
    let zip = zip_bootstrap(&bytes)?;
    let sha256 = hex::encode(Sha256::digest(&zip));
    let manifest = Manifest {
        zip: format!("{package}-{}.zip", &sha256[..16]),
        package: package.to_string(),
        size: zip.len() as u64,
        sha256,
        architecture,
    };
    write(out, &manifest, &zip)?;
    Ok(manifest)
}

/// Fixed timestamp and mode: the same binary always gives the same zip bytes.
fn zip_bootstrap(binary: &[u8]) -> Result<Vec<u8>, Error> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("bootstrap", options)
        .map_err(|e| Error::Zip(e.to_string()))?;
    writer
        .write_all(binary)
        .map_err(|e| Error::Zip(e.to_string()))?;
    Ok(writer
        .finish()
        .map_err(|e| Error::Zip(e.to_string()))?
        .into_inner())
}

/// What a manifest file names: an artifact built here, or one recalled by its sha256 from the
/// history of the stack it goes to.
#[derive(Debug)]
pub enum Loaded {
    /// The manifest and its zip, checked against each other.
    Built(Manifest, Vec<u8>),
    /// `package --from-history SHA` (Build, in a rollback through the pipeline): no zip here;
    /// each deploy takes the manifest from its stack's history and the zip from its own bucket,
    /// so only an artifact that stack ran before can come back.
    Recalled(String),
}

/// The manifest file `package --from-history` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecallFile {
    from_history: Recall,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recall {
    sha256: String,
}

/// Whether `text` is a whole sha256 in lowercase hex, as manifests and histories name artifacts.
fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes `dir/manifest.json` recalling the artifact `sha256` (and no zip); its path.
pub fn write_recall(dir: &Path, sha256: &str) -> Result<PathBuf, Error> {
    let path = dir.join("manifest.json");
    if !is_sha256(sha256) {
        return Err(Error::BadManifest {
            path,
            message: format!(
                "\"{sha256}\" is not an artifact's sha256 (64 lowercase hex digits, as `deployer history` lists them)"
            ),
        });
    }
    let text = serde_json::to_string_pretty(&RecallFile {
        from_history: Recall {
            sha256: sha256.to_string(),
        },
    })
    .expect("a recall serializes");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Reads a manifest and its zip, refusing a zip whose bytes are not the ones it names; or the
/// artifact a recall names.
pub fn load(manifest_path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(manifest_path).map_err(|source| Error::Read {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    if let Ok(recall) = serde_json::from_str::<RecallFile>(&text) {
        if !is_sha256(&recall.from_history.sha256) {
            return Err(Error::BadManifest {
                path: manifest_path.to_path_buf(),
                message: format!(
                    "from_history.sha256 \"{}\" is not 64 lowercase hex digits",
                    recall.from_history.sha256
                ),
            });
        }
        return Ok(Loaded::Recalled(recall.from_history.sha256));
    }
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::BadManifest {
        path: manifest_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let zip_path = manifest_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&manifest.zip);
    let zip = std::fs::read(&zip_path).map_err(|source| Error::Read {
        path: zip_path.clone(),
        source,
    })?;
    let actual = hex::encode(Sha256::digest(&zip));
    if actual != manifest.sha256 {
        return Err(Error::Tampered {
            zip: zip_path,
            manifest: manifest_path.to_path_buf(),
            expected: manifest.sha256,
            actual,
        });
    }
    Ok(Loaded::Built(manifest, zip))
}

/// Puts the zip in `bucket` once, under its sha256, with S3 checking that sha256 on arrival and
/// refusing to replace an object already there (If-None-Match; the bucket policy refuses writes
/// without it). An object already under the key must carry the manifest's sha256, or the deploy
/// stops. True if uploaded.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
    zip: Vec<u8>,
) -> Result<bool, Error> {
    put_once(s3, bucket, &manifest.s3_key(), &manifest.sha256, zip).await
}

/// Puts a template too large to send inline into `bucket` the same way, under
/// `templates/SHA256.json`; its key.
pub async fn upload_template(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    body: &str,
) -> Result<String, Error> {
    let sha256 = hex::encode(Sha256::digest(body.as_bytes()));
    let key = format!("templates/{sha256}.json");
    put_once(s3, bucket, &key, &sha256, body.as_bytes().to_vec()).await?;
    Ok(key)
}

/// `bytes` under `key` once (a record that is never replaced), checked on arrival.
pub(crate) async fn put_bytes_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
) -> Result<bool, Error> {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    put_once(s3, bucket, key, &sha256, bytes).await
}

/// The zip of an artifact the bucket already holds, checked against the manifest's sha256.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
) -> Result<Vec<u8>, Error> {
    let key = manifest.s3_key();
    let zip = read_object(s3, bucket, &key).await?;
    let actual = hex::encode(Sha256::digest(&zip));
    if actual != manifest.sha256 {
        return Err(Error::Replaced {
            bucket: bucket.to_string(),
            key,
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    Ok(zip)
}

/// The objects of `bucket` under `prefix`, every page.
pub async fn objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<aws_sdk_s3::types::Object>, Error> {
    let mut objects = vec![];
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            Error::Aws(crate::aws::Error::Call {
                action: "s3:ListObjectsV2",
                target: format!("s3://{bucket}/{prefix}"),
                message: crate::aws::error_text(&e),
            })
        })?;
        objects.extend(page.contents.unwrap_or_default());
    }
    Ok(objects)
}

/// The bytes of an object of `bucket`.
pub(crate) async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, Error> {
    let call_error = |message| {
        Error::Aws(crate::aws::Error::Call {
            action: "s3:GetObject",
            target: format!("s3://{bucket}/{key}"),
            message,
        })
    };
    Ok(s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| call_error(crate::aws::error_text(&e)))?
        .body
        .collect()
        .await
        .map_err(|e| call_error(e.to_string()))?
        .into_bytes()
        .to_vec())
}

/// Writes `manifest` and its `zip` into `dir`, as `package` would; the manifest's path.
pub fn write(dir: &Path, manifest: &Manifest, zip: &[u8]) -> Result<PathBuf, Error> {
    let write = |path: PathBuf, data: &[u8]| {
        std::fs::write(&path, data).map_err(|source| Error::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write(dir.join(&manifest.zip), zip)?;
    let text = serde_json::to_string_pretty(manifest).expect("a manifest serializes");
    let path = dir.join("manifest.json");
    write(path.clone(), text.as_bytes())?;
    Ok(path)
}

/// `bytes` under `key` once, checked against `sha256` (hex) on arrival and after; true if
/// uploaded now.
async fn put_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    sha256: &str,
    bytes: Vec<u8>,
) -> Result<bool, Error> {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
    let key = key.to_string();
    let call_error = |action, message| {
        Error::Aws(crate::aws::Error::Call {
            action,
            target: format!("s3://{bucket}/{key}"),
            message,
        })
    };
    let verify = || async {
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match head {
            Ok(o) => {
                let actual = match o.checksum_sha256() {
                    Some(sum) => hex_of_base64(sum),
                    // Uploaded before checksums: read it and hash it ourselves.
                    None => hex::encode(Sha256::digest(read_object(s3, bucket, &key).await?)),
                };
                if actual != sha256 {
                    return Err(Error::Replaced {
                        bucket: bucket.to_string(),
                        key: key.clone(),
                        expected: sha256.to_string(),
                        actual,
                    });
                }
                Ok(true)
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(false),
            Err(e) => Err(call_error("s3:HeadObject", crate::aws::error_text(&e))),
        }
    };
    if verify().await? {
        return Ok(false);
    }
    let sum = aws_smithy_types::base64::encode(
        (0..sha256.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&sha256[i..i + 2], 16).ok())
            .collect::<Vec<u8>>(),
    );
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .if_none_match("*")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(sum)
        .body(bytes.into())
        .send()
        .await;
    match put {
        Ok(_) => Ok(true),
        // Another deploy wrote it between our look and our write: it must be the same bytes.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
            verify().await?;
            Ok(false)
        }
        Err(e) => Err(call_error("s3:PutObject", crate::aws::error_text(&e))),
    }
}

fn hex_of_base64(sum: &str) -> String {
    aws_smithy_types::base64::decode(sum)
        .map(|bytes| hex::encode(&bytes))
        .unwrap_or_else(|_| format!("(not a sha256: {sum})"))
}

impl crate::output::Report for Manifest {
    fn human(&self) -> String {
        format!(
            "{} ({} bytes, {})\nsha256 {}\n",
            self.zip, self.size, self.architecture, self.sha256
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scripts/stand-in-binary's ELF executable, as bytes.
    fn stand_in(args: &[&str]) -> Vec<u8> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stand-in-binary");
        let out = std::process::Command::new(script)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn only_an_elf_executable_for_the_environment_and_lambdas_glibc_is_packaged() {
        let path = Path::new("app-binary");
        let x86 = stand_in(&["v1"]);
        assert!(check_binary(path, &x86, Architecture::X86_64).is_ok());
        assert!(check_binary(path, &stand_in(&["v1", "arm64"]), Architecture::Arm64).is_ok());
        assert!(
            check_binary(
                path,
                &stand_in(&["v1", "x86_64", "2.34"]),
                Architecture::X86_64
            )
            .is_ok()
        );
        let refused = |bytes: &[u8], arch| check_binary(path, bytes, arch).unwrap_err().to_string();
        assert_eq!(
            refused(&x86, Architecture::Arm64),
            "app-binary is built for x86_64, but the environment's lambda.architecture is arm64; build for arm64 or change the setting"
        );
        assert!(
            refused(&stand_in(&["v1", "x86_64", "2.99"]), Architecture::X86_64)
                .starts_with("app-binary needs glibc 2.99 but Lambda's provided.al2023 has 2.34")
        );
        let readme =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
        assert_eq!(
            refused(&readme, Architecture::X86_64),
            "app-binary is not an executable (no ELF header); pass the app's release binary"
        );
        assert!(refused(b"#!/bin/sh\necho hi\n", Architecture::X86_64).contains("no ELF header"));
    }

    #[test]
    fn glibc_versions_are_read_from_their_names() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GCC_3.0"), None);
        assert!(glibc_version("GLIBC_2.35").unwrap() > LAMBDA_GLIBC);
    }

    #[test]
    fn cargo_reports_where_it_put_the_executable() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"domain","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"app","kind":["bin"]},"executable":"/elsewhere/release/app"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            built_executable(messages, "app"),
            Some(PathBuf::from("/elsewhere/release/app"))
        );
        assert_eq!(built_executable(messages, "other"), None);
    }
}
