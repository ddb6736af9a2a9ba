//! `deployer synth`: render templates to files, the same bytes for the same inputs.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::{Format, Report};
use crate::render::{Options, Renderer, StackKind, Text};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One file of a run: written, or found holding its bytes already.
#[derive(Debug, Serialize)]
pub struct Written {
    pub env: String,
    /// The template it was rendered from.
    pub kind: String,
    pub stack: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// What the file holds, as its SHA-256: worked out only for a JSON report, which prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What the file holds, as its BLAKE3: how a later run sees it still holds it.
    #[serde(skip)]
    blake3: blake3::Hash,
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
                f.env,
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
    format: Format,
) -> Result<SynthReport, Error> {
    let jobs = crate::render::all_stacks(envs, which);
    let rendered = renderer.render_texts(envs, &jobs, &Options::default())?;
    write(rendered, out, "", format)
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
    format: Format,
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
        format,
    )
}

/// Writes the files once every stack rendered: a bad template leaves no half-written DIR.
fn write(
    rendered: Vec<Text>,
    out: &Path,
    infix: &str,
    format: Format,
) -> Result<SynthReport, Error> {
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let files = rendered
        .into_iter()
        .map(|r| {
            let path = out.join(format!("{}-{infix}{}.json", r.env, r.kind.template_name()));
            let bytes = r.text.as_bytes();
            // A file that already holds these bytes is left alone, its modification time too.
            // Written whole: synth takes no Ctrl-C handler, and an interrupted run must not
            // leave a template cut short.
            if !holds(&path, bytes) {
                crate::files::write_whole(&path, bytes).map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(Written {
                env: r.env.as_str().to_string(),
                kind: r.kind.template_name().to_string(),
                stack: r.stack_name,
                bytes: bytes.len() as u64,
                sha256: (format == Format::Json).then(|| hex::encode(Sha256::digest(bytes))),
                blake3: blake3::hash(bytes),
                path,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(SynthReport { files })
}

/// What a run wrote, kept for the same command line to replay while no input changed.
#[derive(Serialize, Deserialize)]
struct KeptRun {
    warnings: Vec<String>,
    files: Vec<KeptFile>,
}

#[derive(Serialize, Deserialize)]
struct KeptFile {
    env: String,
    kind: String,
    stack: String,
    path: PathBuf,
    bytes: u64,
    blake3: String,
}

impl KeptRun {
    fn of(report: &SynthReport, warnings: &[String]) -> KeptRun {
        KeptRun {
            warnings: warnings.to_vec(),
            files: report
                .files
                .iter()
                .map(|f| KeptFile {
                    env: f.env.clone(),
                    kind: f.kind.clone(),
                    stack: f.stack.clone(),
                    path: f.path.clone(),
                    bytes: f.bytes,
                    blake3: f.blake3.to_hex().to_string(),
                })
                .collect(),
        }
    }

    /// The run's report, if every file it wrote still holds what it wrote (else a file was
    /// edited or removed since, and the run is made again, from the renders kept).
    fn replay(self, format: Format) -> Option<SynthReport> {
        let files = self
            .files
            .into_iter()
            .map(|f| {
                let kept = blake3::Hash::from_hex(&f.blake3).ok()?;
                let mut held = blake3::Hasher::new();
                let mut sha256 = (format == Format::Json).then(Sha256::new);
                let read = read_blocks(&f.path, f.bytes, |block| {
                    held.update(block);
                    if let Some(sha256) = &mut sha256 {
                        sha256.update(block);
                    }
                    true
                });
                (read && held.finalize() == kept).then(|| Written {
                    env: f.env,
                    kind: f.kind,
                    stack: f.stack,
                    path: f.path,
                    bytes: f.bytes,
                    sha256: sha256.map(|s| hex::encode(s.finalize())),
                    blake3: kept,
                })
            })
            .collect::<Option<_>>()?;
        Some(SynthReport { files })
    }
}

/// Whether the file at `path` holds exactly `bytes` (a run where nothing changed compares every
/// file, and reading each whole into memory of its own cost more than the comparing).
fn holds(path: &Path, bytes: &[u8]) -> bool {
    let mut rest = bytes;
    read_blocks(path, bytes.len() as u64, |block| {
        let same = block.len() <= rest.len() && *block == rest[..block.len()];
        rest = &rest[block.len().min(rest.len())..];
        same
    }) && rest.is_empty()
}

/// Hands the file at `path` to `each` a block at a time, if it is `len` bytes long: false where it
/// is not, cannot be read, or `each` says to stop.
fn read_blocks(path: &Path, len: u64, mut each: impl FnMut(&[u8]) -> bool) -> bool {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(len) {
        return false;
    }
    let mut block = [0; 16 * 1024];
    let mut left = len;
    loop {
        match file.read(&mut block) {
            Ok(0) => return left == 0,
            Ok(n) if n as u64 <= left && each(&block[..n]) => left -= n as u64,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
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

pub fn run(g: &super::Global, args: Args) -> Result<u8, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let out = args.out.clone().unwrap_or_else(|| g.at_root("out"));
    // The command line, as far as what it writes depends on it, and where it runs.
    let what = format!(
        "{:?}",
        (
            std::env::current_dir().ok(),
            &args,
            &g.environments,
            &g.templates,
            &out
        )
    );
    let kept = renderer.kept_run(what.as_bytes(), &g.environments);
    if let Some((warnings, report)) = kept
        .as_ref()
        .and_then(|k| serde_json::from_str::<KeptRun>(&k.get()?).ok())
        .and_then(|run| Some((run.warnings.clone(), run.replay(g.output)?)))
    {
        super::warn(&warnings);
        crate::output::emit(g.output, &report);
        return Ok(0);
    }
    let (envs, warnings) = super::load(g)?;
    let envs = &envs;
    let report = match (args.env.as_deref(), args.branch.as_deref()) {
        (Some(env), Some(branch)) => {
            synth_branch(envs, &renderer, envs.env(env)?, branch, &out, g.output)?
        }
        (env, _) => {
            let which = super::one_or_all(envs, env)?;
            synth(envs, &renderer, &which, &out, g.output)?
        }
    };
    // Kept only where no file changed while the run read them: else what it wrote could be of
    // files other than those its digest is of.
    if let Some(kept) = kept
        && renderer.kept_run(what.as_bytes(), &g.environments).as_ref() == Some(&kept)
        && let Ok(run) = serde_json::to_string(&KeptRun::of(&report, &warnings))
    {
        kept.put(&run);
    }
    crate::output::emit(g.output, &report);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept run gives the report its run gave, JSON digests included, while every file it
    /// wrote holds the same bytes; none once one differs, even by a byte, or is gone.
    #[test]
    fn a_kept_run_replays_only_while_every_file_holds_what_it_wrote() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let envs = Environments::load(&root.join("environments")).unwrap();
        let renderer = Renderer::load(&root.join("templates")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let report = synth(&envs, &renderer, &envs.names(), out.path(), Format::Json).unwrap();
        let run = serde_json::to_string(&KeptRun::of(&report, &["unused".into()])).unwrap();
        let kept = || serde_json::from_str::<KeptRun>(&run).unwrap();
        assert_eq!(kept().warnings, ["unused"]);
        let replayed = kept()
            .replay(Format::Json)
            .expect("every file holds its bytes");
        assert_eq!(
            serde_json::to_value(&replayed).unwrap(),
            serde_json::to_value(&report).unwrap()
        );
        let text = kept()
            .replay(Format::Text)
            .expect("every file holds its bytes");
        assert!(text.files.iter().all(|f| f.sha256.is_none()));
        assert_eq!(text.human(), report.human());

        let path = &report.files[3].path;
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() - 2;
        bytes[at] ^= 1;
        std::fs::write(path, &bytes).unwrap();
        assert!(kept().replay(Format::Text).is_none(), "a byte changed");
        bytes[at] ^= 1;
        std::fs::write(path, &bytes).unwrap();
        assert!(kept().replay(Format::Text).is_some(), "put back");
        std::fs::remove_file(path).unwrap();
        assert!(kept().replay(Format::Text).is_none(), "removed");
    }

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
