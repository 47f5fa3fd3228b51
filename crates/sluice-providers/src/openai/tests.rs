//! OpenAI / Azure adapter tests over fixtures from OpenAI's API reference.

use super::*;
use http::HeaderValue;
use sluice_types::{ChatChunk, FinishReason, Message, Role};

const STREAM: &str = include_str!("../../tests/fixtures/openai/stream_tool_call.sse");
const RESPONSE: &str = include_str!("../../tests/fixtures/openai/response.json");

fn target() -> Target {
    Target {
        base_url: "https://api.example.com/v1/".into(),
        model: "gpt-4o-mini".into(),
        api_key: Some("sk-upstream".into()),
        ..Target::default()
    }
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        model: "smart".into(),
        messages: vec![Message::text(Role::User, "hi")],
        stream: Some(stream),
        ..ChatRequest::default()
    }
}

#[test]
fn builds_openai_request_with_upstream_model_and_bearer() {
    let up = OpenAiAdapter::new(Flavor::OpenAi)
        .chat_request(&request(true), &target())
        .unwrap();
    assert_eq!(up.url, "https://api.example.com/v1/chat/completions");
    assert_eq!(up.headers["authorization"], "Bearer sk-upstream");
    let body: serde_json::Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn builds_azure_request_with_deployment_path_and_api_key() {
    let mut t = target();
    t.base_url = "https://myres.openai.azure.com".into();
    t.api_version = Some("2024-10-21".into());
    let up = OpenAiAdapter::new(Flavor::Azure)
        .chat_request(&request(false), &t)
        .unwrap();
    assert_eq!(up.url, "https://myres.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21");
    assert_eq!(up.headers["api-key"], "sk-upstream");
    assert!(up.headers.get("authorization").is_none());
}

#[test]
fn parses_documented_response() {
    let r = OpenAiAdapter::new(Flavor::OpenAi)
        .chat_response(RESPONSE.as_bytes())
        .unwrap();
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.usage.unwrap().total_tokens, 29);
}

fn decode(splits: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), AdapterError>, TokenUsageOut) {
    let mut d = OpenAiAdapter::new(Flavor::OpenAi).stream_decoder();
    let mut out = Vec::new();
    for s in splits {
        d.feed(s, &mut out).unwrap();
    }
    let fin = d.finish(&mut out);
    (out, fin, d.usage())
}
type TokenUsageOut = sluice_types::TokenUsage;

#[test]
fn decodes_streamed_tool_call_in_any_split() {
    let (whole, fin, usage) = decode(&[STREAM.as_bytes()]);
    fin.unwrap();
    assert_eq!(whole.len(), 5);
    assert_eq!(usage.input, 82);
    assert_eq!(usage.output, 17);
    let args: String = whole
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .filter_map(|t| t.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{\"location\": \"Paris\"}");
    for cut in (1..STREAM.len()).step_by(7) {
        let (a, b) = STREAM.as_bytes().split_at(cut);
        assert_eq!(decode(&[a, b]).0, whole);
    }
}

#[test]
fn stream_cut_before_done_is_truncated() {
    let cut = STREAM.find("data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap();
    let (_, fin, _) = decode(&[&STREAM.as_bytes()[..cut]]);
    assert_eq!(fin, Err(AdapterError::Truncated));
}

#[test]
fn error_event_mid_stream_is_an_error() {
    let mut d = OpenAiAdapter::new(Flavor::OpenAi).stream_decoder();
    let mut out = Vec::new();
    let err = d
        .feed(
            b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err, AdapterError::StreamError("overloaded".into()));
}

#[test]
fn classifies_errors() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    let e = classify(StatusCode::TOO_MANY_REQUESTS, &h, br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#);
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(2)));
    assert_eq!(e.message, "Rate limit reached");
    let e = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#);
    assert_eq!(e.class, ErrorClass::ContextLength);
}

#[test]
fn anthropic_only_fields_are_not_sent_to_openai() {
    let raw = r#"{"model":"m","thinking":{"type":"enabled","budget_tokens":1024},"top_k":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":"x","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"}]}],"tools":[{"type":"function","function":{"name":"f","cache_control":{"type":"ephemeral"}}}]}"#;
    let req: ChatRequest = serde_json::from_str(raw).unwrap();
    let up = OpenAiAdapter::new(Flavor::OpenAi)
        .chat_request(&req, &target())
        .unwrap();
    let body = String::from_utf8(up.body.to_vec()).unwrap();
    assert!(
        !body.contains("cache_control") && !body.contains("thinking"),
        "{body}"
    );
    assert!(
        body.contains("\"top_k\":5"),
        "vLLM and others accept top_k: {body}"
    );
}

#[test]
fn health_probes_get_each_providers_model_list_with_its_credential() {
    use crate::anthropic::AnthropicAdapter;
    use crate::gemini::GeminiAdapter;
    let t = target();
    let openai = OpenAiAdapter::new(Flavor::OpenAi)
        .probe_request(&t, None)
        .unwrap();
    assert_eq!(
        (openai.method.as_str(), openai.url.as_str()),
        ("GET", "https://api.example.com/v1/models")
    );
    assert_eq!(openai.headers["authorization"], "Bearer sk-upstream");
    assert!(openai.body.is_empty());
    let azure = Target {
        base_url: "https://res.openai.azure.com".into(),
        api_version: Some("2024-10-21".into()),
        ..target()
    };
    let up = OpenAiAdapter::new(Flavor::Azure)
        .probe_request(&azure, None)
        .unwrap();
    assert_eq!(
        up.url,
        "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
    );
    assert_eq!(up.headers["api-key"], "sk-upstream");
    let anthropic = Target {
        base_url: "https://api.anthropic.com".into(),
        ..target()
    };
    let up = AnthropicAdapter::new()
        .probe_request(&anthropic, None)
        .unwrap();
    assert_eq!(up.url, "https://api.anthropic.com/v1/models");
    assert_eq!(up.headers["x-api-key"], "sk-upstream");
    assert!(up.headers.contains_key("anthropic-version"));
    let gemini = Target {
        base_url: "https://generativelanguage.googleapis.com".into(),
        ..target()
    };
    let up = GeminiAdapter::new().probe_request(&gemini, None).unwrap();
    assert_eq!(
        up.url,
        "https://generativelanguage.googleapis.com/v1beta/models"
    );
    assert_eq!(up.headers["x-goog-api-key"], "sk-upstream");
    // A configured path replaces the default.
    let up = OpenAiAdapter::new(Flavor::OpenAi)
        .probe_request(&t, Some("/health"))
        .unwrap();
    assert_eq!(up.url, "https://api.example.com/v1/health");
}
