//! Feature-branch stacks: a stack name for any git branch that never collides with another
//! branch's, and the names of the resources inside it.

use sha2::{Digest, Sha256};

/// CloudFormation's limit on stack names.
pub const STACK_NAME_MAX: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{branch:?} is not a valid git branch name: {why}; use the name `git branch --show-current` prints"
)]
pub struct BadBranch {
    pub branch: String,
    pub why: &'static str,
}

/// The rules of `git check-ref-format --branch` that a name can break.
pub fn validate(branch: &str) -> Result<(), BadBranch> {
    let bad = |why| {
        Err(BadBranch {
            branch: branch.into(),
            why,
        })
    };
    if branch.is_empty() || branch == "@" {
        return bad("it is empty");
    }
    if branch.starts_with('-') {
        return bad("it starts with '-'");
    }
    if branch
        .chars()
        .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
    {
        return bad("it holds a space, a control character or one of ~ ^ : ? * [ \\");
    }
    if branch.contains("..") || branch.contains("@{") || branch.contains("//") {
        return bad("it holds '..', '@{' or '//'");
    }
    if branch.starts_with('/') || branch.ends_with('/') || branch.ends_with('.') {
        return bad("it starts or ends with '/' or ends with '.'");
    }
    if branch
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return bad("a part of it starts with '.' or ends with '.lock'");
    }
    Ok(())
}

/// A short digest of the full name: `feat/A` and `feat-a` slug alike but differ here.
pub fn digest(branch: &str) -> String {
    crate::synth::hex(&Sha256::digest(branch.as_bytes()))[..10].to_string()
}

/// The branch lowered to `[a-z0-9-]`, runs of anything else as one '-'.
fn slug(branch: &str) -> String {
    let mut out = String::new();
    for c in branch.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `{prefix}-br-{slug}-{digest}`, the slug cut to fit 128 characters; `{prefix}-br-{digest}`
/// when nothing of the name survives slugging.
pub fn stack_name(prefix: &str, branch: &str) -> Result<String, BadBranch> {
    validate(branch)?;
    let digest = digest(branch);
    let fixed = format!("{prefix}-br-");
    let room = STACK_NAME_MAX - fixed.len() - digest.len() - 1;
    let slug: String = slug(branch).chars().take(room).collect();
    let slug = slug.trim_end_matches('-');
    Ok(if slug.is_empty() {
        format!("{fixed}{digest}")
    } else {
        format!("{fixed}{slug}-{digest}")
    })
}

/// The base of the names of resources in a branch stack (function, log group, API): short,
/// because a Lambda function name holds at most 64 characters.
pub fn resource_name(prefix: &str, branch: &str) -> String {
    format!("{prefix}-br-{}", digest(branch))
}

/// The tag that marks a branch stack and names its branch.
pub const BRANCH_TAG: &str = "branch";

/// The live branch stacks of this project: named like one and tagged with its branch.
pub async fn branch_stacks(
    stacks: &crate::stack::Stacks,
    envs: &crate::config::Environments,
) -> Result<Vec<aws_sdk_cloudformation::types::Stack>, crate::stack::Error> {
    let prefix = format!("{}-br-", envs.prefix().as_str());
    Ok(stacks
        .all()
        .await?
        .into_iter()
        .filter(|s| {
            s.stack_name().is_some_and(|n| n.starts_with(&prefix)) && branch_of(s).is_some()
        })
        .collect())
}

pub fn branch_of(stack: &aws_sdk_cloudformation::types::Stack) -> Option<&str> {
    crate::stack::tag_of(stack, BRANCH_TAG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gc_removes_gone_and_expired_branches_only() {
        let row = |branch: &str, age_hours| commands::BranchStack {
            stack: stack_name("catalog", branch).unwrap(),
            branch: branch.into(),
            status: "CREATE_COMPLETE".into(),
            created: String::new(),
            age_hours,
        };
        let keep = ["feat/a".to_string(), "feat/b".to_string()];
        assert_eq!(commands::verdict(&row("feat/a", 1), &keep, 168), None);
        assert!(
            commands::verdict(&row("feat/b", 168), &keep, 168)
                .unwrap()
                .contains("older than")
        );
        assert!(
            commands::verdict(&row("feat/gone", 1), &keep, 168)
                .unwrap()
                .contains("is gone")
        );
    }

    fn is_stack_name(name: &str) -> bool {
        name.len() <= STACK_NAME_MAX
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }

    #[test]
    fn names_keep_the_branch_readable() {
        assert_eq!(
            stack_name("catalog", "feat/Add-Search").unwrap(),
            format!("catalog-br-feat-add-search-{}", digest("feat/Add-Search"))
        );
        assert_ne!(
            stack_name("catalog", "feat/A"),
            stack_name("catalog", "feat-a")
        );
        let unicode = stack_name("catalog", "фича/поиск").unwrap();
        assert_eq!(unicode, format!("catalog-br-{}", digest("фича/поиск")));
        let long = stack_name("catalog", &"x".repeat(300)).unwrap();
        assert_eq!(long.len(), STACK_NAME_MAX);
        // Lambda function names stop at 64 characters; "-command" is the longest suffix.
        assert!(resource_name("catalog", &"x".repeat(300)).len() + "-command".len() <= 64);
    }

    #[test]
    fn invalid_branch_names_are_refused() {
        for bad in [
            "", "a..b", "a b", "-x", "x/", "/x", "x.lock", "a/.b", "x@{1}", "a~1", "x.",
        ] {
            assert!(stack_name("catalog", bad).is_err(), "{bad:?} accepted");
        }
    }

    fn branch() -> impl Strategy<Value = String> {
        // Any text: letters of any script, punctuation, slashes; invalid ones are filtered.
        "[a-zA-Z0-9/_.\\-ÄäßéЖж漢字]{1,200}"
            .prop_filter("valid git branch", |b| validate(b).is_ok())
    }

    proptest! {
        #[test]
        fn every_valid_branch_gets_a_valid_stack_name(b in branch()) {
            let name = stack_name("catalog", &b).unwrap();
            prop_assert!(is_stack_name(&name), "{name}");
        }

        #[test]
        fn distinct_branches_never_share_a_stack(a in branch(), b in branch()) {
            prop_assume!(a != b);
            prop_assert_ne!(stack_name("catalog", &a).unwrap(), stack_name("catalog", &b).unwrap());
        }
    }
}

pub mod commands {
    //! `deployer branches list|gc`.

    use super::{branch_of, branch_stacks};
    use crate::config::{EnvName, Environments};
    use crate::deploy::{Progress, Through, stacks_in};
    use crate::error::Error;
    use crate::output::Report;
    use crate::stack::Stacks;
    use serde::Serialize;
    use std::fmt::Write as _;

    #[derive(Debug, Serialize)]
    pub struct BranchStack {
        pub stack: String,
        pub branch: String,
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
            self.stacks.iter().fold(String::new(), |mut s, b| {
                let _ = writeln!(
                    s,
                    "{:<40} {:<28} {:>5}h  {}",
                    b.branch, b.status, b.age_hours, b.stack
                );
                s
            })
        }
    }

    async fn listed(envs: &Environments) -> Result<(Stacks, Vec<BranchStack>), Error> {
        let stacks = stacks_in(envs, EnvName::Sandbox, Through::DeployRole).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let rows = branch_stacks(&stacks, envs)
            .await?
            .iter()
            .map(|s| {
                let created = s.creation_time();
                BranchStack {
                    stack: s.stack_name().unwrap_or_default().into(),
                    branch: branch_of(s).unwrap_or_default().into(),
                    status: crate::stack::status_of(s).into(),
                    created: created
                        .and_then(crate::stack::time_text)
                        .unwrap_or_default(),
                    age_hours: created.map_or(0, |t| (now - t.secs()) / 3600),
                }
            })
            .collect();
        Ok((stacks, rows))
    }

    pub async fn list(envs: &Environments) -> Result<ListReport, Error> {
        Ok(ListReport {
            stacks: listed(envs).await?.1,
        })
    }

    #[derive(Debug, Serialize)]
    pub struct GcReport {
        pub dry_run: bool,
        /// Stacks removed (or, with --dry-run, that would be), and why.
        pub removed: Vec<(String, String)>,
        pub kept: Vec<String>,
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
            let _ = writeln!(s, "kept {} branch stack(s)", self.kept.len());
            s
        }
    }

    /// Why a branch stack should go, if it should.
    pub fn verdict(row: &BranchStack, keep: &[String], ttl_hours: i64) -> Option<String> {
        if !keep.contains(&row.branch) {
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
    pub async fn gc(
        envs: &Environments,
        keep: &[String],
        dry_run: bool,
        progress: &mut Progress,
    ) -> Result<GcReport, Error> {
        let ttl_hours = i64::from(envs.sandbox.branches.ttl_days) * 24;
        let (stacks, rows) = listed(envs).await?;
        let mut report = GcReport {
            dry_run,
            removed: vec![],
            kept: vec![],
        };
        for row in rows {
            match verdict(&row, keep, ttl_hours) {
                Some(why) => {
                    if !dry_run {
                        stacks.delete(&row.stack, progress).await?;
                    }
                    report.removed.push((row.stack, why));
                }
                None => report.kept.push(row.stack),
            }
        }
        Ok(report)
    }
}
