//! `deployer synth`: render templates to files, the same bytes for the same inputs.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::{Options, Renderer, StackKind, Text};
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
    /// What was written, shown as its sha256: hashed only when a JSON report prints it.
    #[serde(rename = "sha256", serialize_with = "sha256_hex")]
    pub text: String,
}

fn sha256_hex<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(Sha256::digest(text.as_bytes())))
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
    let jobs = crate::render::all_stacks(envs, which);
    let rendered = renderer.render_texts(envs, &jobs, &Options::default())?;
    write(rendered, out, "")
}

/// A feature branch's stacks in `env` (one of each of its stacks), as `deploy --branch` would
/// make them (their own names, boundary and secret; no data kept), written as
/// `{env}-branch-{template}.json`.
pub fn synth_branch(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    branch: &str,
    out: &Path,
) -> Result<SynthReport, Error> {
    super::deploy::branches_allowed(envs, env)?;
    let options = Options {
        branch: Some(branch.to_string()),
        ..Default::default()
    };
    let jobs: Vec<_> = StackKind::services(envs, env)
        .into_iter()
        .map(|kind| (env, kind))
        .collect();
    write(
        renderer.render_texts(envs, &jobs, &options)?,
        out,
        "branch-",
    )
}

/// Writes the files once every stack rendered: a bad template leaves no half-written DIR.
fn write(rendered: Vec<Text>, out: &Path, infix: &str) -> Result<SynthReport, Error> {
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let files = rendered
        .into_iter()
        .map(|r| {
            let path = out.join(format!("{}-{infix}{}.json", r.env, r.kind.template_name()));
            // A file that already holds these bytes is left alone, its modification time too.
            if !holds(&path, r.text.as_bytes()) {
                write_whole(&path, r.text.as_bytes()).map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(Written {
                env: r.env,
                kind: r.kind,
                stack: r.stack_name,
                bytes: r.text.len(),
                text: r.text,
                path,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(SynthReport { files })
}

/// Whether the file at `path` holds exactly `bytes`: its length first, then its bytes a block at a
/// time (a run where nothing changed compares every file, and reading each whole into memory of
/// its own cost more than the comparing).
fn holds(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(bytes.len() as u64) {
        return false;
    }
    let mut block = [0; 16 * 1024];
    let mut rest = bytes;
    loop {
        match file.read(&mut block) {
            Ok(0) => return rest.is_empty(),
            Ok(n) if n <= rest.len() && block[..n] == rest[..n] => rest = &rest[n..],
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes `bytes` aside and renames them over `path`: synth takes no Ctrl-C handler, and an
/// interrupted run must not leave a file cut short. Made as `std::fs::write` would (0666 less the
/// umask), not private as a temporary file is.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let mut aside = tempfile::Builder::new()
        .prefix(".synth-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(path.parent().unwrap_or(Path::new(".")))?;
    aside.write_all(bytes)?;
    aside.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["env", "all"])))]
pub struct Args {
    /// The environment to render.
    env: Option<String>,
    /// Render every environment.
    #[arg(long)]
    all: bool,
    /// Where the JSON files go [default: out/ in the project's root].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Render this feature branch's stack instead, as `deploy ENV --branch B` would make it.
    #[arg(long, conflicts_with = "all")]
    branch: Option<String>,
}

pub fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let out = args.out.unwrap_or_else(|| g.at_root("out"));
    if let (Some(env), Some(branch)) = (args.env.as_deref(), args.branch.as_deref()) {
        let report = synth_branch(envs, &renderer, envs.env(env)?, branch, &out)?;
        crate::output::emit(g.output, &report);
        return Ok(0);
    }
    let which = super::one_or_all(envs, args.env.as_deref())?;
    crate::output::emit(g.output, &synth(envs, &renderer, &which, &out)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_compares_every_byte_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let bytes: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        assert!(!holds(&path, &bytes), "no file");
        std::fs::write(&path, &bytes).unwrap();
        assert!(holds(&path, &bytes));
        let mut other = bytes.clone();
        other[35_000] ^= 1; // in the third block
        assert!(!holds(&path, &other), "same length, one byte differs");
        assert!(!holds(&path, &bytes[..39_999]), "shorter");
        std::fs::write(&path, [&bytes[..], b"x"].concat()).unwrap();
        assert!(!holds(&path, &bytes), "longer");
    }
}
