//! Every resource of a rendered template checked against the CloudFormation resource schemas
//! before any AWS call: a misspelt type or property fails here, naming it, instead of deploying
//! "green" on the emulator (which accepts anything) and failing in AWS minutes later.
//!
//! The schemas come from the resource provider schemas cfn-lint ships, reduced by
//! `scripts/resource-schemas` to the properties each type may set and must set, and compiled
//! in: no crate carries current schemas, fetching them (CloudFormation DescribeType) would need
//! credentials and one call per type, and this way the deployer checks against exactly the
//! version CI lints with (a test fails when the two drift apart).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
struct TypeSchema {
    properties: BTreeSet<String>,
    required: Vec<String>,
}

/// Each type's line of the schemas file, as `scripts/resource-schemas` writes it (one
/// `"TYPE":{...}` per line, sorted by type): a check binary-searches the types its template
/// names and parses only those (reading the whole file cost more than rendering).
fn lines() -> &'static [(&'static str, &'static str)] {
    static LINES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    LINES.get_or_init(|| {
        include_str!("../schemas/resources.json")
            .lines()
            .filter_map(|line| {
                let (kind, schema) = line.strip_prefix('"')?.split_once("\":")?;
                Some((kind, schema.trim_end_matches(',')))
            })
            .collect()
    })
}

fn schema(kind: &str) -> Option<TypeSchema> {
    let lines = lines();
    let at = lines.binary_search_by(|(k, _)| (*k).cmp(kind)).ok()?;
    Some(serde_json::from_str(lines[at].1).expect("scripts/resource-schemas writes valid schemas"))
}

/// The first resource that does not fit its type's schema, as a message naming the resource,
/// the type or property, and the likely meant one.
pub fn check(template: &Value) -> Result<(), String> {
    // A transform (SAM, a macro) turns the template into another before CloudFormation reads
    // the types; what it gets is not this.
    if template.get("Transform").is_some() {
        return Ok(());
    }
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Ok(());
    };
    for (id, resource) in resources {
        let Some(kind) = resource.get("Type").and_then(Value::as_str) else {
            continue;
        };
        // Custom resources and third-party registry types have no schema here.
        if !(kind.starts_with("AWS::") || kind.starts_with("Alexa::")) {
            continue;
        }
        let Some(schema) = schema(kind) else {
            return Err(format!(
                "resource \"{id}\" has type {kind}, which no CloudFormation resource schema knows{}",
                crate::suggest::did_you_mean(kind, lines().iter().map(|(k, _)| k))
            ));
        };
        let properties = match resource.get("Properties") {
            None => None,
            Some(Value::Object(props)) if !is_intrinsic(props) => Some(props),
            // Properties chosen by a condition: their names are not known until deploy time.
            Some(_) => continue,
        };
        for name in properties.into_iter().flat_map(|p| p.keys()) {
            if !schema.properties.contains(name) {
                return Err(format!(
                    "resource \"{id}\" ({kind}) has property \"{name}\", which its schema does not list{}",
                    crate::suggest::did_you_mean(name, schema.properties.iter())
                ));
            }
        }
        if let Some(missing) = schema
            .required
            .iter()
            .find(|r| !properties.is_some_and(|p| p.contains_key(*r)))
        {
            return Err(format!(
                "resource \"{id}\" ({kind}) lacks property \"{missing}\", which its schema requires"
            ));
        }
    }
    Ok(())
}

/// An object that is one intrinsic function call (`{"Fn::If": [...]}`), not a map of names.
fn is_intrinsic(object: &serde_json::Map<String, Value>) -> bool {
    object.len() == 1
        && object
            .keys()
            .next()
            .is_some_and(|k| k.starts_with("Fn::") || k == "Ref")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        // The binary search relies on it: a file written otherwise fails here, not in a check.
        let whole: std::collections::HashMap<String, TypeSchema> =
            serde_json::from_str(include_str!("../schemas/resources.json")).unwrap();
        let lines = lines();
        assert_eq!(lines.len(), whole.len());
        assert!(lines.windows(2).all(|w| w[0].0 < w[1].0));
        for (kind, _) in lines {
            assert!(whole.contains_key(*kind), "{kind}");
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
