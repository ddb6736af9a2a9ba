//! A stack's own settings: `templates/<stack>.settings.toml` declares each one (type, default, a
//! line of documentation) and an environment gives values under `[settings.<stack>]`. Checked
//! before anything is rendered, so a typo names its file, line and key, not a half-made stack.

use crate::config::ConfigError;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    List,
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
        )
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Boolean => "true or false",
            Kind::List => "a list",
        }
    }
}

/// One declared setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    r#type: Kind,
    /// Absent: every environment holding the stack must give a value.
    #[serde(default)]
    default: Option<toml::Value>,
    doc: String,
}

/// Where a stack's settings are declared.
pub fn declarations_path(templates: &Path, stack: &str) -> PathBuf {
    templates.join(format!("{stack}.settings.toml"))
}

/// The settings `stack` sees in an environment: each declared one, from `values` (read from
/// `env_file`) or its default, checked against its type. A stack without a declarations file
/// takes none.
pub fn resolve(
    templates: &Path,
    stack: &str,
    env_file: &Path,
    values: Option<&BTreeMap<String, toml::Spanned<toml::Value>>>,
) -> Result<Value, ConfigError> {
    let path = declarations_path(templates, stack);
    let declared: BTreeMap<String, Declaration> = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let message = format!(
                "{}; each setting is a table with type (string, integer, number, boolean or list), doc and an optional default",
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
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let env_text = || std::fs::read_to_string(env_file).unwrap_or_default();
    let at = |value: &toml::Spanned<toml::Value>, message: String| {
        ConfigError::at(env_file, &env_text(), value.span(), message)
    };
    for (key, d) in &declared {
        if let Some(default) = &d.default
            && !d.r#type.accepts(default)
        {
            return Err(ConfigError::Invalid {
                path: path.clone(),
                line: None,
                message: format!(
                    "{key}: the default must be {}, as its type says",
                    d.r#type.name()
                ),
            });
        }
    }
    let mut resolved = Map::new();
    for (key, value) in values.into_iter().flatten() {
        let Some(d) = declared.get(key) else {
            return Err(at(
                value,
                format!(
                    "settings.{stack}.{key} is not a setting {} declares{}; remove it or fix its spelling",
                    path.display(),
                    crate::suggest::did_you_mean(key, declared.keys())
                ),
            ));
        };
        if !d.r#type.accepts(value.get_ref()) {
            return Err(at(
                value,
                format!(
                    "settings.{stack}.{key} must be {} ({}); got {}",
                    d.r#type.name(),
                    d.doc,
                    value.get_ref()
                ),
            ));
        }
        resolved.insert(key.clone(), json(value.get_ref()));
    }
    for (key, d) in &declared {
        if resolved.contains_key(key) {
            continue;
        }
        let Some(default) = &d.default else {
            return Err(ConfigError::Invalid {
                path: env_file.to_path_buf(),
                line: None,
                message: format!(
                    "settings.{stack}.{key} is missing and has no default: give it under [settings.{stack}] ({}, {})",
                    d.r#type.name(),
                    d.doc
                ),
            });
        };
        resolved.insert(key.clone(), json(default));
    }
    Ok(Value::Object(resolved))
}

fn json(value: &toml::Value) -> Value {
    serde_json::to_value(value).expect("a TOML value is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(declared: &str, env: &str) -> (tempfile::TempDir, Result<Value, ConfigError>) {
        #[derive(Deserialize)]
        struct File {
            settings: BTreeMap<String, BTreeMap<String, toml::Spanned<toml::Value>>>,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.settings.toml"), declared).unwrap();
        let env_file = dir.path().join("staging.toml");
        std::fs::write(&env_file, env).unwrap();
        let file: File = toml::from_str(env).unwrap();
        let result = resolve(dir.path(), "orders", &env_file, file.settings.get("orders"));
        (dir, result)
    }

    const DECLARED: &str = r#"
[capacity]
type = "integer"
default = 5
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
            err.contains("settings.orders.owner is missing and has no default"),
            "{err}"
        );

        let (_dir, got) = setup(
            DECLARED,
            "[settings.orders]\nowner = \"a\"\ncapacity = \"lots\"\n",
        );
        let err = got.unwrap_err().to_string();
        assert!(err.contains(":3: settings.orders.capacity must be an integer (read capacity units); got \"lots\""), "{err}");
    }

    #[test]
    fn a_default_of_the_wrong_type_is_the_declaration_s_fault() {
        let (_dir, got) = setup(
            "[capacity]\ntype = \"integer\"\ndefault = \"five\"\ndoc = \"d\"\n",
            "[settings.orders]\n",
        );
        let err = got.unwrap_err().to_string();
        assert!(
            err.contains("orders.settings.toml: capacity: the default must be an integer"),
            "{err}"
        );
    }
}
