//! The deployer: renders a service's CloudFormation templates and deploys them through the stages
//! of one pipeline, each environment in its own account and region.

pub mod artifact;
pub mod aws;
pub mod bootstrap;
pub mod branch;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod drift;
pub mod error;
pub mod events;
pub mod logs;
pub mod output;
pub mod pipeline;
pub mod render;
pub mod schema;
pub mod settings;
pub mod stack;
pub mod suggest;
pub mod synth;

use cli::{BranchesAction, Cli, Command, PipelineAction};
use config::{EnvName, Environments};
use error::Error;
use output::emit;
use render::Renderer;

/// Runs one command line to completion; the exit status when it did not fail (`drift` says 1
/// for a drifted stack).
pub async fn run(cli: Cli) -> Result<u8, Error> {
    let g = &cli.global;
    // Needs no environment files: it works anywhere the binary is installed.
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "deployer",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    let envs = Environments::load(&g.environments)?;
    for warning in envs
        .warnings
        .iter()
        .cloned()
        .chain(render::unused_templates(&envs, &g.templates))
    {
        eprintln!("warning: {warning}");
    }
    stack::set_wait_limit(g.timeout);
    aws::sign_in(aws::SignIn {
        profile: g.profile.clone(),
        region: g.region.clone(),
        fallback_region: envs.region(EnvName::PIPELINE).as_str().to_string(),
    });
    let env = |name: &str| envs.env(name).map_err(Error::from);
    match cli.command {
        Command::Synth {
            env: name,
            all: _,
            out,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let which = one_or_all(&envs, name.as_deref())?;
            emit(g.output, &synth::synth(&envs, &renderer, &which, &out)?);
        }
        Command::Deploy {
            env: name,
            stack,
            branch,
            artifact,
            continue_rollback,
            skip_resources,
            force,
            no_execute,
            change_set,
            outputs_file,
            expect_sha256,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::deploy(
                &envs,
                &renderer,
                env(&name)?,
                stack.as_deref(),
                branch.as_deref(),
                &deploy::Artifact {
                    path: &artifact,
                    expect_sha256: expect_sha256.as_deref(),
                },
                &deploy::Request {
                    continue_rollback: continue_rollback.then_some(skip_resources),
                    options: stack::DeployOptions {
                        force,
                        action: match (no_execute, change_set) {
                            (true, _) => stack::Action::Propose,
                            (false, Some(name)) => stack::Action::Execute(name),
                            (false, None) => stack::Action::Apply,
                        },
                    },
                },
                &mut progress,
            )
            .await?;
            drop(progress);
            emit(g.output, &report);
            // After the report, so a deploy that worked is shown as such even if this fails.
            if let Some(path) = outputs_file {
                let json =
                    serde_json::to_string_pretty(&report.outputs).expect("strings serialize");
                std::fs::write(&path, json + "\n")
                    .map_err(|source| Error::Write { path, source })?;
            }
        }
        Command::Bootstrap {
            env: name,
            admin_execution_role,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let options = render::Options {
                admin_execution_role,
                ..Default::default()
            };
            let mut progress = deploy::Progress::new(g.no_progress);
            let report =
                bootstrap::bootstrap(&envs, &renderer, env(&name)?, &options, &mut progress)
                    .await?;
            drop(progress); // clears the progress line before the report prints
            emit(g.output, &report);
        }
        Command::Diff {
            env: name,
            stack,
            artifact,
        } => {
            let renderer = Renderer::load(&g.templates)?;
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::diff(
                &envs,
                &renderer,
                env(&name)?,
                stack.as_deref(),
                &deploy::Artifact {
                    path: &artifact,
                    expect_sha256: None,
                },
                &mut progress,
            )
            .await?;
            drop(progress);
            emit(g.output, &report);
        }
        Command::Destroy {
            env: name,
            stack,
            branch,
            retain,
        } => {
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::destroy(
                &envs,
                env(&name)?,
                stack.as_deref(),
                branch.as_deref(),
                &retain,
                &mut progress,
            )
            .await?;
            drop(progress);
            emit(g.output, &report);
        }
        Command::Package {
            env: name,
            binary,
            out,
        } => {
            let env = match name {
                Some(name) => env(&name)?,
                None => envs.names()[1],
            };
            let architecture = envs
                .target(env)
                .ok_or_else(|| {
                    Error::Refused(
                        "package for a stage's environment: the pipeline account runs no function"
                            .into(),
                    )
                })?
                .lambda
                .architecture;
            let binary = match binary {
                Some(path) => path,
                None => artifact::build_app(architecture)?,
            };
            emit(g.output, &artifact::package(&binary, architecture, &out)?);
        }
        Command::Status { env: name } => {
            let which = one_or_all(&envs, name.as_deref())?;
            emit(g.output, &deploy::status(&envs, &which).await?);
        }
        Command::Pipeline { action } => match action {
            PipelineAction::Deploy => {
                let renderer = Renderer::load(&g.templates)?;
                let mut progress = deploy::Progress::new(g.no_progress);
                let (report, _) = bootstrap::deploy_as_operator(
                    &envs,
                    &renderer,
                    EnvName::PIPELINE,
                    render::StackKind::Pipeline,
                    &render::Options::default(),
                    "pipeline deploy",
                    &mut progress,
                )
                .await?;
                drop(progress);
                emit(g.output, &report);
            }
            PipelineAction::Status => {
                let cp = deploy::codepipeline(&envs, "pipeline status").await?;
                emit(
                    g.output,
                    &pipeline::status(&cp, envs.prefix().as_str()).await?,
                );
            }
        },
        Command::Approve { comment, yes } => {
            let comment = comment.unwrap_or_else(|| "approved with deployer".into());
            emit(
                g.output,
                &answer_approval(&envs, true, &comment, yes).await?,
            );
        }
        Command::Reject { comment, yes } => {
            emit(
                g.output,
                &answer_approval(&envs, false, &comment, yes).await?,
            );
        }
        Command::Branches { action } => match action {
            BranchesAction::List => emit(g.output, &branch::commands::list(&envs).await?),
            BranchesAction::Gc {
                keep,
                keep_from_git,
                dry_run,
            } => {
                let keep = if keep_from_git {
                    branch::commands::remote_branches()?
                } else {
                    keep
                };
                let mut progress = deploy::Progress::new(g.no_progress);
                let report = branch::commands::gc(&envs, &keep, dry_run, &mut progress).await?;
                drop(progress);
                emit(g.output, &report);
                return Ok(if report.failed.is_empty() { 0 } else { 1 });
            }
        },
        Command::Outputs {
            env: name,
            stack,
            branch,
        } => emit(
            g.output,
            &deploy::outputs(&envs, env(&name)?, stack.as_deref(), branch.as_deref()).await?,
        ),
        Command::Drift {
            env: name,
            stack,
            branch,
        } => {
            let mut progress = deploy::Progress::new(g.no_progress);
            let report = deploy::drift(
                &envs,
                env(&name)?,
                stack.as_deref(),
                branch.as_deref(),
                &mut progress,
            )
            .await?;
            drop(progress);
            emit(g.output, &report);
            return Ok(if report.in_sync() { 0 } else { 1 });
        }
        Command::Logs {
            env: name,
            stack,
            branch,
            follow,
            since,
            function,
        } => {
            let mut reader = deploy::logs(
                &envs,
                env(&name)?,
                stack.as_deref(),
                branch.as_deref(),
                function.as_deref(),
                &since,
            )
            .await?;
            if !follow {
                let events = reader.next_batch().await?;
                emit(g.output, &logs::LogsReport { events });
                return Ok(0);
            }
            reader.follow(g.output).await?;
        }
        Command::Completions { .. } => unreachable!("handled before the environments load"),
    }
    Ok(0)
}

/// The environment a command line names, or all of them.
fn one_or_all(envs: &Environments, name: Option<&str>) -> Result<Vec<EnvName>, Error> {
    Ok(match name {
        Some(name) => vec![envs.env(name)?],
        None => envs.names(),
    })
}

/// Finds the pending approval, shows what prod would receive, confirms, answers.
async fn answer_approval(
    envs: &Environments,
    approve: bool,
    comment: &str,
    yes: bool,
) -> Result<pipeline::ApprovalReport, Error> {
    use std::io::IsTerminal;
    let name = envs.prefix().as_str();
    let cp = deploy::codepipeline(envs, if approve { "approve" } else { "reject" }).await?;
    let pending = pipeline::pending(&cp, name).await?;
    // The approval before a stage is named for it (see templates/pipeline.json.hbs); what that
    // stage would receive is what the stage before it runs now.
    let stages: Vec<EnvName> = envs.stages().map(|(env, _, _)| env).collect();
    let to = stages
        .iter()
        .position(|e| pending.stage == format!("Approve{}", render::pascal_case(e.as_str())));
    let from = to.and_then(|i| i.checked_sub(1)).map(|i| stages[i]);
    let now = match from {
        None => "no earlier stage".to_string(),
        Some(from) => match deploy::status(envs, &[from]).await {
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
        to.map_or("the next stage", |i| stages[i].as_str()),
        pending.artifact_sha256.as_deref().unwrap_or("unknown"),
        from.map_or("before it", |e| e.as_str()),
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused(
                "not a terminal, so nothing can be confirmed: pass --yes".into(),
            ));
        }
        eprint!("{} it? [y/N] ", if approve { "Approve" } else { "Reject" });
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err(Error::Refused("not confirmed; nothing was sent".into()));
        }
    }
    pipeline::decide(&cp, name, &pending, approve, comment).await
}
