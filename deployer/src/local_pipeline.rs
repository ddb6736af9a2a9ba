//! The pipeline run on this machine against the local emulator, which keeps CodePipeline's
//! definitions but runs no stage (executions are born Succeeded; GetPipelineState and
//! PutApprovalResult are not implemented). The runner reads the rendered pipeline definition and
//! runs each action as CodePipeline and CodeBuild would: the same buildspec commands, in order,
//! each action with its own role's credentials (IAM enforced by the emulator), variables passed
//! from Build to the actions that name them, and a stop at each manual approval. What
//! CodePipeline keeps (executions, their stages, what waits for approval), the runner keeps in
//! `.deployer/pipeline-runs.json`, and says so.
//!
//! It is no road around the approval on AWS: the action roles trust only CodeBuild there, so the
//! AssumeRole it starts with is refused; it also refuses to start without AWS_ENDPOINT_URL.

use crate::config::Environments;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Refused(String),
    #[error("the rendered pipeline cannot run here: {0}")]
    Definition(String),
    #[error("{stage}/{action} failed: {message}")]
    Action {
        stage: String,
        action: String,
        message: String,
    },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Aws(#[from] crate::aws::Error),
}

/// One action of the pipeline as the runner runs it.
#[derive(Debug, Clone)]
enum Step {
    /// The working tree stands in for the repository at the merged commit.
    Source,
    CodeBuild(Box<Build>),
    Approval {
        custom_data: String,
    },
}

#[derive(Debug, Clone)]
struct Build {
    /// The action's role (the project's service role), by name, in the pipeline account.
    role: String,
    buildspec: Buildspec,
    /// Action-level environment variables, `#{Namespace.NAME}` unresolved.
    variables: Vec<(String, String)>,
    /// Runs over the Build output instead of the source.
    on_build_output: bool,
    /// The namespace its exported variables go under.
    namespace: Option<String>,
    /// Whether it makes the output artifact the later actions run over.
    makes_output: bool,
    /// The project's TimeoutInMinutes, after which CodeBuild stops the build.
    minutes: u64,
}

/// CodeBuild's build timeout where a project sets none.
const DEFAULT_MINUTES: u64 = 60;

/// The parts of a buildspec (version 0.2) the runner understands; anything else is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Buildspec {
    /// 0.2, the one whose commands of a phase share one shell.
    version: Value,
    #[serde(default)]
    env: BuildspecEnv,
    phases: BTreeMap<String, Phase>,
    #[serde(default)]
    artifacts: Option<Artifacts>,
    /// What CodeBuild keeps between builds; a local run keeps its working tree anyway.
    #[serde(default, rename = "cache")]
    _cache: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BuildspecEnv {
    #[serde(default)]
    exported_variables: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Phase {
    commands: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Artifacts {
    files: Vec<String>,
}

#[derive(Debug, Clone)]
struct Stage {
    name: String,
    actions: Vec<(String, Step)>,
}

/// The stages of the rendered pipeline template, in order. Its projects name their roles by the
/// exports of the pipeline account's bootstrap stack, whose rendered template says which role
/// each export is (the emulator keeps no exports of a stack deployed through a change set).
fn plan(template: &Value, bootstrap: &Value) -> Result<Vec<Stage>, Error> {
    let bad = |m: String| Error::Definition(m);
    let roles: BTreeMap<&str, &str> = bootstrap["Outputs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, output)| {
            let export = output["Export"]["Name"].as_str()?;
            let resource = output["Value"]["Fn::GetAtt"][0].as_str()?;
            let role = bootstrap["Resources"][resource]["Properties"]["RoleName"].as_str()?;
            Some((export, role))
        })
        .collect();
    let resources = &template["Resources"];
    let stages = resources["Pipeline"]["Properties"]["Stages"]
        .as_array()
        .ok_or_else(|| bad("no Pipeline resource with Stages".into()))?;
    stages
        .iter()
        .map(|stage| {
            let name = stage["Name"].as_str().unwrap_or_default().to_string();
            let actions = stage["Actions"]
                .as_array()
                .ok_or_else(|| bad(format!("stage {name} has no Actions")))?
                .iter()
                .map(|a| {
                    Ok((
                        a["Name"].as_str().unwrap_or_default().to_string(),
                        step(resources, &roles, a)?,
                    ))
                })
                .collect::<Result<_, Error>>()?;
            Ok(Stage { name, actions })
        })
        .collect()
}

/// The pipeline's variables (V2, `Variables`), each with its default value: CodePipeline
/// requires one for an execution a push starts, so each must have one.
fn declared_variables(template: &Value) -> Result<BTreeMap<String, String>, Error> {
    template["Resources"]["Pipeline"]["Properties"]["Variables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v["Name"].as_str().unwrap_or_default();
            match v["DefaultValue"].as_str() {
                Some(default) => Ok((name.to_string(), default.to_string())),
                None => Err(Error::Definition(format!(
                    "pipeline variable {name} has no DefaultValue, which an execution started by a push needs"
                ))),
            }
        })
        .collect()
}

fn step(resources: &Value, roles: &BTreeMap<&str, &str>, action: &Value) -> Result<Step, Error> {
    let bad = |m: String| Error::Definition(m);
    let name = action["Name"].as_str().unwrap_or_default();
    let config = &action["Configuration"];
    match (
        action["ActionTypeId"]["Category"].as_str(),
        action["ActionTypeId"]["Provider"].as_str(),
    ) {
        (Some("Source"), _) => Ok(Step::Source),
        (Some("Approval"), Some("Manual")) => Ok(Step::Approval {
            custom_data: config["CustomData"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }),
        (Some("Build"), Some("CodeBuild")) => {
            let project = config["ProjectName"]["Ref"]
                .as_str()
                .ok_or_else(|| bad(format!("{name}: ProjectName is not a Ref to a project")))?;
            let props = &resources[project]["Properties"];
            let export = props["ServiceRole"]["Fn::ImportValue"]
                .as_str()
                .ok_or_else(|| bad(format!("{project}: ServiceRole is not an Fn::ImportValue")))?;
            let role = roles
                .get(export)
                .ok_or_else(|| {
                    bad(format!(
                        "{project}: the pipeline's bootstrap exports no role {export}"
                    ))
                })?
                .to_string();
            let text = props["Source"]["BuildSpec"]
                .as_str()
                .ok_or_else(|| bad(format!("{project}: no inline BuildSpec")))?;
            let buildspec: Buildspec = serde_norway::from_str(text)
                .map_err(|e| bad(format!("{project}: its BuildSpec: {e}")))?;
            if buildspec.version != serde_json::json!(0.2) {
                return Err(bad(format!(
                    "{project}: BuildSpec version {} (the runner knows 0.2)",
                    buildspec.version
                )));
            }
            let variables = match config["EnvironmentVariables"].as_str() {
                None => vec![],
                Some(json) => serde_json::from_str::<Vec<Value>>(json)
                    .map_err(|e| bad(format!("{name}: EnvironmentVariables: {e}")))?
                    .iter()
                    .map(|v| {
                        (
                            v["name"].as_str().unwrap_or_default().to_string(),
                            v["value"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            };
            Ok(Step::CodeBuild(Box::new(Build {
                role,
                buildspec,
                variables,
                on_build_output: action["InputArtifacts"][0]["Name"] == "Build",
                namespace: action["Namespace"].as_str().map(str::to_string),
                makes_output: action["OutputArtifacts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
                minutes: match &props["TimeoutInMinutes"] {
                    Value::Null => DEFAULT_MINUTES,
                    minutes => minutes.as_u64().ok_or_else(|| {
                        bad(format!(
                            "{project}: TimeoutInMinutes {minutes} is not a number of minutes"
                        ))
                    })?,
                },
            })))
        }
        (category, provider) => Err(bad(format!(
            "{name}: the local runner runs Source, CodeBuild and manual Approval actions, not {} {}",
            category.unwrap_or("?"),
            provider.unwrap_or("?")
        ))),
    }
}

/// What the runner keeps of its executions, as CodePipeline would.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Runs {
    /// The emulator they ran against: another one (a new emulator holds none of their stacks)
    /// starts an empty record.
    #[serde(default)]
    endpoint: String,
    executions: Vec<Execution>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    /// InProgress, WaitingForApproval, Succeeded, Failed, Rejected or Superseded.
    pub status: String,
    pub started: String,
    /// Stage, then its status (Succeeded, Failed, Skipped, ...).
    pub stages: Vec<StageResult>,
    /// `Namespace.NAME` -> value, as Build exported them.
    pub variables: BTreeMap<String, String>,
    /// Where the waiting approval is, and what it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The API the Verify actions check instead of the local stand-in (`--verify-url`), kept
    /// for the stages run after an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_url: Option<String>,
    /// The next stage to run (index into the pipeline's stages).
    #[serde(skip)]
    next: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageResult {
    pub name: String,
    pub status: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waiting {
    pub stage: String,
    pub action: String,
    pub summary: String,
}

impl crate::output::Report for Execution {
    fn human(&self) -> String {
        let mut out = format!("local execution {}: {}\n", self.id, self.status);
        for s in &self.stages {
            out += &format!("  {:<16} {:<10} {:>6.1}s\n", s.name, s.status, s.seconds);
        }
        if let Some(w) = &self.waiting {
            out += &format!(
                "waiting at {}/{}: {}\n`deployer approve --local` promotes it, `deployer reject --local --comment WHY` stops it; a newer `deployer pipeline run --local` supersedes it\n",
                w.stage, w.action, w.summary
            );
        }
        out
    }
}

/// What `pipeline status --local` shows: the local runner's executions, newest first.
#[derive(Debug, Serialize)]
pub struct LocalStatus {
    pub executions: Vec<Execution>,
}

impl crate::output::Report for LocalStatus {
    fn human(&self) -> String {
        if self.executions.is_empty() {
            return "no local executions yet: `deployer pipeline run --local` starts one\n".into();
        }
        let mut out = String::new();
        for (i, e) in self.executions.iter().enumerate() {
            let stages: Vec<String> = e
                .stages
                .iter()
                .map(|s| format!("{} {}", s.name, s.status))
                .collect();
            out += &format!(
                "{:<24} {:<18} started {}\n  {}\n",
                e.id,
                e.status,
                e.started,
                stages.join(", ")
            );
            if let (0, Some(w)) = (i, &e.waiting) {
                out += &format!("  waiting at {}/{}: {}\n", w.stage, w.action, w.summary);
            }
        }
        out
    }
}

/// How a run goes: what to skip, and whether the approval is given up front.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Approve at each approval without stopping (the demo's `--approve`).
    pub approve: bool,
    /// Build skips its test command (`scripts/test`), saying so.
    pub skip_tests: bool,
    /// The API every Verify action smoke-tests (DEPLOYER_VERIFY_URL) instead of the local
    /// stand-in for the stage's API Gateway and functions (`local_api`).
    pub verify_url: Option<String>,
    /// Pipeline-level variables set for this execution, as StartPipelineExecution sets them
    /// (`deployer rollback` sets RollbackTo); the others keep their declared defaults.
    pub variables: Vec<(String, String)>,
}

/// The command Build runs the project's tests with; `--skip-tests` leaves it out.
const TEST_COMMAND: &str = "scripts/test";

pub struct Runner<'a> {
    envs: &'a Environments,
    stages: Vec<Stage>,
    /// The pipeline's declared variables and their default values.
    declared: BTreeMap<String, String>,
    /// The project directory (the source), holding `.deployer/`.
    root: PathBuf,
    options: Options,
}

impl<'a> Runner<'a> {
    /// Refuses unless an emulator endpoint is set: on AWS, CodePipeline runs the pipeline.
    pub fn new(
        envs: &'a Environments,
        pipeline_template: &Value,
        bootstrap_template: &Value,
        root: &Path,
        options: Options,
    ) -> Result<Self, Error> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none_or(|v| v.is_empty()) {
            return Err(Error::Refused(
                "--local runs the pipeline against the local emulator only (set AWS_ENDPOINT_URL, e.g. with scripts/emulator); on AWS, CodePipeline runs it on every merge to the pipeline's branch".into(),
            ));
        }
        Ok(Runner {
            envs,
            stages: plan(pipeline_template, bootstrap_template)?,
            declared: declared_variables(pipeline_template)?,
            root: root.to_path_buf(),
            options,
        })
    }

    fn state_path(&self) -> PathBuf {
        self.root.join(".deployer/pipeline-runs.json")
    }

    /// Held by a command that changes the executions (a run, an approval, a rejection) until it
    /// ends, as CodePipeline answers one approval once: a second command in another terminal
    /// would find the same execution waiting and run its later stages again. The system drops
    /// the lock with the process, however it ends.
    fn lock(&self) -> Result<std::fs::File, Error> {
        let path = self.root.join(".deployer/pipeline-runs.lock");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("a file in .deployer")).map_err(io)?;
        let file = std::fs::File::create(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Refused(format!(
                "another deployer command is running this project's local pipeline (it holds {}): nothing was done; run this again once it has finished (`deployer pipeline status --local` shows where it is)",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
        }
    }

    fn load(&self) -> Result<Runs, Error> {
        let path = self.state_path();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        let runs: Runs = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::Refused(format!(
                    "{} is not the local runner's state ({e}); remove it to start afresh",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Runs::default(),
            Err(source) => return Err(Error::Io { path, source }),
        };
        if runs.endpoint == endpoint {
            return Ok(runs);
        }
        Ok(Runs {
            endpoint,
            executions: vec![],
        })
    }

    fn save(&self, runs: &Runs) -> Result<(), Error> {
        let path = self.state_path();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("a file in .deployer")).map_err(io)?;
        crate::files::write_whole(&path, &serde_json::to_vec_pretty(runs).expect("serializes"))
            .map_err(io)
    }

    /// Where an execution's Build output lives, and the later actions run.
    pub fn execution_dir(&self, id: &str) -> PathBuf {
        self.root.join(".deployer/runs").join(id)
    }

    /// A new execution from the working tree: one still waiting for approval is superseded.
    pub async fn start(&self) -> Result<Execution, Error> {
        // As CodePipeline: every declared variable, set or by default; an undeclared one refused.
        let mut variables = BTreeMap::new();
        for (name, default) in &self.declared {
            variables.insert(format!("variables.{name}"), default.clone());
        }
        for (name, value) in &self.options.variables {
            if !self.declared.contains_key(name) {
                return Err(Error::Refused(format!(
                    "the pipeline rendered from this tree declares no variable {name} (it declares: {}); declare it in templates/pipeline.json.hbs as the shipped template does",
                    if self.declared.is_empty() {
                        "none".to_string()
                    } else {
                        self.declared.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )));
            }
            variables.insert(format!("variables.{name}"), value.clone());
        }
        let verifies = self.stages.iter().flat_map(|s| &s.actions).any(|(_, step)| {
            matches!(step, Step::CodeBuild(b) if b.buildspec.phases.values().flat_map(|p| &p.commands).any(|c| c.contains("deployer verify ")))
        });
        // Without --verify-url each Verify checks the local stand-in for API Gateway and Lambda,
        // which needs cargo-lambda: said before Build, not at the first Verify.
        if verifies && self.options.verify_url.is_none() {
            crate::local_api::cargo_lambda(&self.root)
                .map_err(|e| Error::Refused(e.to_string()))?;
        }
        let _lock = self.lock()?;
        let mut runs = self.load()?;
        let id = format!(
            "local-{}-{:04x}",
            crate::stack::unix_millis() / 1000,
            fastrand::u16(..)
        );
        for old in runs
            .executions
            .iter_mut()
            .filter(|e| e.status == "WaitingForApproval")
        {
            eprintln!(
                "execution {} (waiting for approval) is superseded by {id}: its artifact will never be promoted",
                old.id
            );
            old.status = "Superseded".into();
            old.waiting = None;
        }
        // Older executions' output artifacts go (a superseded one is never promoted); their
        // records stay.
        let _ = std::fs::remove_dir_all(self.root.join(".deployer/runs"));
        let execution = Execution {
            id,
            status: "InProgress".into(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            stages: vec![],
            variables,
            waiting: None,
            verify_url: self.options.verify_url.clone(),
            next: 0,
        };
        runs.executions.push(execution.clone());
        self.save(&runs)?;
        self.go_on(execution).await
    }

    /// Answers execution `id`, the one shown to whoever decides, if it still waits for approval
    /// and, approved, runs the stages after it.
    pub async fn decide(&self, id: &str, approve: bool, comment: &str) -> Result<Execution, Error> {
        let _lock = self.lock()?;
        let mut execution = still_waiting(self.load()?, id)?;
        let waiting = execution
            .waiting
            .take()
            .expect("a waiting execution says where");
        execution.next = self
            .stages
            .iter()
            .position(|s| s.name == waiting.stage)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "execution {} waits at {}, which the pipeline no longer has: start a new one with `deployer pipeline run --local`",
                    execution.id, waiting.stage
                ))
            })?
            + 1;
        let result = execution
            .stages
            .iter_mut()
            .find(|s| s.name == waiting.stage)
            .expect("the waiting stage is recorded");
        if !approve {
            result.status = "Rejected".into();
            execution.status = "Rejected".into();
            eprintln!("{}/{}: rejected ({comment})", waiting.stage, waiting.action);
            self.record(&execution)?;
            return Ok(execution);
        }
        result.status = "Approved".into();
        eprintln!("{}/{}: approved ({comment})", waiting.stage, waiting.action);
        execution.status = "InProgress".into();
        self.record(&execution)?;
        self.go_on(execution).await
    }

    /// The executions it keeps, newest first: `pipeline status --local`.
    pub fn executions(&self) -> Result<LocalStatus, Error> {
        let mut executions = self.load()?.executions;
        executions.reverse();
        Ok(LocalStatus { executions })
    }

    /// The pending approval, for `approve --local` to show before it asks.
    pub fn pending(&self) -> Result<(String, Waiting), Error> {
        self.load()?
            .executions
            .into_iter()
            .find_map(|e| Some((e.id, e.waiting?)))
            .ok_or_else(|| {
                Error::Refused(
                    "no local execution waits for approval: start one with `deployer pipeline run --local`".into(),
                )
            })
    }

    fn record(&self, execution: &Execution) -> Result<(), Error> {
        let mut runs = self.load()?;
        match runs.executions.iter_mut().find(|e| e.id == execution.id) {
            Some(e) => *e = execution.clone(),
            None => runs.executions.push(execution.clone()),
        }
        self.save(&runs)
    }

    async fn go_on(&self, mut execution: Execution) -> Result<Execution, Error> {
        for stage in &self.stages[execution.next..] {
            let started = std::time::Instant::now();
            eprintln!("== {} ({})", stage.name, execution.id);
            let mut status = "Succeeded";
            for (action, step) in &stage.actions {
                match self.act(&mut execution, &stage.name, action, step).await {
                    Ok(true) => {}
                    Ok(false) => status = "Waiting",
                    Err(e) => {
                        execution.stages.push(StageResult {
                            name: stage.name.clone(),
                            status: "Failed".into(),
                            seconds: started.elapsed().as_secs_f64(),
                        });
                        execution.status = "Failed".into();
                        self.record(&execution)?;
                        return Err(e);
                    }
                }
            }
            execution.stages.push(StageResult {
                name: stage.name.clone(),
                status: status.into(),
                seconds: started.elapsed().as_secs_f64(),
            });
            if status == "Waiting" {
                execution.status = "WaitingForApproval".into();
                self.record(&execution)?;
                return Ok(execution);
            }
            self.record(&execution)?;
        }
        execution.status = "Succeeded".into();
        self.record(&execution)?;
        Ok(execution)
    }

    /// Runs one action; false when it waits for an approval.
    async fn act(
        &self,
        execution: &mut Execution,
        stage: &str,
        action: &str,
        step: &Step,
    ) -> Result<bool, Error> {
        let failed = |message: String| Error::Action {
            stage: stage.to_string(),
            action: action.to_string(),
            message,
        };
        match step {
            Step::Source => {
                eprintln!("source: the working tree at {}", self.root.display());
                Ok(true)
            }
            Step::Approval { custom_data } => {
                let summary = resolve(custom_data, &execution.variables).map_err(failed)?;
                if self.options.approve {
                    eprintln!("{action}: {summary}\napproved up front (--approve)");
                    return Ok(true);
                }
                execution.waiting = Some(Waiting {
                    stage: stage.to_string(),
                    action: action.to_string(),
                    summary,
                });
                Ok(false)
            }
            Step::CodeBuild(build) => self
                .build(execution, action, build)
                .await
                .map(|()| true)
                .map_err(failed),
        }
    }

    async fn build(
        &self,
        execution: &mut Execution,
        action: &str,
        build: &Build,
    ) -> Result<(), String> {
        let output_dir = self.execution_dir(&execution.id);
        let dir = if build.on_build_output {
            output_dir.clone()
        } else {
            self.root.clone()
        };
        let credentials = self.role_credentials(&build.role, action).await?;
        std::fs::create_dir_all(&output_dir).map_err(|e| e.to_string())?;
        // Stopped (its processes killed) when the action ends, however it ends.
        let stand_in = match (&execution.verify_url, verified(build)) {
            (None, Some((env, stack))) => Some(
                self.stand_in(execution, &env, stack.as_deref(), action)
                    .await?,
            ),
            _ => None,
        };
        let verify_url = execution
            .verify_url
            .clone()
            .or_else(|| stand_in.as_ref().map(|s| s.url.clone()));
        let exports = output_dir.join(format!("{action}.exports"));
        let mut script = String::from("set -e\n");
        for phase in ["install", "pre_build", "build", "post_build"] {
            for command in build
                .buildspec
                .phases
                .get(phase)
                .map_or(&[][..], |p| &p.commands)
            {
                if self.options.skip_tests && command.trim() == TEST_COMMAND {
                    eprintln!("{action}: skipping `{TEST_COMMAND}` (--skip-tests)");
                    continue;
                }
                script += command;
                script.push('\n');
            }
        }
        for name in &build.buildspec.env.exported_variables {
            script +=
                &format!("printf '%s=%s\\n' {name} \"${{{name}-}}\" >> \"$DEPLOYER_EXPORTS\"\n");
        }
        // Awaited, not blocking: Ctrl-C stays heard while the commands run.
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-o", "pipefail", "-c", &script])
            .current_dir(&dir)
            .env("DEPLOYER_EXPORTS", &exports)
            .env("CODEBUILD_BUILD_ID", format!("{action}:{}", execution.id))
            .env("CODEBUILD_SRC_DIR", &dir)
            .env(
                "AWS_REGION",
                self.envs.region(crate::config::EnvName::PIPELINE).as_str(),
            )
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", &credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.1)
            .env("AWS_SESSION_TOKEN", &credentials.2)
            .envs(verify_url.iter().map(|url| ("DEPLOYER_VERIFY_URL", url)))
            // Its output is the log; stdout stays this command's report. No input, as on
            // CodeBuild: in a process group of its own a read of the terminal would stop it.
            .stdin(std::process::Stdio::null())
            .stdout(std::io::stderr());
        for (name, value) in &build.variables {
            command.env(name, resolve(value, &execution.variables)?);
        }
        eprintln!("{action}: as {}, in {}", credentials.3, dir.display());
        let limit = std::time::Duration::from_secs(build.minutes * 60);
        let status = run_within(&mut command, limit).await.map_err(|e| match e {
            Ended::Io(e) => format!("cannot run bash: {e}"),
            Ended::TimedOut => format!(
                "its commands ran past the project's TimeoutInMinutes ({}), where CodeBuild stops a build; they were stopped",
                build.minutes
            ),
        })?;
        if !status.success() {
            let logs = stand_in
                .iter()
                .flat_map(|s| &s.functions)
                .map(|(f, log)| format!("{f}: {}", log.display()));
            let logs: Vec<String> = logs.collect();
            return Err(format!(
                "its commands exited with {status}; the output above says why{}",
                if logs.is_empty() {
                    String::new()
                } else {
                    format!(" (the stand-in's function logs: {})", logs.join(", "))
                }
            ));
        }
        if let Some(namespace) = &build.namespace {
            let text = std::fs::read_to_string(&exports).map_err(|e| e.to_string())?;
            for line in text.lines() {
                if let Some((name, value)) = line.split_once('=') {
                    execution
                        .variables
                        .insert(format!("{namespace}.{name}"), value.to_string());
                }
            }
        }
        if build.makes_output {
            let files = build
                .buildspec
                .artifacts
                .as_ref()
                .map_or(&[][..], |a| &a.files);
            collect(&dir, files, &output_dir)?;
        }
        Ok(())
    }

    /// The local stand-in for `env`'s API (the emulator runs no API Gateway or Lambda): the
    /// stack's functions as this run's artifact, under a Lambda runtime API, behind a router.
    async fn stand_in(
        &self,
        execution: &Execution,
        env: &str,
        stack: Option<&str>,
        action: &str,
    ) -> Result<crate::local_api::LocalApi, String> {
        let env = self.envs.env(env).map_err(|e| e.to_string())?;
        let kind =
            crate::access::service(self.envs, env, stack, "verify").map_err(|e| e.to_string())?;
        let (name, _) =
            crate::access::stack_names(self.envs, env, kind, None).map_err(|e| e.to_string())?;
        let run = self.execution_dir(&execution.id);
        let reader = crate::access::session_in(self.envs, env, crate::access::Through::ReadRole)
            .await
            .map_err(|e| e.to_string())?;
        let operator = crate::aws::operator()
            .await
            .map_err(|e| e.to_string())?
            .session_here(self.envs.region(env));
        let (manifest, zip) = match crate::artifact::load(&run.join("dist/manifest.json"))
            .map_err(|e| e.to_string())?
        {
            crate::artifact::Loaded::Built(manifest, zip) => (manifest, zip),
            // A rollback: the zip is in the stage's bucket, where its Deploy found it. The
            // emulator lets the operator read another account's bucket (AWS would not; the
            // stand-in runs on the emulator only).
            crate::artifact::Loaded::Recalled(sha256) => crate::history::recall(
                &operator.s3(),
                &crate::access::artifact_bucket(self.envs, env),
                &name,
                &sha256,
            )
            .await
            .map_err(|e| e.to_string())?,
        };
        let api = crate::local_api::start(&reader, &operator, &name, &zip, &self.root, &run)
            .await
            .map_err(|e| e.to_string())?;
        let functions: Vec<&str> = api.functions.iter().map(|(f, _)| f.as_str()).collect();
        eprintln!(
            "{action}: the local stand-in for API Gateway at {}: {name}'s {} run this run's artifact ({}) as Lambda runs it (its bootstrap, under cargo-lambda's runtime API), each with the Handler, environment and role the stack gave it; the emulator runs neither API Gateway nor Lambda",
            api.url,
            functions.join(" and "),
            &manifest.sha256[..12],
        );
        Ok(api)
    }

    /// The action role's credentials, assumed by the operator's session (the emulator's
    /// stand-in for CodeBuild). Returns key, secret, token and the role's ARN.
    async fn role_credentials(
        &self,
        role: &str,
        action: &str,
    ) -> Result<(String, String, String, String), String> {
        let operator = crate::aws::operator().await.map_err(|e| e.to_string())?;
        let here = operator.session_here(self.envs.region(crate::config::EnvName::PIPELINE));
        let role_arn = format!(
            "arn:aws:iam::{}:role/{role}",
            self.envs.account(crate::config::EnvName::PIPELINE)
        );
        let assumed = aws_sdk_sts::Client::new(&here.config)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(
                format!("local-{action}")
                    .chars()
                    .take(64)
                    .collect::<String>(),
            )
            .send()
            .await
            .map_err(|e| format!("cannot assume {role_arn}: {}", crate::aws::error_text(&e)))?;
        let c = assumed
            .credentials
            .ok_or_else(|| "STS returned no credentials".to_string())?;
        Ok((
            c.access_key_id,
            c.secret_access_key,
            c.session_token,
            role_arn,
        ))
    }
}

/// Why `run_within` gives no exit status.
#[derive(Debug)]
enum Ended {
    Io(std::io::Error),
    TimedOut,
}

/// `command`'s exit status, in a process group of its own that is killed whole (what its commands
/// started too, as CodeBuild ends a build's container) when `limit` passes or the caller stops
/// waiting (Ctrl-C).
async fn run_within(
    command: &mut tokio::process::Command,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, Ended> {
    /// Kills the group when dropped, however the wait ends; after a normal exit it kills what the
    /// commands left running in the background.
    struct Group(i32);
    impl Drop for Group {
        fn drop(&mut self) {
            // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
    let mut child = command.process_group(0).spawn().map_err(Ended::Io)?;
    let _group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Group);
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.map_err(Ended::Io),
        Err(_) => Err(Ended::TimedOut),
    }
}

/// Execution `id` out of `runs` if it still waits for approval: what was shown and confirmed is
/// what gets answered, not an execution that took its place meanwhile (CodePipeline's approval
/// token does this on AWS).
fn still_waiting(runs: Runs, id: &str) -> Result<Execution, Error> {
    let execution = runs.executions.into_iter().find(|e| e.id == id);
    match execution {
        Some(e) if e.status == "WaitingForApproval" => Ok(e),
        other => Err(Error::Refused(format!(
            "execution {id} no longer waits for approval ({}): nothing was answered; `deployer pipeline status --local` shows the executions",
            other.map_or("it is gone".into(), |e| format!("it is {}", e.status))
        ))),
    }
}

/// The environment and stack a Verify action's `deployer verify ENV [--stack S]` checks.
fn verified(build: &Build) -> Option<(String, Option<String>)> {
    build
        .buildspec
        .phases
        .values()
        .flat_map(|p| &p.commands)
        .find_map(|command| {
            let words: Vec<&str> = command.split_whitespace().collect();
            let at = words
                .windows(2)
                .position(|w| w[0].ends_with("deployer") && w[1] == "verify")?;
            let env = words.get(at + 2)?;
            let stack = words
                .iter()
                .position(|w| *w == "--stack")
                .and_then(|i| words.get(i + 1));
            Some((env.to_string(), stack.map(|s| s.to_string())))
        })
}

/// `#{Namespace.NAME}` replaced by the execution's variables; an unknown one is an error.
fn resolve(text: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        out += &rest[..start];
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed variable in {text:?}"))?;
        let name = &rest[start + 2..start + end];
        out += variables.get(name).ok_or_else(|| {
            format!("the variable #{{{name}}} is not set: no earlier action exported it")
        })?;
        rest = &rest[start + end + 1..];
    }
    Ok(out + rest)
}

/// Copies what `artifacts.files` names from `from` into `to`: `dir/**/*` (a whole directory) or
/// a plain path, the forms the rendered buildspecs use.
fn collect(from: &Path, files: &[String], to: &Path) -> Result<(), String> {
    for pattern in files {
        let (path, whole) = match pattern.strip_suffix("/**/*") {
            Some(dir) => (dir, true),
            None => (pattern.as_str(), false),
        };
        if path.contains(['*', '?', '[']) {
            return Err(format!(
                "artifacts.files {pattern:?}: the local runner copies `dir/**/*` and plain paths only"
            ));
        }
        let source = from.join(path);
        if !source.exists() {
            return Err(format!(
                "artifacts.files names {pattern:?} but the build made no {}",
                source.display()
            ));
        }
        copy(&source, &to.join(path), whole).map_err(|e| format!("copying {pattern}: {e}"))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path, recursive: bool) -> std::io::Result<()> {
    if from.is_dir() && recursive {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy(&entry.path(), &to.join(entry.file_name()), true)?;
        }
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_resolve_or_name_the_missing_one() {
        let vars = BTreeMap::from([("BuildVariables.ARTIFACT_SHA".to_string(), "abc".to_string())]);
        assert_eq!(
            resolve("sha #{BuildVariables.ARTIFACT_SHA}, to prod", &vars).unwrap(),
            "sha abc, to prod"
        );
        let err = resolve("#{BuildVariables.OTHER}", &vars).unwrap_err();
        assert!(err.contains("#{BuildVariables.OTHER} is not set"), "{err}");
    }

    /// A project as the pipeline template declares it, with `timeout` as its TimeoutInMinutes.
    fn project_step(timeout: Option<Value>) -> Result<Step, Error> {
        let mut props = serde_json::json!({
            "ServiceRole": {"Fn::ImportValue": "catalog-action-build-role"},
            "Source": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - true\n"},
        });
        if let Some(timeout) = timeout {
            props["TimeoutInMinutes"] = timeout;
        }
        let resources = serde_json::json!({"BuildProject": {"Properties": props}});
        let action = serde_json::json!({
            "Name": "Build",
            "ActionTypeId": {"Category": "Build", "Provider": "CodeBuild"},
            "Configuration": {"ProjectName": {"Ref": "BuildProject"}},
        });
        let roles = BTreeMap::from([("catalog-action-build-role", "catalog-action-build")]);
        step(&resources, &roles, &action)
    }

    #[test]
    fn an_action_runs_for_as_long_as_its_project_allows() {
        let minutes = |step: Step| match step {
            Step::CodeBuild(build) => build.minutes,
            other => panic!("{other:?}"),
        };
        assert_eq!(minutes(project_step(Some(15.into())).unwrap()), 15);
        // CodeBuild's own default where the project sets none.
        assert_eq!(minutes(project_step(None).unwrap()), 60);
        let err = project_step(Some("an hour".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BuildProject: TimeoutInMinutes \"an hour\" is not a number of minutes"),
            "{err}"
        );
    }

    /// Whether `pid` has ended (gone, or a zombie nobody reaped yet), waiting a little for a
    /// signal sent to land.
    fn ended(pid: &str) -> bool {
        (0..100).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
            let gone = matches!(state, None | Some("Z" | "X"));
            if !gone {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            gone
        })
    }

    #[tokio::test]
    async fn commands_past_the_time_limit_are_stopped_with_what_they_started() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let mut command = tokio::process::Command::new("bash");
        // A background process, as a test server or a stuck child would be, and a foreground
        // one that would outlive the limit.
        command
            .args(["-c", "sleep 60 & echo $! $$ > \"$PIDS\"; sleep 60"])
            .env("PIDS", &pids);
        let ended_as = run_within(&mut command, std::time::Duration::from_secs(1)).await;
        assert!(matches!(ended_as, Err(Ended::TimedOut)), "{ended_as:?}");
        let pids = std::fs::read_to_string(&pids).unwrap();
        for pid in pids.split_whitespace() {
            assert!(ended(pid), "process {pid} still runs");
        }
    }

    #[tokio::test]
    async fn commands_within_the_time_limit_give_their_exit_status() {
        let mut command = tokio::process::Command::new("bash");
        command.args(["-c", "exit 3"]);
        let status = run_within(&mut command, std::time::Duration::from_secs(60)).await;
        assert_eq!(status.unwrap().code(), Some(3));
    }

    #[test]
    fn only_the_execution_shown_is_answered_and_only_while_it_waits() {
        let execution = |id: &str, status: &str| {
            serde_json::json!({
                "id": id, "status": status, "started": "", "stages": [], "variables": {}
            })
        };
        let runs = || -> Runs {
            serde_json::from_value(serde_json::json!({"executions": [
                execution("local-1", "Superseded"),
                execution("local-2", "WaitingForApproval"),
            ]}))
            .unwrap()
        };
        assert_eq!(still_waiting(runs(), "local-2").unwrap().id, "local-2");
        // Shown local-1; a run superseded it before the answer came: local-2 is not answered.
        let err = still_waiting(runs(), "local-1").unwrap_err().to_string();
        assert!(
            err.contains("execution local-1 no longer waits for approval (it is Superseded)"),
            "{err}"
        );
        let err = still_waiting(runs(), "local-0").unwrap_err().to_string();
        assert!(err.contains("(it is gone)"), "{err}");
    }
}
