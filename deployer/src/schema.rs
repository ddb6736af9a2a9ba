//! Every resource of a rendered template checked against the CloudFormation resource schemas
//! before any AWS call: a misspelt type or property fails here, naming it, instead of deploying
//! "green" on the emulator (which accepts anything) and failing in AWS minutes later.
//!
//! The schemas come from the resource provider schemas cfn-lint ships, reduced by
//! `scripts/resource-schemas` to the properties each type may set and must set, and compiled
//! in: no crate carries current schemas, fetching them (CloudFormation DescribeType) would need
//! credentials and one call per type, and this way the deployer checks against exactly the
//! version CI lints with (a test fails when the two drift apart).

use crate::json::{Json, Object};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A type's schema, borrowed from the compiled-in file: no name is copied.
#[derive(Debug, Deserialize)]
struct TypeSchema {
    /// Sorted, as `scripts/resource-schemas` writes them.
    #[serde(borrow)]
    properties: Vec<&'static str>,
    #[serde(borrow)]
    required: Vec<&'static str>,
}

/// The schemas file as `scripts/resource-schemas` writes it: `{`, then one `"TYPE":{...}` line
/// per type, sorted by type, then `}`.
const SCHEMAS: &str = include_str!("../schemas/resources.json");

/// A line of the schemas file, as its type and that type's schema.
fn entry(line: &str) -> Option<(&str, &str)> {
    let (kind, schema) = line.strip_prefix('"')?.split_once("\":")?;
    Some((kind, schema.trim_end_matches(',')))
}

/// Every type the schemas file knows, in order.
fn kinds() -> impl Iterator<Item = &'static str> {
    SCHEMAS.lines().filter_map(entry).map(|(kind, _)| kind)
}

/// `kind`'s schema, found once a process: `synth --all` checks 132 resources of 21 types, and
/// each check used to find and parse its type's line again.
fn schema(kind: &str) -> Option<Arc<TypeSchema>> {
    static FOUND: Mutex<BTreeMap<String, Option<Arc<TypeSchema>>>> = Mutex::new(BTreeMap::new());
    let mut found = FOUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(schema) = found.get(kind) {
        return schema.clone();
    }
    let schema = find(kind).map(Arc::new);
    found.insert(kind.to_string(), schema.clone());
    schema
}

/// `kind`'s schema, found by bisecting the file's lines: a check reads a dozen lines per type
/// its template names, not the whole file (indexing its 375 KB cost more than a render).
fn find(kind: &str) -> Option<TypeSchema> {
    let bytes = SCHEMAS.as_bytes();
    // The lines between `{` and `}`, each ending in a newline.
    let mut lo = SCHEMAS.find('\n')? + 1;
    let mut hi = SCHEMAS.trim_end().rfind('\n')? + 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = memchr::memrchr(b'\n', &bytes[lo..mid]).map_or(lo, |i| lo + i + 1);
        let end = start + memchr::memchr(b'\n', &bytes[start..hi])?;
        let (at, schema) = entry(&SCHEMAS[start..end])?;
        match at.cmp(kind) {
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
            std::cmp::Ordering::Equal => {
                return Some(
                    serde_json::from_str(schema)
                        .expect("scripts/resource-schemas writes valid schemas"),
                );
            }
        }
    }
    None
}

/// The first resource that does not fit its type's schema, as a message naming the resource,
/// the type or property, and the likely meant one.
pub fn check(template: &Json) -> Result<(), String> {
    // A transform (SAM, a macro) turns the template into another before CloudFormation reads
    // the types; what it gets is not this.
    if template.get("Transform").is_some() {
        return Ok(());
    }
    let Some(resources) = template.get("Resources").and_then(Json::as_object) else {
        return Ok(());
    };
    for (id, resource) in resources {
        let Some(kind) = resource.get("Type").and_then(Json::as_str) else {
            continue;
        };
        // Custom resources and third-party registry types have no schema here.
        if !(kind.starts_with("AWS::") || kind.starts_with("Alexa::")) {
            continue;
        }
        let Some(schema) = schema(kind) else {
            return Err(format!(
                "resource \"{id}\" has type {kind}, which no CloudFormation resource schema knows{}",
                crate::suggest::did_you_mean(kind, kinds())
            ));
        };
        let properties = match resource.get("Properties") {
            None => None,
            Some(Json::Object(props)) if !is_intrinsic(props) => Some(props),
            // Properties chosen by a condition: their names are not known until deploy time.
            Some(_) => continue,
        };
        for name in properties.into_iter().flat_map(|p| p.keys()) {
            if schema.properties.binary_search(&name).is_err() {
                return Err(format!(
                    "resource \"{id}\" ({kind}) has property \"{name}\", which its schema does not list{}",
                    crate::suggest::did_you_mean(name, schema.properties.iter())
                ));
            }
        }
        if let Some(missing) = schema
            .required
            .iter()
            .find(|r| !properties.is_some_and(|p| p.contains_key(r)))
        {
            return Err(format!(
                "resource \"{id}\" ({kind}) lacks property \"{missing}\", which its schema requires"
            ));
        }
    }
    Ok(())
}

/// An object that is one intrinsic function call (`{"Fn::If": [...]}`), not a map of names.
fn is_intrinsic(object: &Object) -> bool {
    object.len() == 1
        && object
            .keys()
            .next()
            .is_some_and(|k| k.starts_with("Fn::") || k == "Ref")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The check, on a template written with `json!`.
    fn check(template: &Value) -> Result<(), String> {
        super::check(&template.clone().into())
    }

    fn template(resource: Value) -> Value {
        json!({ "Resources": { "Fn": resource } })
    }

    fn function(properties: Value) -> Value {
        template(json!({ "Type": "AWS::Lambda::Function", "Properties": properties }))
    }

    #[test]
    fn a_misspelt_type_or_property_is_named_with_what_was_meant() {
        let err = check(&template(json!({ "Type": "AWS::Lambda::Functon" }))).unwrap_err();
        assert_eq!(
            err,
            "resource \"Fn\" has type AWS::Lambda::Functon, which no CloudFormation resource schema knows; did you mean AWS::Lambda::Function?"
        );
        let err = check(&function(json!({ "Code": {}, "Role": "r", "Handlr": "x" }))).unwrap_err();
        assert_eq!(
            err,
            "resource \"Fn\" (AWS::Lambda::Function) has property \"Handlr\", which its schema does not list; did you mean Handler?"
        );
        let err = check(&function(json!({ "Code": {} }))).unwrap_err();
        assert!(
            err.contains("lacks property \"Role\", which its schema requires"),
            "{err}"
        );
    }

    #[test]
    fn the_schemas_file_has_every_type_on_a_line_of_its_own_in_order() {
        // The bisection relies on it: a file written otherwise fails here, not in a check.
        let whole: std::collections::BTreeMap<String, TypeSchema> =
            serde_json::from_str(SCHEMAS).unwrap();
        let kinds: Vec<_> = kinds().collect();
        assert_eq!(SCHEMAS.lines().count(), kinds.len() + 2);
        assert!(kinds.windows(2).all(|w| w[0] < w[1]));
        // A check bisects each type's properties too.
        for (kind, schema) in &whole {
            assert!(schema.properties.is_sorted(), "{kind}");
        }
        // Every type is found, the first and the last too, and with its own schema.
        for (kind, expected) in &whole {
            let found = find(kind).unwrap_or_else(|| panic!("{kind} not found"));
            assert_eq!(found.properties, expected.properties, "{kind}");
        }
        assert_eq!(kinds, whole.keys().map(String::as_str).collect::<Vec<_>>());
        for absent in [
            "",
            "A",
            "AWS::Lambda::Functio",
            "AWS::Lambda::Functions",
            "ZZZ",
        ] {
            assert!(find(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn read_only_properties_may_not_be_set() {
        // Arn is in the schema, but only CloudFormation sets it.
        let err = check(&function(json!({ "Code": {}, "Role": "r", "Arn": "x" }))).unwrap_err();
        assert!(err.contains("has property \"Arn\""), "{err}");
    }

    #[test]
    fn what_has_no_schema_here_is_left_to_cloudformation() {
        for resource in [
            json!({ "Type": "Custom::Seed", "Properties": { "Anything": 1 } }),
            json!({ "Type": "MyOrg::Thing::Widget", "Properties": { "Anything": 1 } }),
            json!({ "Type": "AWS::Lambda::Function", "Properties": { "Fn::If": ["C", {}, {}] } }),
        ] {
            assert_eq!(check(&template(resource.clone())), Ok(()), "{resource}");
        }
        let mut sam = function(json!({ "Handlr": "x" }));
        sam["Transform"] = json!("AWS::Serverless-2016-10-31");
        assert_eq!(check(&sam), Ok(()));
        assert_eq!(
            check(&function(
                json!({ "Code": {}, "Role": "r", "Handler": "x" })
            )),
            Ok(())
        );
    }
}
