//! `deployer deploy` and `deployer outputs`: the catalog stack of sandbox or prod.

use crate::aws;
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::{Renderer, StackKind};
use crate::stack::{DeployReport, Event, Outcome, StackSpec, Stacks};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The role every target account's bootstrap creates for the deployer to assume.
pub fn deploy_role_name(envs: &Environments) -> String {
    format!("{}-deploy", envs.prefix().as_str())
}

fn target_env(envs: &Environments, env: EnvName, verb: &str) -> Result<(), Error> {
    if envs.target(env).is_none() {
        return Err(Error::Refused(format!(
            "`deployer {verb} {env}`: the {env} account holds no catalog stack; use sandbox or prod"
        )));
    }
    Ok(())
}

async fn session_in(envs: &Environments, env: EnvName) -> Result<aws::Session, Error> {
    let operator = aws::operator_config().await;
    Ok(aws::session_in(
        &operator,
        envs.account(env),
        envs.region(env),
        &deploy_role_name(envs),
    )
    .await?)
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
        tags.push(("artifact-sha256".into(), sha.into()));
    }
    tags
}

pub async fn deploy(
    envs: &Environments,
    renderer: &Renderer,
    env: EnvName,
    artifact_path: &std::path::Path,
    continue_rollback: bool,
) -> Result<DeployReport, Error> {
    target_env(envs, env, "deploy")?;
    let target = envs.target(env).expect("checked above");
    // Prod takes only what the pipeline promoted. CodeBuild sets CODEBUILD_BUILD_ID; the IAM
    // trust on prod's deploy role is what really keeps others out, this stops accidents.
    if target.safety.require_approval && std::env::var_os("CODEBUILD_BUILD_ID").is_none() {
        return Err(Error::Refused(format!(
            "{env} deploys need the pipeline's manual approval (safety.require_approval = true in {}); approve the pending execution with `deployer approve`, or set require_approval = false there if this environment really takes direct deploys",
            envs.file(env).display()
        )));
    }
    let rendered = renderer.render(envs, env, StackKind::Catalog)?;
    let (manifest, zip) = crate::artifact::load(artifact_path).map_err(|e| match e {
        crate::artifact::Error::Read { path, .. } if path == artifact_path => {
            Error::Refused(format!(
                "no artifact at {}: build one with `deployer package`, or name it with --artifact",
                path.display()
            ))
        }
        other => other.into(),
    })?;
    if manifest.architecture != target.lambda.architecture {
        return Err(Error::Refused(format!(
            "{} holds a {} build but {} sets lambda.architecture = \"{}\"; package for {env} again",
            artifact_path.display(),
            manifest.architecture,
            envs.file(env).display(),
            target.lambda.architecture
        )));
    }
    let session = session_in(envs, env).await?;
    crate::bootstrap::check_marker(envs, env, &session).await?;
    let bucket = format!(
        "{}-artifacts-{}-{}",
        envs.prefix().as_str(),
        envs.account(env),
        envs.region(env).as_str()
    );
    let uploaded = crate::artifact::upload(&session.s3(), &bucket, &manifest, zip).await?;
    let parameters = vec![
        ("ArtifactBucket".to_string(), bucket),
        ("ArtifactKey".to_string(), manifest.s3_key()),
    ];
    let template_body = rendered.to_compact();
    let spec = StackSpec {
        name: rendered.stack_name.clone(),
        fingerprint: fingerprint(&template_body, &parameters),
        template_body,
        parameters,
        tags: stack_tags(envs, env, Some(&manifest.sha256)),
        execution_role_arn: Some(format!(
            "arn:aws:iam::{}:role/{}-cfn-exec",
            envs.account(env),
            envs.prefix().as_str()
        )),
    };
    let stacks = Stacks::new(session.cloudformation());
    if continue_rollback {
        stacks
            .continue_rollback(&spec.name, &mut print_event)
            .await?;
    }
    let mut report = stacks.deploy(&spec, &mut print_event).await?;
    report.artifact = Some(crate::stack::ArtifactInfo {
        sha256: manifest.sha256,
        uploaded,
    });
    Ok(report)
}

/// Stack events as lines on stderr, so stdout stays one clean report.
pub fn print_event(e: &Event) {
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

impl Report for DeployReport {
    fn human(&self) -> String {
        let mut s = String::new();
        match self.outcome {
            Outcome::NoChanges => {
                let _ = writeln!(s, "{}: no changes ({})", self.stack, self.status);
            }
            Outcome::Created | Outcome::Updated => {
                let _ = writeln!(s, "{}: {}", self.stack, self.status);
                for c in &self.changes {
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
                }
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

pub async fn outputs(envs: &Environments, env: EnvName) -> Result<OutputsReport, Error> {
    target_env(envs, env, "outputs")?;
    let name = StackKind::Catalog.stack_name(envs, env);
    let stacks = Stacks::new(session_in(envs, env).await?.cloudformation());
    let stack = stacks.describe(&name).await?.ok_or_else(|| {
        Error::Refused(format!(
            "stack {name} does not exist in account {}; deploy it first with `deployer deploy {env}`",
            envs.account(env)
        ))
    })?;
    Ok(OutputsReport {
        status: crate::stack::status_of(&stack).into(),
        outputs: crate::stack::outputs_of(&stack),
        stack: name,
    })
}
