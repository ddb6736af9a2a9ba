//! Parses and renders kept between runs.
//!
//! Parsing (handlebars' pest grammar) is most of what a render costs, and a template rarely changes
//! between two commands, so each parse is kept in the user's cache directory with the text it came
//! from. An entry counts only for the same template text (compared whole, not by a hash) and the
//! same deployer executable (its version, size and modification time): a rebuilt or upgraded
//! deployer, whose parser or types may differ, parses again.
//!
//! `synth` keeps each stack's rendered bytes too, under a digest of everything the render read
//! (`Input`: the template's text and every value it is rendered with) and the build: a render is
//! a function of those alone, so the same digest means the same bytes. Each entry also holds a
//! CRC-32 of its bytes, checked when read.
//!
//! Above those, `synth` keeps what each command line last wrote (`run_entry`), under a digest of
//! the files themselves rather than of the values worked out from them (as ccache's direct mode
//! hashes sources, not their preprocessed text): a run where no file changed parses nothing.
//!
//! Any failure to read or write the cache just means a parse or a render: the cache never changes
//! what is rendered.
//!
//! Where: `DEPLOYER_CACHE_DIR` (empty turns the cache off), else `$XDG_CACHE_HOME/deployer`,
//! else `$HOME/.cache/deployer`. One file per template file, one per stack rendered by `synth`
//! (per environment and branch) and one per `synth` command line, each rewritten when its input
//! changes, so the cache
//! grows with the projects rendered, not with their edits; entries unread for 30 days
//! (templates of projects gone, temporary copies) are removed when one is written, by a sweep of
//! its directory made at most once a day.

use super::compact::Compacted;
use handlebars::Template;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an entry unread is kept.
const STALE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How often a directory is swept for stale entries. A sweep reads every entry's metadata: made
/// at every write, it cost a rendering run 7 ms more with 500 entries in the cache (one user's
/// projects and branches), where once a day costs one `stat` per write.
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// The file in each directory whose modification time says when it was last swept.
const SWEPT: &str = ".swept";

/// What parsing a template gives: what handlebars renders, and how to put the literal text back.
#[derive(Serialize, Deserialize)]
pub struct Parsed {
    pub template: Template,
    pub compacted: Option<Compacted>,
}

pub struct Cache {
    /// The cache's directory: parses in `templates/`, renders in `rendered/`.
    dir: PathBuf,
    /// This executable, as far as a cached parse depends on it.
    build: String,
}

impl Cache {
    /// The cache this process uses, if it has a directory for one.
    pub fn from_env() -> Option<Cache> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = match std::env::var_os("DEPLOYER_CACHE_DIR") {
            Some(dir) if dir.is_empty() => return None,
            Some(dir) => PathBuf::from(dir),
            None => var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))?
                .join("deployer"),
        };
        let exe = std::env::current_exe().ok()?.metadata().ok()?;
        let modified = exe
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Cache {
            dir,
            build: format!(
                "{} {} {}",
                env!("CARGO_PKG_VERSION"),
                exe.len(),
                modified.as_nanos()
            ),
        })
    }

    /// The parse of `text`, read from `path`, if this build kept one.
    pub fn get(&self, path: &Path, text: &str) -> Option<Parsed> {
        let bytes = std::fs::read(self.parse_slot(path)).ok()?;
        // The build and the text first: an entry of another is never decoded further.
        let (build, rest) = postcard::take_from_bytes::<&str>(&bytes).ok()?;
        let (source, parsed) = postcard::take_from_bytes::<&str>(rest).ok()?;
        (build == self.build && source == text)
            .then(|| postcard::from_bytes(parsed).ok())
            .flatten()
    }

    /// Keeps the parse of `text`, read from `path`, in place of what the slot held.
    pub fn put(&self, path: &Path, text: &str, parsed: &Parsed) {
        if let Ok(bytes) = postcard::to_stdvec(&(&self.build, text, parsed)) {
            keep(&self.parse_slot(path), |slot| {
                crate::files::write_whole(slot, &bytes)
            });
        }
    }

    /// Where a render of the template at `path` is kept, one slot per template file and `slot`
    /// (the environment and options: a branch's stacks have their own), named `name`; and the
    /// digest it holds for, of the build and each of `inputs` (everything the render read).
    pub(super) fn render_entry(
        &self,
        path: &Path,
        slot: &[u8],
        name: &str,
        inputs: &[&[u8]],
    ) -> Entry {
        let mut digest = Digest::new(&self.build);
        for input in inputs {
            digest.part(input);
        }
        Entry {
            path: self.slot("rendered", path, slot, name),
            key: digest.0.finalize().into(),
        }
    }

    /// Where `synth` keeps what the command line `what` (with the directory it runs in) last
    /// wrote, and the digest it holds for: of the build, `what`, and every file in `dirs` the run
    /// can read. That is each directory's names, and the text of each `.toml` and `.hbs` file in
    /// it: loading the environments and rendering read nothing else. None where a file cannot be
    /// read (the run then reports it as it always does).
    pub fn run_entry(&self, what: &[u8], dirs: &[&Path]) -> Option<Entry> {
        use std::io::Read as _;
        let mut digest = Digest::new(&self.build);
        digest.part(what);
        // One buffer for every file: fresh memory for each would cost more than the reading.
        let mut text = Vec::new();
        for dir in dirs {
            let mut names = std::fs::read_dir(dir)
                .ok()?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            names.sort();
            digest.part(dir.as_os_str().as_encoded_bytes());
            for name in names {
                digest.part(name.as_encoded_bytes());
                let bytes = name.as_encoded_bytes();
                if bytes.ends_with(b".toml") || bytes.ends_with(b".hbs") {
                    text.clear();
                    std::fs::File::open(dir.join(&name))
                        .and_then(|mut f| f.read_to_end(&mut text))
                        .ok()?;
                    digest.part(&text);
                }
            }
        }
        Some(Entry {
            path: (self.dir.join("runs"))
                .join(format!("{}-synth", &blake3::hash(what).to_hex()[..16])),
            key: digest.0.finalize().into(),
        })
    }

    /// One parse slot per template file.
    fn parse_slot(&self, path: &Path) -> PathBuf {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.slot("templates", path, &[], &format!("{name}.parsed"))
    }

    /// `dir/<digest>-<name>`, the digest of `path` made absolute and of `extra`.
    fn slot(&self, dir: &str, path: &Path, extra: &[u8], name: &str) -> PathBuf {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let digest = blake3::Hasher::new()
            .update(path.as_os_str().as_encoded_bytes())
            .update(&[0])
            .update(extra)
            .finalize();
        self.dir
            .join(dir)
            .join(format!("{}-{name}", &digest.to_hex()[..16]))
    }
}

/// A digest of inputs. BLAKE3 (as ccache's keys): hashing every input on every run is most of
/// what a kept render costs, and it hashes several times faster than SHA-256.
struct Digest(blake3::Hasher);

impl Digest {
    /// A digest of inputs read by `build`.
    fn new(build: &str) -> Digest {
        let mut digest = Digest(blake3::Hasher::new());
        digest.part(build.as_bytes());
        digest
    }

    /// Each part framed by its length, so that no two different inputs read alike.
    fn part(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
}

/// Something `synth` keeps (a stack's render, or what a run wrote): valid while its digest is that
/// of the inputs it came from.
#[derive(PartialEq)]
pub struct Entry {
    path: PathBuf,
    key: [u8; 32],
}

/// An entry's bytes: the inputs' digest, the text's CRC-32 (little-endian), then the text as it is
/// (so that a kept render is read without a copy). The CRC is there for damage (a disk's, another
/// program's), as zip and gzip check their members, and for an entry read while another run
/// writes over it (`put`): it costs a fraction of a digest to check.
const HEADER: usize = 36;

impl Entry {
    /// The bytes kept for these inputs, if they are and read back whole.
    pub fn get(&self) -> Option<String> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(&self.path).ok()?;
        // The header first: after an edit, every slot holds an entry for other inputs, and
        // reading each whole cost a rendering run its renders' size in copies.
        let mut header = [0; HEADER];
        file.read_exact(&mut header).ok()?;
        let (key, crc) = header.split_first_chunk::<32>()?;
        if *key != self.key {
            return None;
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).ok()?;
        if crc32fast::hash(&text).to_le_bytes() != crc {
            return None;
        }
        String::from_utf8(text).ok()
    }

    /// Keeps `text` as what these inputs give, written over what the slot held. In place, not
    /// written beside it and renamed as a parse is: a rendering run writes an entry for every
    /// stack, and a new file for each cost ext4 an inode taken and one freed every time. A reader
    /// meeting a write half done (or two writers' bytes mixed) finds the CRC wrong and renders,
    /// as where no entry is.
    pub fn put(&self, text: &str) {
        let crc = crc32fast::hash(text.as_bytes()).to_le_bytes();
        keep(&self.path, |slot| {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(slot)?;
            file.write_all(&[&self.key[..], &crc].concat())?;
            file.write_all(text.as_bytes())?;
            file.set_len((HEADER + text.len()) as u64)
        });
    }
}

/// Writes an entry to `slot` with `write`; then removes the entries beside it that are long
/// unread, if no sweep did today.
fn keep(slot: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) {
    let Some(dir) = slot.parent() else {
        return;
    };
    let _ = std::fs::create_dir_all(dir).and_then(|()| write(slot));
    let swept = dir.join(SWEPT);
    let recently = std::fs::metadata(&swept)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|since| since < SWEEP_EVERY);
    // Marked first: two processes writing at once sweep once between them, mostly.
    if !recently && std::fs::write(&swept, b"").is_ok() {
        forget_older_than(dir, STALE);
    }
}

/// Removes the entries in `dir` last read longer ago than `age`, as their access times tell
/// (Linux's default `relatime` updates them at least daily; where a file system keeps none, an
/// entry in use may go too, and is made and kept again).
fn forget_older_than(dir: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // The marker's access time is never refreshed: it is written, not read.
        if entry.file_name() == SWEPT {
            continue;
        }
        let unused = entry
            .metadata()
            .and_then(|m| m.accessed())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if unused.is_some_and(|unused| unused > age) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Input, Options};

    fn cache(dir: &Path, build: &str) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
            build: build.into(),
        }
    }

    #[test]
    fn an_entry_serves_only_its_own_text_and_build() {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/catalog.json.hbs");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = super::super::compile("catalog", &text, true, &path).unwrap();
        let this = cache(dir.path(), "this build");
        assert!(this.get(&path, &text).is_none());
        this.put(&path, &text, &parsed);
        let kept = this.get(&path, &text).expect("kept");
        assert_eq!(kept.template, parsed.template);
        let compacted = kept.compacted.expect("the catalog template is compacted");
        assert_eq!(compacted.restore(&compacted.source), text);
        assert!(this.get(&path, &format!("{text} ")).is_none(), "other text");
        assert!(cache(dir.path(), "a rebuild").get(&path, &text).is_none());
    }

    #[test]
    fn entries_unread_for_long_are_removed_by_a_sweep_made_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let this = cache(dir.path(), "this build");
        let parsed = |text: &str| super::super::compile("t", text, true, Path::new("t")).unwrap();
        let put = |name: &str, text: &str| {
            let path = dir.path().join(name);
            this.put(&path, text, &parsed(text));
            path
        };
        let set_back = |path: &Path, times: std::fs::FileTimes| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_times(times)
                .unwrap();
        };
        let long_ago = std::time::SystemTime::now() - STALE - Duration::from_secs(60);
        let old = put("old.json.hbs", "{\"a\": {{a}}}");
        set_back(
            &this.parse_slot(&old),
            std::fs::FileTimes::new().set_accessed(long_ago),
        );
        let marker = this.parse_slot(&old).with_file_name(SWEPT);
        // The first write swept (and marked) the directory: none other today.
        put("new.json.hbs", "{\"b\": {{b}}}");
        assert!(
            this.get(&old, "{\"a\": {{a}}}").is_some(),
            "swept twice a day"
        );
        set_back(
            &this.parse_slot(&old),
            std::fs::FileTimes::new().set_accessed(long_ago),
        );
        // A day later the next write sweeps; the marker, never read, stays.
        set_back(
            &marker,
            std::fs::FileTimes::new()
                .set_modified(std::time::SystemTime::now() - SWEEP_EVERY)
                .set_accessed(long_ago),
        );
        let new = put("new.json.hbs", "{\"b\": {{b}}}");
        assert!(
            this.get(&old, "{\"a\": {{a}}}").is_none(),
            "unread for 30 days"
        );
        assert!(this.get(&new, "{\"b\": {{b}}}").is_some());
        // Marked again, so the writes after it sweep nothing until tomorrow.
        let since = marker.metadata().unwrap().modified().unwrap().elapsed();
        assert!(since.is_ok_and(|since| since < SWEEP_EVERY));
    }

    /// A kept run's digest follows every file loading and rendering can read (and only those),
    /// the list of files, the build and the command line; the command line also names its slot.
    #[test]
    fn a_kept_run_holds_only_for_the_same_files_build_and_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let (environments, templates) = (
            dir.path().join("environments"),
            dir.path().join("templates"),
        );
        for (path, text) in [
            (environments.join("pipeline.toml"), "prefix = \"a\""),
            (templates.join("catalog.json.hbs"), "{}"),
            (templates.join("catalog.settings.toml"), ""),
            (templates.join("README.md"), "notes"),
        ] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let this = cache(dir.path(), "this build");
        let entry = |cache: &Cache, what: &str| {
            cache
                .run_entry(what.as_bytes(), &[&environments, &templates])
                .unwrap()
        };
        let first = entry(&this, "synth --all");
        assert!(first == entry(&this, "synth --all"), "nothing changed");
        std::fs::write(templates.join("README.md"), "other notes").unwrap();
        assert!(first == entry(&this, "synth --all"), "a file never read");

        let changes: [(&str, &dyn Fn()); 5] = [
            ("an environment's text", &|| {
                std::fs::write(environments.join("pipeline.toml"), "prefix = \"b\"").unwrap()
            }),
            ("a template's text", &|| {
                std::fs::write(templates.join("catalog.json.hbs"), "{ }").unwrap()
            }),
            ("a declarations file's text", &|| {
                std::fs::write(templates.join("catalog.settings.toml"), "# x").unwrap()
            }),
            ("a new file, which a warning may name", &|| {
                std::fs::write(environments.join("notes.txt"), "").unwrap()
            }),
            ("a renamed file", &|| {
                std::fs::rename(templates.join("README.md"), templates.join("NOTES.md")).unwrap()
            }),
        ];
        let mut before = first;
        for (what, change) in changes {
            change();
            let after = entry(&this, "synth --all");
            assert!(after.key != before.key, "{what}");
            assert_eq!(after.path, before.path, "{what}: the same slot");
            before = after;
        }
        let other_build = entry(&cache(dir.path(), "a rebuild"), "synth --all");
        assert!(other_build.key != before.key && other_build.path == before.path);
        let other_line = entry(&this, "synth sandbox");
        assert!(other_line.key != before.key && other_line.path != before.path);

        std::fs::create_dir(templates.join("unreadable.hbs")).unwrap();
        assert!(
            this.run_entry(b"synth --all", &[&environments, &templates])
                .is_none(),
            "a file the run would fail to read: no replay"
        );
    }

    /// Each part of a render's input, and the build, changes its key; the options change its slot.
    #[test]
    fn a_kept_render_serves_only_the_same_inputs_and_build() {
        let dir = tempfile::tempdir().unwrap();
        let this = cache(dir.path(), "this build");
        let envs = crate::config::Environments::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments"),
        )
        .unwrap();
        let input = || Input {
            kind: super::super::StackKind::Service("catalog"),
            env: envs.env("sandbox").unwrap(),
            stack_name: "catalog-sandbox".into(),
            path: dir.path().join("catalog.json.hbs"),
            text: "{{a}}".into(),
            resource_name: "catalog-sandbox".into(),
            ctx: serde_json::json!({"a": 1}),
            functions: vec!["query".into()],
        };
        let options = Options::default();
        let entry = input().entry_in(&this, &options);
        assert!(entry.get().is_none());
        entry.put("rendered");
        assert_eq!(
            input().entry_in(&this, &options).get().as_deref(),
            Some("rendered")
        );
        let changed: [&dyn Fn(&mut Input); 6] = [
            &|i| i.env = envs.env("prod").unwrap(),
            &|i| i.stack_name.push('x'),
            &|i| i.resource_name.push('x'),
            &|i| i.text.push(' '),
            &|i| i.ctx["a"] = serde_json::json!(2),
            &|i| i.functions.push("import".into()),
        ];
        for change in changed {
            let mut other = input();
            change(&mut other);
            let entry = other.entry_in(&this, &options);
            assert!(entry.key != input().entry_in(&this, &options).key);
            assert!(entry.get().is_none());
        }
        assert!(
            input()
                .entry_in(&cache(dir.path(), "a rebuild"), &options)
                .get()
                .is_none()
        );
        let branch = Options {
            branch: Some("feat/x".into()),
            ..Options::default()
        };
        assert_ne!(input().entry_in(&this, &branch).path, entry.path);
    }

    /// An entry is written over the slot's file, in place: a shorter one leaves nothing of the
    /// longer one behind, and bytes of two writes mixed (a reader meeting a write half done, or
    /// two writers at once) are never served.
    #[test]
    fn an_entry_written_over_another_serves_only_whole() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |key: u8| Entry {
            path: dir.path().join("rendered").join("slot"),
            key: [key; 32],
        };
        entry(1).put("a longer render of the inputs before");
        entry(2).put("shorter");
        assert_eq!(entry(2).get().as_deref(), Some("shorter"));
        assert!(entry(1).get().is_none());
        let before = std::fs::read(&entry(2).path).unwrap();
        entry(3).put("the next render");
        let after = std::fs::read(&entry(3).path).unwrap();
        // The new header over the old text, then the old header over the new text.
        let mixes = [
            [&after[..HEADER], &before[HEADER..]].concat(),
            [&before[..HEADER], &after[HEADER..]].concat(),
        ];
        for mixed in mixes {
            std::fs::write(&entry(3).path, mixed).unwrap();
            assert!(entry(3).get().is_none());
            assert!(entry(2).get().is_none());
        }
    }
}
