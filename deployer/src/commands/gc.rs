//! `deployer gc ENV --artifacts`: removes from the environment's artifact bucket the artifact zips
//! and uploaded templates that nothing references any more, once they are older than a given age.
//!
//! Kept whatever their age: the artifact every stack of the account and region runs (a failed
//! update rolls back to it), the one each pending change set would run (an approval may wait),
//! and every artifact a history entry names (what `rollback` may choose). The bucket is
//! versioned, so a removal is a delete marker: the object can be brought back until the bucket's
//! lifecycle rule expires it (30 days, bootstrap-target.json.hbs).

use crate::access::{artifact_bucket, operator_session};
use crate::config::Environments;
use crate::error::Error;
use crate::output::Report;
use crate::stack::Stacks;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose artifact bucket to collect (shared by every environment of its
    /// account and region).
    env: String,
    /// Collect artifact zips and uploaded templates (the only kind gc collects so far).
    #[arg(long, required = true)]
    artifacts: bool,
    /// Only objects uploaded longer ago than this (like 30d, 12h): a deploy that has just
    /// uploaded its artifact may not have made its change set yet.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
    older_than: Duration,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask (a terminal asks; anything else needs this to remove).
    #[arg(long, conflicts_with = "dry_run")]
    yes: bool,
}

#[derive(Debug, Serialize)]
pub struct Removable {
    pub key: String,
    pub size: i64,
    pub uploaded: String,
}

#[derive(Debug, Serialize)]
pub struct GcReport {
    pub bucket: String,
    pub dry_run: bool,
    /// Objects removed (or, with --dry-run, that would be).
    pub removed: Vec<Removable>,
    /// Objects a stack, a change set or the history references.
    pub referenced: usize,
    /// Unreferenced objects not yet older than --older-than.
    pub too_young: usize,
    /// Objects whose removal failed, and why: the others were still removed.
    pub failed: Vec<(String, String)>,
}

impl Report for GcReport {
    fn human(&self) -> String {
        self.text(if self.dry_run {
            "would remove"
        } else {
            "removed"
        })
    }
}

impl GcReport {
    fn text(&self, verb: &str) -> String {
        let mut s = String::new();
        for r in &self.removed {
            let _ = writeln!(
                s,
                "{verb} s3://{}/{} ({} bytes, uploaded {})",
                self.bucket, r.key, r.size, r.uploaded
            );
        }
        for (key, error) in &self.failed {
            let _ = writeln!(s, "could not remove s3://{}/{key}: {error}", self.bucket);
        }
        let _ = writeln!(
            s,
            "kept {} referenced by a stack, a change set or the history, and {} too recent to remove",
            self.referenced, self.too_young
        );
        s
    }
}

/// What gc collects: `<package>/<sha256>.zip` and `templates/<sha256>.json`; anything else in
/// the bucket (the history above all) is never touched.
fn collectable(key: &str) -> bool {
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match key.split_once('/') {
        Some(("history", _)) => false,
        Some(("templates", file)) => file.strip_suffix(".json").is_some_and(hex),
        Some((_, file)) => file.strip_suffix(".zip").is_some_and(hex),
        None => false,
    }
}

/// The artifact keys the stacks of the account and region run and their change sets would run.
/// Refused while an operation runs on a stack that runs an artifact: its rollback may need the one
/// it ran before, which only the stack knows.
async fn referenced_by_stacks(stacks: &Stacks) -> Result<BTreeSet<String>, Error> {
    use aws_sdk_cloudformation::types::{ExecutionStatus, Parameter};
    let artifact_of = |parameters: &[Parameter]| {
        parameters
            .iter()
            .find(|p| p.parameter_key() == Some("ArtifactKey"))
            .and_then(|p| p.parameter_value().map(str::to_string))
    };
    let mut keys = BTreeSet::new();
    for stack in stacks.all().await? {
        let name = stack.stack_name().unwrap_or_default();
        let status = crate::stack::status_of(&stack);
        // A stack waiting for its first change set (an approval of a new stack, say) runs
        // nothing yet; its change set is looked at below.
        let waiting = status == "REVIEW_IN_PROGRESS";
        let running = artifact_of(stack.parameters());
        if running.is_none() && !waiting {
            continue;
        }
        if status.ends_with("_IN_PROGRESS") && !waiting {
            return Err(Error::Refused(format!(
                "{name} is {status}: rolling back may need the artifact it ran before; run gc once it has finished"
            )));
        }
        keys.extend(running);
        let id = stack.stack_id().unwrap_or(name);
        for summary in stacks.change_sets(id).await? {
            // Only one that can still be executed: an executed one is history already.
            if summary.execution_status() != Some(&ExecutionStatus::Available) {
                continue;
            }
            let id = summary.change_set_id().unwrap_or_default();
            keys.extend(artifact_of(&stacks.change_set_parameters(id).await?));
        }
    }
    Ok(keys)
}

pub async fn gc(envs: &Environments, args: &Args) -> Result<(aws_sdk_s3::Client, GcReport), Error> {
    let env = envs.env(&args.env)?;
    if envs.target(env).is_none() {
        return Err(Error::Refused(format!(
            "{env} has no artifact bucket of the deployer's: the pipeline's bucket holds CodePipeline's own artifacts, which its lifecycle rule expires; name an environment a stage deploys"
        )));
    }
    let session = operator_session(envs, env, "gc --artifacts").await?;
    let bucket = artifact_bucket(envs, env);
    let s3 = session.s3();
    let referenced = referenced_by_stacks(&Stacks::new(session.cloudformation())).await?;
    // One listing serves both: the history's keys name the artifacts they record.
    let objects = crate::artifact::objects(&s3, &bucket, "").await?;
    let recorded: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| crate::history::artifact_of_key(o.key()?))
        .collect();
    // An age past the start of time: nothing is old enough.
    let cutoff = std::time::SystemTime::now()
        .checked_sub(args.older_than)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut report = GcReport {
        bucket,
        dry_run: args.dry_run,
        removed: vec![],
        referenced: 0,
        too_young: 0,
        failed: vec![],
    };
    for object in &objects {
        let key = object.key().unwrap_or_default();
        if !collectable(key) {
            continue;
        }
        let in_history = key
            .rsplit('/')
            .next()
            .and_then(|file| file.strip_suffix(".zip"))
            .is_some_and(|sha256| recorded.contains(sha256));
        let uploaded = object.last_modified();
        if referenced.contains(key) || in_history {
            report.referenced += 1;
        } else if uploaded.and_then(|t| std::time::SystemTime::try_from(*t).ok()) > Some(cutoff) {
            report.too_young += 1;
        } else {
            report.removed.push(Removable {
                key: key.to_string(),
                size: object.size().unwrap_or_default(),
                uploaded: uploaded
                    .and_then(crate::stack::time_text)
                    .unwrap_or_default(),
            });
        }
    }
    Ok((s3, report))
}

/// Deletes the keys, a thousand to a request (S3's limit); the keys S3 could not delete, and why.
async fn remove(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) -> Vec<(String, String)> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut failed = vec![];
    for chunk in keys.chunks(1000) {
        let ids = chunk
            .iter()
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build();
        let out = match delete {
            Ok(delete) => s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| crate::aws::error_text(&e)),
            Err(e) => Err(e.to_string()),
        };
        match out {
            Ok(out) => failed.extend(out.errors().iter().map(|e| {
                (
                    e.key().unwrap_or_default().to_string(),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("error"),
                        e.message().unwrap_or("no message")
                    ),
                )
            })),
            Err(message) => failed.extend(chunk.iter().map(|k| (k.clone(), message.clone()))),
        }
    }
    failed
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let (s3, mut report) = gc(envs, &args).await?;
    if !args.dry_run && !report.removed.is_empty() {
        if !args.yes {
            eprint!("{}", report.text("would remove"));
            super::confirm(
                &format!(
                    "Remove {} unreferenced object{} from s3://{}?",
                    report.removed.len(),
                    if report.removed.len() == 1 { "" } else { "s" },
                    report.bucket
                ),
                false,
                "nothing was removed",
            )
            .await?;
        }
        let keys: Vec<String> = report.removed.iter().map(|r| r.key.clone()).collect();
        report.failed = remove(&s3, &report.bucket, &keys).await;
        report
            .removed
            .retain(|r| !report.failed.iter().any(|(k, _)| *k == r.key));
    }
    crate::output::emit(g.output, &report);
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::collectable;

    #[test]
    fn only_artifacts_and_uploaded_templates_are_collected() {
        let sha = "ab".repeat(32);
        assert!(collectable(&format!("app/{sha}.zip")));
        assert!(collectable(&format!("orders-fn/{sha}.zip")));
        assert!(collectable(&format!("templates/{sha}.json")));
        assert!(!collectable(&format!(
            "history/catalog-sandbox/1-{sha}.json"
        )));
        assert!(!collectable(&format!("history/{sha}.zip")));
        assert!(!collectable(&format!("app/{}.zip", &sha[..63])));
        assert!(!collectable("app/notes.zip"));
        assert!(!collectable(&format!("{sha}.zip")));
        assert!(!collectable(&format!("app/{sha}.json")));
    }
}
