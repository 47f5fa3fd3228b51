//! Non-streamed answers and error classification.

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use sluice_types::{Content, FinishReason};

use super::*;
use crate::anthropic::classify;

#[test]
fn documented_text_response_to_canonical() {
    let r = AnthropicAdapter
        .chat_response(RESPONSE_TEXT.as_bytes())
        .unwrap();
    assert_eq!(r.id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.model, "claude-3-5-sonnet-20240620");
    let c = &r.choices[0];
    assert_eq!(
        c.message.content,
        Some(Content::Text("Hi! My name is Claude.".into()))
    );
    assert_eq!(c.finish_reason, Some(FinishReason::Stop));
    let u = r.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (2095, 503, 2598)
    );
}

#[test]
fn documented_tool_use_response_to_canonical() {
    let r = AnthropicAdapter
        .chat_response(RESPONSE_TOOL.as_bytes())
        .unwrap();
    let c = &r.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    assert!(c
        .message
        .content
        .as_ref()
        .unwrap()
        .joined_text()
        .starts_with("<thinking>I need to use get_weather"));
    let calls = c.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert_eq!(
        args,
        serde_json::json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    // The fixture has no usage: zeros, not an error.
    assert_eq!(r.usage.unwrap().total_tokens, 0);
}

#[test]
fn stop_reasons_thinking_and_cache_usage() {
    let body = serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
        ],
        "stop_reason": "max_tokens", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
    });
    let r = AnthropicAdapter
        .chat_response(&serde_json::to_vec(&body).unwrap())
        .unwrap();
    let m = &r.choices[0].message;
    assert_eq!(m.content, None, "tool calls without text: content is null");
    assert_eq!(m.reasoning_content.as_deref(), Some("Let me think."));
    let signed = Value::Array(body["content"].as_array().unwrap()[..2].to_vec());
    assert_eq!(m.extra["thinking_blocks"], signed);
    assert_eq!(m.tool_calls.as_ref().unwrap()[0].function.arguments, "{}");
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Length));
    let u = r.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.total_tokens), (125, 132));
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 100);
    for (stop, finish) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("pause_turn", FinishReason::Stop),
        ("refusal", FinishReason::ContentFilter),
        ("tool_use", FinishReason::ToolCalls),
    ] {
        assert_eq!(crate::anthropic::finish_reason(stop), finish, "{stop}");
    }
}

#[test]
fn malformed_answer_is_bad_response() {
    assert!(matches!(
        AnthropicAdapter.chat_response(b"{\"content\":[]}"),
        Err(AdapterError::BadResponse(_))
    ));
}

#[test]
fn classifies_documented_errors() {
    let cases: Vec<Value> = serde_json::from_str(ERRORS).unwrap();
    for case in cases {
        let status = StatusCode::from_u16(case["status"].as_u64().unwrap() as u16).unwrap();
        let body = serde_json::to_vec(&case["body"]).unwrap();
        let e = classify(status, &HeaderMap::new(), &body);
        assert_eq!(e.class.as_str(), case["class"], "{case}");
        assert_eq!(e.status, Some(status));
        assert_eq!(e.message, case["body"]["error"]["message"], "{case}");
    }
}

#[test]
fn classify_reads_retry_after_and_survives_non_json() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("7"));
    let e = AnthropicAdapter.classify_error(
        StatusCode::TOO_MANY_REQUESTS,
        &h,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
    );
    assert_eq!(e.class, crate::ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
    let e = classify(
        StatusCode::from_u16(529).unwrap(),
        &HeaderMap::new(),
        b"<html>busy</html>",
    );
    assert_eq!(e.class, crate::ErrorClass::Overloaded);
    assert_eq!(e.message, "<html>busy</html>");
}
