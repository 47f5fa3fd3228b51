//! Canonical → Anthropic request translation and the upstream HTTP request.

use serde_json::{json, Value};
use sluice_types::ChatRequest;

use super::*;
use crate::anthropic::{to_messages_request, DEFAULT_MAX_TOKENS};
use crate::Target;

fn canonical(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn translate(v: Value) -> Result<Value, AdapterError> {
    to_messages_request(&canonical(v), "claude-up").map(|r| serde_json::to_value(r).unwrap())
}

#[test]
fn builds_http_request_with_key_version_and_url() {
    let target = Target {
        base_url: "https://api.anthropic.com/".into(),
        model: "claude-sonnet-4-5".into(),
        api_key: Some("sk-ant-upstream".into()),
        headers: vec![(
            http::HeaderName::from_static("anthropic-beta"),
            http::HeaderValue::from_static("prompt-caching-2024-07-31"),
        )],
        ..Target::default()
    };
    let req = canonical(
        json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    );
    let up = AnthropicAdapter.chat_request(&req, &target).unwrap();
    assert_eq!(up.method, http::Method::POST);
    assert_eq!(up.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(up.headers["x-api-key"], "sk-ant-upstream");
    assert!(up.headers["x-api-key"].is_sensitive());
    assert_eq!(up.headers["anthropic-version"], "2023-06-01");
    assert_eq!(up.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(up.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "claude-sonnet-4-5", "max_tokens": DEFAULT_MAX_TOKENS, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]})
    );

    let target = Target {
        base_url: "https://gateway.example/anthropic/v1".into(),
        api_version: Some("2024-01-01".into()),
        ..target
    };
    let up = AnthropicAdapter.chat_request(&req, &target).unwrap();
    assert_eq!(up.url, "https://gateway.example/anthropic/v1/messages");
    assert_eq!(up.headers["anthropic-version"], "2024-01-01");
}

#[test]
fn translates_system_turns_images_tools_and_results() {
    let out = translate(json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "high"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                   "parameters": {"properties": {"city": {"type": "string"}}}}},
                  {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "max_completion_tokens": 300, "max_tokens": 100,
        "temperature": 1.7, "top_p": 0.9, "top_k": 40,
        "stop": "END", "user": "u-42", "seed": 7, "frequency_penalty": 0.5
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-up",
            "system": "You are terse.\n\nUse metric units.",
            "max_tokens": 300, "temperature": 1.0, "top_p": 0.9, "top_k": 40,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-42"},
            "tools": [{"name": "get_weather", "description": "Weather",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                      {"name": "noop", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Rome?"},
                    {"type": "text", "text": "And this picture:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                    {"type": "text", "text": "Thanks"}
                ]}
            ]
        })
    );
}

#[test]
fn system_parts_keep_cache_control_and_thinking_passes() {
    let out = translate(json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Long book…", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello", "reasoning_content": "unsigned, dropped",
             "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                 {"type": "thinking", "thinking": "unsigned", "signature": ""}]},
            {"role": "user", "content": "again"}
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }))
    .unwrap();
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "Long book…", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "Hello"}])
    );
}

#[test]
fn tool_choice_and_parallel_mapping() {
    let base = |choice: Value| {
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice})
    };
    for (choice, expected) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        assert_eq!(translate(base(choice)).unwrap()["tool_choice"], expected);
    }
    assert!(matches!(
        translate(base(json!("sometimes"))),
        Err(AdapterError::InvalidRequest(_))
    ));
    let mut req = base(Value::Null);
    req.as_object_mut().unwrap().remove("tool_choice");
    req["parallel_tool_calls"] = json!(false);
    assert_eq!(
        translate(req).unwrap()["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn refuses_what_anthropic_cannot_do() {
    let with = |k: &str, v: Value| {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        r[k] = v;
        translate(r)
    };
    let unsupported =
        |r: Result<Value, AdapterError>| matches!(r, Err(AdapterError::Unsupported(_)));
    assert!(unsupported(with("n", json!(2))));
    assert!(with("n", json!(1)).is_ok());
    assert!(unsupported(with("logprobs", json!(true))));
    assert!(with("logprobs", json!(false)).is_ok());
    assert!(unsupported(with(
        "response_format",
        json!({"type": "json_object"})
    )));
    assert!(unsupported(with(
        "response_format",
        json!({"type": "json_schema", "json_schema": {}})
    )));
    assert!(with("response_format", json!({"type": "text"})).is_ok());
    let msg = |m: Value| translate(json!({"model": "m", "messages": [m]}));
    assert!(unsupported(msg(
        json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]})
    )));
    assert!(unsupported(msg(
        json!({"role": "function", "name": "f", "content": "x"})
    )));
    assert!(matches!(
        msg(json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]})),
        Err(AdapterError::InvalidRequest(m)) if m.contains("not valid JSON")
    ));
    assert!(matches!(
        msg(
            json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]})
        ),
        Err(AdapterError::InvalidRequest(_))
    ));
    assert!(matches!(
        msg(json!({"role": "tool", "content": "x"})),
        Err(AdapterError::InvalidRequest(_))
    ));
    assert!(matches!(
        msg(
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]})
        ),
        Err(AdapterError::InvalidRequest(_))
    ));
}
