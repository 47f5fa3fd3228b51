//! Gemini answer tests over Google's documented and recorded answers
//! (provenance in `tests/fixtures/gemini/README.md`): non-streamed responses,
//! error classification and embeddings.

use http::HeaderValue;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_types::ChatResponse;

use super::tests::target;
use super::*;

/// Comparable form: `created` zeroed, generated ids replaced, tool arguments
/// re-serialised (so key order does not depend on serde_json features).
fn normalize(mut r: ChatResponse) -> ChatResponse {
    r.created = 0;
    if r.id.starts_with("gen-") {
        r.id = "<generated>".into();
    }
    for c in &mut r.choices {
        for t in c.message.tool_calls.iter_mut().flatten() {
            let args: Value = serde_json::from_str(&t.function.arguments).unwrap();
            t.function.arguments = args.to_string();
        }
    }
    r
}

#[test]
fn parses_documented_responses() {
    let cases = [
        (
            "thinking",
            fixture!("response_thinking.gemini.json"),
            fixture!("response_thinking.expected.json"),
        ),
        (
            "function_call",
            fixture!("response_function_call.gemini.json"),
            fixture!("response_function_call.expected.json"),
        ),
        (
            "safety",
            fixture!("response_safety.gemini.json"),
            fixture!("response_safety.expected.json"),
        ),
        (
            "blocked",
            fixture!("response_blocked.gemini.json"),
            fixture!("response_blocked.expected.json"),
        ),
    ];
    for (name, input, expected) in cases {
        let actual = GeminiAdapter.chat_response(input.as_bytes()).unwrap();
        let expected: ChatResponse = serde_json::from_str(expected).unwrap();
        assert_eq!(normalize(actual), normalize(expected), "case {name}");
    }
}

#[test]
fn function_call_ids_are_unique_across_candidates() {
    let body = json!({"candidates": [
        {"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
            {"functionCall": {"name": "a", "args": {"x": 1}}}, {"functionCall": {"name": "b"}}]}},
        {"index": 1, "finishReason": "MAX_TOKENS", "content": {"role": "model", "parts": [
            {"text": "partial"}, {"functionCall": {"name": "a", "args": {}}}]}}
    ]});
    let r = GeminiAdapter
        .chat_response(body.to_string().as_bytes())
        .unwrap();
    let ids: Vec<&str> = r
        .choices
        .iter()
        .flat_map(|c| c.message.tool_calls.iter().flatten())
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(ids, ["call_0", "call_1", "call_2"]);
    assert_eq!(
        r.choices[0].message.tool_calls.as_ref().unwrap()[1]
            .function
            .arguments,
        "{}"
    );
    assert_eq!(
        r.choices[1].finish_reason,
        Some(sluice_types::FinishReason::Length)
    );
    assert!(r.id.starts_with("gen-"));
}

#[test]
fn maps_usage_with_cache_and_thoughts() {
    let u = types::UsageMetadata {
        prompt_token_count: 100,
        candidates_token_count: 10,
        cached_content_token_count: 60,
        thoughts_token_count: 5,
        ..types::UsageMetadata::default()
    };
    let usage = response::token_usage(&u).to_openai();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (100, 15, 115)
    );
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, 60);
    assert_eq!(usage.completion_tokens_details.unwrap().reasoning_tokens, 5);
}

#[test]
fn classifies_documented_errors() {
    use ErrorClass::*;
    let none = HeaderMap::new();
    let cases: [(u16, &str, ErrorClass, Option<u64>); 5] = [
        (
            429,
            fixture!("error_429_retry_delay.json"),
            RateLimited,
            Some(53),
        ),
        (503, fixture!("error_503_overloaded.json"), Overloaded, None),
        (
            403,
            fixture!("error_403_permission_denied.json"),
            Auth,
            None,
        ),
        (
            400,
            fixture!("error_400_context_length.json"),
            ContextLength,
            None,
        ),
        (400, fixture!("error_400_api_key_invalid.json"), Auth, None),
    ];
    for (status, body, class, retry) in cases {
        let e = classify(
            StatusCode::from_u16(status).unwrap(),
            &none,
            body.as_bytes(),
        );
        assert_eq!(e.class, class, "{body}");
        assert_eq!(e.retry_after, retry.map(Duration::from_secs), "{body}");
        assert_eq!(e.status, Some(StatusCode::from_u16(status).unwrap()));
    }
    let e = classify(
        StatusCode::SERVICE_UNAVAILABLE,
        &none,
        fixture!("error_503_overloaded.json").as_bytes(),
    );
    assert_eq!(
        e.message,
        "The model is overloaded. Please try again later."
    );
    assert!(e.class.retryable());
}

#[test]
fn classifies_other_error_shapes() {
    let none = HeaderMap::new();
    let bad = br#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified\n","status":"INVALID_ARGUMENT"}}"#;
    assert_eq!(
        classify(StatusCode::BAD_REQUEST, &none, bad).class,
        ErrorClass::BadRequest
    );
    let timeout =
        br#"[{"error":{"code":504,"message":"Deadline expired","status":"DEADLINE_EXCEEDED"}}]"#;
    let e = classify(StatusCode::GATEWAY_TIMEOUT, &none, timeout);
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::Timeout, "Deadline expired")
    );
    let e = classify(StatusCode::BAD_GATEWAY, &none, b"<html>bad gateway</html>");
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::ServerError, "<html>bad gateway</html>")
    );

    // A retry-after header wins over the body's RetryInfo.
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    let body = fixture!("error_429_retry_delay.json").replace("\"53s\"", "\"1.5s\"");
    let e = classify(StatusCode::TOO_MANY_REQUESTS, &h, body.as_bytes());
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    let e = classify(StatusCode::TOO_MANY_REQUESTS, &none, body.as_bytes());
    assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
}

fn embeddings(json: Value) -> EmbeddingsRequest {
    serde_json::from_value(json).unwrap()
}

#[test]
fn builds_and_parses_documented_embeddings() {
    let mut t = target();
    t.model = "embedding-001".into();
    let req = embeddings(serde_json::from_str(fixture!("embeddings_request.openai.json")).unwrap());
    let up = GeminiAdapter.embeddings_request(&req, &t).unwrap();
    assert_eq!(
        up.url,
        "https://generativelanguage.googleapis.com/v1beta/models/embedding-001:batchEmbedContents"
    );
    assert_eq!(up.headers["x-goog-api-key"], "AIza-upstream");
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    let expected: Value = serde_json::from_str(fixture!("embeddings_request.gemini.json")).unwrap();
    assert_eq!(body, expected);

    let parsed = GeminiAdapter
        .embeddings_response(fixture!("embeddings_response.gemini.json").as_bytes())
        .unwrap();
    let expected: EmbeddingsResponse =
        serde_json::from_str(fixture!("embeddings_response.expected.json")).unwrap();
    assert_eq!(parsed, expected);
}

#[test]
fn embeddings_input_forms() {
    let t = target();
    let one = embeddings(json!({"model": "e", "input": "Hello world", "dimensions": 256}));
    let body: Value =
        serde_json::from_slice(&GeminiAdapter.embeddings_request(&one, &t).unwrap().body).unwrap();
    assert_eq!(
        body,
        json!({"requests": [{"model": "models/gemini-2.5-flash", "content": {"parts": [{"text": "Hello world"}]}, "outputDimensionality": 256}]})
    );
    for (input, unsupported) in [
        (json!([1, 2, 3]), true),
        (json!([[1, 2], [3]]), true),
        (json!([]), false),
        (json!(7), false),
    ] {
        let err = GeminiAdapter
            .embeddings_request(&embeddings(json!({"model": "e", "input": input})), &t)
            .unwrap_err();
        assert_eq!(
            matches!(err, AdapterError::Unsupported(_)),
            unsupported,
            "{err}"
        );
    }
}
