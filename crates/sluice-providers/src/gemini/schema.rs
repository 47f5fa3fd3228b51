//! Turns a JSON Schema (as OpenAI tools and `response_format` carry it) into
//! the OpenAPI-subset `Schema` Gemini accepts. Gemini answers 400 on any key it
//! does not know (`$schema`, `additionalProperties`, `$ref`, …), so this keeps
//! only the documented keys, recursively, and rewrites the two common JSON
//! Schema idioms it can express: `const` (→ one-value `enum`) and a nullable
//! type list such as `["string", "null"]` (→ `type` + `nullable`).

use serde_json::{Map, Value};

/// Keys of Gemini's `Schema` object kept as they are.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// Returns the Gemini-accepted form of `schema`.
pub fn to_gemini(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                if let Value::Object(props) = value {
                    let props = props
                        .iter()
                        .map(|(name, s)| (name.clone(), to_gemini(s)))
                        .collect();
                    out.insert(key.clone(), Value::Object(props));
                }
            }
            "items" => {
                out.insert(key.clone(), to_gemini(value));
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(list) = value {
                    let list = list.iter().map(to_gemini).collect();
                    out.insert("anyOf".into(), Value::Array(list));
                }
            }
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert(key.clone(), other.clone());
                }
            },
            "const" => {
                out.entry("enum")
                    .or_insert_with(|| Value::Array(vec![value.clone()]));
            }
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {} // `$schema`, `additionalProperties`, `$ref`, `$defs`, …
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_unknown_keys_recursively_but_not_property_names() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {"k": {"const": "v"}}}},
                "maybe": {"type": ["integer", "null"], "minimum": 0}
            },
            "required": ["tags"]
        });
        assert_eq!(
            to_gemini(&s),
            json!({
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"enum": ["v"]}}}},
                    "maybe": {"type": "integer", "nullable": true, "minimum": 0}
                },
                "required": ["tags"]
            })
        );
    }

    #[test]
    fn one_of_becomes_any_of() {
        let s = json!({"oneOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]});
        assert_eq!(
            to_gemini(&s),
            json!({"anyOf": [{"type": "string"}, {"type": "number"}]})
        );
    }
}
