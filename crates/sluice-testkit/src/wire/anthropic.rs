//! Anthropic Messages wire: the `message` object with `text` / `tool_use`
//! content blocks, the documented stream event sequence (`message_start`,
//! `content_block_start`, `ping`, `content_block_delta`*,
//! `content_block_stop`, `message_delta`, `message_stop`, each with its
//! `event:` line) and `{"type":"error","error":{..}}` error bodies.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{Answer, Call};
use crate::script::{split_pieces, Finish, MockUsage, Reply, Script};

/// Answers `POST /v1/messages`.
pub(crate) fn messages(call: &Call<'_>) -> Answer {
    let request_id = format!("req_mock{}", call.seq);
    let answer = match error_answer(call.script, &request_id) {
        Some(error) => error,
        None if call.stream => Answer::sse(events(call)),
        None => Answer::json(200, &message(call)),
    };
    answer.header("request-id", request_id)
}

fn stop_reason(script: &Script) -> &'static str {
    match (&script.reply, script.finish) {
        (_, Finish::Length) => "max_tokens",
        (Reply::ToolCall { .. }, Finish::Natural) => "tool_use",
        _ => "end_turn",
    }
}

fn tool_use_id(call: &Call<'_>) -> String {
    format!("toolu_mock{}", call.seq)
}

/// `usage` with the given `output_tokens`; `input_tokens` excludes cache reads.
fn usage(u: MockUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached,
        "output_tokens": output,
        "service_tier": "standard"
    })
}

fn content(call: &Call<'_>) -> Value {
    match &call.script.reply {
        Reply::ToolCall { name, arguments } => json!([{
            "type": "tool_use",
            "id": tool_use_id(call),
            "name": name,
            "input": arguments
        }]),
        Reply::Text(text) => json!([{"type": "text", "text": text}]),
        _ => json!([]),
    }
}

fn message(call: &Call<'_>) -> Value {
    json!({
        "id": format!("msg_mock{}", call.seq),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content(call),
        "stop_reason": stop_reason(call.script),
        "stop_sequence": null,
        "usage": usage(call.script.usage, call.script.usage.output)
    })
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn events(call: &Call<'_>) -> Vec<Bytes> {
    let script = call.script;
    let mut out = Vec::new();
    let start = json!({
        "id": format!("msg_mock{}", call.seq),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
        "usage": usage(script.usage, 1)
    });
    out.push(event(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    ));

    let (block, deltas): (Value, Vec<Value>) = match &script.reply {
        Reply::ToolCall { name, arguments } => {
            let block =
                json!({"type": "tool_use", "id": tool_use_id(call), "name": name, "input": {}});
            // The API opens a tool input with an empty fragment.
            let mut pieces = vec![String::new()];
            pieces.extend(split_pieces(&arguments.to_string()));
            let deltas = pieces
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect();
            (block, deltas)
        }
        reply => {
            let text = match reply {
                Reply::Text(text) => text.as_str(),
                _ => "",
            };
            let deltas = split_pieces(text)
                .into_iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect();
            (json!({"type": "text", "text": ""}), deltas)
        }
    };
    out.push(event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
    ));
    out.push(event("ping", &json!({"type": "ping"})));
    for delta in deltas {
        out.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    out.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(script), "stop_sequence": null},
            "usage": {"output_tokens": script.usage.output}
        }),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}

/// The error type Anthropic uses for `status`.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn error_message(status: u16) -> &'static str {
    match status {
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "The requested resource could not be found.",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "Number of request tokens has exceeded your per-minute rate limit.",
        529 => "Overloaded",
        s if s >= 500 => "Internal server error",
        _ => "Invalid request.",
    }
}

fn error_body(kind: &str, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id
    })
}

fn error_answer(script: &Script, request_id: &str) -> Option<Answer> {
    let answer = match &script.reply {
        Reply::Text(_) | Reply::ToolCall { .. } => return None,
        Reply::Error { status, body } => Answer::json(*status, body),
        Reply::RateLimited { retry_after_secs } => Answer::json(
            429,
            &error_body("rate_limit_error", error_message(429), request_id),
        )
        .header("retry-after", retry_after_secs.to_string())
        .header("anthropic-ratelimit-requests-limit", "50")
        .header("anthropic-ratelimit-requests-remaining", "0"),
        Reply::ContextLength => Answer::json(
            400,
            &error_body(
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
                request_id,
            ),
        ),
        Reply::Status(status) => Answer::json(
            *status,
            &error_body(error_type(*status), error_message(*status), request_id),
        ),
    };
    Some(answer)
}
