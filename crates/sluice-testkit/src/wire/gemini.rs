//! Gemini wire (Generative Language API): `GenerateContentResponse` objects
//! (`candidates[0].content.parts` with `text` or `functionCall`,
//! `finishReason`, `usageMetadata`, `modelVersion`, `responseId`), streams
//! of them (`alt=sse`: `data:` events ended by `\r\n\r\n` like the real API,
//! no `[DONE]`; without `alt=sse`: one JSON array), embeddings and
//! `{"error":{"code","message","status"}}` error bodies.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{embedding, Answer, AnswerBody, Call};
use crate::script::{split_pieces, Finish, MockUsage, Reply, Script};

/// Answers `:generateContent` (`stream == false`) and `:streamGenerateContent`.
pub(crate) fn generate(call: &Call<'_>, sse: bool) -> Answer {
    if let Some(error) = error_answer(call.script, &call.model) {
        return error;
    }
    if !call.stream {
        return Answer::json(
            200,
            &response(call, parts(call), true, call.script.usage.output),
        );
    }
    let responses = stream_responses(call);
    if sse {
        let events = responses
            .iter()
            .map(|r| Bytes::from(format!("data: {r}\r\n\r\n")))
            .collect();
        return Answer::sse(events);
    }
    let last = responses.len() - 1;
    let events = responses
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let open = if i == 0 { "[" } else { ",\r\n" };
            let close = if i == last { "]" } else { "" };
            Bytes::from(format!("{open}{r}{close}"))
        })
        .collect();
    Answer {
        body: AnswerBody::Events(events),
        ..Answer::json(200, &Value::Null)
    }
}

fn finish_reason(script: &Script) -> &'static str {
    match script.finish {
        Finish::Length => "MAX_TOKENS",
        Finish::Natural => "STOP",
    }
}

fn usage(u: MockUsage, output: u64) -> Value {
    let mut usage = json!({
        "promptTokenCount": u.input,
        "candidatesTokenCount": output,
        "totalTokenCount": u.input + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input}]
    });
    if u.cached > 0 {
        usage["cachedContentTokenCount"] = json!(u.cached);
    }
    usage
}

fn parts(call: &Call<'_>) -> Value {
    match &call.script.reply {
        Reply::ToolCall { name, arguments } => {
            json!([{"functionCall": {"name": name, "args": arguments}}])
        }
        Reply::Text(text) => json!([{"text": text}]),
        _ => json!([]),
    }
}

/// One `GenerateContentResponse`; `last` adds the finish reason.
fn response(call: &Call<'_>, parts: Value, last: bool, output: u64) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if last {
        candidate["finishReason"] = json!(finish_reason(call.script));
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage(call.script.usage, output),
        "modelVersion": call.model,
        "responseId": format!("mockresp{}", call.seq)
    })
}

/// A text reply in ~3-character pieces with cumulative usage (the last one
/// exact); a function call whole in one response, as Gemini sends it.
fn stream_responses(call: &Call<'_>) -> Vec<Value> {
    let output = call.script.usage.output;
    let Reply::Text(text) = &call.script.reply else {
        return vec![response(call, parts(call), true, output)];
    };
    let pieces = split_pieces(text);
    let n = pieces.len() as u64;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let done = i as u64 + 1;
            let cumulative = output * done / n;
            response(call, json!([{"text": piece}]), done == n, cumulative)
        })
        .collect()
}

/// Answers `:embedContent` (`batch == false`) and `:batchEmbedContents`.
pub(crate) fn embed(call: &Call<'_>, batch: bool) -> Answer {
    if let Some(error) = error_answer(call.script, &call.model) {
        return error;
    }
    let text_of = |request: &Value| -> String {
        request
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default()
    };
    if !batch {
        let values = embedding(&text_of(call.body));
        return Answer::json(200, &json!({"embedding": {"values": values}}));
    }
    let embeddings: Vec<Value> = call
        .body
        .get("requests")
        .and_then(Value::as_array)
        .map(|requests| {
            requests
                .iter()
                .map(|r| json!({"values": embedding(&text_of(r))}))
                .collect()
        })
        .unwrap_or_default();
    Answer::json(200, &json!({"embeddings": embeddings}))
}

/// Google's canonical status name for an HTTP status.
pub(crate) fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn error_message(status: u16, model: &str) -> String {
    match status {
        400 => "Request contains an invalid argument.".into(),
        401 => "Request had invalid authentication credentials.".into(),
        403 => "The caller does not have permission".into(),
        404 => format!("models/{model} is not found for API version v1beta, or is not supported for generateContent."),
        429 => "Resource has been exhausted (e.g. check quota).".into(),
        503 => "The model is overloaded. Please try again later.".into(),
        504 => "Deadline expired before operation could complete.".into(),
        _ => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".into(),
    }
}

fn error_body(status: u16, message: &str, details: Option<Value>) -> Value {
    let mut error = json!({"code": status, "message": message, "status": status_name(status)});
    if let Some(details) = details {
        error["details"] = details;
    }
    json!({ "error": error })
}

fn error_answer(script: &Script, model: &str) -> Option<Answer> {
    let answer = match &script.reply {
        Reply::Text(_) | Reply::ToolCall { .. } => return None,
        Reply::Error { status, body } => Answer::json(*status, body),
        Reply::RateLimited { retry_after_secs } => {
            let details = json!([
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
                    }]
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{retry_after_secs}s")
                }
            ]);
            let message = format!(
                "You exceeded your current quota, please check your plan and billing details. Please retry in {retry_after_secs}s."
            );
            Answer::json(429, &error_body(429, &message, Some(details)))
        }
        Reply::ContextLength => Answer::json(
            400,
            &error_body(
                400,
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                None,
            ),
        ),
        Reply::Status(status) => Answer::json(
            *status,
            &error_body(*status, &error_message(*status, model), None),
        ),
    };
    Some(answer)
}
