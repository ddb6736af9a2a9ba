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

const DIGEST_LEN: usize = 10;

/// A short digest of the full name: `feat/A` and `feat-a` slug alike but differ here.
pub fn digest(branch: &str) -> String {
    hex::encode(Sha256::digest(branch.as_bytes()))[..DIGEST_LEN].to_string()
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

/// What a branch stack's names are made of: the branch, and for any stack of the environment but
/// its first, the stack after a ':' (which no branch name holds, so `feat/x`'s orders stack never
/// takes the names of a branch `feat/x/orders`).
fn key(branch: &str, stack: Option<&str>) -> String {
    match stack {
        Some(stack) => format!("{branch}:{stack}"),
        None => branch.to_string(),
    }
}

/// `{prefix}-br-{slug}-{digest}`, the slug cut to fit 128 characters; `{prefix}-br-{digest}`
/// when nothing of the name survives slugging. `stack`: see [`key`].
pub fn stack_name(prefix: &str, branch: &str, stack: Option<&str>) -> Result<String, BadBranch> {
    validate(branch)?;
    let key = key(branch, stack);
    let digest = digest(&key);
    let fixed = format!("{prefix}-br-");
    let room = STACK_NAME_MAX - fixed.len() - digest.len() - 1;
    let slug: String = slug(&key).chars().take(room).collect();
    let slug = slug.trim_end_matches('-');
    Ok(if slug.is_empty() {
        format!("{fixed}{digest}")
    } else {
        format!("{fixed}{slug}-{digest}")
    })
}

/// The base of the names of resources in a branch stack (function, log group, API): short,
/// because a Lambda function name holds at most 64 characters.
pub fn resource_name(prefix: &str, branch: &str, stack: Option<&str>) -> String {
    format!("{prefix}-br-{}", digest(&key(branch, stack)))
}

/// The base name of a branch stack's resources, read back from the stack's name (which ends in
/// the same digest): what gc has when the branch is known only by its tag.
pub fn resource_name_of_stack(prefix: &str, stack: &str) -> String {
    let digest = &stack[stack.len().saturating_sub(DIGEST_LEN)..];
    format!("{prefix}-br-{digest}")
}

/// The tag that marks a branch stack and names its branch.
pub const BRANCH_TAG: &str = "branch";

/// The most a CloudFormation tag value holds.
const TAG_VALUE_MAX: usize = 256;

/// The branch as a tag value that every service the stack's tags reach accepts: CloudFormation
/// holds 256 characters, and SNS, SQS, IAM, Lambda and DynamoDB take only letters, digits, spaces
/// and `_ . : / = + - @`. A name that fits is kept as it is; otherwise each other character is
/// written as `=XX` bytes (and `=` itself), and a name still too long is cut and ends in its
/// digest. gc compares this form, made of the branches it keeps.
pub fn tag_value(branch: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c);
    if branch.len() <= TAG_VALUE_MAX && branch.chars().all(allowed) {
        return branch.to_string();
    }
    let mut out = String::new();
    for c in branch.chars() {
        if allowed(c) && c != '=' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("={b:02X}"));
            }
        }
    }
    if out.len() > TAG_VALUE_MAX {
        let digest = digest(branch);
        let mut cut = TAG_VALUE_MAX - digest.len() - 1;
        // Never in the middle of an `=XX`.
        while out[..cut].ends_with('=') || out[..cut.saturating_sub(1)].ends_with('=') {
            cut -= 1;
        }
        out = format!("{}+{digest}", &out[..cut]);
    }
    out
}

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

/// The branch a stored tag value names, for people to read: the `=XX` bytes decoded when that
/// gives back exactly this value; otherwise (a cut name) the value as stored.
pub fn branch_from_tag(stored: &str) -> String {
    let bytes = stored.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=')
            .then(|| stored.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .ok()
        .filter(|decoded| tag_value(decoded) == stored)
        .unwrap_or_else(|| stored.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gc_removes_gone_and_expired_branches_only() {
        let row = |branch: &str, age_hours| crate::commands::branches::BranchStack {
            stack: stack_name("catalog", branch, None).unwrap(),
            id: String::new(),
            secret: String::new(),
            branch: branch.into(),
            tag: tag_value(branch),
            status: "CREATE_COMPLETE".into(),
            created: String::new(),
            age_hours,
        };
        let keep = ["feat/a".to_string(), "feat/b".to_string()];
        assert_eq!(
            crate::commands::branches::verdict(&row("feat/a", 1), &keep, 168),
            None
        );
        assert!(
            crate::commands::branches::verdict(&row("feat/b", 168), &keep, 168)
                .unwrap()
                .contains("older than")
        );
        assert!(
            crate::commands::branches::verdict(&row("feat/gone", 1), &keep, 168)
                .unwrap()
                .contains("is gone")
        );
    }

    /// What SNS, SQS, IAM, Lambda and DynamoDB accept in a tag value, within CloudFormation's
    /// 256 characters (the emulator checks neither).
    fn fits_every_service(value: &str) -> bool {
        value.len() <= 256
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c))
    }

    #[test]
    fn branch_tags_fit_every_service_the_stack_tags_reach() {
        assert_eq!(tag_value("feat/search-2"), "feat/search-2");
        assert_eq!(
            tag_value("feat/ñandú-🚀"),
            "feat/=C3=B1and=C3=BA-=F0=9F=9A=80"
        );
        let long = "a".repeat(300);
        let value = tag_value(&long);
        assert!(fits_every_service(&value), "{value}");
        assert!(value.ends_with(&format!("+{}", digest(&long))), "{value}");
        assert_ne!(tag_value(&"a".repeat(301)), value);
        // Long and unicode: never cut inside an escape.
        let value = tag_value(&"ü".repeat(100));
        assert!(fits_every_service(&value), "{value}");
        let (head, _) = value.rsplit_once('+').unwrap();
        assert!(head.len() % 3 == 0 && head.starts_with("=C3=BC"), "{value}");
        // gc keeps a stack whose stored value is the encoded form of a kept branch.
        let row = crate::commands::branches::BranchStack {
            stack: stack_name("catalog", "feat/ñandú-🚀", None).unwrap(),
            id: String::new(),
            secret: String::new(),
            branch: "feat/ñandú-🚀".into(),
            tag: tag_value("feat/ñandú-🚀"),
            status: "CREATE_COMPLETE".into(),
            created: String::new(),
            age_hours: 1,
        };
        assert_eq!(
            crate::commands::branches::verdict(&row, &["feat/ñandú-🚀".to_string()], 168),
            None
        );
        // Read back for people: decoded where that is exact, as stored otherwise.
        assert_eq!(branch_from_tag(&row.tag), "feat/ñandú-🚀");
        assert_eq!(branch_from_tag("a=41"), "a=41");
        let cut = tag_value(&"ü".repeat(100));
        assert_eq!(branch_from_tag(&cut), cut);
    }

    fn is_stack_name(name: &str) -> bool {
        name.len() <= STACK_NAME_MAX
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }

    #[test]
    fn the_resource_name_is_read_back_from_the_stack_name() {
        for branch in ["feat/a", "🚀", &"x".repeat(300)] {
            for part in [None, Some("orders")] {
                let stack = stack_name("catalog", branch, part).unwrap();
                assert_eq!(
                    resource_name_of_stack("catalog", &stack),
                    resource_name("catalog", branch, part),
                    "{branch} {part:?}"
                );
            }
        }
    }

    #[test]
    fn names_keep_the_branch_readable() {
        assert_eq!(
            stack_name("catalog", "feat/Add-Search", None).unwrap(),
            format!("catalog-br-feat-add-search-{}", digest("feat/Add-Search"))
        );
        assert_ne!(
            stack_name("catalog", "feat/A", None),
            stack_name("catalog", "feat-a", None)
        );
        let unicode = stack_name("catalog", "фича/поиск", None).unwrap();
        assert_eq!(unicode, format!("catalog-br-{}", digest("фича/поиск")));
        let long = stack_name("catalog", &"x".repeat(300), None).unwrap();
        assert_eq!(long.len(), STACK_NAME_MAX);
        // Lambda function names stop at 64 characters; "-command" is the longest suffix.
        assert!(resource_name("catalog", &"x".repeat(300), None).len() + "-command".len() <= 64);
        // A branch's other stacks: their own names, which no other branch's stack takes.
        assert_eq!(
            stack_name("catalog", "feat/a", Some("orders")).unwrap(),
            format!("catalog-br-feat-a-orders-{}", digest("feat/a:orders"))
        );
        assert_ne!(
            stack_name("catalog", "feat/a", Some("orders")),
            stack_name("catalog", "feat/a/orders", None)
        );
        assert_ne!(
            resource_name("catalog", "feat/a", Some("orders")),
            resource_name("catalog", "feat/a", None)
        );
    }

    #[test]
    fn invalid_branch_names_are_refused() {
        for bad in [
            "", "a..b", "a b", "-x", "x/", "/x", "x.lock", "a/.b", "x@{1}", "a~1", "x.",
        ] {
            assert!(
                stack_name("catalog", bad, None).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    fn branch() -> impl Strategy<Value = String> {
        // Any text: letters of any script, punctuation, slashes; invalid ones are filtered.
        "[a-zA-Z0-9/_.\\-ÄäßéЖж漢字]{1,200}"
            .prop_filter("valid git branch", |b| validate(b).is_ok())
    }

    proptest! {
        #[test]
        fn any_branch_tag_fits_every_service(branch in "\\PC{0,400}") {
            prop_assert!(fits_every_service(&tag_value(&branch)));
        }

        #[test]
        fn every_valid_branch_gets_a_valid_stack_name(b in branch()) {
            let name = stack_name("catalog", &b, None).unwrap();
            prop_assert!(is_stack_name(&name), "{name}");
        }

        #[test]
        fn distinct_branches_never_share_a_stack(a in branch(), b in branch()) {
            prop_assume!(a != b);
            prop_assert_ne!(stack_name("catalog", &a, None).unwrap(), stack_name("catalog", &b, None).unwrap());
        }
    }
}
