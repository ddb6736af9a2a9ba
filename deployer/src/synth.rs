//! `deployer synth`: render templates to files, the same bytes for the same inputs.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::{Renderer, StackKind};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct Written {
    pub env: EnvName,
    pub kind: StackKind,
    pub stack: String,
    pub path: PathBuf,
    pub bytes: usize,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct SynthReport {
    pub files: Vec<Written>,
}

impl Report for SynthReport {
    fn human(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let _ = writeln!(
                s,
                "{:<8} {:<32} {} ({} bytes)",
                f.env.as_str(),
                f.stack,
                f.path.display(),
                f.bytes
            );
        }
        s
    }
}

pub fn synth(
    envs: &Environments,
    renderer: &Renderer,
    which: &[EnvName],
    out: &Path,
) -> Result<SynthReport, Error> {
    // Render everything before writing anything: a bad template leaves no half-written DIR.
    let rendered = renderer.render_all(envs, which)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let files = rendered
        .into_iter()
        .map(|r| {
            let path = out.join(format!("{}-{}.json", r.env, r.kind.template_name()));
            let text = r.to_pretty();
            std::fs::write(&path, &text).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            Ok(Written {
                env: r.env,
                kind: r.kind,
                stack: r.stack_name,
                bytes: text.len(),
                sha256: hex(&Sha256::digest(text.as_bytes())),
                path,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(SynthReport { files })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
