//! `deployer deploy`, `diff`, `destroy`, `outputs`, `drift`, `logs`, `status`: an environment's
//! stacks.

use crate::aws;
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::{Renderer, StackKind};
use crate::stack::{
    Action, DeployOptions, DeployReport, Event, Observer, Outcome, StackSpec, Stacks, tag_of,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;

/// One of the roles an environment's bootstrap makes in its account (`deploy`, `read`,
/// `cfn-exec`, `branch-deployer`, ...): named for the environment, since IAM names are global to
/// the account and two environments may share one.
pub fn role_name(envs: &Environments, env: EnvName, role: &str) -> String {
    format!("{}-{env}-{role}", envs.prefix().as_str())
}

/// The stack a command acts on: `--stack`, or the environment's only one. A branch stack is made
/// of the environment's first stack.
pub fn service(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    verb: &str,
) -> Result<StackKind, Error> {
    let stages: Vec<&str> = envs.names().iter().skip(1).map(|e| e.as_str()).collect();
    if envs.target(env).is_none() {
        return Err(Error::Refused(format!(
            "`deployer {verb} {env}`: the {env} account holds no stack of the service; use one of {}",
            stages.join(", ")
        )));
    }
    let services = StackKind::services(envs, env);
    let names: Vec<&str> = services.iter().map(|k| k.template_name()).collect();
    let kind = match stack {
        Some(name) => *services
            .iter()
            .find(|k| k.template_name() == name)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{env} holds no stack {name:?}{}; its stacks are {} (stacks in {})",
                    crate::suggest::did_you_mean(name, &names),
                    names.join(", "),
                    envs.file(env).display()
                ))
            })?,
        None if services.len() == 1 || branch.is_some() => services[0],
        None => {
            return Err(Error::Refused(format!(
                "{env} holds the stacks {}: name one with --stack, e.g. `deployer {verb} {env} --stack {}`",
                names.join(", "),
                names[0]
            )));
        }
    };
    if branch.is_some() && kind != services[0] {
        return Err(Error::Refused(format!(
            "branch stacks are made of {env}'s first stack, {}; --stack {} has none",
            names[0],
            kind.template_name()
        )));
    }
    Ok(kind)
}

/// A stack's name and the base name of its resources, for the environment or for one of its
/// branches.
fn stack_names(
    envs: &Environments,
    env: EnvName,
    kind: StackKind,
    branch: Option<&str>,
) -> Result<(String, String), Error> {
    crate::render::names(envs, env, kind, branch).map_err(|e| Error::Refused(e.to_string()))
}

/// `deployer drift ENV`: detection on a stack that must exist.
pub async fn drift(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    progress: &mut Progress,
) -> Result<crate::drift::DriftReport, Error> {
    let kind = service(envs, env, stack, branch, "drift")?;
    let (name, _) = stack_names(envs, env, kind, branch)?;
    let stacks = stacks_in(envs, env, Through::ReadRole).await?;
    if stacks.describe(&name).await?.is_none() {
        return Err(Error::Refused(format!(
            "stack {name} does not exist in account {}: nothing to compare; deploy it first",
            envs.account(env)
        )));
    }
    Ok(crate::drift::detect(&stacks, &name, progress).await?)
}

/// `deployer logs ENV`: a reader over the functions' log groups in the target account.
pub async fn logs(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    function: Option<&str>,
    since: &str,
) -> Result<crate::logs::Reader, Error> {
    let kind = service(envs, env, stack, branch, "logs")?;
    let since = crate::logs::parse_since(since)?;
    let (_, resource_name) = stack_names(envs, env, kind, branch)?;
    let session = session_in(envs, env, Through::ReadRole).await?;
    Ok(crate::logs::Reader::new(
        aws_sdk_cloudwatchlogs::Client::new(&session.config),
        crate::logs::groups(&resource_name, function),
        since,
    ))
}

/// CloudFormation in `env`'s account, through one of its roles.
pub async fn stacks_in(
    envs: &Environments,
    env: EnvName,
    through: Through,
) -> Result<Stacks, Error> {
    Ok(Stacks::new(
        session_in(envs, env, through).await?.cloudformation(),
    ))
}

/// CodePipeline in the pipeline account, with the caller's own credentials there.
pub async fn codepipeline(
    envs: &Environments,
    verb: &str,
) -> Result<aws_sdk_codepipeline::Client, Error> {
    let session = operator_session(envs, EnvName::PIPELINE, verb).await?;
    Ok(aws_sdk_codepipeline::Client::new(&session.config))
}

/// Which of a target account's roles a command acts through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Through {
    /// `{prefix}-{env}-deploy`: change sets, artifacts, stack deletion.
    DeployRole,
    /// `{prefix}-{env}-read`: status, outputs, logs, drift; operators may read a protected
    /// environment through it.
    ReadRole,
}

/// A session in `env`'s account: the role `through` names for a stage's environment (a caller that
/// already is one of the account's deployer roles goes on as it is); in the pipeline account,
/// which has neither, the caller's own.
pub async fn session_in(
    envs: &Environments,
    env: EnvName,
    through: Through,
) -> Result<aws::Session, Error> {
    if envs.target(env).is_none() {
        return operator_session(envs, env, &format!("status {env}")).await;
    }
    let (deploy, read, branch) = (
        role_name(envs, env, "deploy"),
        role_name(envs, env, "read"),
        role_name(envs, env, "branch-deployer"),
    );
    // A reader's session never stands in for a deployer's: it assumes the deploy role instead.
    let roles: &[&str] = match through {
        Through::DeployRole => &[&deploy, &branch],
        Through::ReadRole => &[&read, &deploy, &branch],
    };
    let operator = aws::operator().await?;
    operator
        .session_in(envs.account(env), envs.region(env), roles)
        .await
        .map_err(|e| match e {
            // Either the role is not there yet or it does not trust this caller: both are mended
            // by a bootstrap or by the environment file, not by trying again.
            aws::Error::AssumeRole { role_arn, message, .. } => Error::Refused(format!(
                "cannot assume {role_arn} as {}: {message}; run `deployer bootstrap {env}` with credentials in account {}, and check that {} lets this caller in ({})",
                operator.arn,
                envs.account(env),
                envs.file(env).display(),
                if through == Through::ReadRole {
                    "access.readers"
                } else if envs.target(env).is_some_and(|t| t.safety.require_approval) {
                    "only the pipeline's Deploy action and access.break_glass_role_arn may; deploy through the pipeline"
                } else {
                    "access.operators"
                }
            )),
            other => other.into(),
        })
}

/// The caller's own credentials, which must be in `env`'s account (`verb` names the command for
/// the message that says so): bootstrap, and the pipeline account's commands.
pub async fn operator_session(
    envs: &Environments,
    env: EnvName,
    verb: &str,
) -> Result<aws::Session, Error> {
    let operator = aws::operator().await?;
    let caller = &operator.account;
    let account = envs.account(env);
    if caller != account.as_str() {
        return Err(Error::Refused(format!(
            "`deployer {verb}` for {env} needs credentials in its account {account} ({}), but these are for account {caller}; sign in there first, e.g. AWS_PROFILE=<a profile of {account}> deployer {verb}",
            envs.file(env).display()
        )));
    }
    Ok(operator.session_here(envs.region(env)))
}

/// What the stack is made from: the same template, parameters and artifact give the same
/// fingerprint, and a stack tagged with it needs no change set.
pub fn fingerprint(template_body: &str, parameters: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(template_body.as_bytes());
    for (k, v) in parameters {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
    }
    crate::synth::hex(&h.finalize())
}

/// When a branch stack was first deployed.
pub const CREATED_TAG: &str = "created";
/// The sha256 of the artifact the stack runs.
const ARTIFACT_TAG: &str = "artifact-sha256";

/// What every stack the deployer makes is tagged with.
pub fn stack_tags(
    envs: &Environments,
    env: EnvName,
    artifact_sha: Option<&str>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        ("app".into(), envs.prefix().as_str().into()),
        ("env".into(), env.to_string()),
        ("deployer-version".into(), env!("CARGO_PKG_VERSION").into()),
    ];
    if let Some(sha) = artifact_sha {
        tags.push((ARTIFACT_TAG.into(), sha.into()));
    }
    tags
}

/// Everything a deploy or diff of a stack needs, checked before any change.
struct Prepared {
    session: aws::Session,
    /// The artifact and its zip, for a stack whose template takes one (parameter ArtifactKey).
    artifact: Option<(crate::artifact::Manifest, Vec<u8>)>,
    bucket: String,
    spec: StackSpec,
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
/// ArtifactBucket): loaded and checked; other stacks deploy without one.
fn load_artifact(
    envs: &Environments,
    env: EnvName,
    template: &serde_json::Value,
    artifact: &Artifact<'_>,
) -> Result<Option<(crate::artifact::Manifest, Vec<u8>)>, Error> {
    if template["Parameters"].get("ArtifactKey").is_none() {
        return Ok(None);
    }
    let artifact_path = artifact.path;
    let target = envs
        .target(env)
        .expect("callers pick a stage's environment");
    let (manifest, zip) = crate::artifact::load(artifact_path).map_err(|e| match e {
        crate::artifact::Error::Read { path, .. } if path == artifact_path => {
            Error::Refused(format!(
                "no artifact at {}: build one with `deployer package`, or name it with --artifact",
                path.display()
            ))
        }
        other => other.into(),
    })?;
    if let Some(expected) = artifact.expect_sha256
        && expected != manifest.sha256
    {
        return Err(Error::Refused(format!(
            "{} names artifact sha256 {} but this deploy must ship {expected} (--expect-sha256, the one the pipeline's Build exported and the approval named); the artifact changed after Build: deploy nothing, find out who wrote it",
            artifact_path.display(),
            manifest.sha256
        )));
    }
    if manifest.architecture != target.lambda.architecture {
        return Err(Error::Refused(format!(
            "{} holds a {} build but {} sets lambda.architecture = \"{}\"; package for {env} again",
            artifact_path.display(),
            manifest.architecture,
            envs.file(env).display(),
            target.lambda.architecture
        )));
    }
    Ok(Some((manifest, zip)))
}

async fn prepare(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    kind: StackKind,
    branch: Option<&str>,
    artifact: &Artifact<'_>,
) -> Result<Prepared, Error> {
    let target = envs
        .target(env)
        .expect("callers pick a stage's environment");
    let options = crate::render::Options {
        branch: branch.map(str::to_string),
        ..Default::default()
    };
    let rendered = renderer.render_with(envs, env, kind, &options)?;
    let artifact = load_artifact(envs, env, &rendered.template, artifact)?;
    let session = session_in(envs, env, Through::DeployRole).await?;
    let bucket = format!(
        "{}-artifacts-{}-{}",
        envs.prefix().as_str(),
        envs.account(env),
        envs.region(env).as_str()
    );
    // CloudFormation refuses parameters a template does not declare.
    let parameters = match &artifact {
        Some((manifest, _)) => vec![
            ("ArtifactBucket".to_string(), bucket.clone()),
            ("ArtifactKey".to_string(), manifest.s3_key()),
        ],
        None => vec![],
    };
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
        bucket,
        spec,
    })
}

/// A template over CloudFormation's inline limit goes to the artifact bucket first, by its
/// sha256 (added, never replaced, like the artifact), and the change set names it by URL.
async fn send_large_template(
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
    let kind = service(envs, env, stack, branch, "deploy")?;
    let target = envs.target(env).expect("checked above");
    if branch.is_some() && !target.branches.enabled {
        return Err(Error::Refused(format!(
            "branch stacks are off in {env} (branches.enabled = false in {}){}",
            envs.file(env).display(),
            envs.branch_env()
                .map(|(host, _)| format!("; they belong in {host}"))
                .unwrap_or_default()
        )));
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
    let mut p = prepare(envs, renderer, env, kind, branch, artifact).await?;
    let stacks = Stacks::new(p.session.cloudformation());
    let options = &request.options;
    // A deploy that will make or run a change set anyway skips the comparison.
    let compare = !options.force
        && request.continue_rollback.is_none()
        && matches!(options.action, Action::Apply | Action::Propose);
    // Looked at once: the checks below and the deploy itself use what was found.
    let mut found = stacks.look(&p.spec, !compare).await?;
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
        crate::bootstrap::check_marker(envs, env, &p.session).await?;
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
    report.artifact = p.artifact.map(|(manifest, _)| crate::stack::ArtifactInfo {
        sha256: manifest.sha256,
        uploaded,
    });
    Ok(report)
}

#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub stack: String,
    pub changed: bool,
    pub changes: Vec<crate::stack::Change>,
}

impl Report for DiffReport {
    fn human(&self) -> String {
        if !self.changed {
            return format!("{}: no changes\n", self.stack);
        }
        let mut s = format!("{}: would change\n", self.stack);
        s.push_str(&changes_text(&self.changes));
        s
    }
}

/// `deployer diff ENV`: the change set a deploy would make, then deleted.
pub async fn diff(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    stack: Option<&str>,
    artifact: &Artifact<'_>,
    progress: &mut Progress,
) -> Result<DiffReport, Error> {
    let kind = service(envs, env, stack, None, "diff")?;
    let mut p = prepare(envs, renderer, env, kind, None, artifact).await?;
    crate::bootstrap::check_marker(envs, env, &p.session).await?;
    send_large_template(envs, env, &mut p).await?;
    let changes = Stacks::new(p.session.cloudformation())
        .diff(&p.spec, progress)
        .await?;
    Ok(DiffReport {
        stack: p.spec.name,
        changed: changes.is_some(),
        changes: changes.unwrap_or_default(),
    })
}

#[derive(Debug, Serialize)]
pub struct DestroyReport {
    pub stack: String,
    pub deleted: bool,
}

impl Report for DestroyReport {
    fn human(&self) -> String {
        if self.deleted {
            format!("{}: deleted\n", self.stack)
        } else {
            format!("{}: there was no such stack\n", self.stack)
        }
    }
}

/// `deployer destroy ENV`: removes a stack; a protected environment's is never destroyed this way.
pub async fn destroy(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
    retain: &[String],
    progress: &mut Progress,
) -> Result<DestroyReport, Error> {
    let kind = service(envs, env, stack, branch, "destroy")?;
    if envs.target(env).is_some_and(|t| t.safety.require_approval) && branch.is_none() {
        return Err(Error::Refused(format!(
            "the deployer never destroys {env}, which is protected (safety.require_approval = true in {}); if it really must go, delete its stack in the AWS console after turning off termination protection",
            envs.file(env).display()
        )));
    }
    let (name, _) = stack_names(envs, env, kind, branch)?;
    let deleted = stacks_in(envs, env, Through::DeployRole)
        .await?
        .delete(&name, retain, progress)
        .await?;
    Ok(DestroyReport {
        stack: name,
        deleted,
    })
}

/// Stack events as lines on stderr, so stdout stays one clean report; on a terminal, also a
/// line that shows the stack's state and the time it has taken so far.
pub struct Progress {
    live: bool,
    spinner: usize,
}

impl Progress {
    pub fn new(no_progress: bool) -> Self {
        Progress {
            live: !no_progress && std::io::stderr().is_terminal(),
            spinner: 0,
        }
    }

    fn clear(&self) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event) {
        self.clear();
        eprintln!(
            "{}  {:<28} {:<36} {}{}",
            e.timestamp,
            e.logical_id,
            e.resource_type,
            e.status,
            e.reason
                .as_deref()
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        );
    }

    fn waiting(&mut self, stack: &str, status: &str, elapsed: std::time::Duration) {
        if self.live {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            self.spinner = (self.spinner + 1) % FRAMES.len();
            eprint!(
                "\r\x1b[2K{} {stack} {status} {:.0}s",
                FRAMES[self.spinner],
                elapsed.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }
}

impl Report for DeployReport {
    fn human(&self) -> String {
        let mut s = String::new();
        match self.outcome {
            Outcome::NoChanges => {
                let _ = writeln!(s, "{}: no changes ({})", self.stack, self.status);
            }
            Outcome::Proposed => {
                let _ = writeln!(
                    s,
                    "{}: change set {name} made and left for review, not executed; run exactly it with the same artifact and `deploy --change-set {name}`",
                    self.stack,
                    name = self.change_set.as_deref().unwrap_or("(unnamed)")
                );
                s.push_str(&changes_text(&self.changes));
                return s;
            }
            Outcome::Created | Outcome::Updated => {
                let _ = writeln!(s, "{}: {}", self.stack, self.status);
                s.push_str(&changes_text(&self.changes));
            }
        }
        s.push_str(&outputs_text(&self.outputs));
        s
    }
}

#[derive(Debug, Serialize)]
pub struct OutputsReport {
    pub stack: String,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
}

impl Report for OutputsReport {
    fn human(&self) -> String {
        format!(
            "{}: {}\n{}",
            self.stack,
            self.status,
            outputs_text(&self.outputs)
        )
    }
}

fn changes_text(changes: &[crate::stack::Change]) -> String {
    if changes.is_empty() {
        return "  (no resource changes: parameters or tags only)\n".into();
    }
    changes.iter().fold(String::new(), |mut s, c| {
        let _ = writeln!(
            s,
            "  {:<8} {:<28} {}{}",
            c.action,
            c.logical_id,
            c.resource_type,
            c.replacement
                .as_deref()
                .filter(|r| *r != "False")
                .map(|r| format!(" (replacement: {r})"))
                .unwrap_or_default()
        );
        s
    })
}

fn outputs_text(outputs: &BTreeMap<String, String>) -> String {
    if outputs.is_empty() {
        // The emulator leaves Outputs empty after a change-set deploy; AWS fills them.
        return "  (the stack reports no outputs)\n".into();
    }
    outputs.iter().fold(String::new(), |mut s, (k, v)| {
        let _ = writeln!(s, "  {k:<20} {v}");
        s
    })
}

pub async fn outputs(
    envs: &Environments,
    env: EnvName,
    stack: Option<&str>,
    branch: Option<&str>,
) -> Result<OutputsReport, Error> {
    let kind = service(envs, env, stack, branch, "outputs")?;
    let (name, _) = stack_names(envs, env, kind, branch)?;
    let stacks = stacks_in(envs, env, Through::ReadRole).await?;
    let stack = stacks.describe(&name).await?.ok_or_else(|| {
        Error::Refused(format!(
            "stack {name} does not exist in account {}; deploy it first with `deployer deploy {env}{}`",
            envs.account(env),
            branch.map(|b| format!(" --branch {b}")).unwrap_or_default()
        ))
    })?;
    Ok(OutputsReport {
        status: crate::stack::status_of(&stack).into(),
        outputs: crate::stack::outputs_of(&stack),
        stack: name,
    })
}

#[derive(Debug, Serialize)]
pub struct StackState {
    pub env: EnvName,
    pub stack: String,
    /// None when the stack does not exist.
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
    /// Why the account could not be read (prod's deploy role trusts only the pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub stacks: Vec<StackState>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        self.stacks.iter().fold(String::new(), |mut s, st| {
            let _ = writeln!(
                s,
                "{:<8} {:<24} {:<24} {}{}",
                st.env.as_str(),
                st.stack,
                st.status.as_deref().unwrap_or(if st.unreachable.is_some() {
                    "(unreachable)"
                } else {
                    "(none)"
                }),
                st.unreachable
                    .as_deref()
                    .or(st.updated.as_deref())
                    .unwrap_or(""),
                st.artifact_sha256
                    .as_deref()
                    .map(|sha| format!("  artifact {}", &sha[..sha.len().min(12)]))
                    .unwrap_or_default()
            );
            s
        })
    }
}

/// `deployer status [ENV]`: every stack the deployer keeps in the environment's account.
pub async fn status(envs: &Environments, which: &[EnvName]) -> Result<StatusReport, Error> {
    // Accounts are asked at the same time; the rows keep the order of `which`.
    let per_env =
        futures_util::future::join_all(which.iter().map(|&env| status_of_env(envs, env))).await;
    let mut rows = vec![];
    for env_rows in per_env {
        rows.extend(env_rows?);
    }
    Ok(StatusReport { stacks: rows })
}

/// The rows of one environment: its stacks, both asked at once.
async fn status_of_env(envs: &Environments, env: EnvName) -> Result<Vec<StackState>, Error> {
    // An account this caller may not enter is a row that says so, not the end of the report.
    let stacks = match stacks_in(envs, env, Through::ReadRole).await {
        Ok(stacks) => stacks,
        Err(Error::Refused(why)) => {
            return Ok(StackKind::for_env(envs, env)
                .into_iter()
                .map(|kind| StackState {
                    env,
                    stack: kind.stack_name(envs, env),
                    status: None,
                    updated: None,
                    artifact_sha256: None,
                    unreachable: Some(why.clone()),
                })
                .collect());
        }
        Err(e) => return Err(e),
    };
    let names: Vec<String> = StackKind::for_env(envs, env)
        .into_iter()
        .map(|kind| kind.stack_name(envs, env))
        .collect();
    let described =
        futures_util::future::join_all(names.iter().map(|name| stacks.describe(name))).await;
    names
        .into_iter()
        .zip(described)
        .map(|(name, stack)| {
            let stack = stack?;
            Ok(StackState {
                env,
                status: stack
                    .as_ref()
                    .map(|s| crate::stack::status_of(s).to_string()),
                updated: stack.as_ref().and_then(|s| {
                    s.last_updated_time()
                        .or(s.creation_time())
                        .and_then(crate::stack::time_text)
                }),
                artifact_sha256: stack
                    .as_ref()
                    .and_then(|s| tag_of(s, ARTIFACT_TAG))
                    .map(str::to_string),
                stack: name,
                unreachable: None,
            })
        })
        .collect()
}
