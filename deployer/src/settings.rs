//! A stack's own settings: `templates/<stack>.settings.toml` declares each one (type, default, a
//! line of documentation, the values it may take) and an environment gives values under
//! `[settings.<stack>]`. Checked before anything is rendered, so a typo names its file, line and
//! key, not a half-made stack. Tables of settings nest (`type = "table"` with `fields`). A
//! `type = "function"` setting is one of the stack's Lambda functions, its name the key: the
//! deployer knows its settings (memory, reserved concurrency), and `logs --function` and
//! `deploy --hotswap` find the stack's functions by these declarations.

use crate::config::ConfigError;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the settings of one stack are resolved for.
pub struct Scope<'a> {
    /// A protected environment (safety.require_approval): `protected_default` applies.
    pub protected: bool,
    /// A feature branch's stack: settings declared `branches = false` are left out.
    pub branch: bool,
    /// The base of the stack's resource names: each function is `{resource_name}-{key}`.
    pub resource_name: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    List,
    Table,
    /// A Lambda function of the stack: a table of the settings in FUNCTION_FIELDS.
    Function,
}

impl Kind {
    fn accepts(self, value: &toml::Value) -> bool {
        matches!(
            (self, value),
            (Kind::String, toml::Value::String(_))
                | (Kind::Integer, toml::Value::Integer(_))
                | (
                    Kind::Number,
                    toml::Value::Integer(_) | toml::Value::Float(_)
                )
                | (Kind::Boolean, toml::Value::Boolean(_))
                | (Kind::List, toml::Value::Array(_))
                | (Kind::Table | Kind::Function, toml::Value::Table(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Boolean => "true or false",
            Kind::List => "a list",
            Kind::Table => "a table",
            Kind::Function => "a table of the function's settings",
        }
    }
}

/// Shapes of strings that stacks on AWS keep needing, checked as AWS would take them (a list's
/// format applies to each item).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Format {
    Email,
    HttpsUrl,
    DnsName,
    OauthScope,
    Route53ZoneId,
    /// An ACM certificate in the environment's own account and region (a regional endpoint's).
    AcmCertificate,
}

impl Format {
    fn fits(self, s: &str, scope: &Scope) -> bool {
        let dns_label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        match self {
            Format::Email => {
                let parts: Vec<&str> = s.split('@').collect();
                parts.len() == 2
                    && parts.iter().all(|p| !p.is_empty())
                    && parts[1].contains('.')
                    && !s.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || matches!(c, ',' | '"' | '\\')
                    })
            }
            Format::HttpsUrl => s
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace)),
            Format::DnsName => {
                s.len() <= 253 && s.split('.').count() >= 2 && s.split('.').all(dns_label)
            }
            Format::OauthScope => {
                !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            Format::Route53ZoneId => {
                s.starts_with('Z')
                    && s.len() <= 32
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
            Format::AcmCertificate => s
                .strip_prefix(&Format::certificate_prefix(scope))
                .is_some_and(|id| !id.is_empty()),
        }
    }

    fn certificate_prefix(scope: &Scope) -> String {
        format!(
            "arn:aws:acm:{}:{}:certificate/",
            scope.region, scope.account_id
        )
    }

    fn describe(self, scope: &Scope) -> String {
        match self {
            Format::Email => "an email address like \"ann@example.com\"".into(),
            Format::HttpsUrl => "an https URL like \"https://example.eu.auth0.com/\"".into(),
            Format::DnsName => "a lowercase DNS name like \"api.example.org\"".into(),
            Format::OauthScope => "one OAuth scope, without spaces, like \"catalog/write\"".into(),
            Format::Route53ZoneId => {
                "a Route 53 hosted zone id like \"Z0123456789ABCDEFGHIJ\"".into()
            }
            Format::AcmCertificate => format!(
                "an ACM certificate in this account and region ({}...)",
                Format::certificate_prefix(scope)
            ),
        }
    }
}

/// One declared setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    r#type: Kind,
    doc: String,
    /// Absent (and not optional): every environment holding the stack must give a value.
    #[serde(default)]
    default: Option<toml::Value>,
    /// The default in a protected environment, where it should be the safer one.
    #[serde(default)]
    protected_default: Option<toml::Value>,
    /// Absent unless given: the template sees null (`{{#if settings.x}}`).
    #[serde(default)]
    optional: bool,
    /// Bounds of a number, or of a list's length.
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    one_of: Option<Vec<toml::Value>>,
    #[serde(default)]
    format: Option<Format>,
    /// Another setting of the same table this one may not exceed.
    #[serde(default)]
    at_most: Option<String>,
    /// Another setting of the same table this one must differ from.
    #[serde(default)]
    differs_from: Option<String>,
    /// false: feature branches' stacks leave it out (a custom domain, say, is the environment's).
    #[serde(default = "yes")]
    branches: bool,
    /// A table's settings (a function's are FUNCTION_FIELDS, filled in once checked).
    #[serde(default)]
    fields: BTreeMap<String, Declaration>,
}

/// What every function declared `type = "function"` takes from an environment: what Lambda
/// lets functions of the one artifact differ in. Its declaration's `default` (a table) may
/// change these defaults.
const FUNCTION_FIELDS: &str = r#"
[memory_mb]
type = "integer"
default = 128
min = 128
max = 10240
doc = "the function's memory in MB (128 to 10240); CPU grows with it"

[reserved_concurrency]
type = "integer"
optional = true
min = 1
doc = "the function's own share of the account's concurrency, which also caps it (0 would stop it from ever running); leave it out to share the account's pool"
"#;

/// Lambda's limit on a function's name.
const FUNCTION_NAME_MAX: usize = 64;

fn yes() -> bool {
    true
}

/// Where a stack's settings are declared.
pub fn declarations_path(templates: &Path, stack: &str) -> PathBuf {
    templates.join(format!("{stack}.settings.toml"))
}

/// A stack's declarations file as read: its path, text and declarations (none without the file).
/// What is checked against the environment (`resolve`) is checked on every use.
pub struct Declarations {
    path: PathBuf,
    text: String,
    declared: BTreeMap<String, Declaration>,
}

impl Declarations {
    pub fn read(templates: &Path, stack: &str) -> Result<Self, ConfigError> {
        let path = declarations_path(templates, stack);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let declared = toml::from_str(&text).map_err(|e| {
            let message = format!(
                "{}; each setting is a table with type (string, integer, number, boolean, list, table or function), doc and optionally default, protected_default, optional, min, max, one_of, format, at_most, differs_from, branches and (for a table) fields",
                e.message().trim()
            );
            match e.span() {
                Some(span) => ConfigError::at(&path, &text, span, message),
                None => ConfigError::Invalid {
                    path: path.clone(),
                    line: None,
                    message,
                },
            }
        })?;
        Ok(Declarations {
            path,
            text,
            declared,
        })
    }

    /// Whether these are still what the file holds.
    pub fn is_current(&self) -> bool {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text == self.text,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound && self.text.is_empty(),
        }
    }
}

/// The stack's Lambda functions: the keys it declares `type = "function"`, wherever they nest.
pub fn functions(templates: &Path, stack: &str) -> Result<Vec<String>, ConfigError> {
    Ok(function_keys(
        &Declarations::read(templates, stack)?.declared,
    ))
}

fn function_keys(declared: &BTreeMap<String, Declaration>) -> Vec<String> {
    declared
        .iter()
        .flat_map(|(key, d)| match d.r#type {
            Kind::Function => vec![key.clone()],
            Kind::Table => function_keys(&d.fields),
            _ => vec![],
        })
        .collect()
}

/// A stack's settings as its template sees them, and its functions' keys.
pub struct Resolved {
    pub values: Value,
    pub functions: Vec<String>,
}

/// The settings `stack` sees in an environment: each declared one, from `values` (read from
/// `env_file`) or its default, checked against its declaration. A stack without a declarations
/// file takes none.
pub fn resolve(
    declarations: &Declarations,
    stack: &str,
    env_file: &Path,
    values: Option<&toml::Table>,
    scope: &Scope,
) -> Result<Resolved, ConfigError> {
    let mut declared = declarations.declared.clone();
    let resolver = Resolver {
        stack,
        scope,
        declarations: &declarations.path,
        declarations_text: &declarations.text,
        env_file,
    };
    resolver.check_declarations(&mut declared, &mut vec![])?;
    Ok(Resolved {
        values: Value::Object(resolver.table(&declared, values, &mut vec![])?),
        functions: function_keys(&declared),
    })
}

struct Resolver<'a> {
    stack: &'a str,
    scope: &'a Scope<'a>,
    declarations: &'a Path,
    declarations_text: &'a str,
    env_file: &'a Path,
}

impl Resolver<'_> {
    /// `settings.<stack>.<keys>`, as the environment's file spells it.
    fn key(&self, keys: &[String]) -> String {
        format!("settings.{}.{}", self.stack, keys.join("."))
    }

    /// A mistake in the environment's file, at `keys` (or the nearest table on the way).
    fn in_env(&self, keys: &[String], message: String) -> ConfigError {
        let text = std::fs::read_to_string(self.env_file).unwrap_or_default();
        let path: Vec<&str> = ["settings", self.stack]
            .into_iter()
            .chain(keys.iter().map(String::as_str))
            .collect();
        ConfigError::at_key(self.env_file, &text, &path, message)
    }

    /// A mistake in the declarations file, at `attribute` of the declaration of `keys`.
    fn in_declarations(&self, keys: &[String], attribute: &str, message: String) -> ConfigError {
        let mut path = vec![];
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                path.push("fields");
            }
            path.push(key.as_str());
        }
        path.push(attribute);
        ConfigError::at_key(
            self.declarations,
            self.declarations_text,
            &path,
            format!("{}: {message}", keys.join(".")),
        )
    }

    /// The declarations agree with themselves: defaults fit, rules name real settings. Each
    /// function gets its fields.
    fn check_declarations(
        &self,
        declared: &mut BTreeMap<String, Declaration>,
        keys: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let names: Vec<String> = declared.keys().cloned().collect();
        for (key, d) in declared.iter_mut() {
            keys.push(key.clone());
            if d.r#type == Kind::Table {
                self.check_declarations(&mut d.fields, keys)?;
            }
            if d.r#type == Kind::Function {
                d.fields = self.function_fields(d, keys)?;
            }
            let bad = |attribute: &str, message: String| {
                Err(self.in_declarations(keys, attribute, message))
            };
            if d.r#type == Kind::Function {
                let full = format!("{}-{key}", self.scope.resource_name);
                let valid = key.starts_with(|c: char| c.is_ascii_lowercase())
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return bad(
                        "type",
                        format!(
                            "a function's key is the end of its name ({full}): lowercase letters, digits and '-', starting with a letter"
                        ),
                    );
                }
                if full.len() > FUNCTION_NAME_MAX {
                    return bad(
                        "type",
                        format!(
                            "the function would be named {full}, {} characters, and Lambda takes at most {FUNCTION_NAME_MAX}: shorten its key (or the prefix or environment name)",
                            full.len()
                        ),
                    );
                }
                if d.optional || d.protected_default.is_some() {
                    return bad(
                        if d.optional {
                            "optional"
                        } else {
                            "protected_default"
                        },
                        "a function is always made; give its defaults as default = { memory_mb = ... }".into(),
                    );
                }
            } else if d.r#type == Kind::Table {
                if d.default.is_some() || d.protected_default.is_some() {
                    return bad(
                        "default",
                        "a table takes its defaults from its fields; remove default".into(),
                    );
                }
                if d.fields.is_empty() {
                    return bad("type", "a table declares its settings under fields".into());
                }
            } else if !d.fields.is_empty() {
                return bad(
                    "fields",
                    "only a table (type = \"table\") has fields".into(),
                );
            }
            for (attribute, other) in [("at_most", &d.at_most), ("differs_from", &d.differs_from)] {
                let Some(other) = other else { continue };
                if !names.contains(other) {
                    return bad(
                        attribute,
                        format!(
                            "names {other}, which is not a setting beside it{}",
                            crate::suggest::did_you_mean(other, &names)
                        ),
                    );
                }
            }
            for (attribute, default) in [
                ("default", &d.default),
                ("protected_default", &d.protected_default),
            ] {
                let Some(default) = default else { continue };
                if let Some(why) = self.misfit(d, default) {
                    return bad(attribute, format!("the {attribute} {why}"));
                }
            }
            keys.pop();
        }
        Ok(())
    }

    /// A function's fields: FUNCTION_FIELDS, with the defaults its declaration gives instead.
    fn function_fields(
        &self,
        d: &Declaration,
        keys: &[String],
    ) -> Result<BTreeMap<String, Declaration>, ConfigError> {
        let bad = |attribute: &str, message: String| self.in_declarations(keys, attribute, message);
        if !d.fields.is_empty() {
            return Err(bad(
                "fields",
                "a function's settings are the deployer's (memory_mb, reserved_concurrency); give their defaults as default = { memory_mb = ... }".into(),
            ));
        }
        // Parsed once per process: every function of every render starts from them.
        static FIELDS: std::sync::OnceLock<BTreeMap<String, Declaration>> =
            std::sync::OnceLock::new();
        let mut fields = FIELDS
            .get_or_init(|| {
                toml::from_str(FUNCTION_FIELDS).expect("FUNCTION_FIELDS is a valid declaration")
            })
            .clone();
        let defaults = match &d.default {
            None => return Ok(fields),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(bad(
                    "default",
                    format!(
                        "a function's default is a table like {{ memory_mb = 256 }}; got {other}"
                    ),
                ));
            }
        };
        let names: Vec<String> = fields.keys().cloned().collect();
        for (field, value) in defaults {
            let Some(declared) = fields.get_mut(field) else {
                return Err(bad(
                    "default",
                    format!(
                        "{field} is not a function's setting{}; they are {}",
                        crate::suggest::did_you_mean(field, &names),
                        names.join(", ")
                    ),
                ));
            };
            if let Some(why) = self.misfit(declared, value) {
                return Err(bad("default", format!("the default {field} {why}")));
            }
            declared.default = Some(value.clone());
        }
        Ok(fields)
    }

    /// Why `value` does not fit `d` ("must be ...; got ..."), or None when it does.
    fn misfit(&self, d: &Declaration, value: &toml::Value) -> Option<String> {
        use toml::Value as T;
        if !d.r#type.accepts(value) {
            return Some(format!(
                "must be {} ({}); got {value}",
                d.r#type.name(),
                d.doc
            ));
        }
        // A number's bounds, or a list's length.
        let (amount, verb, unit) = match value {
            T::Integer(i) => (Some(*i as f64), "be", ""),
            T::Float(f) => (Some(*f), "be", ""),
            T::Array(items) => (Some(items.len() as f64), "have", " items"),
            _ => (None, "", ""),
        };
        if let (Some(n), Some(min)) = (amount, d.min)
            && n < min
        {
            return Some(format!(
                "must {verb} at least {min}{unit}; got {value} ({})",
                d.doc
            ));
        }
        if let (Some(n), Some(max)) = (amount, d.max)
            && n > max
        {
            return Some(format!(
                "must {verb} at most {max}{unit}; got {value} ({})",
                d.doc
            ));
        }
        if let Some(allowed) = &d.one_of
            && !allowed.contains(value)
        {
            let allowed: Vec<String> = allowed.iter().map(T::to_string).collect();
            return Some(format!(
                "must be one of {}; got {value}",
                allowed.join(", ")
            ));
        }
        let format = d.format?;
        let strings: Vec<&T> = match value {
            T::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let bad = strings
            .into_iter()
            .find(|s| !s.as_str().is_some_and(|s| format.fits(s, self.scope)))?;
        Some(if matches!(value, T::Array(_)) {
            format!("holds {bad}, which is not {}", format.describe(self.scope))
        } else {
            format!("must be {}; got {bad}", format.describe(self.scope))
        })
    }

    /// A table of settings resolved: each declared one from `given` or its default, checked.
    fn table(
        &self,
        declared: &BTreeMap<String, Declaration>,
        given: Option<&toml::Table>,
        keys: &mut Vec<String>,
    ) -> Result<Map<String, Value>, ConfigError> {
        if let Some(key) = given
            .into_iter()
            .flat_map(|g| g.keys())
            .find(|k| !declared.contains_key(*k))
        {
            keys.push(key.clone());
            return Err(self.in_env(
                keys,
                format!(
                    "{} is not a setting {} declares{}; remove it or fix its spelling",
                    self.key(keys),
                    self.declarations.display(),
                    crate::suggest::did_you_mean(key, declared.keys())
                ),
            ));
        }
        let mut resolved = Map::new();
        for (key, d) in declared {
            keys.push(key.clone());
            let value = match given.and_then(|g| g.get(key)) {
                Some(value) => {
                    if let Some(why) = self.misfit(d, value) {
                        return Err(self.in_env(keys, format!("{} {why}", self.key(keys))));
                    }
                    match value {
                        toml::Value::Table(t) => {
                            Value::Object(self.table(&d.fields, Some(t), keys)?)
                        }
                        other => json(other),
                    }
                }
                None if matches!(d.r#type, Kind::Table | Kind::Function) && !d.optional => {
                    Value::Object(self.table(&d.fields, None, keys)?)
                }
                None => match d
                    .protected_default
                    .as_ref()
                    .filter(|_| self.scope.protected)
                    .or(d.default.as_ref())
                {
                    Some(default) => json(default),
                    None if d.optional => Value::Null,
                    None => {
                        let table = ["settings", self.stack]
                            .into_iter()
                            .chain(keys[..keys.len() - 1].iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(".");
                        return Err(self.in_env(
                            keys,
                            format!(
                                "{} is missing and has no default: give it under [{table}] ({}, {})",
                                self.key(keys),
                                d.r#type.name(),
                                d.doc
                            ),
                        ));
                    }
                },
            };
            // Checked all the same, so a bad value fails in every stack.
            let value = if self.scope.branch && !d.branches {
                Value::Null
            } else {
                value
            };
            resolved.insert(key.clone(), value);
            keys.pop();
        }
        // Rules between two settings of the table, once both are known.
        for (key, d) in declared {
            let this = &resolved[key];
            let broken = if let Some(other) = &d.at_most
                && let (Some(a), Some(b)) = (this.as_f64(), resolved[other].as_f64())
                && a > b
            {
                Some(format!("must be at most {other} ({b}); got {a}"))
            } else if let Some(other) = &d.differs_from
                && !this.is_null()
                && *this == resolved[other]
            {
                Some(format!(
                    "and {other} are both {this}: they must differ ({})",
                    d.doc
                ))
            } else {
                None
            };
            if let Some(why) = broken {
                keys.push(key.clone());
                return Err(self.in_env(keys, format!("{} {why}", self.key(keys))));
            }
        }
        Ok(resolved)
    }
}

fn json(value: &toml::Value) -> Value {
    serde_json::to_value(value).expect("a TOML value is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOX: Scope = Scope {
        protected: false,
        branch: false,
        resource_name: "catalog-staging-orders",
        account_id: "222222222222",
        region: "us-east-1",
    };

    fn setup(declared: &str, env: &str) -> (tempfile::TempDir, Result<Value, ConfigError>) {
        resolve_in(declared, env, &SANDBOX)
    }

    /// Resolving `env` against `declared` fails with a message holding `expected`.
    fn fails_with(declared: &str, env: &str, expected: &str) {
        let (_dir, got) = setup(declared, env);
        let err = got.unwrap_err().to_string();
        assert!(err.contains(expected), "{declared}\n{env}\n{err}");
    }

    fn resolve_in(
        declared: &str,
        env: &str,
        scope: &Scope,
    ) -> (tempfile::TempDir, Result<Value, ConfigError>) {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            settings: BTreeMap<String, toml::Table>,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.settings.toml"), declared).unwrap();
        let env_file = dir.path().join("staging.toml");
        std::fs::write(&env_file, env).unwrap();
        let file: File = toml::from_str(env).unwrap();
        let result = Declarations::read(dir.path(), "orders")
            .and_then(|d| resolve(&d, "orders", &env_file, file.settings.get("orders"), scope))
            .map(|r| r.values);
        (dir, result)
    }

    const DECLARED: &str = r#"
[capacity]
type = "integer"
default = 5
min = 1
doc = "read capacity units"

[owner]
type = "string"
doc = "the team that answers for it"
"#;

    #[test]
    fn values_and_defaults_are_resolved() {
        let (_dir, got) = setup(DECLARED, "[settings.orders]\nowner = \"team-a\"\n");
        assert_eq!(
            got.unwrap(),
            serde_json::json!({"capacity": 5, "owner": "team-a"})
        );
    }

    #[test]
    fn unknown_missing_and_mistyped_settings_name_file_line_and_key() {
        let (dir, got) = setup(
            DECLARED,
            "[settings.orders]\nowner = \"a\"\n\ncapacty = 3\n",
        );
        let err = got.unwrap_err().to_string();
        let file = dir.path().join("staging.toml");
        assert!(
            err.starts_with(&format!("{}:4: settings.orders.capacty", file.display())),
            "{err}"
        );
        assert!(err.contains("did you mean capacity?"), "{err}");

        let (_dir, got) = setup(DECLARED, "[settings.orders]\ncapacity = 3\n");
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains(":1: settings.orders.owner is missing and has no default: give it under [settings.orders]"),
            "{err}"
        );

        let (_dir, got) = setup(
            DECLARED,
            "[settings.orders]\nowner = \"a\"\ncapacity = \"lots\"\n",
        );
        let err = got.unwrap_err().to_string();
        assert!(err.contains(":3: settings.orders.capacity must be an integer (read capacity units); got \"lots\""), "{err}");

        let (_dir, got) = setup(DECLARED, "[settings.orders]\nowner = \"a\"\ncapacity = 0\n");
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains(":3: settings.orders.capacity must be at least 1; got 0"),
            "{err}"
        );
    }

    #[test]
    fn a_default_that_does_not_fit_is_the_declaration_s_fault() {
        let (_dir, got) = setup(
            "[capacity]\ntype = \"integer\"\ndefault = \"five\"\ndoc = \"d\"\n",
            "[settings.orders]\n",
        );
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains("orders.settings.toml:3: capacity: the default must be an integer"),
            "{err}"
        );
        let (_dir, got) = setup(
            "[mode]\ntype = \"string\"\ndefault = \"open\"\nprotected_default = \"shut\"\none_of = [\"open\", \"closed\"]\ndoc = \"d\"\n",
            "[settings.orders]\n",
        );
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains(
                ":4: mode: the protected_default must be one of \"open\", \"closed\"; got \"shut\""
            ),
            "{err}"
        );
    }

    const NESTED: &str = r#"
[limits]
type = "table"
doc = "throttling"
[limits.fields.rate]
type = "number"
default = 100.0
min = 1
doc = "requests per second"
[limits.fields.login_rate]
type = "number"
default = 5.0
at_most = "rate"
doc = "logins per second"

[auth]
type = "table"
optional = true
doc = "an OIDC authorizer"
[auth.fields.issuer]
type = "string"
format = "https-url"
doc = "the issuer"
[auth.fields.admin_scope]
type = "string"
default = "a/admin"
format = "oauth-scope"
differs_from = "editor_scope"
doc = "the admins' scope"
[auth.fields.editor_scope]
type = "string"
default = "a/write"
format = "oauth-scope"
doc = "the editors' scope"

[domain]
type = "table"
optional = true
branches = false
doc = "a custom domain"
[domain.fields.certificate_arn]
type = "string"
format = "acm-certificate"
doc = "its certificate"
[domain.fields.zone]
type = "string"
optional = true
format = "route53-zone-id"
doc = "its hosted zone"

[admins]
type = "list"
default = []
format = "email"
doc = "the first admins"

[signup]
type = "string"
default = "open"
protected_default = "closed"
one_of = ["open", "invite", "closed"]
doc = "who may sign up"
"#;

    #[test]
    fn tables_nest_take_their_fields_defaults_and_optional_ones_stay_out() {
        let (_dir, got) = setup(NESTED, "[settings.orders.limits]\nrate = 50\n");
        assert_eq!(
            got.unwrap(),
            serde_json::json!({
                "limits": {"rate": 50, "login_rate": 5.0},
                "auth": null,
                "domain": null,
                "admins": [],
                "signup": "open",
            })
        );
        let domain = "[settings.orders.domain]\ncertificate_arn = \"arn:aws:acm:us-east-1:222222222222:certificate/abc\"\n";
        let (_dir, got) = setup(NESTED, domain);
        assert_eq!(
            got.unwrap()["domain"],
            serde_json::json!({"certificate_arn": "arn:aws:acm:us-east-1:222222222222:certificate/abc", "zone": null})
        );
        // A protected environment gets the safer default; a branch stack no domain.
        let scope = Scope {
            protected: true,
            ..SANDBOX
        };
        let (_dir, got) = resolve_in(NESTED, "", &scope);
        assert_eq!(got.unwrap()["signup"], "closed");
        let scope = Scope {
            branch: true,
            ..SANDBOX
        };
        let (_dir, got) = resolve_in(NESTED, domain, &scope);
        assert_eq!(got.unwrap()["domain"], Value::Null);
    }

    #[test]
    fn nested_mistakes_name_their_line_and_full_key() {
        let cases = [
            (
                "[settings.orders.limits]\nrate = 10\nlogin_rate = 20\n",
                ":3: settings.orders.limits.login_rate must be at most rate (10); got 20",
            ),
            (
                "[settings.orders.limits]\nrat = 10\n",
                ":2: settings.orders.limits.rat is not a setting",
            ),
            (
                "[settings.orders.auth]\nadmin_scope = \"x\"\n",
                ":1: settings.orders.auth.issuer is missing and has no default: give it under [settings.orders.auth] (a string, the issuer)",
            ),
            (
                "[settings.orders.auth]\nissuer = \"http://idp.example.org/\"\n",
                ":2: settings.orders.auth.issuer must be an https URL like \"https://example.eu.auth0.com/\"; got \"http://idp.example.org/\"",
            ),
            (
                "[settings.orders.auth]\nissuer = \"https://idp.example.org/\"\nadmin_scope = \"a/write\"\n",
                ":3: settings.orders.auth.admin_scope and editor_scope are both \"a/write\": they must differ (the admins' scope)",
            ),
            (
                "[settings.orders.auth]\nissuer = \"https://idp.example.org/\"\neditor_scope = \"a write\"\n",
                ":3: settings.orders.auth.editor_scope must be one OAuth scope, without spaces",
            ),
            (
                "[settings.orders.domain]\ncertificate_arn = \"arn:aws:acm:eu-west-1:222222222222:certificate/abc\"\n",
                ":2: settings.orders.domain.certificate_arn must be an ACM certificate in this account and region (arn:aws:acm:us-east-1:222222222222:certificate/...)",
            ),
            (
                "[settings.orders.domain]\ncertificate_arn = \"arn:aws:acm:us-east-1:222222222222:certificate/abc\"\nzone = \"z1\"\n",
                ":3: settings.orders.domain.zone must be a Route 53 hosted zone id",
            ),
            (
                "[settings.orders]\nadmins = [\"ann@example.com\", \"bob at example\"]\n",
                ":2: settings.orders.admins holds \"bob at example\", which is not an email address",
            ),
            (
                "[settings.orders]\nsignup = \"maybe\"\n",
                ":2: settings.orders.signup must be one of \"open\", \"invite\", \"closed\"; got \"maybe\"",
            ),
            (
                "[settings.orders]\nlimits = 3\n",
                ":2: settings.orders.limits must be a table (throttling); got 3",
            ),
        ];
        for (env, expected) in cases {
            fails_with(NESTED, env, expected);
        }
    }

    #[test]
    fn a_rule_naming_no_setting_is_the_declaration_s_fault() {
        let (_dir, got) = setup(
            "[a]\ntype = \"integer\"\ndefault = 1\nat_most = \"bb\"\ndoc = \"d\"\n[b]\ntype = \"integer\"\ndefault = 2\ndoc = \"d\"\n",
            "",
        );
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains("orders.settings.toml:4: a: names bb, which is not a setting beside it"),
            "{err}"
        );
    }

    const FUNCTIONS: &str = r#"
[functions]
type = "table"
doc = "the stack's functions"

[functions.fields.api]
type = "function"
default = { memory_mb = 512 }
doc = "the API"

[functions.fields.worker]
type = "function"
doc = "the queue's consumer"
"#;

    #[test]
    fn functions_take_the_deployer_s_settings_with_the_declared_defaults() {
        let env = "[settings.orders.functions.worker]\nreserved_concurrency = 5\n";
        let (dir, got) = setup(FUNCTIONS, env);
        assert_eq!(
            got.unwrap(),
            serde_json::json!({"functions": {
                "api": {"memory_mb": 512, "reserved_concurrency": null},
                "worker": {"memory_mb": 128, "reserved_concurrency": 5},
            }})
        );
        assert_eq!(functions(dir.path(), "orders").unwrap(), ["api", "worker"]);
        // A stack without declarations has no functions.
        assert!(functions(dir.path(), "payments").unwrap().is_empty());

        let cases = [
            (
                "[settings.orders.functions.api]\nmemory_mb = 64\n",
                "staging.toml:2: settings.orders.functions.api.memory_mb must be at least 128; got 64",
            ),
            (
                "[settings.orders.functions.api]\nreserved_concurrency = 0\n",
                "staging.toml:2: settings.orders.functions.api.reserved_concurrency must be at least 1; got 0",
            ),
            (
                "[settings.orders.functions.api]\ntimeout = 3\n",
                "staging.toml:2: settings.orders.functions.api.timeout is not a setting",
            ),
        ];
        for (env, expected) in cases {
            fails_with(FUNCTIONS, env, expected);
        }
    }

    #[test]
    fn a_function_s_declaration_is_checked_and_its_name_must_fit_lambda_s() {
        let cases = [
            (
                "[api]\ntype = \"function\"\ndefault = { memroy_mb = 256 }\ndoc = \"d\"\n",
                "orders.settings.toml:3: api: memroy_mb is not a function's setting; did you mean memory_mb?",
            ),
            (
                "[api]\ntype = \"function\"\ndefault = { memory_mb = 20000 }\ndoc = \"d\"\n",
                "orders.settings.toml:3: api: the default memory_mb must be at most 10240; got 20000",
            ),
            (
                "[api]\ntype = \"function\"\noptional = true\ndoc = \"d\"\n",
                "orders.settings.toml:3: api: a function is always made",
            ),
            (
                "[Api]\ntype = \"function\"\ndoc = \"d\"\n",
                "orders.settings.toml:2: Api: a function's key is the end of its name (catalog-staging-orders-Api)",
            ),
            (
                "[a-very-long-function-name-that-lambda-refuses]\ntype = \"function\"\ndoc = \"d\"\n",
                "the function would be named catalog-staging-orders-a-very-long-function-name-that-lambda-refuses, 68 characters",
            ),
        ];
        for (declared, expected) in cases {
            fails_with(declared, "", expected);
        }
    }
}
