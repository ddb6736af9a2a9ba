//! `deployer doctor`: for each environment, whether this machine can reach it the way the
//! commands will, and what to do where it cannot.

use crate::access::{Through, check_marker, role_name, session_in};
use crate::config::{EnvName, Environments};
use crate::error::Error;
use crate::output::Report;
use crate::render::StackKind;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Serialize)]
pub struct Check {
    pub env: EnvName,
    pub check: String,
    pub ok: bool,
    /// What was found, or why it failed and what to do.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// Whose credentials the commands run with.
    pub caller: String,
    pub account: String,
    pub checks: Vec<Check>,
}

impl Report for DoctorReport {
    fn human(&self) -> String {
        let stdout = crate::display::Stream::Stdout;
        let mut s = format!("signed in as {} (account {})\n", self.caller, self.account);
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {} {:<9} {:<22} {}",
                if c.ok {
                    stdout.paint("ok  ", console::Color::Green)
                } else {
                    stdout.paint("FAIL", console::Color::Red)
                },
                c.env.as_str(),
                c.check,
                c.detail
            );
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        s += &if failed == 0 {
            "every check passed\n".to_string()
        } else {
            format!("{failed} check(s) failed: each says what to do\n")
        };
        s
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this environment (default: the pipeline account and every stage's).
    env: Option<String>,
}

pub async fn run(g: &super::Global, envs: &Environments, args: Args) -> Result<u8, Error> {
    let which = super::one_or_all(envs, args.env.as_deref())?;
    let report = doctor(envs, &which).await?;
    crate::output::emit(g.output, &report);
    Ok(if report.checks.iter().all(|c| c.ok) {
        0
    } else {
        1
    })
}

pub async fn doctor(envs: &Environments, which: &[EnvName]) -> Result<DoctorReport, Error> {
    // Without credentials nothing else can be told: that is the one answer, as an error.
    let operator = crate::aws::operator().await?;
    let mut checks = vec![];
    for &env in which {
        checks.extend(checks_of(envs, env, &operator.account).await);
    }
    Ok(DoctorReport {
        caller: operator.arn.clone(),
        account: operator.account.clone(),
        checks,
    })
}

/// One check's outcome: what was found, or why it failed and what to do.
fn check(env: EnvName, name: &str, result: Result<String, String>) -> Check {
    Check {
        env,
        check: name.to_string(),
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|e| e),
    }
}

async fn checks_of(envs: &Environments, env: EnvName, caller_account: &str) -> Vec<Check> {
    let Some(target) = envs.target(env) else {
        return pipeline_checks(envs, env, caller_account).await;
    };
    let mut checks = vec![];
    // Every command that reads (status, outputs, logs, drift, verify) goes through this role.
    let read = session_in(envs, env, Through::ReadRole).await;
    checks.push(check(
        env,
        "read role",
        read.as_ref()
            .map(|s| s.acting_as.clone())
            .map_err(|e| e.to_string()),
    ));
    if let Ok(session) = &read {
        checks.push(check(
            env,
            "bootstrap version",
            bootstrap_version(envs, env, session).await,
        ));
        if target.branches.enabled {
            checks.push(check(env, "github oidc", oidc(envs, env, session).await));
        }
    }
    // A protected environment's deploy role trusts only its pipeline Deploy action: not being
    // let in is the design, and says so.
    let deploy_role = role_name(envs, env, "deploy");
    checks.push(if target.safety.require_approval {
        check(
            env,
            "deploy role",
            Ok(format!(
                "{deploy_role}: only the pipeline's {env} Deploy action may assume it (safety.require_approval), so it is not tried"
            )),
        )
    } else {
        check(
            env,
            "deploy role",
            session_in(envs, env, Through::DeployRole)
                .await
                .map(|s| s.acting_as)
                .map_err(|e| e.to_string()),
        )
    });
    checks
}

/// The pipeline account's checks: its own commands (bootstrap, pipeline deploy) run as the caller,
/// who must be signed in there. Its bootstrap stack, then the version marker `pipeline deploy`
/// requires: a bootstrap by an older deployer has the stack but not a marker this one accepts.
async fn pipeline_checks(envs: &Environments, env: EnvName, caller_account: &str) -> Vec<Check> {
    let account = envs.account(env).as_str();
    if caller_account != account {
        return vec![check(
            env,
            "bootstrap",
            Err(format!(
                "these credentials are for account {caller_account}, not the pipeline account {account}: sign in there to bootstrap it or deploy the pipeline"
            )),
        )];
    }
    let bootstrap = StackKind::BootstrapPipeline.stack_name(envs, env);
    let session = match session_in(envs, env, Through::ReadRole).await {
        Ok(session) => session,
        Err(e) => return vec![check(env, "bootstrap", Err(e.to_string()))],
    };
    let stack = match crate::stack::Stacks::new(session.cloudformation())
        .describe(&bootstrap)
        .await
    {
        Ok(Some(stack)) => Ok(format!("{bootstrap} {}", crate::stack::status_of(&stack))),
        Ok(None) => Err(format!(
            "{bootstrap} does not exist: run `deployer bootstrap pipeline`"
        )),
        Err(e) => Err(e.to_string()),
    };
    let mut checks = vec![check(env, "bootstrap", stack)];
    if checks[0].ok {
        checks.push(check(
            env,
            "bootstrap version",
            bootstrap_version(envs, env, &session).await,
        ));
    }
    checks
}

/// The environment's bootstrap marker, against the version this deployer needs.
async fn bootstrap_version(
    envs: &Environments,
    env: EnvName,
    session: &crate::aws::Session,
) -> Result<String, String> {
    check_marker(envs, env, session)
        .await
        .map(|()| {
            format!(
                "{} or newer, as this deployer needs",
                crate::render::BOOTSTRAP_VERSION
            )
        })
        .map_err(|e| match e {
            // A target's read role may read the marker since this command exists.
            Error::Aws(e) if envs.target(env).is_some() && e.to_string().contains("AccessDenied") => {
                format!(
                    "the read role may not read the bootstrap marker: {env} was bootstrapped by an older deployer; run `deployer bootstrap {env}` with credentials in account {}",
                    envs.account(env)
                )
            }
            e => e.to_string(),
        })
}

/// GitHub's OIDC provider, which the branch workflows sign in through: named in the file, or made
/// by the bootstrap stack.
async fn oidc(
    envs: &Environments,
    env: EnvName,
    session: &crate::aws::Session,
) -> Result<String, String> {
    if let Some(arn) = envs
        .target(env)
        .and_then(|t| t.branches.oidc_provider_arn.as_ref())
    {
        return Ok(format!("{arn} (branches.oidc_provider_arn)"));
    }
    let bootstrap = StackKind::BootstrapTarget.stack_name(envs, env);
    let resources = session
        .cloudformation()
        .describe_stack_resources()
        .stack_name(&bootstrap)
        .send()
        .await
        .map_err(|e| crate::aws::error_text(&e))?;
    resources
        .stack_resources()
        .iter()
        .find(|r| r.resource_type() == Some("AWS::IAM::OIDCProvider"))
        .and_then(|r| r.physical_resource_id())
        .map(|arn| format!("{arn} (made by {bootstrap})"))
        .ok_or_else(|| {
            format!(
                "{bootstrap} has no GitHub OIDC provider though branches.enabled = true: run `deployer bootstrap {env}` with credentials in account {}",
                envs.account(env)
            )
        })
}
