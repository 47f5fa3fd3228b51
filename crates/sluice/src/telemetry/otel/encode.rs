//! The OTLP/HTTP JSON body of an export (`ExportTraceServiceRequest` in
//! the protobuf JSON mapping, as the OTLP spec defines it): one resource
//! (`service.name`), one scope (`sluice`), the spans. Ids are lowercase
//! hex, times and 64-bit integers decimal strings, kinds and status codes
//! integers, attributes `{key, value: {stringValue|intValue|…}}`.
//!
//! Hand-written with serde instead of the `opentelemetry*` crates: the
//! format is small and stable, and those crates (with their gRPC and
//! protobuf stacks) would add minutes to a cold build.

use serde::Serialize;

use super::context::hex;
use super::span::{Span, Value};

/// The JSON body of one export of `spans`.
pub fn export_body(service_name: &str, spans: &[Span]) -> serde_json::Result<Vec<u8>> {
    let req = Request {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: vec![KeyValue {
                    key: "service.name",
                    value: AnyValue::String(service_name),
                }],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "sluice",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans: spans.iter().map(SpanJson::from).collect(),
            }],
        }],
    };
    serde_json::to_vec(&req)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<SpanJson<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanJson<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    /// 0 UNSET, 2 ERROR.
    code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(&'a str),
    /// int64: a decimal string in the protobuf JSON mapping.
    #[serde(rename = "intValue")]
    Int(String),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "boolValue")]
    Bool(bool),
    #[serde(rename = "arrayValue")]
    Array { values: Vec<AnyValue<'a>> },
}

impl<'a> From<&'a Value> for AnyValue<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Str(s) => AnyValue::String(s),
            Value::Int(i) => AnyValue::Int(i.to_string()),
            Value::Double(d) => AnyValue::Double(*d),
            Value::Bool(b) => AnyValue::Bool(*b),
            Value::StrArray(a) => AnyValue::Array {
                values: a.iter().map(|s| AnyValue::String(s)).collect(),
            },
        }
    }
}

impl<'a> From<&'a Span> for SpanJson<'a> {
    fn from(s: &'a Span) -> Self {
        SpanJson {
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent_span_id: s.parent.as_ref().map(|p| hex(p)),
            name: &s.name,
            kind: s.kind as u8,
            start_time_unix_nano: s.start_ns.to_string(),
            end_time_unix_nano: s.end_ns.to_string(),
            attributes: (s.attrs.iter())
                .map(|(k, v)| KeyValue {
                    key: k,
                    value: v.into(),
                })
                .collect(),
            status: Status {
                code: if s.error.is_some() { 2 } else { 0 },
                message: s.error.as_deref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::span::Kind;
    use super::*;

    /// The span of the OTLP spec's example `examples/trace.json`
    /// (opentelemetry-proto), in sluice's model.
    fn spec_span() -> Span {
        Span {
            trace_id: hex_id("5b8efff798038103d269b633813fc60c"),
            span_id: hex_id("eee19b7ec3c1b174"),
            parent: Some(hex_id("eee19b7ec3c1b173")),
            name: "I'm a server span".into(),
            kind: Kind::Server,
            start_ns: 1_544_712_660_000_000_000,
            end_ns: 1_544_712_661_000_000_000,
            attrs: vec![("my.span.attr", Value::from("some value"))],
            error: None,
        }
    }

    fn hex_id<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn a_span_encodes_like_the_otlp_specs_example() {
        // From opentelemetry-proto's examples/trace.json (its ids are
        // uppercase there; OTLP reads hex case-insensitively, we write
        // lowercase).
        let spec = serde_json::json!({
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "I'm a server span",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
            "kind": 2,
            "attributes": [
                { "key": "my.span.attr", "value": { "stringValue": "some value" } }
            ]
        });
        let body = export_body("my.service", &[spec_span()]).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rs = &got["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "my.service"}})
        );
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "sluice");
        let mut span = rs["scopeSpans"][0]["spans"][0].clone();
        assert_eq!(span["status"], serde_json::json!({"code": 0}));
        span.as_object_mut().unwrap().remove("status");
        assert_eq!(span, spec);
    }

    #[test]
    fn every_value_type_and_an_error_status_encode() {
        let mut s = spec_span();
        s.parent = None;
        s.kind = Kind::Client;
        s.attrs.clear();
        s.set("i", 42u64);
        s.set("d", 0.5);
        s.set("b", true);
        s.set("a", Value::StrArray(vec!["stop".into()]));
        s.error = Some("server_error".into());
        let body = export_body("sluice", &[s]).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let span = &got["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(span.get("parentSpanId").is_none());
        assert_eq!(span["kind"], 3);
        assert_eq!(
            span["attributes"],
            serde_json::json!([
                {"key": "i", "value": {"intValue": "42"}},
                {"key": "d", "value": {"doubleValue": 0.5}},
                {"key": "b", "value": {"boolValue": true}},
                {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
            ])
        );
        assert_eq!(
            span["status"],
            serde_json::json!({"code": 2, "message": "server_error"})
        );
    }
}
