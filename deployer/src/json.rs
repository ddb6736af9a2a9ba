//! A rendered template as parsed: a JSON tree whose strings borrow from the rendered text, with
//! each object's members sorted by key.
//!
//! Why not `serde_json::Value`:
//! - The order. `Value`'s objects are sorted maps only while serde_json's `preserve_order` feature
//!   is off, and cargo turns it on for every build that takes aws-smithy-mocks (a dev-dependency):
//!   the deployer the tests ran kept the template's order while a release build sorted. Here the
//!   sorting is ours, whatever the features.
//! - The cost. A render's text is parsed, checked and written again once. Parsing it into
//!   `Value`s (every key and string copied into maps of their own), writing and dropping them took
//!   about 12 M of the 27 M instructions `synth --all` ran from the kept parses (callgrind); with
//!   this tree the whole run takes 20 M.
//!
//! The bytes are serde_json's: `Serialize` gives what `Value` gave with sorted maps, and `pretty`
//! writes what `serde_json::to_string_pretty` writes (a test compares the two).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members, sorted by key, each key once: where the text repeats a key, the last
/// one counts, as it did in serde_json's maps.
#[derive(Debug, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

/// What indexing finds where there is nothing.
static NULL: Json<'static> = Json::Null;

impl<'a> Json<'a> {
    /// `text` as JSON, borrowing its strings: the same errors, with the same positions, as
    /// `serde_json::from_str` gives.
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.as_object()?.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json<'a>> {
        match self {
            Json::Object(o) => o.get_mut(key),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Json::String(_))
    }

    /// The text `serde_json::to_string_pretty` writes for this, with a newline at the end;
    /// `size` is what to make room for (the text it was parsed from is a fair guess).
    pub fn pretty(&self, size: usize) -> String {
        let mut out = String::with_capacity(size);
        self.write_pretty(&mut out, 0);
        out.push('\n');
        out
    }

    fn write_pretty(&self, out: &mut String, depth: usize) {
        const INDENT: &str = "  ";
        match self {
            Json::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    push_indent(out, depth + 1, INDENT);
                    item.write_pretty(out, depth + 1);
                }
                out.push('\n');
                push_indent(out, depth, INDENT);
                out.push(']');
            }
            Json::Object(o) if !o.is_empty() => {
                out.push('{');
                for (i, (key, value)) in o.0.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    push_indent(out, depth + 1, INDENT);
                    push_str(out, key);
                    out.push_str(": ");
                    value.write_pretty(out, depth + 1);
                }
                out.push('\n');
                push_indent(out, depth, INDENT);
                out.push('}');
            }
            Json::String(s) => push_str(out, s),
            Json::Array(_) => out.push_str("[]"),
            Json::Object(_) => out.push_str("{}"),
            scalar => out.push_str(&serde_json::to_string(scalar).expect("a scalar serializes")),
        }
    }
}

fn push_indent(out: &mut String, depth: usize, indent: &str) {
    for _ in 0..depth {
        out.push_str(indent);
    }
}

/// `s` as a JSON string, escaped as serde_json escapes (only `"`, `\` and control characters).
/// A string borrowed from the parsed text had no escape there, and JSON text cannot hold those
/// characters unescaped: it is copied as it is (as are the plain words code inserts).
#[expect(
    clippy::ptr_arg,
    reason = "whether the string is borrowed is what it reads"
)]
fn push_str(out: &mut String, s: &Cow<str>) {
    match s {
        Cow::Borrowed(s) => {
            debug_assert!(
                !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
                "{s}"
            );
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Cow::Owned(s) => out.push_str(&serde_json::to_string(s).expect("a str serializes")),
    }
}

impl<'a> std::ops::Index<&str> for Json<'a> {
    type Output = Json<'a>;

    /// The member `key`, or null where this is no object or has no such member (as with `Value`).
    fn index(&self, key: &str) -> &Json<'a> {
        self.get(key).unwrap_or(&NULL)
    }
}

impl PartialEq<&str> for Json<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl<'a> Object<'a> {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json<'a>> {
        self.position(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`, in its place among the keys.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Json<'a>) {
        let key = key.into();
        match self.position(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.into_iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn values(&self) -> impl Iterator<Item = &Json<'a>> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'o, 'a> IntoIterator for &'o Object<'a> {
    type Item = (&'o str, &'o Json<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'o, (Cow<'a, str>, Json<'a>)>,
        fn(&'o (Cow<'a, str>, Json<'a>)) -> (&'o str, &'o Json<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a, K: Into<Cow<'a, str>>> FromIterator<(K, Json<'a>)> for Object<'a> {
    fn from_iter<I: IntoIterator<Item = (K, Json<'a>)>>(members: I) -> Self {
        let mut members: Vec<_> = members.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Reversed, the last of a repeated key sorts first (the sort is stable) and is the one
        // `dedup_by` keeps.
        members.reverse();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|later, kept| later.0 == kept.0);
        Object(members)
    }
}

impl Serialize for Json<'_> {
    /// As `Value` serializes, its maps sorted.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(t) => s.serialize_str(t),
            Json::Array(items) => items.serialize(s),
            Json::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    /// A string without escapes, as it stands in the text.
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Json::Object(members.into_iter().collect()))
    }
}

/// An object's key, borrowed where the text holds it without escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(JsonVisitor)? {
            Json::String(s) => Ok(Key(s)),
            _ => Err(serde::de::Error::custom("an object's key is a string")),
        }
    }
}

/// Tests write their templates with `json!`.
#[cfg(test)]
impl From<serde_json::Value> for Json<'static> {
    fn from(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(Cow::Owned(s)),
            Value::Array(items) => Json::Array(items.into_iter().map(Json::from).collect()),
            Value::Object(o) => Json::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Texts with what a template may hold: nesting, empty containers, escapes, numbers of
    /// every kind, repeated keys, keys out of order and keys that sort by bytes.
    const TEXTS: [&str; 6] = [
        r#"{"b": 1, "a": [1, -2, 3.5, 1e3, 0.1, 18446744073709551615, -9223372036854775808]}"#,
        r#"{"z": {}, "y": [], "x": [{}, [], null, true, false], "": ""}"#,
        r#"{"k": "tab\there \"quoted\" back\\slash \u0001 \u00e9 é / \/ end"}"#,
        r#"{"a": 1, "b": 2, "a": 3, "b": {"c": 4}}"#,
        r#"{"Z": 1, "a": 2, "_": 3, "é": 4, "e": 5, "ab": 6, "a\"b": 7}"#,
        r#"[[[["deep"]]], {"Fn::Sub": "${AWS::StackName}-x"}]"#,
    ];

    #[test]
    fn it_writes_the_bytes_serde_json_writes_with_sorted_maps() {
        for text in TEXTS {
            let parsed = Json::parse(text).unwrap();
            // serde_json's own pretty printer over this tree, and over a sorted Value.
            assert_eq!(
                parsed.pretty(0),
                serde_json::to_string_pretty(&parsed).unwrap() + "\n",
                "{text}"
            );
            let mut value: Value = serde_json::from_str(text).unwrap();
            value.sort_all_objects();
            assert_eq!(
                serde_json::to_string(&parsed).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_and_the_last_repeated_key_counts() {
        let text = r#"{"plain": "text", "esc\naped": "a\"b", "plain": "again"}"#;
        let parsed = Json::parse(text).unwrap();
        let object = parsed.as_object().unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["esc\naped", "plain"]);
        assert!(matches!(object.0[1].0, Cow::Borrowed(_)));
        assert!(matches!(&object.0[0].1, Json::String(Cow::Owned(s)) if s == "a\"b"));
        assert_eq!(parsed["plain"], "again");
        assert_eq!(parsed["absent"]["deeper"], Json::Null);
    }

    #[test]
    fn insert_keeps_the_keys_sorted_and_replaces_a_member() {
        let text = json!({"b": 1, "d": 2}).to_string();
        let mut parsed = Json::parse(&text).unwrap();
        let object = parsed.as_object_mut().unwrap();
        object.insert("c", Json::Bool(true));
        object.insert("a", Json::Null);
        object.insert("d", Json::String("x".into()));
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!({"a": null, "b": 1, "c": true, "d": "x"})
        );
        assert_eq!(
            parsed.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn errors_are_serde_json_s() {
        for bad in [r#"{"a": 1,}"#, r#"{"a": "x"#, "[1, 2] 3", "\"\u{1}\""] {
            let ours = Json::parse(bad).unwrap_err();
            let theirs = serde_json::from_str::<Value>(bad).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{bad}");
        }
    }
}
