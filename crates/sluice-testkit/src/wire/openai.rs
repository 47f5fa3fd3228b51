//! OpenAI wire: `chat.completion` objects, `chat.completion.chunk` streams
//! (role chunk, content or tool-call argument fragments, finish chunk,
//! optional usage chunk with `choices: []`, `data: [DONE]`), embeddings
//! lists, the models list and OpenAI / Azure OpenAI error bodies.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{data_event, embedding, Answer, Call, CREATED};
use crate::script::{split_pieces, Finish, MockUsage, Reply, Script};

/// Answers `POST /v1/chat/completions` (and Azure's deployment path).
pub(crate) fn chat(call: &Call<'_>, azure: bool) -> Answer {
    if let Some(error) = error_answer(call.script, &call.model, azure) {
        return error;
    }
    let include_usage = call
        .body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if call.stream {
        Answer::sse(chunks(call, include_usage))
    } else {
        Answer::json(200, &completion(call))
    }
}

fn completion_id(call: &Call<'_>) -> String {
    format!("chatcmpl-mock{}", call.seq)
}

fn tool_call_id(call: &Call<'_>) -> String {
    format!("call_mock{}", call.seq)
}

fn finish_reason(script: &Script) -> &'static str {
    match (&script.reply, script.finish) {
        (_, Finish::Length) => "length",
        (Reply::ToolCall { .. }, Finish::Natural) => "tool_calls",
        _ => "stop",
    }
}

fn usage(u: MockUsage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn completion(call: &Call<'_>) -> Value {
    let script = call.script;
    let message = match &script.reply {
        Reply::ToolCall { name, arguments } => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": tool_call_id(call),
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}
            }],
            "refusal": null,
            "annotations": []
        }),
        Reply::Text(text) => json!({
            "role": "assistant",
            "content": text,
            "refusal": null,
            "annotations": []
        }),
        _ => json!({"role": "assistant", "content": ""}),
    };
    json!({
        "id": completion_id(call),
        "object": "chat.completion",
        "created": CREATED,
        "model": call.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(script)
        }],
        "usage": usage(script.usage),
        "service_tier": "default",
        "system_fingerprint": "fp_mock"
    })
}

fn chunks(call: &Call<'_>, include_usage: bool) -> Vec<Bytes> {
    let id = completion_id(call);
    let chunk = |choices: Value, usage_value: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": call.model,
            "system_fingerprint": "fp_mock",
            "choices": choices
        });
        if include_usage {
            c["usage"] = usage_value.unwrap_or(Value::Null);
        }
        data_event(&c)
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);

    let mut events = Vec::new();
    match &call.script.reply {
        Reply::ToolCall { name, arguments } => {
            let first = json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "index": 0,
                    "id": tool_call_id(call),
                    "type": "function",
                    "function": {"name": name, "arguments": ""}
                }],
                "refusal": null
            });
            events.push(chunk(choice(first, Value::Null), None));
            for piece in split_pieces(&arguments.to_string()) {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                events.push(chunk(choice(delta, Value::Null), None));
            }
        }
        reply => {
            let role = json!({"role": "assistant", "content": "", "refusal": null});
            events.push(chunk(choice(role, Value::Null), None));
            let text = match reply {
                Reply::Text(text) => text.as_str(),
                _ => "",
            };
            for piece in split_pieces(text) {
                events.push(chunk(choice(json!({"content": piece}), Value::Null), None));
            }
        }
    }
    let finish = json!(finish_reason(call.script));
    events.push(chunk(choice(json!({}), finish), None));
    if include_usage {
        events.push(chunk(json!([]), Some(usage(call.script.usage))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Answers `POST /v1/embeddings`: one deterministic 8-float vector per input
/// (base64 of little-endian f32s when `encoding_format` is `base64`).
pub(crate) fn embeddings(call: &Call<'_>, azure: bool) -> Answer {
    if let Some(error) = error_answer(call.script, &call.model, azure) {
        return error;
    }
    let inputs: Vec<String> = match call.body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        _ => vec![String::new()],
    };
    let base64 = call.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding(input);
            let value = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": value})
        })
        .collect();
    let input_tokens = call.script.usage.input;
    Answer::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens}
        }),
    )
}

/// Answers `GET /v1/models`.
pub(crate) fn models() -> Answer {
    let data: Vec<Value> = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "system"}))
        .collect();
    Answer::json(200, &json!({"object": "list", "data": data}))
}

/// A 404 for a path no mock route serves.
pub(crate) fn no_route(method: &str, path: &str) -> Answer {
    let message = format!("mock upstream: no route for {method} {path}");
    Answer::json(
        404,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
    )
}

fn error_body(message: &str, kind: &str, param: Value, code: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The error answer of an error script, `None` for a success script.
fn error_answer(script: &Script, model: &str, azure: bool) -> Option<Answer> {
    let answer = match &script.reply {
        Reply::Text(_) | Reply::ToolCall { .. } => return None,
        Reply::Error { status, body } => Answer::json(*status, body),
        Reply::RateLimited { retry_after_secs: s } if azure => Answer::json(
            429,
            &json!({"error": {
                "code": "429",
                "message": format!("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier. Please retry after {s} seconds.")
            }}),
        )
        .header("retry-after", s.to_string())
        .header("retry-after-ms", (s * 1000).to_string()),
        Reply::RateLimited { retry_after_secs: s } => Answer::json(
            429,
            &error_body(
                &format!("Rate limit reached for {model} in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {s}s."),
                "requests",
                Value::Null,
                json!("rate_limit_exceeded"),
            ),
        )
        .header("retry-after", s.to_string())
        .header("x-ratelimit-limit-requests", "3")
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", format!("{s}s")),
        Reply::ContextLength => Answer::json(
            400,
            &error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                json!("messages"),
                json!("context_length_exceeded"),
            ),
        ),
        Reply::Status(status) => {
            let (message, kind, code) = match status {
                400 => ("Invalid request.", "invalid_request_error", Value::Null),
                401 => (
                    "Incorrect API key provided: sk-mock. You can find your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    json!("invalid_api_key"),
                ),
                403 => ("You are not allowed to sample from this model.", "invalid_request_error", Value::Null),
                404 => ("The model does not exist or you do not have access to it.", "invalid_request_error", json!("model_not_found")),
                429 => ("Rate limit reached for requests. Please try again later.", "requests", json!("rate_limit_exceeded")),
                503 => ("The engine is currently overloaded, please try again later.", "server_error", Value::Null),
                s if *s >= 500 => ("The server had an error while processing your request. Sorry about that!", "server_error", Value::Null),
                _ => ("Invalid request.", "invalid_request_error", Value::Null),
            };
            Answer::json(*status, &error_body(message, kind, Value::Null, code))
        }
    };
    Some(answer)
}
