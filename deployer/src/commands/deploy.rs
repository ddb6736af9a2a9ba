//! `deployer deploy ENV [--stack NAME] [--branch B]`: a stack through a change set.

use crate::access::{
    CREATED_TAG, Through, check_marker, fingerprint, role_name, service, session_in, stack_tags,
};
use crate::artifact::{Loaded, Manifest};
use crate::config::{EnvName, Environments};
use crate::display::Progress;
use crate::error::Error;
use crate::render::{Renderer, StackKind};
use crate::stack::{Action, DeployOptions, DeployReport, Outcome, StackSpec, Stacks, tag_of};
use std::path::{Path, PathBuf};

/// Everything a deploy or diff of a stack needs, checked before any change.
pub struct Prepared {
    pub session: crate::aws::Session,
    /// The artifact and its zip, for a stack whose template takes one (parameter ArtifactKey).
    pub artifact: Option<(crate::artifact::Manifest, Vec<u8>)>,
    /// The artifact came back from the stack's history (a rollback through the pipeline).
    pub recalled: bool,
    pub bucket: String,
    pub spec: StackSpec,
}

/// The artifact a deploy ships: the manifest `deployer package` wrote and, in the pipeline, the
/// sha256 the approval named.
pub struct Artifact<'a> {
    pub path: &'a Path,
    /// The sha256 this deploy must ship: the pipeline passes the one Build exported and the
    /// approval showed, so an artifact replaced while it waited is refused.
    pub expect_sha256: Option<&'a str>,
}

/// The artifact of a stack whose template declares the parameter ArtifactKey (with
/// ArtifactBucket), as its manifest file names it; other stacks deploy without one.
fn load_artifact(
    template: &serde_json::Value,
    artifact: &Artifact<'_>,
) -> Result<Option<Loaded>, Error> {
    if template["Parameters"].get("ArtifactKey").is_none() {
        return Ok(None);
    }
    let artifact_path = artifact.path;
    let loaded = crate::artifact::load(artifact_path).map_err(|e| match e {
        crate::artifact::Error::Read { path, .. } if path == artifact_path => {
            Error::Refused(format!(
                "no artifact at {}: build one with `deployer package`, or name it with --artifact",
                path.display()
            ))
        }
        other => other.into(),
    })?;
    let sha256 = match &loaded {
        Loaded::Built(manifest, _) => &manifest.sha256,
        Loaded::Recalled(sha256) => sha256,
    };
    if let Some(expected) = artifact.expect_sha256
        && expected != sha256
    {
        return Err(Error::Refused(format!(
            "{} names artifact sha256 {sha256} but this deploy must ship {expected} (--expect-sha256, the one the pipeline's Build exported and the approval named); the artifact changed after Build: deploy nothing, find out who wrote it",
            artifact_path.display(),
        )));
    }
    Ok(Some(loaded))
}

/// Refuses an artifact built for another architecture than `env`'s functions run on.
fn fits(envs: &Environments, env: EnvName, manifest: &Manifest, from: &str) -> Result<(), Error> {
    let Some(lambda) = &envs.target(env).and_then(|t| t.lambda.as_ref()) else {
        return Err(Error::Refused(format!(
            "a stack of {env} runs the artifact (its template declares ArtifactKey) but {} has no [lambda] table saying its architecture; add one",
            envs.file(env).display()
        )));
    };
    if manifest.architecture != lambda.architecture {
        return Err(Error::Refused(format!(
            "{from} holds a {} build but {} sets lambda.architecture = \"{}\"; package for {env} again",
            manifest.architecture,
            envs.file(env).display(),
            lambda.architecture
        )));
    }
    Ok(())
}

pub async fn prepare(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    kind: StackKind,
    branch: Option<&str>,
    artifact: &Artifact<'_>,
    through: Through,
) -> Result<Prepared, Error> {
    let target = envs
        .target(env)
        .expect("callers pick a stage's environment");
    let options = crate::render::Options {
        branch: branch.map(str::to_string),
        ..Default::default()
    };
    let rendered = renderer.render_with(envs, env, kind, &options)?;
    let loaded = load_artifact(&rendered.template, artifact)?;
    if let (Some(Loaded::Recalled(_)), Some(branch)) = (&loaded, branch) {
        return Err(Error::Refused(format!(
            "{} recalls an artifact from the stack's history, and branch {branch}'s stack keeps none: deploy a built artifact (`deployer package`)",
            artifact.path.display()
        )));
    }
    let session = session_in(envs, env, through).await?;
    let bucket = crate::access::artifact_bucket(envs, env);
    let recalled = matches!(loaded, Some(Loaded::Recalled(_)));
    let artifact = match loaded {
        None => None,
        Some(Loaded::Built(manifest, zip)) => {
            fits(envs, env, &manifest, &artifact.path.display().to_string())?;
            Some((manifest, zip))
        }
        Some(Loaded::Recalled(sha256)) => {
            let (manifest, zip) =
                crate::history::recall(&session.s3(), &bucket, &rendered.stack_name, &sha256)
                    .await?;
            fits(
                envs,
                env,
                &manifest,
                &format!("s3://{bucket}/{}", manifest.s3_key()),
            )?;
            Some((manifest, zip))
        }
    };
    // CloudFormation refuses parameters a template does not declare: only those it does.
    let mut parameters = match &artifact {
        Some((manifest, _)) => vec![
            ("ArtifactBucket".to_string(), bucket.clone()),
            ("ArtifactKey".to_string(), manifest.s3_key()),
        ],
        None => vec![],
    };
    parameters.retain(|(name, _)| rendered.template["Parameters"].get(name).is_some());
    let template_body = rendered.to_compact();
    let spec = StackSpec {
        name: rendered.stack_name.clone(),
        fingerprint: fingerprint(&template_body, &parameters),
        template_body,
        template_url: None,
        parameters,
        tags: {
            let sha = artifact.as_ref().map(|(m, _)| m.sha256.as_str());
            let mut tags = stack_tags(envs, env, sha);
            if let Some(b) = branch {
                tags.push((
                    crate::branch::BRANCH_TAG.into(),
                    crate::branch::tag_value(b),
                ));
            }
            tags
        },
        termination_protection: target.safety.termination_protection && branch.is_none(),
        // Branch stacks go through the narrower execution role, which reaches only
        // `{prefix}-br-*` resources.
        execution_role_arn: Some(format!(
            "arn:aws:iam::{}:role/{}",
            envs.account(env),
            role_name(
                envs,
                env,
                if branch.is_some() {
                    "cfn-exec-branch"
                } else {
                    "cfn-exec"
                }
            )
        )),
    };
    Ok(Prepared {
        session,
        artifact,
        recalled,
        bucket,
        spec,
    })
}

/// A template over CloudFormation's inline limit goes to the artifact bucket first, by its
/// sha256 (added, never replaced, like the artifact), and the change set names it by URL.
pub async fn send_large_template(
    envs: &Environments,
    env: EnvName,
    p: &mut Prepared,
) -> Result<(), Error> {
    if p.spec.template_body.len() <= crate::stack::TEMPLATE_BODY_LIMIT {
        return Ok(());
    }
    let key =
        crate::artifact::upload_template(&p.session.s3(), &p.bucket, &p.spec.template_body).await?;
    p.spec.template_url = Some(format!(
        "https://{}.s3.{}.amazonaws.com/{key}",
        p.bucket,
        envs.region(env).as_str()
    ));
    Ok(())
}

/// What a deploy is asked beyond the stack itself.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// First finish the rollback of a stack in UPDATE_ROLLBACK_FAILED, skipping these resources.
    pub continue_rollback: Option<Vec<String>>,
    pub options: DeployOptions,
    /// Refuse unless the stack already matches (what a Prepare that found nothing to change
    /// promised the approval).
    pub unchanged: bool,
    /// How the history records a deploy that changed the stack ("deployed", "rolled-back").
    pub history_outcome: &'static str,
}

/// Refused where the environment holds no branch stacks, naming the one that does.
pub fn branches_allowed(envs: &Environments, env: EnvName) -> Result<(), Error> {
    if envs.target(env).is_some_and(|t| t.branches.enabled) {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "branch stacks are off in {env} (branches.enabled = false in {}){}",
        envs.file(env).display(),
        envs.branch_env()
            .map(|(host, _)| format!("; they belong in {host}"))
            .unwrap_or_default()
    )))
}

/// `--hotswap`: the branch stack's functions take the new artifact directly, when nothing but
/// the artifact changed (branch stacks only: never a protected environment's).
async fn hotswap(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    stack: Option<&str>,
    branch: &str,
    artifact: &Artifact<'_>,
) -> Result<crate::hotswap::HotswapReport, Error> {
    let kind = service(envs, env, stack, "deploy")?;
    branches_allowed(envs, env)?;
    let (_, resource_name) = crate::access::stack_names(envs, env, kind, Some(branch))?;
    let p = prepare(
        envs,
        renderer,
        env,
        kind,
        Some(branch),
        artifact,
        Through::DeployRole,
    )
    .await?;
    let Some((manifest, zip)) = p.artifact else {
        return Err(Error::Refused(format!(
            "{}'s template takes no artifact (no ArtifactKey parameter): there is no code to hotswap",
            p.spec.name
        )));
    };
    crate::hotswap::only_code_changed(
        &p.session,
        &p.spec.name,
        &p.spec.template_body,
        &p.spec.parameters,
    )
    .await?;
    check_marker(envs, env, &p.session).await?;
    crate::artifact::upload(&p.session.s3(), &p.bucket, &manifest, zip).await?;
    let functions: Vec<String> = crate::settings::functions(renderer.dir(), kind.template_name())?
        .iter()
        .map(|f| format!("{resource_name}-{f}"))
        .collect();
    Ok(crate::hotswap::swap(&p.session, &p.spec.name, &functions, &p.bucket, &manifest).await?)
}

#[allow(clippy::too_many_arguments)]
pub async fn deploy(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    artifact: &Artifact<'_>,
    request: &Request,
    progress: &mut Progress,
) -> Result<DeployReport, Error> {
    let kind = service(envs, env, stack, "deploy")?;
    let target = envs.target(env).expect("checked above");
    if branch.is_some() {
        branches_allowed(envs, env)?;
    }
    // A protected environment takes only what the pipeline promoted. CodeBuild sets
    // CODEBUILD_BUILD_ID, which anyone can set: the trust of its deploy role (only the pipeline's
    // Deploy action of that stage) is what keeps others out; this says so before an AssumeRole is
    // refused.
    if target.safety.require_approval && std::env::var_os("CODEBUILD_BUILD_ID").is_none() {
        return Err(Error::Refused(format!(
            "{env} deploys need the pipeline's manual approval (safety.require_approval = true in {}): merge to the pipeline's branch, then approve the pending execution with `deployer approve`; only the pipeline's {env} Deploy action may assume {env}'s deploy role",
            envs.file(env).display()
        )));
    }
    // Where deploys need approval, change sets for the approval to show are made by a role
    // that cannot execute them.
    let through = match request.options.action {
        Action::Propose if target.safety.require_approval => Through::ProposeRole,
        _ => Through::DeployRole,
    };
    let mut p = prepare(envs, renderer, env, kind, branch, artifact, through).await?;
    let stacks = Stacks::new(p.session.cloudformation());
    let options = &request.options;
    // A deploy that will make or run a change set anyway skips the comparison.
    let compare = !options.force
        && request.continue_rollback.is_none()
        && matches!(options.action, Action::Apply | Action::Propose);
    // Looked at once: the checks below and the deploy itself use what was found.
    let mut found = stacks.look(&p.spec, !compare).await?;
    if request.unchanged && !found.current {
        return Err(Error::Refused(format!(
            "{} would change, but nothing was prepared or approved for it (its Prepare found the stack matching this build): refusing; someone changed the stack since, so run the pipeline again",
            p.spec.name
        )));
    }
    let existing = found.stack.as_ref();
    if branch.is_some() {
        if existing.is_none() {
            let live = crate::branch::branch_stacks(&stacks, envs).await?.len();
            let max = target.branches.max_stacks as usize;
            if live >= max {
                return Err(Error::Refused(format!(
                    "{env} already holds {live} branch stacks, the most branches.max_stacks in {} allows; remove some with `deployer branches gc` or `deployer destroy {env} --branch B`",
                    envs.file(env).display()
                )));
            }
        }
        // Tags are set whole on every deploy: carry the first deploy's time forward.
        let created = existing
            .and_then(|s| tag_of(s, CREATED_TAG))
            .map_or_else(crate::stack::now_text, str::to_string);
        p.spec.tags.push((CREATED_TAG.into(), created));
        // The tags were compared without it: compare again now they are whole.
        if compare && let Some(stack) = found.stack.as_ref() {
            found.current = stacks.is_current(stack, &p.spec).await?;
        }
    }
    // A stack already made from exactly this needs neither the bootstrap check nor the
    // artifact: nothing will be deployed (four calls in all: identity, role, description,
    // template).
    let uploaded = if found.current {
        false
    } else {
        check_marker(envs, env, &p.session).await?;
        if branch.is_some() {
            // Each branch stack signs with its own secret, made before its first deploy.
            let (_, resources) = crate::access::stack_names(envs, env, kind, branch)?;
            let secret = crate::render::signing_secret(envs, env, Some(&resources));
            crate::access::ensure_signing_secret(&p.session, &secret).await?;
        }
        send_large_template(envs, env, &mut p).await?;
        match p.artifact.as_mut() {
            Some((manifest, zip)) => {
                crate::artifact::upload(&p.session.s3(), &p.bucket, manifest, std::mem::take(zip))
                    .await?
            }
            None => false,
        }
    };
    let mut report = if let Some(skip) = &request.continue_rollback {
        stacks
            .continue_rollback(&p.spec.name, skip, progress)
            .await?;
        // The rollback changed it: the deploy looks at it again.
        let found = stacks.look(&p.spec, options.force).await?;
        stacks
            .deploy_found(&p.spec, found, options, progress)
            .await?
    } else {
        stacks
            .deploy_found(&p.spec, found, options, progress)
            .await?
    };
    // What the stack runs from now on, for `history` and `rollback`; a deploy that worked is
    // not undone by a record that could not be written, but it says so.
    if let Some((manifest, _)) = &p.artifact
        && matches!(report.outcome, Outcome::Created | Outcome::Updated)
        && branch.is_none()
    {
        let entry = crate::history::Entry {
            stack: report.stack.clone(),
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            manifest: manifest.clone(),
            by: crate::aws::operator().await?.arn.clone(),
            outcome: if p.recalled {
                "rolled-back"
            } else {
                request.history_outcome
            }
            .to_string(),
        };
        if let Err(e) = crate::history::record(&p.session.s3(), &p.bucket, &entry).await {
            eprintln!(
                "warning: {} was deployed, but its history entry was not written: {e}",
                report.stack
            );
        }
    }
    report.artifact = p.artifact.map(|(manifest, _)| crate::stack::ArtifactInfo {
        sha256: manifest.sha256,
        uploaded,
    });
    Ok(report)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    at: super::StackArgs,
    /// Deploy this feature branch's own stack instead (where branches.enabled).
    #[arg(long)]
    branch: Option<String>,
    /// The manifest `deployer package` wrote; its zip is what the function runs [default:
    /// dist/manifest.json in the project's root].
    #[arg(long, value_name = "PATH")]
    artifact: Option<PathBuf>,
    /// First finish the rollback of a stack left in UPDATE_ROLLBACK_FAILED (ContinueUpdateRollback).
    #[arg(long)]
    continue_rollback: bool,
    /// With --continue-rollback: resources (logical ids) CloudFormation cannot roll back and
    /// should leave as they are; make them match the template by hand afterwards.
    #[arg(long, num_args = 1.., value_name = "ID", requires = "continue_rollback")]
    skip_resources: Vec<String>,
    /// Make a change set even when the stack already matches (it is then executed only if
    /// CloudFormation finds a change).
    #[arg(long)]
    force: bool,
    /// Make the change set and leave it for review: prints its name; nothing is executed.
    #[arg(long, conflicts_with_all = ["change_set", "continue_rollback"])]
    no_execute: bool,
    /// Execute exactly this change set, made by `--no-execute` from the same templates,
    /// settings and artifact (anything else is refused).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["force", "continue_rollback"])]
    change_set: Option<String>,
    /// Refuse unless the stack already matches this build: the pipeline's Deploy after an
    /// approval, for a stack its Prepare found nothing to change in.
    #[arg(long, conflicts_with_all = ["change_set", "no_execute", "force", "continue_rollback"])]
    unchanged: bool,
    /// Only code changed: put the artifact straight into the branch stack's functions, without
    /// a change set (seconds, not minutes); the stack differs from its template until the next
    /// full deploy. Refused when the template or settings changed too.
    #[arg(long, requires = "branch", conflicts_with_all = ["no_execute", "change_set", "unchanged", "force", "continue_rollback", "outputs_file"])]
    hotswap: bool,
    /// Also write the stack's outputs to this file, as one JSON object.
    #[arg(long, value_name = "FILE")]
    outputs_file: Option<PathBuf>,
    /// Refuse unless the artifact's sha256 is this one (the pipeline passes the sha256 its
    /// Build exported, which the approval names).
    #[arg(long, value_name = "SHA256")]
    expect_sha256: Option<String>,
    /// Do not ask before IAM or security changes run (a terminal asks; elsewhere nothing does).
    #[arg(long)]
    yes: bool,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let renderer = Renderer::load(&g.templates)?;
    let manifest = args
        .artifact
        .clone()
        .unwrap_or_else(|| g.at_root("dist/manifest.json"));
    if let (true, Some(branch)) = (args.hotswap, args.branch.as_deref()) {
        let artifact = Artifact {
            path: &manifest,
            expect_sha256: args.expect_sha256.as_deref(),
        };
        let report = hotswap(
            envs,
            &renderer,
            envs.env(&args.at.env)?,
            args.at.stack.as_deref(),
            branch,
            &artifact,
        )
        .await?;
        crate::output::emit(g.output, &report);
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let mut progress = Progress::new(g.no_progress).asking_before_security_changes(!args.yes);
    let report = deploy(
        envs,
        &renderer,
        envs.env(&args.at.env)?,
        args.at.stack.as_deref(),
        args.branch.as_deref(),
        &Artifact {
            path: &manifest,
            expect_sha256: args.expect_sha256.as_deref(),
        },
        &Request {
            continue_rollback: args.continue_rollback.then_some(args.skip_resources),
            unchanged: args.unchanged,
            history_outcome: "deployed",
            options: DeployOptions {
                force: args.force,
                action: match (args.no_execute, args.change_set) {
                    (true, _) => Action::Propose,
                    (false, Some(name)) => Action::Execute(name),
                    (false, None) => Action::Apply,
                },
            },
        },
        &mut progress,
    )
    .await?;
    drop(progress);
    crate::output::emit(g.output, &report);
    // One closing line, on stderr (stdout stays the report): how it ended and how long it took.
    let took = started.elapsed();
    let took = if took.as_secs() < 60 {
        format!("{:.1}s", took.as_secs_f64())
    } else {
        humantime::format_duration(std::time::Duration::from_secs(took.as_secs())).to_string()
    };
    eprintln!("{}: {} in {took}", report.stack, report.status);
    // After the report, so a deploy that worked is shown as such even if this fails.
    if let Some(path) = args.outputs_file {
        let json = serde_json::to_string_pretty(&report.outputs).expect("strings serialize");
        std::fs::write(&path, json + "\n").map_err(|source| Error::Write { path, source })?;
    }
    Ok(0)
}
