//! Inbound translation: Anthropic-format client requests → canonical and
//! back, canonical answers → Anthropic answers.

use serde_json::{json, Value};
use sluice_types::anthropic::MessagesRequest;
use sluice_types::{ChatRequest, ChatResponse, Content, ContentPart, Role};

use super::*;
use crate::anthropic::inbound::{error_body, from_chat_response, to_chat_request};
use crate::anthropic::to_messages_request;

fn inbound(raw: &str) -> ChatRequest {
    to_chat_request(serde_json::from_str::<MessagesRequest>(raw).unwrap()).unwrap()
}

#[test]
fn documented_requests_round_trip_exactly() {
    for raw in [
        REQUEST_TOOL_RESULT,
        REQUEST_STREAM_TOOLS,
        REQUEST_VISION,
        REQUEST_CACHING,
    ] {
        let original: MessagesRequest = serde_json::from_str(raw).unwrap();
        let canonical = to_chat_request(original.clone()).unwrap();
        let back = to_messages_request(&canonical, &original.model).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::from_str::<Value>(raw).unwrap(),
            "{raw}"
        );
    }
}

#[test]
fn documented_tool_result_request_to_canonical() {
    let c = inbound(REQUEST_TOOL_RESULT);
    assert_eq!(c.max_tokens, Some(1024));
    assert_eq!(c.messages.len(), 3);
    assert_eq!(c.messages[0].role, Role::User);
    let a = &c.messages[1];
    assert_eq!(a.role, Role::Assistant);
    assert!(matches!(&a.content, Some(Content::Text(t)) if t.starts_with("<thinking>")));
    let call = &a.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    let t = &c.messages[2];
    assert_eq!(t.role, Role::Tool);
    assert_eq!(
        t.tool_call_id.as_deref(),
        Some("toolu_01A09q90qw90lq917835lq9")
    );
    assert_eq!(t.content, Some(Content::Text("15 degrees".into())));
    let tool = &c.tools.as_ref().unwrap()[0];
    assert_eq!(tool.function.name, "get_weather");
    assert_eq!(
        tool.function.parameters.as_ref().unwrap()["required"],
        json!(["location"])
    );
}

#[test]
fn documented_stream_images_and_caching_to_canonical() {
    let c = inbound(REQUEST_STREAM_TOOLS);
    assert_eq!(c.tool_choice, Some(json!("required")));
    assert!(c.is_stream() && c.include_usage());

    let c = inbound(REQUEST_VISION);
    let Some(Content::Parts(parts)) = &c.messages[0].content else {
        panic!("parts expected")
    };
    let urls: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::ImageUrl { image_url, .. } => Some(image_url.url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        urls,
        [
            "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ==",
            "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
        ]
    );

    let c = inbound(REQUEST_CACHING);
    assert_eq!(c.messages[0].role, Role::System);
    let Some(Content::Parts(parts)) = &c.messages[0].content else {
        panic!("system parts expected")
    };
    assert!(matches!(&parts[1], ContentPart::Text { extra, .. }
        if extra["cache_control"] == json!({"type": "ephemeral"})));
}

#[test]
fn canonical_round_trip_keeps_tool_calls_and_results() {
    let original: ChatRequest = serde_json::from_value(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\",\"days\":[1,2]}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "21C"}
        ],
        "max_tokens": 50, "stop": ["x", "y"], "user": "u", "tool_choice": "auto",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    }))
    .unwrap();
    let anthropic = to_messages_request(&original, "m").unwrap();
    let back = to_chat_request(anthropic).unwrap();
    assert_eq!(back.messages, original.messages);
    assert_eq!(back.tools, original.tools);
    assert_eq!(
        (back.max_tokens, back.stop, back.user, back.tool_choice),
        (
            original.max_tokens,
            original.stop,
            original.user,
            original.tool_choice
        )
    );
}

#[test]
fn tool_result_errors_images_and_refusals() {
    let c = inbound(
        &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": [
                {"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
            ]},
            {"type": "text", "text": "what now?"}
        ]}], "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}, "top_k": 3,
        "metadata": {"user_id": "u1"}, "stop_sequences": ["##"]})
        .to_string(),
    );
    assert_eq!(c.messages[0].role, Role::Tool);
    assert_eq!(
        c.messages[0].content,
        Some(Content::Text("Error: line 1\nline 2".into()))
    );
    assert_eq!(c.messages[1].role, Role::User);
    let Some(Content::Parts(parts)) = &c.messages[1].content else {
        panic!("parts expected")
    };
    assert!(
        matches!(&parts[0], ContentPart::ImageUrl { image_url, .. } if image_url.url == "data:image/png;base64,AA==")
    );
    assert!(matches!(&parts[1], ContentPart::Text { text, .. } if text == "what now?"));
    assert_eq!(c.extra["parallel_tool_calls"], json!(false));
    assert_eq!(c.extra["top_k"], json!(3));
    assert_eq!(c.user.as_deref(), Some("u1"));

    let refuse = |v: Value| {
        to_chat_request(serde_json::from_value(v).unwrap())
            .is_err_and(|e| matches!(e, AdapterError::Unsupported(_)))
    };
    assert!(refuse(
        json!({"model": "m", "max_tokens": 5, "messages": [],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]})
    ));
    assert!(refuse(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]})
    ));
}

fn canonical_answer(v: Value) -> ChatResponse {
    serde_json::from_value(v).unwrap()
}

#[test]
fn canonical_answer_to_anthropic() {
    let r = canonical_answer(json!({
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning_content": "thinking…",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{broken"}}
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 60}}
    }));
    let a = serde_json::to_value(from_chat_response(&r, "smart")).unwrap();
    assert_eq!(
        a,
        json!({
            "id": "msg_chatcmpl-123", "type": "message", "role": "assistant", "model": "smart",
            "content": [
                {"type": "thinking", "thinking": "thinking…", "signature": ""},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_raw": "{broken"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 40, "output_tokens": 20,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60}
        })
    );

    // An Anthropic answer survives canonical and back, signed thinking included.
    let up = AnthropicAdapter
        .chat_response(
            json!({"id": "msg_x", "type": "message", "role": "assistant", "model": "claude",
                   "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                               {"type": "text", "text": "Hi"}],
                   "stop_reason": "max_tokens", "stop_sequence": null,
                   "usage": {"input_tokens": 3, "output_tokens": 4}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
    let a = from_chat_response(&up, "smart");
    assert_eq!(a.id, "msg_x");
    assert_eq!(a.stop_reason.as_deref(), Some("max_tokens"));
    assert_eq!(
        serde_json::to_value(&a.content).unwrap(),
        json!([{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "Hi"}])
    );

    let empty = canonical_answer(
        json!({"id": "x", "choices": [{"index": 0, "finish_reason": "length",
        "message": {"role": "assistant", "content": null}}]}),
    );
    let a = from_chat_response(&empty, "m");
    assert_eq!(
        serde_json::to_value(&a.content).unwrap(),
        json!([{"type": "text", "text": ""}])
    );
    assert_eq!(a.stop_reason.as_deref(), Some("max_tokens"));
}

#[test]
fn error_body_has_the_documented_shape() {
    let v: Value = serde_json::from_slice(&error_body("not_found_error", "no such model")).unwrap();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model"}})
    );
}
