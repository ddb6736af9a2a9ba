//! `deployer branches list|gc`: the feature-branch stacks of the environment that holds them.

use crate::access::{Through, delete_signing_secret, session_in};
use crate::aws::Session;
use crate::branch::{branch_from_tag, branch_of, branch_stacks, resource_name_of_stack, tag_value};
use crate::config::{EnvName, Environments, Target};
use crate::display::Progress;
use crate::error::Error;
use crate::output::Report;
use crate::render::signing_secret;
use crate::stack::{Observer, Stacks};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct BranchStack {
    pub stack: String,
    /// The branch, as readable as its tag allows.
    pub branch: String,
    /// The branch tag as stored, which gc compares.
    #[serde(skip)]
    pub tag: String,
    /// The stack's id, which gc deletes by.
    #[serde(skip)]
    pub id: String,
    /// Its signing secret (an SSM parameter), which gc deletes once the stack is gone.
    #[serde(skip)]
    pub secret: String,
    pub status: String,
    pub created: String,
    pub age_hours: i64,
}

#[derive(Debug, Serialize)]
pub struct ListReport {
    pub stacks: Vec<BranchStack>,
}

impl Report for ListReport {
    fn human(&self) -> String {
        if self.stacks.is_empty() {
            return "no branch stacks\n".into();
        }
        let header = format!(
            "{:<40} {:<28} {:>6}  {}\n",
            "BRANCH", "STATUS", "AGE", "STACK"
        );
        self.stacks.iter().fold(header, |mut s, b| {
            let _ = writeln!(
                s,
                "{:<40} {:<28} {:>5}h  {}",
                b.branch, b.status, b.age_hours, b.stack
            );
            s
        })
    }
}

/// The environment that holds branch stacks, or why there is none.
fn host(envs: &Environments) -> Result<(EnvName, &Target), Error> {
    envs.branch_env().ok_or_else(|| {
        Error::Refused(format!(
            "no environment holds branch stacks: set branches.enabled = true in one of {} (one that needs no approval)",
            envs.names()
                .iter()
                .skip(1)
                .map(|e| envs.file(*e).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

async fn listed(envs: &Environments) -> Result<(Session, Stacks, Vec<BranchStack>), Error> {
    let (env, _) = host(envs)?;
    let session = session_in(envs, env, Through::DeployRole).await?;
    let stacks = Stacks::new(session.cloudformation());
    let prefix = envs.prefix().as_str();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rows = branch_stacks(&stacks, envs)
        .await?
        .iter()
        .map(|s| {
            let created = s.creation_time();
            let tag = branch_of(s).unwrap_or_default();
            let name = s.stack_name().unwrap_or_default();
            BranchStack {
                stack: name.into(),
                secret: signing_secret(envs, env, Some(&resource_name_of_stack(prefix, name))),
                id: s.stack_id().or(s.stack_name()).unwrap_or_default().into(),
                branch: branch_from_tag(tag),
                tag: tag.into(),
                status: crate::stack::status_of(s).into(),
                created: created
                    .and_then(crate::stack::time_text)
                    .unwrap_or_default(),
                age_hours: created.map_or(0, |t| (now - t.secs()) / 3600),
            }
        })
        .collect();
    Ok((session, stacks, rows))
}

pub async fn list(envs: &Environments) -> Result<ListReport, Error> {
    Ok(ListReport {
        stacks: listed(envs).await?.2,
    })
}

#[derive(Debug, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Stacks removed (or, with --dry-run, that would be), and why.
    pub removed: Vec<(String, String)>,
    pub kept: Vec<String>,
    /// Stacks whose deletion failed, and why: the others were still removed.
    pub failed: Vec<(String, String)>,
}

impl Report for GcReport {
    fn human(&self) -> String {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut s = String::new();
        for (stack, why) in &self.removed {
            let _ = writeln!(s, "{verb} {stack}: {why}");
        }
        for (stack, error) in &self.failed {
            let _ = writeln!(s, "could not remove {stack}: {error}");
        }
        let _ = writeln!(s, "kept {} branch stack(s)", self.kept.len());
        s
    }
}

/// Why a branch stack should go, if it should (`row.branch` is the stored tag value).
pub fn verdict(row: &BranchStack, keep: &[String], ttl_hours: i64) -> Option<String> {
    if !keep.iter().any(|k| tag_value(k) == row.tag) {
        Some(format!("branch {} is gone", row.branch))
    } else if row.age_hours >= ttl_hours {
        Some(format!(
            "older than branches.ttl_days ({} hours)",
            ttl_hours
        ))
    } else {
        None
    }
}

/// The branches that exist on the remote, from `git ls-remote --heads`.
pub fn remote_branches() -> Result<Vec<String>, Error> {
    let out = std::process::Command::new("git")
        .args(["ls-remote", "--heads", "origin"])
        .output()
        .map_err(|e| Error::Refused(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Error::Refused(format!(
            "`git ls-remote --heads origin` failed: {}; pass the branches to keep with --keep instead",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("refs/heads/").map(|(_, b)| b.to_string()))
        .collect())
}

/// Removes branch stacks whose branch is not in `keep`, and those older than the TTL. Only
/// stacks named and tagged as branch stacks are ever considered.
/// Unless `dry_run`, what would go is shown and confirmed first (`yes` answers for a script).
pub async fn gc(
    envs: &Environments,
    keep: &[String],
    dry_run: bool,
    yes: bool,
    progress: &mut Progress,
) -> Result<GcReport, Error> {
    let ttl_hours = i64::from(host(envs)?.1.branches.ttl_days) * 24;
    let (session, stacks, rows) = listed(envs).await?;
    let ssm = session.ssm();
    if !dry_run && !yes {
        let mut preview =
            remove(&stacks, &ssm, rows.clone(), keep, ttl_hours, true, progress).await;
        if preview.removed.is_empty() {
            // Nothing to remove: the same as removing it.
            preview.dry_run = false;
            return Ok(preview);
        }
        eprint!("{}", preview.human());
        super::confirm(
            &format!(
                "Delete these {} branch stacks and their data?",
                preview.removed.len()
            ),
            yes,
            "nothing was deleted",
        )
        .await?;
    }
    Ok(remove(&stacks, &ssm, rows, keep, ttl_hours, dry_run, progress).await)
}

/// How many deletions gc has running at once: N stacks take about the time of the slowest,
/// while CloudFormation's request rate is not stormed.
const AT_ONCE: usize = 10;

/// Deletes the rows that should go, several at once and each whatever became of the others:
/// one stack that cannot be deleted stops nothing, and is reported with its reason. The
/// listing described them already: each is deleted by its id without a second look, then its
/// signing secret.
pub async fn remove(
    stacks: &Stacks,
    ssm: &aws_sdk_ssm::Client,
    rows: Vec<BranchStack>,
    keep: &[String],
    ttl_hours: i64,
    dry_run: bool,
    progress: &mut dyn Observer,
) -> GcReport {
    use futures_util::StreamExt;
    let mut report = GcReport {
        dry_run,
        removed: vec![],
        kept: vec![],
        failed: vec![],
    };
    let shared = std::sync::Mutex::new(progress);
    let outcomes: Vec<_> = futures_util::stream::iter(rows)
        .map(|row| {
            let shared = &shared;
            async move {
                let why = verdict(&row, keep, ttl_hours);
                let result = match &why {
                    Some(_) if !dry_run => {
                        let deleted = stacks
                            .delete_listed(&row.stack, &row.id, &row.status, &mut Shared(shared))
                            .await;
                        match deleted {
                            Ok(()) => delete_signing_secret(ssm, &row.secret).await,
                            Err(e) => Err(e.into()),
                        }
                    }
                    _ => Ok(()),
                };
                (row.stack, why, result)
            }
        })
        .buffered(AT_ONCE)
        .collect()
        .await;
    for (stack, why, result) in outcomes {
        match (why, result) {
            (None, _) => report.kept.push(stack),
            (Some(why), Ok(())) => report.removed.push((stack, why)),
            (Some(_), Err(e)) => report.failed.push((stack, e.to_string())),
        }
    }
    report
}

/// One observer for deletions running at once: each event goes through in one piece.
struct Shared<'a, 'b>(&'a std::sync::Mutex<&'b mut dyn Observer>);

impl Observer for Shared<'_, '_> {
    fn event(&mut self, event: &crate::stack::Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .event(event);
    }
    fn waiting(&mut self, stack: &str, status: &str, elapsed: std::time::Duration) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting(stack, status, elapsed);
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Every branch stack with its branch, state and age.
    List,
    /// Remove branch stacks whose branch is gone or that outlived branches.ttl_days.
    #[command(group(clap::ArgGroup::new("branches").required(true).args(["keep", "keep_from_git"])))]
    Gc {
        /// The branches that still exist.
        #[arg(long, num_args = 1..)]
        keep: Vec<String>,
        /// Read the branches that still exist from `git ls-remote --heads origin`.
        #[arg(long)]
        keep_from_git: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask (a terminal asks; anything else needs this to remove).
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
    },
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    match args.action {
        Action::List => crate::output::emit(g.output, &list(envs).await?),
        Action::Gc {
            keep,
            keep_from_git,
            dry_run,
            yes,
        } => {
            let keep = if keep_from_git {
                remote_branches()?
            } else {
                keep
            };
            let mut progress = Progress::new(g.no_progress);
            let report = gc(envs, &keep, dry_run, yes, &mut progress).await?;
            drop(progress);
            crate::output::emit(g.output, &report);
            return Ok(if report.failed.is_empty() { 0 } else { 1 });
        }
    }
    Ok(0)
}
