//! The environment files: `pipeline.toml` with the ordered stages, and one file per environment
//! the stages name. Strict loading, so a typo fails here and not halfway through a deploy.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syntax error, a missing or unknown key, or a value out of range in one file.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The same, at a known spot of the file, which `snippet` shows.
    #[error("{}:{line}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        message: String,
        text: String,
        span: std::ops::Range<usize>,
    },
    /// A rule that spans files, such as two environments in one account.
    #[error("{message}")]
    Inconsistent { message: String },
}

impl ConfigError {
    /// A mistake at the value of `keys` (a path of TOML keys, `["lambda", "architecture"]`)
    /// in `text`, the contents of `path`, or at the nearest table on the way to it; without a
    /// spot when the text holds none of them.
    pub fn at_key(path: &Path, text: &str, keys: &[&str], message: String) -> Self {
        match locate(text, keys) {
            Some(span) => ConfigError::at(path, text, span, message),
            None => ConfigError::Invalid {
                path: path.to_path_buf(),
                line: None,
                message,
            },
        }
    }

    /// A mistake at `span` (bytes) of `text`, the contents of `path`.
    pub fn at(path: &Path, text: &str, span: std::ops::Range<usize>, message: String) -> Self {
        let start = span.start.min(text.len());
        ConfigError::At {
            path: path.to_path_buf(),
            line: text[..start].matches('\n').count() + 1,
            message,
            text: text.to_string(),
            span: start..span.end.clamp(start, text.len()),
        }
    }

    /// The lines around the mistake with the spot marked (miette), for people: in colour on a
    /// terminal. None when the error has no spot.
    pub fn snippet(&self, colour: bool) -> Option<String> {
        use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
        let ConfigError::At {
            path, text, span, ..
        } = self
        else {
            return None;
        };
        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("here")]
        struct Spot {
            #[source_code]
            code: NamedSource<String>,
            #[label("here")]
            at: miette::SourceSpan,
        }
        let spot = Spot {
            code: NamedSource::new(path.display().to_string(), text.clone()),
            at: (span.start, span.len()).into(),
        };
        let theme = if colour {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let mut out = String::new();
        GraphicalReportHandler::new_themed(theme)
            .render_report(&mut out, &spot)
            .ok()?;
        // The first line repeats the message, which the error line above says in full.
        Some(
            out.split_once('\n')
                .map_or(out.clone(), |(_, rest)| rest.to_string()),
        )
    }
}

/// Where the value at `keys` is in a TOML text (a number indexes an array: `["stages", "1",
/// "environment"]`), or the nearest table on the way to it.
fn locate(text: &str, keys: &[&str]) -> Option<std::ops::Range<usize>> {
    use toml::de::DeValue;
    let root = toml::de::DeTable::parse(text).ok()?;
    let first = *keys.first()?;
    let mut at = root
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == first)
        .map(|(_, v)| v)?;
    for key in &keys[1..] {
        let next = match (at.get_ref(), key.parse::<usize>()) {
            (DeValue::Table(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == *key)
                .map(|(_, v)| v),
            (DeValue::Array(items), Ok(i)) => items.get(i),
            _ => None,
        };
        match next {
            Some(value) => at = value,
            None => break,
        }
    }
    Some(at.span())
}

/// Which environment a command acts on; also the file name under `environments/`. The names come
/// from the stages in pipeline.toml; each is kept for the whole run (a handful of short strings),
/// so the name is `Copy` like the enum it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EnvName(&'static str);

impl EnvName {
    /// The pipeline account: not a stage, but bootstrapped and shown like one.
    pub const PIPELINE: EnvName = EnvName("pipeline");

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// A stage's environment name, checked: it names a file, stacks and roles (`{prefix}-{env}-cfn-exec-branch`
    /// must fit IAM's 64 characters).
    fn parse(name: &str) -> Result<EnvName, String> {
        let ok = (1..=20).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.ends_with('-');
        if !ok {
            return Err(format!(
                "environment name {name:?} must be 1 to 20 lowercase letters, digits or '-', starting with a letter (it names the file, its stacks and roles)"
            ));
        }
        // `{prefix}-br-*` is where branch stacks live; `pipeline` is the pipeline account's file.
        if name == "pipeline" || name == "br" || name.starts_with("br-") {
            return Err(format!(
                "environment name {name:?} is reserved (pipeline is the pipeline account's file; br and br-* name branch stacks); choose another"
            ));
        }
        Ok(EnvName(intern(name)))
    }
}

/// A name from the configuration kept for the rest of the run, each once: environment and stack
/// names are a handful of short strings, and `'static` lets them be `Copy`.
pub fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(kept);
    kept
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 12-digit AWS account id, checked where it is read so the error points at its line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "account_id must be 12 digits in quotes, like \"111111111111\"; got \"{s}\""
            )))
        }
    }
}

/// An AWS region name such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // area[-partition]-direction-number, as in us-east-1, us-gov-west-1, ap-southeast-2.
        let parts: Vec<&str> = s.split('-').collect();
        let ok = (3..=4).contains(&parts.len())
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if ok {
            Ok(Region(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "region must be an AWS region name like \"us-east-1\"; got \"{s}\""
            )))
        }
    }
}

/// The prefix of every stack and resource name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Prefix(String);

impl Prefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Short enough that `{prefix}-br-{slug}-{hash}` and bucket names stay within AWS limits.
        let ok = (1..=20).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.ends_with('-');
        if ok {
            Ok(Prefix(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "prefix must be 1 to 20 lowercase letters, digits or '-', starting with a letter and not ending with '-'; got \"{s}\""
            )))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHub {
    pub repository: String,
    pub branch: String,
    pub connection_arn: String,
}

/// Where the one artifact comes from: a workspace package's executable, which every function
/// runs as Lambda's `bootstrap`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSource {
    pub package: CargoName,
    /// The package's executable; absent: the one named like the package.
    #[serde(default)]
    pub bin: Option<CargoName>,
    /// The container image CodeBuild builds, tests and deploys in, with the Rust toolchain
    /// rust-toolchain.toml pins (no installer piped into a shell).
    pub build_image: String,
}

impl ArtifactSource {
    pub fn bin(&self) -> &str {
        self.bin.as_ref().unwrap_or(&self.package).as_str()
    }
}

/// A cargo package or target name: letters, digits, '-' and '_' (what cargo accepts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CargoName(String);

impl CargoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CargoName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a cargo package or binary name: letters, digits, '-' and '_'"
            )));
        }
        Ok(CargoName(s))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub account_id: AccountId,
    pub region: Region,
    pub prefix: Prefix,
    pub github: GitHub,
    pub artifact: ArtifactSource,
    pub approval: Approval,
    /// The environments every merge goes through, in order, and which wait for an approval.
    pub stages: Vec<Stage>,
}

/// One step of the pipeline: deploy one environment, after a manual approval where it says so.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub environment: String,
    #[serde(default)]
    pub approval: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Who hears that prod waits for approval; empty means no SNS topic at all.
    pub notify_emails: Vec<Email>,
}

/// An address SNS can mail: checked for shape only, since SNS itself asks the owner to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }) && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Email(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "notify_emails holds \"{s}\", which is not an email address like \"ops@example.org\"; fix it or remove it"
            )))
        }
    }
}

/// What every function made from the artifact shares in an environment. Each function's own
/// settings (memory, concurrency) belong to its stack: `type = "function"` in
/// `templates/<stack>.settings.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct Lambda {
    pub architecture: Architecture,
    pub log_retention_days: u32,
}

/// By hand, so that a function's table left here (where functions were set before they became
/// settings of their stack) is told where it goes now.
impl<'de> Deserialize<'de> for Lambda {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct Tables;
        impl<'de> Visitor<'de> for Tables {
            type Value = Lambda;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the [lambda] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lambda, A::Error> {
                const SETTINGS: [&str; 2] = ["architecture", "log_retention_days"];
                let (mut architecture, mut log_retention_days) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "architecture" => architecture = Some(map.next_value()?),
                        "log_retention_days" => log_retention_days = Some(map.next_value()?),
                        name => {
                            let near = crate::suggest::did_you_mean(name, SETTINGS);
                            return Err(A::Error::custom(if near.is_empty() {
                                format!(
                                    "unknown key `{name}` in [lambda], which holds architecture and log_retention_days; a function's memory_mb and reserved_concurrency are settings of its stack: move them to [settings.<stack>.functions.{name}] (see templates/<stack>.settings.toml)"
                                )
                            } else {
                                format!("unknown key `{name}` in [lambda]{near}")
                            }));
                        }
                    }
                }
                Ok(Lambda {
                    architecture: architecture
                        .ok_or_else(|| A::Error::missing_field("architecture"))?,
                    log_retention_days: log_retention_days
                        .ok_or_else(|| A::Error::missing_field("log_retention_days"))?,
                })
            }
        }
        d.deserialize_map(Tables)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    pub retain_data: bool,
    pub termination_protection: bool,
    pub require_approval: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Branches {
    pub enabled: bool,
    pub ttl_days: u32,
    pub max_stacks: u32,
    pub github_repository: String,
    /// GitHub's OIDC provider when the account already has one (one per URL per account).
    #[serde(default)]
    pub oidc_provider_arn: Option<String>,
}

impl Default for Branches {
    fn default() -> Self {
        Branches {
            enabled: false,
            ttl_days: 7,
            max_stacks: 10,
            github_repository: String::new(),
            oidc_provider_arn: None,
        }
    }
}

/// Who besides the pipeline's Deploy action of this environment may enter its account, and how.
/// Each principal is an account id, an account (`arn:aws:iam::ID:root`) or a role ARN.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Who may deploy through the deploy role; only where no approval is required. Absent: the
    /// pipeline account, as before this setting existed.
    #[serde(default)]
    pub operators: Option<Vec<String>>,
    /// Who may read through the read-only role (status, outputs, logs, drift). Absent: the
    /// pipeline account.
    #[serde(default)]
    pub readers: Option<Vec<String>>,
    /// A role for emergencies, audited apart; the only other way to deploy a protected
    /// environment.
    #[serde(default)]
    pub break_glass_role_arn: Option<String>,
}

/// An environment a stage deploys: an account and region, and the stacks it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub account_id: AccountId,
    pub region: Region,
    /// The stacks this environment holds, each from `templates/<name>.json.hbs`, deployed in
    /// this order.
    pub stacks: Vec<String>,
    /// Per stack, the values of the settings its `templates/<name>.settings.toml` declares
    /// (the template sees them checked and resolved, as `settings`).
    #[serde(default, skip_serializing)]
    pub settings: BTreeMap<String, toml::Table>,
    /// Absent where no stack runs the artifact (its template declares no ArtifactKey).
    #[serde(default)]
    pub lambda: Option<Lambda>,
    pub safety: Safety,
    /// Absent: no branch stacks here.
    #[serde(default)]
    pub branches: Branches,
    #[serde(default)]
    pub access: Access,
    /// Absent: Verify signs up a throwaway reader each run instead of checking writes.
    #[serde(default)]
    pub verify: Option<Verify>,
}

/// The user the pipeline's Verify logs in as to check writes (it must be one of the stage's
/// admins, for the delete); bootstrap makes its password, which only the read role can read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub email: String,
}

/// The pipeline and every environment its stages name, loaded together because their rules
/// span files.
#[derive(Debug, Clone)]
pub struct Environments {
    /// The directory the files came from, for messages that name them.
    pub dir: PathBuf,
    pub pipeline: Pipeline,
    /// In the order of the stages.
    targets: Vec<(EnvName, Target)>,
    /// Files in the directory that no stage names: said, not fatal.
    pub warnings: Vec<String>,
}

/// The values CloudWatch Logs accepts for a log group's retention.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

impl Environments {
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let pipeline: Pipeline = load_file(&dir.join("pipeline.toml"))?;
        let pipeline_file = dir.join("pipeline.toml");
        // Every rule here is about the stages: shown at the one it is about. The file is read
        // again only for a mistake's position.
        let invalid = |stage: Option<usize>, message: String| {
            let i = stage.map(|i| i.to_string());
            let keys = match &i {
                Some(i) => vec!["stages", i.as_str(), "environment"],
                None => vec!["stages"],
            };
            let text = std::fs::read_to_string(&pipeline_file).unwrap_or_default();
            ConfigError::at_key(&pipeline_file, &text, &keys, message)
        };
        if pipeline.stages.is_empty() {
            return Err(invalid(
                None,
                "stages is empty: name at least one environment to deploy, like [[stages]] environment = \"sandbox\"".into(),
            ));
        }
        let mut targets: Vec<(EnvName, Target)> = vec![];
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let env = EnvName::parse(&stage.environment)
                .map_err(|m| invalid(Some(i), format!("stages: {m}")))?;
            if targets.iter().any(|(e, _)| *e == env) {
                return Err(invalid(
                    Some(i),
                    format!("stages names {env} twice: an environment is one stage; remove one"),
                ));
            }
            let path = file_path(dir, env);
            if !path.exists() {
                return Err(invalid(
                    Some(i),
                    format!(
                        "stages names {env}, but there is no {}: create it (copy a shipped one) or fix the name{}",
                        path.display(),
                        crate::suggest::did_you_mean(env.as_str(), toml_files(dir))
                    ),
                ));
            }
            let target: Target = load_file(&path)?;
            target.check(&path, stage.approval)?;
            targets.push((env, target));
        }
        let used: Vec<String> = std::iter::once("pipeline".to_string())
            .chain(targets.iter().map(|(e, _)| e.as_str().to_string()))
            .collect();
        let warnings = toml_files(dir)
            .into_iter()
            .filter(|f| !used.contains(f))
            .map(|f| {
                format!(
                    "{} is not used: no stage in {} names {f}; add a stage for it or remove the file",
                    dir.join(format!("{f}.toml")).display(),
                    pipeline_file.display()
                )
            })
            .collect();
        let envs = Environments {
            dir: dir.to_path_buf(),
            pipeline,
            targets,
            warnings,
        };
        envs.check_across()?;
        Ok(envs)
    }

    /// The pipeline, then every stage's environment in order.
    pub fn names(&self) -> Vec<EnvName> {
        std::iter::once(EnvName::PIPELINE)
            .chain(self.targets.iter().map(|(e, _)| *e))
            .collect()
    }

    /// The environments the stages deploy, in order.
    pub fn stages(&self) -> impl Iterator<Item = (EnvName, &Target, &Stage)> {
        self.targets
            .iter()
            .zip(&self.pipeline.stages)
            .map(|((env, target), stage)| (*env, target, stage))
    }

    /// The environment a command line names, or what to type instead.
    pub fn env(&self, name: &str) -> Result<EnvName, ConfigError> {
        let names: Vec<String> = self.names().iter().map(|e| e.as_str().into()).collect();
        self.names()
            .into_iter()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| ConfigError::Inconsistent {
                message: format!(
                    "there is no environment {name:?}{}; the environments are {} (the stages in {})",
                    crate::suggest::did_you_mean(name, &names),
                    names.join(", "),
                    self.dir.join("pipeline.toml").display()
                ),
            })
    }

    /// The architecture the artifact is built for: every stage that runs it shares one.
    pub fn artifact_architecture(&self) -> Option<Architecture> {
        self.targets
            .iter()
            .find_map(|(_, t)| Some(t.lambda.as_ref()?.architecture))
    }

    pub fn target(&self, env: EnvName) -> Option<&Target> {
        self.targets.iter().find(|(e, _)| *e == env).map(|(_, t)| t)
    }

    /// The environment that holds feature branches' stacks, if one does.
    pub fn branch_env(&self) -> Option<(EnvName, &Target)> {
        self.targets
            .iter()
            .find(|(_, t)| t.branches.enabled)
            .map(|(e, t)| (*e, t))
    }

    pub fn account(&self, env: EnvName) -> &AccountId {
        self.target(env)
            .map_or(&self.pipeline.account_id, |t| &t.account_id)
    }

    pub fn region(&self, env: EnvName) -> &Region {
        self.target(env)
            .map_or(&self.pipeline.region, |t| &t.region)
    }

    pub fn prefix(&self) -> &Prefix {
        &self.pipeline.prefix
    }

    pub fn file(&self, env: EnvName) -> PathBuf {
        file_path(&self.dir, env)
    }

    /// Who may assume `env`'s deploy role: the pipeline's Deploy action of that environment, the
    /// break-glass role when one is named, and, where no approval is required, the operators
    /// (by default the pipeline account's principals that their own policies allow).
    pub fn deploy_role_trust(&self, env: EnvName) -> Vec<String> {
        let Some(target) = self.target(env) else {
            return vec![];
        };
        let mut principals = vec![format!(
            "arn:aws:iam::{}:role/{}-action-deploy-{env}",
            self.pipeline.account_id,
            self.prefix().as_str()
        )];
        if !target.safety.require_approval {
            principals.extend(self.or_pipeline_account(&target.access.operators));
        }
        principals.extend(target.access.break_glass_role_arn.iter().cloned());
        principals
    }

    /// Who may assume `env`'s read-only role: the pipeline's Verify action of that environment,
    /// and the readers (by default the pipeline account's principals their policies allow).
    pub fn read_role_trust(&self, env: EnvName) -> Vec<String> {
        let Some(target) = self.target(env) else {
            return vec![];
        };
        let mut principals = vec![format!(
            "arn:aws:iam::{}:role/{}-action-verify-{env}",
            self.pipeline.account_id,
            self.prefix().as_str()
        )];
        principals.extend(self.or_pipeline_account(&target.access.readers));
        principals
    }

    fn or_pipeline_account(&self, principals: &Option<Vec<String>>) -> Vec<String> {
        principals
            .clone()
            .unwrap_or_else(|| vec![format!("arn:aws:iam::{}:root", self.pipeline.account_id)])
    }

    fn check_across(&self) -> Result<(), ConfigError> {
        let inconsistent = |message: String| Err(ConfigError::Inconsistent { message });
        let protected = |env: EnvName| self.target(env).is_some_and(|t| t.safety.require_approval);
        for (i, a) in self.names().into_iter().enumerate() {
            for b in self.names().into_iter().skip(i + 1) {
                if self.account(a) != self.account(b) {
                    continue;
                }
                // A protected environment shares its account only with other protected ones (in
                // other regions): a sandbox or pipeline mistake must not reach it. Pipeline and
                // an unprotected environment may share one, as small teams often start.
                if protected(a) != protected(b) {
                    return inconsistent(format!(
                        "{} and {} both set account_id = \"{}\": {} takes approved changes only, so it shares its account with nothing that does not; give one of them a different account_id",
                        self.file(a).display(),
                        self.file(b).display(),
                        self.account(a),
                        if protected(a) { a } else { b }
                    ));
                }
                if a != EnvName::PIPELINE && self.region(a) == self.region(b) {
                    return inconsistent(format!(
                        "{} and {} are both in account {} and region {}: each holds its own bootstrap stack and artifact bucket there; give one a different region or account",
                        self.file(a).display(),
                        self.file(b).display(),
                        self.account(a),
                        self.region(a).as_str()
                    ));
                }
                // Each environment's execution role reaches `{prefix}-{env}-*`: one name must
                // not reach into the other's.
                let (short, long) = if a.as_str().len() <= b.as_str().len() {
                    (a, b)
                } else {
                    (b, a)
                };
                if a != EnvName::PIPELINE && long.as_str().starts_with(&format!("{short}-")) {
                    return inconsistent(format!(
                        "{short} and {long} share account {}, and {prefix}-{short}-* (what {short} may change there) also names {long}'s resources; rename one (e.g. {short}-us and {long}, or {short}{})",
                        self.account(a),
                        &long.as_str()[short.as_str().len() + 1..],
                        prefix = self.prefix().as_str()
                    ));
                }
            }
        }
        let hosts: Vec<EnvName> = self
            .targets
            .iter()
            .filter(|(_, t)| t.branches.enabled)
            .map(|(e, _)| *e)
            .collect();
        if hosts.len() > 1 {
            return inconsistent(format!(
                "{} all set branches.enabled = true: branch stacks live in one environment; turn it off in all but one",
                hosts
                    .iter()
                    .map(|e| self.file(*e).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // One artifact is built once and promoted: every stage that runs it, the same
        // architecture.
        let mut running = self
            .stages()
            .filter_map(|(env, t, _)| Some((env, t.lambda.as_ref()?.architecture)));
        if let Some((first, architecture)) = running.next()
            && let Some((env, other)) = running.find(|(_, a)| *a != architecture)
        {
            return inconsistent(format!(
                "{} sets lambda.architecture = \"{other}\" but {} sets \"{architecture}\": one artifact is promoted through every stage, so they must match",
                self.file(env).display(),
                self.file(first).display(),
            ));
        }
        Ok(())
    }
}

impl Target {
    /// `approval`: whether the stage that deploys it waits for a manual approval.
    fn check(&self, path: &Path, approval: bool) -> Result<(), ConfigError> {
        // Each mistake is shown at its key (or the nearest table on the way to it), in the file
        // read again for it.
        let invalid = |key: &str, message: String| {
            let keys: Vec<&str> = key.split('.').collect();
            let text = std::fs::read_to_string(path).unwrap_or_default();
            ConfigError::at_key(path, &text, &keys, message)
        };
        if let Some(lambda) = &self.lambda
            && !LOG_RETENTION_DAYS.contains(&lambda.log_retention_days)
        {
            return Err(invalid(
                "lambda.log_retention_days",
                format!(
                    "lambda.log_retention_days must be one of {LOG_RETENTION_DAYS:?}; got {}",
                    lambda.log_retention_days
                ),
            ));
        }
        if self.safety.require_approval != approval {
            return Err(invalid(
                "safety.require_approval",
                format!(
                    "safety.require_approval = {} but its stage in pipeline.toml says approval = {approval}: an environment that takes only approved changes comes after an approval, and one after an approval takes only approved changes; make them agree",
                    self.safety.require_approval
                ),
            ));
        }
        if self.stacks.is_empty() {
            return Err(invalid("stacks", 
                "stacks = [] deploys nothing: name the templates this environment holds, like stacks = [\"catalog\"]".into(),
            ));
        }
        for (i, stack) in self.stacks.iter().enumerate() {
            let ok = (1..=30).contains(&stack.len())
                && stack.starts_with(|c: char| c.is_ascii_lowercase())
                && stack
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok || self.stacks[..i].contains(stack) {
                return Err(invalid(
                    "stacks",
                    format!(
                        "stacks holds {stack:?}: each is a template name under templates/ (1 to 30 lowercase letters, digits or '-', starting with a letter), listed once"
                    ),
                ));
            }
            if ["bootstrap-target", "bootstrap-pipeline", "pipeline"].contains(&stack.as_str()) {
                return Err(invalid(
                    "stacks",
                    format!(
                        "stacks holds {stack:?}, which is the deployer's own template; name your service's templates"
                    ),
                ));
            }
        }
        if let Some(stack) = self.settings.keys().find(|k| !self.stacks.contains(k)) {
            return Err(invalid(
                &format!("settings.{stack}"),
                format!(
                    "settings.{stack} is for a stack this environment does not hold (stacks = {:?}); add it to stacks or remove the table",
                    self.stacks
                ),
            ));
        }
        if self.safety.require_approval {
            for (key, on) in [
                ("safety.retain_data", self.safety.retain_data),
                (
                    "safety.termination_protection",
                    self.safety.termination_protection,
                ),
                ("safety.require_approval", self.safety.require_approval),
            ] {
                if !on {
                    return Err(invalid(
                        key,
                        format!(
                            "{key} = false is not allowed where safety.require_approval = true: a protected environment keeps its data, its stack and the pipeline's approval; set it to true"
                        ),
                    ));
                }
            }
        }
        if self.safety.require_approval && self.access.operators.is_some() {
            return Err(invalid("access.operators", 
                "access.operators is not allowed where safety.require_approval = true: only the pipeline's Deploy action (and access.break_glass_role_arn) may deploy here; list people who only read under access.readers".into(),
            ));
        }
        // An account id, `arn:aws:iam::ID:root` or `arn:aws:iam::ID:role/NAME`, as IAM takes them.
        let is_account = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
        let principal_ok = |p: &str| match p.strip_prefix("arn:aws:iam::") {
            None => is_account(p),
            Some(rest) => rest.split_once(':').is_some_and(|(account, what)| {
                is_account(account)
                    && (what == "root"
                        || what
                            .strip_prefix("role/")
                            .is_some_and(|r| !r.is_empty() && r.len() <= 512))
            }),
        };
        for (key, list) in [
            ("access.operators", &self.access.operators),
            ("access.readers", &self.access.readers),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(
                    key,
                    format!(
                        "{key} = [] would lock everybody out; name someone, or remove the key for the default (the pipeline account)"
                    ),
                ));
            }
            for p in list.iter().flatten() {
                if !principal_ok(p) {
                    return Err(invalid(
                        key,
                        format!(
                            "{key} holds {p:?}: give an account id (\"111111111111\"), an account (\"arn:aws:iam::111111111111:root\") or a role (\"arn:aws:iam::111111111111:role/name\")"
                        ),
                    ));
                }
            }
        }
        if let Some(verify) = &self.verify {
            let parts: Vec<&str> = verify.email.split('@').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) || !parts[1].contains('.') {
                return Err(invalid(
                    "verify.email",
                    format!(
                        "verify.email must be an email address like \"verify@example.org\"; got {:?}",
                        verify.email
                    ),
                ));
            }
        }
        if let Some(arn) = &self.access.break_glass_role_arn
            && !(arn.contains(":role/") && principal_ok(arn))
        {
            return Err(invalid(
                "access.break_glass_role_arn",
                format!(
                    "access.break_glass_role_arn must be a role ARN like \"arn:aws:iam::111111111111:role/break-glass\"; got {arn:?}"
                ),
            ));
        }
        if let Some(arn) = &self.branches.oidc_provider_arn {
            let expected = format!(
                "arn:aws:iam::{}:oidc-provider/token.actions.githubusercontent.com",
                self.account_id
            );
            if arn != &expected {
                return Err(invalid(
                    "branches.oidc_provider_arn",
                    format!(
                        "branches.oidc_provider_arn must be GitHub's OIDC provider in this account, {expected:?}; got {arn:?}"
                    ),
                ));
            }
        }
        if self.safety.require_approval && self.branches.enabled {
            return Err(invalid("branches.enabled", 
                "branches.enabled = true is not allowed where safety.require_approval = true: branch stacks live in an environment that takes unapproved changes; set it to false".into(),
            ));
        }
        if !self.branches.enabled {
            return Ok(());
        }
        let repo_ok =
            self.branches
                .github_repository
                .split_once('/')
                .is_some_and(|(owner, name)| {
                    let part = |p: &str| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    };
                    part(owner) && part(name)
                });
        if !repo_ok {
            return Err(invalid(
                "branches.github_repository",
                format!(
                    "branches.github_repository must be \"owner/name\", got {:?}",
                    self.branches.github_repository
                ),
            ));
        }
        if self.branches.ttl_days == 0 || self.branches.max_stacks == 0 {
            return Err(invalid(
                "branches",
                "branches.ttl_days and branches.max_stacks must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

pub fn file_path(dir: &Path, env: EnvName) -> PathBuf {
    dir.join(format!("{env}.toml"))
}

/// The names (without `.toml`) of the TOML files in `dir`, sorted.
fn toml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn load_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let path = path.to_path_buf();
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| describe_toml_error(&e, &text, path))
}

/// serde's wording ("unknown field `x`, expected ...") made to speak of TOML keys and lines.
fn describe_toml_error(e: &toml::de::Error, text: &str, path: PathBuf) -> ConfigError {
    let start = e.span().map(|s| s.start.min(text.len()));
    let line = start.map(|offset| text[..offset].matches('\n').count() + 1);
    let msg = e.message().trim().replace("unknown field", "unknown key");
    let msg = msg.replace("missing field", "missing key");
    if msg.starts_with("missing key") {
        // The span of a missing key is its whole table: name the table, not a line.
        let table = start
            .and_then(|offset| text[offset..].lines().next())
            .filter(|l| l.starts_with('['))
            .map(|header| format!(" in {}", header.trim()))
            .unwrap_or_else(|| " at the top level".into());
        return ConfigError::Invalid {
            path,
            line: None,
            message: format!(
                "{msg}{table}; add it (every key is required, see the comments in the shipped files)"
            ),
        };
    }
    let message = if msg.starts_with("unknown key") {
        format!("{msg}; remove it or fix its spelling")
    } else {
        msg
    };
    match e.span() {
        Some(span) => ConfigError::at(&path, text, span, message),
        None => ConfigError::Invalid {
            path,
            line,
            message,
        },
    }
}
