//! A JSON value that does not fit what the API takes (a request body, an import message),
//! described in the API's words at the field's JSON path, never in serde's.

/// serde's words for a value that does not fit, in the API's: the field's JSON path and what it
/// must be ("price.amount", "must be an integer number of minor units; got 4.5").
pub fn describe(path: &str, serde: &str) -> (String, String) {
    let serde = &strip_position(serde);
    let at = |name: &str| match path {
        "." => name.to_string(),
        _ => format!("{path}.{name}"),
    };
    let whole = || match path {
        "." => "body".to_string(),
        _ => path.to_string(),
    };
    let quoted = |text: &str, open: &str| -> Option<String> {
        let rest = text.split_once(open)?.1;
        Some(rest.split_once('`')?.0.to_string())
    };
    if let Some(name) = quoted(serde, "missing field `") {
        return (at(&name), "is required".into());
    }
    if serde.starts_with("unknown field `") {
        let known = serde
            .split_once("expected one of ")
            .or_else(|| serde.split_once("expected "))
            .map_or(String::new(), |(_, k)| {
                k.replace('`', "").replace(" or ", ", ")
            });
        return (
            whole(),
            format!("is not a field here; the fields are {known}"),
        );
    }
    let fit = serde
        .strip_prefix("invalid type: ")
        .or_else(|| serde.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "));
    let Some((got, expected)) = fit else {
        return (whole(), serde.to_string());
    };
    let field = whole();
    let expected = match expected {
        "i64" | "i32" | "i16" | "i8" | "isize" => "an integer",
        "u64" | "u32" | "u16" | "u8" | "usize" => "a whole number of zero or more",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        e if e.starts_with("struct ") || e == "a map" => "an object",
        e => e,
    };
    let expected = match (field.as_str(), expected) {
        ("price.amount", "an integer") => "an integer number of minor units (cents for EUR)",
        (_, e) => e,
    };
    let got = match got {
        "map" => "an object",
        "sequence" => "a list",
        "unit value" | "null" => "null",
        // "floating point `4.5`", "integer `-1`", "boolean `true`", "string \"x\""
        other => match other.split_once('`') {
            Some((_, value)) => value.trim_end_matches('`'),
            None => other.strip_prefix("string ").unwrap_or(other),
        },
    };
    (field, format!("must be {expected}; got {got}"))
}

/// serde's "... at line 1 column 9" says nothing more once the field is named.
fn strip_position(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct Body {
        name: String,
        price: PriceBody,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct PriceBody {
        amount: i64,
        currency: String,
    }

    /// What a body gets back, through serde_path_to_error as the extractor reads it.
    fn error_of(body: &str) -> (String, String) {
        let de = &mut serde_json::Deserializer::from_str(body);
        let e = serde_path_to_error::deserialize::<_, Body>(de).unwrap_err();
        let path = e.path().to_string();
        describe(&path, &e.into_inner().to_string())
    }

    #[test]
    fn a_body_that_does_not_fit_is_described_in_the_api_s_words_at_its_path() {
        let cases = [
            (
                r#"{"name": "Tea", "price": {"amount": 4.5, "currency": "EUR"}}"#,
                "price.amount",
                "must be an integer number of minor units (cents for EUR); got 4.5",
            ),
            (
                r#"{"price": {"amount": 4, "currency": "EUR"}}"#,
                "name",
                "is required",
            ),
            (
                r#"{"name": "Tea", "price": {"amount": 4}}"#,
                "price.currency",
                "is required",
            ),
            (
                r#"{"name": 7, "price": {"amount": 4, "currency": "EUR"}}"#,
                "name",
                "must be a string; got 7",
            ),
            (
                r#"{"name": "Tea", "price": "4 EUR"}"#,
                "price",
                "must be an object; got \"4 EUR\"",
            ),
            (
                r#"{"name": null, "price": {"amount": 4, "currency": "EUR"}}"#,
                "name",
                "must be a string; got null",
            ),
            (
                r#"{"name": "Tea", "colour": "red", "price": {"amount": 4, "currency": "EUR"}}"#,
                "colour",
                "is not a field here; the fields are name, price",
            ),
        ];
        for (body, field, message) in cases {
            assert_eq!(error_of(body), (field.into(), message.into()), "{body}");
        }
    }
}
