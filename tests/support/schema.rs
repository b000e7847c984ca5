//! A JSON Schema check for the subset `docs/events.schema.json` uses (`type`, `required`,
//! `properties`, `additionalProperties: false`, `items`, `$ref` into `$defs`, `oneOf`,
//! `minimum`, `maximum`, `pattern`), so a test can hold the events the service builds to the
//! schema the repository documents. Use with `#[path = "support/schema.rs"] mod schema;`.

#![allow(dead_code)]

use serde_json::Value;

/// The problems of `value` against `schema` (the root document holds `$defs`); empty when valid.
pub fn errors(root: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return errors(root, &root["$defs"][name], value, at);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = options
            .iter()
            .filter(|o| errors(root, o, value, at).is_empty())
            .count();
        return if passing == 1 {
            Vec::new()
        } else {
            vec![format!("{at}: matches {passing} of oneOf, not exactly 1")]
        };
    }
    let mut out = Vec::new();
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| is_type(value, t)) {
            return vec![format!("{at}: {value} is not of type {types:?}")];
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            out.push(format!("{at}: {n} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: {n} above maximum"));
        }
    }
    if let (Some(p), Some(s)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        if !regex::Regex::new(p).expect("a valid pattern").is_match(s) {
            out.push(format!("{at}: {s:?} does not match {p}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                out.push(format!("{at}: missing {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (k, v) in object {
            match properties.and_then(|p| p.get(k)) {
                Some(s) => out.extend(errors(root, s, v, &format!("{at}.{k}"))),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    out.push(format!("{at}: unexpected property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            out.extend(errors(root, items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_u64() || value.is_i64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}
