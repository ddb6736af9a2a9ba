//! `deployer approve`: the pipeline execution waiting at an approval, shown, confirmed, approved.

use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::pipeline;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recorded with the approval, for whoever reads the pipeline's history.
    #[arg(long)]
    comment: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// The execution `deployer pipeline run --local` left waiting, instead of CodePipeline's;
    /// approved, its later stages run here.
    #[arg(long)]
    local: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let comment = args
        .comment
        .unwrap_or_else(|| "approved with deployer".into());
    if args.local {
        let execution = answer_local(g, envs, true, &comment, args.yes).await?;
        crate::output::emit(g.output, &execution);
        return Ok(0);
    }
    crate::output::emit(g.output, &answer(envs, true, &comment, args.yes).await?);
    Ok(0)
}

/// The local runner's waiting execution, shown, confirmed, answered (and, approved, run on).
pub async fn answer_local(
    g: &super::Global,
    envs: &Environments,
    approve: bool,
    comment: &str,
    yes: bool,
) -> Result<crate::local_pipeline::Execution, Error> {
    let runner = super::pipeline::local_runner(g, envs, Default::default())?;
    let (id, waiting) = runner.pending()?;
    eprintln!(
        "local execution {id} waits at {}/{}: {}",
        waiting.stage, waiting.action, waiting.summary
    );
    let to = promotion(envs, &waiting.stage).0;
    eprint!(
        "{}",
        prepared_text(
            &runner.execution_dir(&id),
            to.map_or("the next stage", EnvName::as_str)
        )
    );
    super::confirm(
        &format!("{} it?", if approve { "Approve" } else { "Reject" }),
        yes,
        "nothing was sent",
    )
    .await?;
    Ok(runner.decide(&id, approve, comment).await?)
}

/// The change sets the pending execution's Prepare made in `to`, read through `to`'s read role,
/// as the rows the Deploy after the approval will execute.
async fn change_sets_text(envs: &Environments, to: EnvName, pending: &pipeline::Pending) -> String {
    let stacks = match crate::access::stacks_in(envs, to, crate::access::Through::ReadRole).await {
        Ok(stacks) => stacks,
        Err(e) => return format!("{to}'s change sets cannot be read: {e}\n"),
    };
    let mut text = String::new();
    for stack in envs
        .target(to)
        .map(|t| t.stacks.as_slice())
        .unwrap_or_default()
    {
        let kind = crate::render::StackKind::Service(crate::config::intern(stack));
        let Ok((name, _)) = crate::access::stack_names(envs, to, kind, None) else {
            continue;
        };
        match pending
            .change_sets
            .get(&crate::render::change_set_var(stack))
        {
            None => {
                text += &format!("{name}: no change set (its Prepare found nothing to change)\n")
            }
            Some(change_set) => match stacks.change_set_rows(&name, change_set).await {
                Ok(rows) => {
                    text += &crate::display::review_text(
                        to.as_str(),
                        &name,
                        change_set,
                        &rows,
                        crate::display::Stream::Stderr,
                    )
                }
                Err(e) => text += &format!("{name}: change set {change_set} cannot be read: {e}\n"),
            },
        }
    }
    text
}

/// The change sets the execution's Prepare action made (each stack's `deploy --no-execute
/// --output json`, `prepared-<stack>.json` in its directory), as the rows a deploy shows.
fn prepared_text(dir: &std::path::Path, env: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Prepared {
        stack: String,
        change_set: Option<String>,
        changes: Vec<crate::stack::Change>,
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("prepared-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut text = String::new();
    for path in files {
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Prepared>(&t).ok())
        {
            Some(Prepared {
                stack,
                change_set: Some(name),
                changes,
            }) => {
                text += &crate::display::review_text(
                    env,
                    &stack,
                    &name,
                    &changes,
                    crate::display::Stream::Stderr,
                )
            }
            Some(p) => text += &format!("{}: no change to make in {env}\n", p.stack),
            None => text += &format!("{} is not a prepared change set\n", path.display()),
        }
    }
    text
}

/// Finds the pending approval, shows what the stage after it would receive, confirms, answers.
pub async fn answer(
    envs: &Environments,
    approve: bool,
    comment: &str,
    yes: bool,
) -> Result<pipeline::ApprovalReport, Error> {
    let name = envs.prefix().as_str();
    let cp = crate::access::codepipeline(envs, if approve { "approve" } else { "reject" }).await?;
    let pending = pipeline::pending(&cp, name).await?;
    let (to, from) = promotion(envs, &pending.stage);
    let now = match from {
        None => "no earlier stage".to_string(),
        Some(from) => match super::status::status(envs, &[from]).await {
            Ok(report) => report
                .stacks
                .iter()
                .map(|s| format!("{} {}", s.stack, s.status.as_deref().unwrap_or("(none)")))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("unknown ({e})"),
        },
    };
    eprintln!(
        "execution {} waits at {}/{}: {} would receive artifact {}; {} now: {now}",
        pending.execution_id,
        pending.stage,
        pending.action,
        to.map_or("the next stage", EnvName::as_str),
        pending.artifact_sha256.as_deref().unwrap_or("unknown"),
        from.map_or("before it", |e| e.as_str()),
    );
    if let Some(to) = to {
        eprint!("{}", change_sets_text(envs, to, &pending).await);
    }
    // An approval of a superseded execution is refused by `decide`: nothing to confirm.
    if !(approve && pending.superseded_by.is_some()) {
        super::confirm(
            &format!("{} it?", if approve { "Approve" } else { "Reject" }),
            yes,
            "nothing was sent",
        )
        .await?;
    }
    pipeline::decide(&cp, name, &pending, approve, comment).await
}

/// The environment an approval stage promotes to, and the one before it whose artifact it takes:
/// the approval before a stage is named for it (`Approve<Env>`, templates/pipeline.json.hbs).
fn promotion(envs: &Environments, stage: &str) -> (Option<EnvName>, Option<EnvName>) {
    let stages: Vec<EnvName> = envs.stages().map(|(env, _, _)| env).collect();
    let to = stages
        .iter()
        .position(|e| stage == format!("Approve{}", crate::render::pascal_case(e.as_str())));
    (
        to.map(|i| stages[i]),
        to.and_then(|i| i.checked_sub(1)).map(|i| stages[i]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_stage_names_the_environment_it_promotes_to_and_from() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        let envs = Environments::load(&root.join("environments")).unwrap();
        let name = |e: Option<EnvName>| e.map(EnvName::as_str);
        let (to, from) = promotion(&envs, "ApproveProd");
        assert_eq!((name(to), name(from)), (Some("prod"), Some("sandbox")));
        let (to, from) = promotion(&envs, "Approval");
        assert_eq!((name(to), name(from)), (None, None));
    }
}
