//! Templates to CloudFormation JSON: handlebars in strict mode, JSON-escaped values, and a
//! canonical form (sorted keys) so that the same inputs always give the same bytes.

use crate::config::{ConfigError, EnvName, Environments};
use crate::json::Json;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, PathAndJson, RenderContext,
    RenderError as HbError, RenderErrorReason, Renderable, Template, TemplateErrorReason,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub mod cache;
mod compact;

/// Bumped whenever bootstrap-target changes in a way `deploy` depends on; `deploy` refuses
/// targets whose marker is older.
/// 2: the execution role may create the SNS topic and SQS queue; the deploy role may run drift
/// detection and read the functions' logs.
/// 3: least privilege: the app boundary the catalog's roles need, a branch execution role, deploy
/// roles trusting only the pipeline's Deploy action of their environment (and named operators),
/// a read-only role for status, outputs, logs and drift, write-once artifacts.
/// 4: branch stacks' roles under their own boundary (`{prefix}-br-*` and branch signing secrets
/// only), the environment's boundary narrowed to `{prefix}-{env}-*`; deploy roles make and delete
/// branch signing secrets; the propose role, verify and history reads.
/// 5: gradual deploys: the execution role may make CodeDeploy applications and groups, aliases and
/// error alarms, and the app boundary lets CodeDeploy's role shift live aliases; the artifact
/// bucket's lifecycle rule expires what `gc --artifacts` removed.
pub const BOOTSTRAP_VERSION: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{}: {message}", position(*line, *column))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("{path}{}: {message} (rendering for {env})", position(*line, *column))]
    Render {
        path: PathBuf,
        env: EnvName,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error(
        "{path} rendered for {env} is not valid JSON: {source} (at line {} of the output: `{}`); check the commas and quotes around that spot in the template",
        source.line(), snippet
    )]
    NotJson {
        path: PathBuf,
        env: EnvName,
        source: serde_json::Error,
        snippet: String,
    },
    #[error(transparent)]
    Branch(#[from] crate::branch::BadBranch),
    /// A stack's settings do not match what its template declares.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error("{path} rendered for {env} is not a CloudFormation template: {message}")]
    NotCloudFormation {
        path: PathBuf,
        env: EnvName,
        message: String,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// One kind of stack, one template file: the deployer's own three, and the service's stacks the
/// environments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    BootstrapPipeline,
    BootstrapTarget,
    Pipeline,
    /// A stack of the service, from `templates/<name>.json.hbs`.
    Service(&'static str),
}

impl Serialize for StackKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.template_name())
    }
}

impl StackKind {
    pub fn template_name(self) -> &'static str {
        match self {
            StackKind::BootstrapPipeline => "bootstrap-pipeline",
            StackKind::BootstrapTarget => "bootstrap-target",
            StackKind::Pipeline => "pipeline",
            StackKind::Service(name) => name,
        }
    }

    /// The stacks an environment's account holds: its bootstrap first.
    pub fn for_env(envs: &Environments, env: EnvName) -> Vec<StackKind> {
        match envs.target(env) {
            None => vec![StackKind::BootstrapPipeline, StackKind::Pipeline],
            Some(target) => std::iter::once(StackKind::BootstrapTarget)
                .chain(
                    target
                        .stacks
                        .iter()
                        .map(|s| StackKind::Service(crate::config::intern(s))),
                )
                .collect(),
        }
    }

    /// The service's stacks in `env`, in the order they deploy.
    pub fn services(envs: &Environments, env: EnvName) -> Vec<StackKind> {
        StackKind::for_env(envs, env)
            .into_iter()
            .filter(|k| matches!(k, StackKind::Service(_)))
            .collect()
    }

    pub fn stack_name(self, envs: &Environments, env: EnvName) -> String {
        let prefix = envs.prefix().as_str();
        match self {
            // Different names, so pipeline and an environment may share an account.
            StackKind::BootstrapPipeline => format!("{prefix}-bootstrap-pipeline"),
            StackKind::BootstrapTarget => format!("{prefix}-bootstrap"),
            StackKind::Pipeline => format!("{prefix}-pipeline"),
            // The stack named like the prefix (the catalog's own) is not named twice.
            StackKind::Service(name) if name == prefix => format!("{prefix}-{env}"),
            StackKind::Service(name) => format!("{prefix}-{env}-{name}"),
        }
    }
}

/// What an operator chooses per run rather than per environment file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Options {
    /// Give CloudFormation's execution role AdministratorAccess instead of its scoped policy.
    pub admin_execution_role: bool,
    /// Render the catalog as this feature branch's own short-lived stack.
    pub branch: Option<String>,
}

/// A template rendered for one environment.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub kind: StackKind,
    pub env: EnvName,
    pub stack_name: String,
    pub template: Value,
}

/// Every stack of the given environments, in a fixed order.
pub fn all_stacks(envs: &Environments, which: &[EnvName]) -> Vec<(EnvName, StackKind)> {
    which
        .iter()
        .flat_map(|&env| {
            StackKind::for_env(envs, env)
                .into_iter()
                .map(move |kind| (env, kind))
        })
        .collect()
}

impl Rendered {
    /// The compact form sent to CloudFormation, whose TemplateBody limit is 51,200 bytes.
    pub fn to_compact(&self) -> String {
        serde_json::to_string(&self.template).expect("a Value always serializes")
    }
}

/// The templates directory; each template is parsed the first time it is rendered, so a command
/// pays only for the stacks it renders. Shared between threads: `render_texts` renders on every
/// core.
pub struct Renderer {
    /// Each template as parsed, in a handlebars registry of its own: no template can take another
    /// file's partials, so a render reads its own file and its values, nothing else. (With one
    /// registry, `{{> other}}` would find another template only where a command had happened to
    /// parse it first, and a kept render could be stale.)
    compiled: RwLock<HashMap<&'static str, Arc<Compiled>>>,
    /// Each service stack's settings declarations as read, while its file holds the same text:
    /// a run renders a stack for every stage, and parsing the file is most of resolving them.
    declarations: RwLock<HashMap<&'static str, Arc<crate::settings::Declarations>>>,
    dir: PathBuf,
    /// Parses and renders kept between runs, unless the environment leaves the cache no directory.
    cache: Option<cache::Cache>,
    /// Off only in the test that shows compaction changes no output.
    compact: bool,
}

/// One template's text as parsed, and the registry that renders it.
struct Compiled {
    text: String,
    compacted: Option<compact::Compacted>,
    hb: Handlebars<'static>,
}

/// Everything one render reads: its template's text and the values it is rendered with. What it
/// renders to is a function of this and the deployer's build alone (helpers read nothing else),
/// which is what lets `synth` keep a render between runs.
struct Input {
    kind: StackKind,
    env: EnvName,
    stack_name: String,
    path: PathBuf,
    text: String,
    resource_name: String,
    ctx: Value,
    /// The functions the stack's settings declare, which the render checks the template makes.
    functions: Vec<String>,
}

/// A stack rendered to the bytes `synth` writes.
pub struct Text {
    pub env: EnvName,
    pub kind: StackKind,
    pub stack_name: String,
    pub text: String,
}

/// A registry with the deployer's helpers, strict, escaping for JSON.
fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // Values land inside JSON strings: escape for JSON, not HTML.
    hb.register_escape_fn(|s| {
        let quoted = serde_json::to_string(s).expect("a str always serializes");
        compact::shield(quoted[1..quoted.len() - 1].to_string())
    });
    hb.register_helper("json", Box::new(json_helper));
    // The built-in `if` treats a missing variable as false even in strict mode.
    hb.register_helper("if", Box::new(StrictIf { when: true }));
    hb.register_helper("unless", Box::new(StrictIf { when: false }));
    hb
}

impl Renderer {
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such directory (pass --templates DIR)",
                ),
            });
        }
        Ok(Renderer {
            compiled: RwLock::new(HashMap::new()),
            declarations: RwLock::new(HashMap::new()),
            dir: dir.to_path_buf(),
            cache: cache::Cache::from_env(),
            compact: true,
        })
    }

    /// The directory the templates and their settings' declarations are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `synth` keeps what the command line `what` last wrote, valid while no file it can
    /// read here or in `environments` changed; None without a cache.
    pub fn kept_run(&self, what: &[u8], environments: &Path) -> Option<cache::Entry> {
        self.cache()?.run_entry(what, &[environments, &self.dir])
    }

    /// The cache, where it may be used: the test rendering without compaction keeps nothing.
    fn cache(&self) -> Option<&cache::Cache> {
        self.cache.as_ref().filter(|_| self.compact)
    }

    /// `kind`'s template parsed from `text`, read from `path`, unless an earlier render parsed
    /// that text already.
    fn parse(&self, kind: StackKind, text: &str, path: &Path) -> Result<Arc<Compiled>, Error> {
        let name = kind.template_name();
        if let Some(compiled) = read(&self.compiled).get(name).filter(|c| c.text == text) {
            return Ok(compiled.clone());
        }
        let cache::Parsed {
            template,
            compacted,
        } = match self.cache().and_then(|c| c.get(path, text)) {
            Some(parsed) => parsed,
            None => {
                let parsed = compile(name, text, self.compact, path)?;
                if let Some(cache) = self.cache() {
                    cache.put(path, text, &parsed);
                }
                parsed
            }
        };
        let mut hb = registry();
        hb.register_template(name, template);
        let compiled = Arc::new(Compiled {
            text: text.to_string(),
            compacted,
            hb,
        });
        write(&self.compiled).insert(name, compiled.clone());
        Ok(compiled)
    }

    /// `stack`'s settings declarations, read again only where its file changed since.
    fn declarations(
        &self,
        stack: &'static str,
    ) -> Result<Arc<crate::settings::Declarations>, ConfigError> {
        if let Some(d) = read(&self.declarations)
            .get(stack)
            .filter(|d| d.is_current())
        {
            return Ok(d.clone());
        }
        let d = Arc::new(crate::settings::Declarations::read(&self.dir, stack)?);
        write(&self.declarations).insert(stack, d.clone());
        Ok(d)
    }

    pub fn render(
        &self,
        envs: &Environments,
        env: EnvName,
        kind: StackKind,
    ) -> Result<Rendered, Error> {
        self.render_with(envs, env, kind, &Options::default())
    }

    pub fn render_with(
        &self,
        envs: &Environments,
        env: EnvName,
        kind: StackKind,
        options: &Options,
    ) -> Result<Rendered, Error> {
        let input = self.input(envs, env, kind, options)?;
        let text = self.finish(&input)?;
        Ok(Rendered {
            kind,
            env,
            stack_name: input.stack_name,
            template: serde_json::from_str(&text).expect("a render is checked JSON"),
        })
    }

    /// What rendering `kind` for `env` reads: its template's text, and its values worked out
    /// from the environments and the stack's settings (checked against their declarations).
    fn input(
        &self,
        envs: &Environments,
        env: EnvName,
        kind: StackKind,
        options: &Options,
    ) -> Result<Input, Error> {
        let path = template_path(&self.dir, kind);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let (stack_name, resource_name) = names(envs, env, kind, options.branch.as_deref())?;
        let mut ctx = context(envs, env, &stack_name);
        ctx["resource_name"] = json!(resource_name);
        // A branch stack's roles live under their own boundary, with their own secret.
        let branch_base = options.branch.is_some().then_some(resource_name.as_str());
        ctx["signing_secret"] = json!(signing_secret(envs, env, branch_base));
        ctx["boundary"] = json!(format!(
            "{}-{env}-{}-boundary",
            envs.prefix().as_str(),
            if branch_base.is_some() {
                "branch"
            } else {
                "app"
            }
        ));
        ctx["options"] = json!(options);
        ctx["stack"] = json!(kind.template_name());
        let settings = match (kind, envs.target(env)) {
            (StackKind::Service(name), Some(target)) => crate::settings::resolve(
                &*self.declarations(name)?,
                name,
                &envs.file(env),
                target.settings.get(name),
                &crate::settings::Scope {
                    protected: target.safety.require_approval,
                    branch: options.branch.is_some(),
                    resource_name: &resource_name,
                    account_id: target.account_id.as_str(),
                    region: target.region.as_str(),
                },
            )?,
            _ => crate::settings::Resolved {
                values: json!({}),
                functions: vec![],
            },
        };
        ctx["settings"] = settings.values;
        if options.branch.is_some() {
            // Branch data is never retained: the stack goes with the branch.
            ctx["target"]["safety"]["retain_data"] = json!(false);
            ctx["target"]["safety"]["termination_protection"] = json!(false);
        }
        Ok(Input {
            kind,
            env,
            stack_name,
            path,
            text,
            resource_name,
            ctx,
            functions: settings.functions,
        })
    }

    /// The render of `input`, checked as CloudFormation, as `synth` writes it.
    fn finish(&self, input: &Input) -> Result<String, Error> {
        let (kind, env, path) = (input.kind, input.env, &input.path);
        let compiled = self.parse(kind, &input.text, path)?;
        let rendered = compiled
            .hb
            .render(kind.template_name(), &input.ctx)
            .map_err(|e| {
                let reported = e.line_no.zip(e.column_no);
                render_error(
                    e,
                    path,
                    env,
                    in_file(&compiled.text, compiled.compacted.as_ref(), reported),
                )
            })?;
        let text = match &compiled.compacted {
            Some(c) => c.restore(&rendered),
            None => rendered,
        };
        let mut template = Json::parse(&text).map_err(|source| Error::NotJson {
            snippet: text
                .lines()
                .nth(source.line().saturating_sub(1))
                .unwrap_or_default()
                .trim()
                .to_string(),
            path: path.clone(),
            env,
            source,
        })?;
        let not_cloudformation = |message| Error::NotCloudFormation {
            path: path.clone(),
            env,
            message,
        };
        check_shape(&template).map_err(not_cloudformation)?;
        check_functions(&template, &input.resource_name, &input.functions)
            .map_err(not_cloudformation)?;
        check_pipelines(&template).map_err(not_cloudformation)?;
        describe_versions(&mut template);
        Ok(template.pretty(text.len()))
    }

    /// Each job rendered to the bytes `synth` writes, on every core; a render whose inputs and
    /// build are those of one kept from an earlier run is taken from the cache, not rendered
    /// again. The error reported is the same on every run: the first job (in `jobs`' order) whose
    /// values fail, else the first template that does not parse, else the first render that fails.
    pub fn render_texts(
        &self,
        envs: &Environments,
        jobs: &[(EnvName, StackKind)],
        options: &Options,
    ) -> Result<Vec<Text>, Error> {
        // On one core: when every render is kept, starting a thread would cost more than this.
        let jobs = jobs
            .iter()
            .map(|&(env, kind)| {
                let input = self.input(envs, env, kind, options)?;
                let entry = self.cache().map(|c| input.entry_in(c, options));
                let job = match entry.as_ref().and_then(cache::Entry::get) {
                    Some(text) => Job::Kept(text),
                    None => Job::Render(entry),
                };
                Ok((job, input))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let to_render: Vec<_> = jobs
            .iter()
            .filter_map(|(job, input)| match job {
                Job::Render(entry) => Some((input, entry)),
                Job::Kept(_) => None,
            })
            .collect();
        // Each template the renders need, parsed once, before any of them renders.
        let mut to_parse: Vec<&Input> = vec![];
        for (input, _) in &to_render {
            if !to_parse.iter().any(|i| i.kind == input.kind) {
                to_parse.push(input);
            }
        }
        on_every_core(&to_parse, |i| {
            self.parse(i.kind, &i.text, &i.path).map(drop)
        })
        .into_iter()
        .collect::<Result<(), Error>>()?;
        let mut rendered = on_every_core(&to_render, |(input, entry)| {
            let text = self.finish(input)?;
            if let Some(entry) = entry {
                entry.put(&text);
            }
            Ok::<_, Error>(text)
        })
        .into_iter();
        jobs.into_iter()
            .map(|(job, input)| {
                let text = match job {
                    Job::Kept(text) => text,
                    Job::Render(_) => rendered.next().expect("a render for each")?,
                };
                Ok(input.rendered_as(text))
            })
            .collect()
    }
}

/// One stack of `render_texts`: kept from an earlier run, or to render (and keep, where the cache
/// has a directory).
enum Job {
    Kept(String),
    Render(Option<cache::Entry>),
}

/// `f` of each item, in the items' order, worked out on every core this process may use (this
/// thread one of them), each thread taking the next item left; no thread is started for one
/// item or none. Scoped threads, not a pool: a `synth` has a handful of jobs, and a pool's start
/// and its idle threads' polling cost more than they save.
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Asked once a process, and not for one item: each answer reads the cgroup's files (three
    // opens, about 15 system calls), which a run rendering one stack would pay twice for nothing.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = if items.len() < 2 {
        1
    } else {
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
    };
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = vec![];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..cores.min(items.len()))
            .map(|_| scope.spawn(work))
            .collect();
        let mut done = work();
        for helper in helpers {
            done.extend(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

impl Input {
    /// Where `cache` keeps what this input renders to (with `options`): under a digest of every
    /// part of it, in a slot of its template file, environment and options.
    fn entry_in(&self, cache: &cache::Cache, options: &Options) -> cache::Entry {
        let ctx = serde_json::to_vec(&self.ctx).expect("a Value always serializes");
        let options = serde_json::to_vec(options).expect("options always serialize");
        cache.render_entry(
            &self.path,
            &options,
            &format!("{}-{}.json", self.env, self.kind.template_name()),
            &[
                self.kind.template_name().as_bytes(),
                self.env.as_str().as_bytes(),
                self.stack_name.as_bytes(),
                self.resource_name.as_bytes(),
                self.text.as_bytes(),
                &ctx,
                self.functions.join("\n").as_bytes(),
            ],
        )
    }

    /// `text`, as what this input renders to.
    fn rendered_as(self, text: String) -> Text {
        Text {
            env: self.env,
            kind: self.kind,
            stack_name: self.stack_name,
            text,
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().expect("no render panics holding the lock")
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().expect("no render panics holding the lock")
}

/// `text`, read from `path`, parsed (compacted first, where `compact` and the text allow).
fn compile(name: &str, text: &str, compact: bool, path: &Path) -> Result<cache::Parsed, Error> {
    let compacted = compact.then(|| compact::compact(text)).flatten();
    match Template::compile_with_name(
        compacted.as_ref().map_or(text, |c| c.source.as_str()),
        name.to_string(),
    ) {
        Ok(template) => Ok(cache::Parsed {
            template,
            compacted,
        }),
        Err(e) => {
            let (line, column) = in_file(text, compacted.as_ref(), e.pos());
            Err(Error::Syntax {
                line,
                column,
                message: match e.reason() {
                    TemplateErrorReason::InvalidSyntax(_) => "handlebars cannot parse this: look for a mistyped {{...}} tag, or a block ({{#if}}, {{#unless}}) that is never closed (reported at the end of the file)".into(),
                    other => format!("{other}; fix the handlebars syntax there"),
                },
                path: path.to_path_buf(),
            })
        }
    }
}

/// Where in a template's file a position handlebars reported is.
fn in_file(
    text: &str,
    compacted: Option<&compact::Compacted>,
    reported: Option<(usize, usize)>,
) -> (Option<usize>, Option<usize>) {
    match (reported, compacted) {
        (Some((line, column)), Some(c)) => {
            let (line, column) = c.position(text, line, column);
            (Some(line), Some(column))
        }
        (Some((line, column)), None) => (Some(line), Some(column)),
        (None, _) => (None, None),
    }
}

/// Gives each AWS::Lambda::Version of a function in the template a Description naming the
/// function's artifact (the ArtifactKey parameter, where the template has one) and a digest of its
/// configuration. CloudFormation replaces a Version whose Description changes, so a new version is
/// published whenever the code or the configuration changes, and never otherwise: an alias on a
/// version of old configuration would go on serving it. (SAM's AutoPublishAlias does the same
/// with a hash in the logical id.)
fn describe_versions(template: &mut Json) {
    use sha2::{Digest, Sha256};
    let has_artifact = template["Parameters"].get("ArtifactKey").is_some();
    let Some(resources) = template.get_mut("Resources").and_then(Json::as_object_mut) else {
        return;
    };
    let described: Vec<(String, String)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Version")
        .filter_map(|(id, r)| {
            let function = r["Properties"]["FunctionName"]["Ref"].as_str()?;
            // Serialized as `Value` was with sorted maps: the same digest for the same function.
            let configuration = serde_json::to_vec(&resources.get(function)?["Properties"]).ok()?;
            let digest = hex::encode(Sha256::digest(configuration));
            let text = if has_artifact {
                format!(
                    "{function}: artifact ${{ArtifactKey}}, configuration {}",
                    &digest[..16]
                )
            } else {
                format!("{function}: configuration {}", &digest[..16])
            };
            Some((id.to_string(), text))
        })
        .collect();
    for (id, text) in described {
        if let Some(properties) = resources
            .get_mut(&id)
            .and_then(|r| r.get_mut("Properties"))
            .and_then(Json::as_object_mut)
        {
            let sub = [("Fn::Sub", Json::String(text.into()))]
                .into_iter()
                .collect();
            properties.insert("Description", Json::Object(sub));
        }
    }
}

/// The SSM parameter holding the signing secret of `env`'s stacks, or of one branch stack (named
/// by its resources' base name): each branch its own, so code on a branch never holds a secret
/// that sandbox trusts.
/// The SSM parameter holding the password of `env`'s verifier (`[verify]`), made by bootstrap.
pub fn verify_password(envs: &Environments, env: EnvName) -> String {
    format!("/{}/{env}/verify-password", envs.prefix().as_str())
}

pub fn signing_secret(envs: &Environments, env: EnvName, branch_resources: Option<&str>) -> String {
    let prefix = envs.prefix().as_str();
    match branch_resources {
        Some(base) => format!("/{prefix}/{env}/{base}/jwt-secret"),
        None => format!("/{prefix}/{env}/jwt-secret"),
    }
}

/// A stack's name and the base name of its resources: the environment's own, or a branch's.
pub fn names(
    envs: &Environments,
    env: EnvName,
    kind: StackKind,
    branch: Option<&str>,
) -> Result<(String, String), crate::branch::BadBranch> {
    let prefix = envs.prefix().as_str();
    Ok(match branch {
        Some(branch) => {
            // The environment's first stack keeps the branch's plain names; others add their own.
            let part = (StackKind::services(envs, env).first() != Some(&kind))
                .then(|| kind.template_name());
            (
                crate::branch::stack_name(prefix, branch, part)?,
                crate::branch::resource_name(prefix, branch, part),
            )
        }
        None => {
            let name = kind.stack_name(envs, env);
            (name.clone(), name)
        }
    })
}

/// Files in the templates directory that no environment's stacks use: said, not fatal.
pub fn unused_templates(envs: &Environments, dir: &Path) -> Vec<String> {
    let mut used: Vec<&str> = vec!["bootstrap-pipeline", "bootstrap-target", "pipeline"];
    for env in envs.names() {
        used.extend(
            StackKind::services(envs, env)
                .iter()
                .map(|k| k.template_name()),
        );
    }
    let mut unused: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let stack = file
                .strip_suffix(".json.hbs")
                .or_else(|| file.strip_suffix(".settings.toml"))?;
            (!used.contains(&stack)).then(|| {
                format!(
                    "{} is not used: no environment lists {stack:?} in its stacks; add it to one or remove the file",
                    dir.join(&file).display()
                )
            })
        })
        .collect();
    unused.sort();
    unused
}

pub fn template_path(dir: &Path, kind: StackKind) -> PathBuf {
    dir.join(format!("{}.json.hbs", kind.template_name()))
}

/// The variable a stage's Prepare action exports a stack's change set name in.
pub fn change_set_var(stack: &str) -> String {
    format!("CHANGE_SET_{}", stack.to_uppercase().replace('-', "_"))
}

/// What a template can use. Strict mode makes any other name an error.
fn context(envs: &Environments, env: EnvName, stack_name: &str) -> Value {
    let names = envs.names();
    let stages: Vec<Value> = envs
        .stages()
        .enumerate()
        .map(|(i, (name, target, stage))| {
            json!({
                "env": name,
                // The stage before it (names[0] is the pipeline account), whose artifact it takes.
                "after": (i > 0).then(|| names[i]),
                "id": pascal_case(name.as_str()),
                "account_id": target.account_id,
                "region": target.region,
                "approval": stage.approval,
                "stacks": target.stacks,
                // Where a stage's Prepare action hands each stack's change set to its Deploy.
                "change_sets": target.stacks.iter().map(|stack| json!({
                    "stack": stack,
                    "var": change_set_var(stack),
                })).collect::<Vec<_>>(),
                // The TimeoutInMinutes of its Prepare and Deploy projects.
                "action_minutes": action_minutes(target.stacks.len()),
            })
        })
        .collect();
    json!({
        "env": env,
        "stack_name": stack_name,
        "prefix": envs.prefix(),
        "account_id": envs.account(env),
        "region": envs.region(env),
        "accounts": envs
            .names()
            .into_iter()
            .map(|e| (e.as_str(), envs.account(e)))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "stages": stages,
        // UpdatePipeline deploys one stack, the pipeline's.
        "update_pipeline_minutes": action_minutes(1),
        "pipeline": envs.pipeline,
        // CodeBuild builds on the architecture the functions run on.
        "build_container": match envs.artifact_architecture() {
            Some(crate::config::Architecture::Arm64) => "ARM_CONTAINER",
            _ => "LINUX_CONTAINER",
        },
        "target": envs.target(env),
        "bootstrap_version": BOOTSTRAP_VERSION,
        "deploy_role_trust": {
            "principals": envs.deploy_role_trust(env),
            "operators": envs.target(env).is_some_and(|t| !t.safety.require_approval),
        },
        "read_role_trust": envs.read_role_trust(env),
    })
}

/// The `TimeoutInMinutes` of a pipeline action that deploys `stacks` stacks: room for its deployer
/// to wait out, for each stack, an operation already running and then its own, each up to the
/// default `--timeout`. A wait that long then ends with the deployer saying what is still in
/// progress, not with CodeBuild stopping the build mid-wait (its default, 60 minutes, is the
/// deployer's own limit for one wait). Within CodeBuild's 5 to 2160.
fn action_minutes(stacks: usize) -> u64 {
    let wait = crate::stack::default_wait().as_secs().div_ceil(60);
    (2 * wait * stacks as u64 + 15).clamp(5, 2160)
}

/// "prod-eu" as "ProdEu": for logical ids and CodePipeline stage names.
pub fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A helper's first parameter, which must name a defined variable.
fn defined_param<'a, 'rc>(
    h: &'a Helper<'rc>,
    helper: &'static str,
) -> Result<&'a PathAndJson<'rc>, RenderErrorReason> {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, 0))?;
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(
            param.relative_path().cloned(),
        ));
    }
    Ok(param)
}

/// `{{json value}}` writes a value as JSON (a number, a bool, an array) rather than as text.
fn json_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = defined_param(h, "json")?.value();
    out.write(&compact::shield(
        serde_json::to_string(value).map_err(RenderErrorReason::from)?,
    ))?;
    Ok(())
}

/// `{{#if x}}` / `{{#unless x}}` on a value that must exist (the built-in `if` takes a missing
/// variable for false even in strict mode): a boolean, or an optional setting, false when absent
/// or empty.
struct StrictIf {
    when: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = if self.when { "if" } else { "unless" };
        let flag = match defined_param(h, name)?.value() {
            Value::Bool(b) => *b,
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(_) | Value::Number(_) => true,
        };
        match if flag == self.when {
            h.template()
        } else {
            h.inverse()
        } {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// `at`: the line and column in the template file.
fn render_error(
    e: HbError,
    path: &Path,
    env: EnvName,
    at: (Option<usize>, Option<usize>),
) -> Error {
    let message = match e.reason() {
        // target.*: a key (or a whole table) the environment's file leaves out, or a typo.
        RenderErrorReason::MissingVariable(Some(var)) => match var.strip_prefix("target.") {
            Some(rest) => format!(
                "the variable `{var}` is not defined: environments/{env}.toml gives no {rest}, which this template reads; add it there (the README lists each table) or fix the template's spelling"
            ),
            None => format!(
                "the variable `{var}` is not defined; templates may use env, stack, stack_name, resource_name, prefix, account_id, region, accounts.*, stages, pipeline.*, target.*, settings.*, options.*, build_container and bootstrap_version"
            ),
        },
        RenderErrorReason::MissingVariable(None) => {
            "a variable is not defined; templates may use env, stack, stack_name, resource_name, prefix, account_id, region, accounts.*, stages, pipeline.*, target.*, settings.*, options.*, build_container and bootstrap_version".to_string()
        }
        RenderErrorReason::PartialNotFound(name) => format!(
            "the partial `{name}` is not defined in this template: define it in the same file ({{{{#*inline \"{name}\"}}}}...{{{{/inline}}}}); a template cannot include another template"
        ),
        other => other.to_string(),
    };
    Error::Render {
        path: path.to_path_buf(),
        env,
        line: at.0,
        column: at.1,
        message,
    }
}

/// Each function the stack's settings declare is one the template makes, by the name
/// `logs --function` and `--hotswap` will look for (`{resource_name}-{key}`). Only checked where
/// every function's name is plain text.
fn check_functions(
    template: &Json,
    resource_name: &str,
    declared: &[String],
) -> Result<(), String> {
    let names: Option<Vec<&str>> = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
        .map(|r| r["Properties"]["FunctionName"].as_str())
        .collect();
    let Some(names) = names else { return Ok(()) };
    match declared
        .iter()
        .map(|key| format!("{resource_name}-{key}"))
        .find(|name| !names.contains(&name.as_str()))
    {
        Some(missing) => Err(format!(
            "its settings declare the function `{}`, but no AWS::Lambda::Function is named {missing} (its functions: {}); name it \"{{{{resource_name}}}}-{}\" or remove the declaration",
            &missing[resource_name.len() + 1..],
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            &missing[resource_name.len() + 1..],
        )),
        None => Ok(()),
    }
}

/// Each pipeline action's configuration values within CodePipeline's limit (1 to 1,000
/// characters, variables unresolved), which neither the resource schema (Configuration is free
/// JSON) nor cfn-lint checks: a stage with many stacks lengthens its Deploy action's
/// EnvironmentVariables and its approval's CustomData.
fn check_pipelines(template: &Json) -> Result<(), String> {
    const LIMIT: usize = 1000;
    let actions = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.values())
        .filter(|r| r["Type"] == "AWS::CodePipeline::Pipeline")
        .flat_map(|r| r["Properties"]["Stages"].as_array().into_iter().flatten())
        .flat_map(|stage| stage["Actions"].as_array().into_iter().flatten());
    for action in actions {
        for (key, value) in action["Configuration"].as_object().into_iter().flatten() {
            let Some(text) = value.as_str() else { continue };
            if text.is_empty() || text.chars().count() > LIMIT {
                return Err(format!(
                    "pipeline action {} has a Configuration {key} of {} characters; CodePipeline takes 1 to {LIMIT}: give the stage fewer stacks, or shorten what the template writes there",
                    action["Name"].as_str().unwrap_or("?"),
                    text.chars().count()
                ));
            }
        }
    }
    Ok(())
}

/// The outline every CloudFormation template has; cfn-lint checks the rest in CI.
fn check_shape(template: &Json) -> Result<(), String> {
    let obj = template
        .as_object()
        .ok_or("the top level must be a JSON object")?;
    const SECTIONS: [&str; 9] = [
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Parameters",
        "Mappings",
        "Conditions",
        "Transform",
        "Resources",
        "Outputs",
    ];
    if let Some(unknown) = obj.keys().find(|k| !SECTIONS.contains(k)) {
        return Err(format!(
            "unknown top-level section \"{unknown}\"; allowed: {}",
            SECTIONS.join(", ")
        ));
    }
    let resources = obj
        .get("Resources")
        .and_then(Json::as_object)
        .ok_or("\"Resources\" must be an object with at least one resource")?;
    if resources.is_empty() {
        return Err("\"Resources\" must hold at least one resource".into());
    }
    for (id, resource) in resources {
        if !resource.get("Type").is_some_and(Json::is_string) {
            return Err(format!("resource \"{id}\" has no \"Type\""));
        }
    }
    crate::schema::check(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_on_every_core_comes_back_in_the_items_order() {
        let items: Vec<u64> = (0..50).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let squares = on_every_core(&items, |&i| {
            threads.lock().unwrap().insert(std::thread::current().id());
            // Uneven work, so that threads finish their items out of order.
            std::thread::sleep(std::time::Duration::from_micros((i % 7) * 100));
            i * i
        });
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert!(threads.lock().unwrap().len() <= cores);
        assert!(
            threads
                .lock()
                .unwrap()
                .contains(&std::thread::current().id())
        );
        // One item or none: this thread alone.
        assert_eq!(on_every_core(&[3], |&i: &u64| i + 1), [4]);
        assert!(on_every_core(&[] as &[u64], |&i| i).is_empty());
    }

    #[test]
    fn declared_functions_must_be_made_by_the_template() {
        let template: Json = json!({"Resources": {
            "Query": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "catalog-sandbox-query"}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}}
        }})
        .into();
        let declared = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(check_functions(&template, "catalog-sandbox", &declared(&["query"])).is_ok());
        let err = check_functions(&template, "catalog-sandbox", &declared(&["query", "qurey"]))
            .unwrap_err();
        assert!(
            err.contains("declare the function `qurey`, but no AWS::Lambda::Function is named catalog-sandbox-qurey (its functions: catalog-sandbox-query)"),
            "{err}"
        );
        // A name made at deploy time (Fn::Sub) cannot be checked before it.
        let computed: Json = json!({"Resources": {"Query": {"Type": "AWS::Lambda::Function",
            "Properties": {"FunctionName": {"Fn::Sub": "${AWS::StackName}-query"}}}}})
        .into();
        assert!(check_functions(&computed, "catalog-sandbox", &declared(&["qurey"])).is_ok());
    }

    #[test]
    fn pipeline_action_configuration_values_fit_codepipeline() {
        let pipeline = |custom_data: &str| -> Json {
            json!({"Resources": {"Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {
                "Stages": [{"Name": "ApproveProd", "Actions": [{"Name": "PromoteToProd",
                    "Configuration": {"CustomData": custom_data, "ProjectName": {"Ref": "P"}}}]}]}}}})
            .into()
        };
        assert!(check_pipelines(&pipeline(&"x".repeat(1000))).is_ok());
        let err = check_pipelines(&pipeline(&"x".repeat(1001))).unwrap_err();
        assert!(
            err.contains("pipeline action PromoteToProd has a Configuration CustomData of 1001 characters; CodePipeline takes 1 to 1000"),
            "{err}"
        );
        assert!(check_pipelines(&pipeline("")).is_err());
    }

    #[test]
    fn compacted_templates_render_the_same_canonical_bytes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let envs = Environments::load(&root.join("environments")).unwrap();
        let templates = root.join("templates");
        // Parsed here, not read from the user's cache.
        let mut compacted = Renderer::load(&templates).unwrap();
        compacted.cache = None;
        let mut plain = Renderer::load(&templates).unwrap();
        plain.compact = false;
        let sandbox = envs.env("sandbox").unwrap();
        let branch = Options {
            branch: Some("feat/x".into()),
            admin_execution_role: true,
        };
        let mut cases: Vec<(EnvName, StackKind, Options)> = envs
            .names()
            .into_iter()
            .flat_map(|env| {
                StackKind::for_env(&envs, env)
                    .into_iter()
                    .map(move |kind| (env, kind, Options::default()))
            })
            .collect();
        cases.push((sandbox, StackKind::Service("catalog"), branch.clone()));
        cases.push((sandbox, StackKind::BootstrapTarget, branch));
        for (env, kind, options) in cases {
            let render = |r: &Renderer| r.finish(&r.input(&envs, env, kind, &options).unwrap());
            let text = render(&compacted).unwrap();
            assert_eq!(text, render(&plain).unwrap(), "{env} {kind:?}");
            // And in canonical form: what serde_json writes with every object's keys sorted.
            let mut sorted: Value = serde_json::from_str(&text).unwrap();
            sorted.sort_all_objects();
            assert_eq!(
                text,
                serde_json::to_string_pretty(&sorted).unwrap() + "\n",
                "{env} {kind:?}"
            );
        }
        // Compaction is what parsed them.
        assert!(
            read(&compacted.compiled)
                .values()
                .all(|c| c.compacted.is_some())
        );
    }

    #[test]
    fn branch_stacks_keep_no_data_and_never_take_the_custom_domain() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = tempfile::tempdir().unwrap();
        for env in ["pipeline", "sandbox", "prod"] {
            let file = format!("{env}.toml");
            let mut text = std::fs::read_to_string(root.join("environments").join(&file))
                .unwrap()
                .replace("retain_data = false", "retain_data = true");
            if env == "sandbox" {
                text = text.replace(
                    "# [settings.catalog.domain]\n# name = \"api.example.org\"\n# certificate_arn = \"arn:aws:acm:us-east-1:ACCOUNT:certificate/...\"",
                    "[settings.catalog.domain]\nname = \"api.example.org\"\ncertificate_arn = \"arn:aws:acm:us-east-1:222222222222:certificate/abc\"",
                );
            }
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let envs = Environments::load(dir.path()).unwrap();
        let sandbox = envs.env("sandbox").unwrap();
        let catalog = StackKind::Service("catalog");
        let mut renderer = Renderer::load(&root.join("templates")).unwrap();
        renderer.cache = None;
        let main = renderer.render(&envs, sandbox, catalog).unwrap();
        assert_eq!(
            main.template["Resources"]["Table"]["DeletionPolicy"],
            "Retain"
        );
        assert!(main.template["Resources"].get("ApiDomain").is_some());
        let options = Options {
            branch: Some("feat/search".into()),
            ..Options::default()
        };
        let branch = renderer
            .render_with(&envs, sandbox, catalog, &options)
            .unwrap();
        assert_eq!(
            branch.template["Resources"]["Table"]["DeletionPolicy"],
            "Delete"
        );
        assert!(branch.template["Resources"].get("ApiDomain").is_none());
    }

    /// A renderer reads a stack's settings declarations once, and again where the file changed.
    #[test]
    fn declarations_are_read_again_once_their_file_changes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let envs = Environments::load(&root.join("environments")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for file in std::fs::read_dir(root.join("templates")).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), dir.path().join(file.file_name())).unwrap();
        }
        let mut renderer = Renderer::load(dir.path()).unwrap();
        renderer.cache = None;
        let (sandbox, catalog) = (envs.env("sandbox").unwrap(), StackKind::Service("catalog"));
        assert!(renderer.render(&envs, sandbox, catalog).is_ok());
        assert!(renderer.render(&envs, sandbox, catalog).is_ok());
        // A minimum sandbox's burst_limit (200) is under.
        let declarations = dir.path().join("catalog.settings.toml");
        let text = std::fs::read_to_string(&declarations).unwrap();
        let raised =
            "[throttling.fields.burst_limit]\ntype = \"integer\"\ndefault = 1000\nmin = 1000";
        let edited = text.replacen(
            "[throttling.fields.burst_limit]\ntype = \"integer\"\ndefault = 200\nmin = 1",
            raised,
            1,
        );
        assert!(edited.contains(raised));
        std::fs::write(&declarations, edited).unwrap();
        let err = renderer
            .render(&envs, sandbox, catalog)
            .unwrap_err()
            .to_string();
        assert!(err.contains("burst_limit"), "{err}");
    }
}
