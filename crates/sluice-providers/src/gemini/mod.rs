//! Google Gemini API adapter (`generativelanguage.googleapis.com`, `v1beta`):
//! `generateContent` / `streamGenerateContent?alt=sse` for chat,
//! `batchEmbedContents` for embeddings, and Google's error bodies.
//!
//! Translation lives in `request.rs` (canonical → Gemini), `response.rs` and
//! `stream.rs` (Gemini → canonical), `schema.rs` (JSON Schema → Gemini's
//! OpenAPI subset); the wire shapes in `types.rs`.
//!
//! Behaviour worth knowing:
//! - Gemini has no call ids: answers get `call_<n>` ids, unique within one
//!   answer; tool results are matched back to a function name through the
//!   assistant turn that made the call.
//! - Replayed assistant tool calls carry [`SKIP_THOUGHT_SIGNATURE`], the
//!   signature Google documents for calls whose real one is unknown (Gemini 3
//!   rejects a replayed call without one).
//! - Streams: finish reasons and the usage chunk are emitted when the body
//!   ends (see `stream.rs`).
//! - Dropped: `user`, `logprobs`, `parallel_tool_calls`, `reasoning_effort`
//!   and other extras; mapped extras are `n`, `seed`, `top_k`,
//!   `presence_penalty`, `frequency_penalty`.

mod request;
mod response;
mod schema;
mod stream;
pub mod types;

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use sluice_types::{ChatRequest, ChatResponse, Embedding, EmbeddingsRequest, EmbeddingsResponse};

pub use request::SKIP_THOUGHT_SIGNATURE;
pub use stream::GeminiStreamDecoder;

use crate::{
    error_message, retry_after, Adapter, AdapterError, ErrorClass, StreamDecoder, Target,
    UpstreamError, UpstreamRequest,
};
use types::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest,
    ErrorStatus, Part,
};

/// Adapter for the Gemini API, authenticated with `x-goog-api-key`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiAdapter;

impl GeminiAdapter {
    pub fn new() -> Self {
        GeminiAdapter
    }

    /// `{base}/v1beta/models/{model}:{method}`.
    fn url(target: &Target, method: &str) -> String {
        let base = target.base_url.trim_end_matches('/');
        let model = target.model.trim_start_matches("models/");
        format!("{base}/v1beta/models/{model}:{method}")
    }

    fn post(url: String, body: Vec<u8>, target: &Target) -> Result<UpstreamRequest, AdapterError> {
        Self::authorized(UpstreamRequest::post_json(url, body, target), target)
    }

    fn authorized(
        mut up: UpstreamRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        if let Some(key) = &target.api_key {
            up.set_secret_header("x-goog-api-key", key)?;
        }
        Ok(up)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, AdapterError> {
    serde_json::to_vec(value).map_err(|e| AdapterError::InvalidRequest(e.to_string()))
}

impl Adapter for GeminiAdapter {
    /// `GET {base_url}/v1beta/models`.
    fn probe_request(
        &self,
        target: &Target,
        path: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError> {
        let base = target.base_url.trim_end_matches('/');
        let url = [base, path.unwrap_or("/v1beta/models")].concat();
        Self::authorized(UpstreamRequest::get(url, target), target)
    }

    fn chat_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        let body = to_json(&request::build(req)?)?;
        let method = if req.is_stream() {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        Self::post(Self::url(target, method), body, target)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, AdapterError> {
        response::parse(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(GeminiStreamDecoder::default())
    }

    fn classify_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> UpstreamError {
        classify(status, headers, body)
    }

    fn embeddings_request(
        &self,
        req: &EmbeddingsRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        let texts: Vec<&str> = match &req.input {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) if items.is_empty() => {
                return Err(AdapterError::InvalidRequest(
                    "embeddings input is empty".into(),
                ))
            }
            Value::Array(items) => match items.iter().map(Value::as_str).collect() {
                Some(texts) => texts,
                None => {
                    return Err(AdapterError::Unsupported(
                        "token-id embeddings input".into(),
                    ))
                }
            },
            _ => {
                return Err(AdapterError::InvalidRequest(
                    "embeddings input must be a string or an array of strings".into(),
                ))
            }
        };
        let model = format!("models/{}", target.model.trim_start_matches("models/"));
        let dims = req.extra.get("dimensions").and_then(Value::as_u64);
        let body = BatchEmbedContentsRequest {
            requests: texts
                .into_iter()
                .map(|t| EmbedContentRequest {
                    model: model.clone(),
                    content: Content {
                        role: None,
                        parts: vec![Part::text(t)],
                    },
                    output_dimensionality: dims.map(|d| d as u32),
                })
                .collect(),
        };
        Self::post(
            Self::url(target, "batchEmbedContents"),
            to_json(&body)?,
            target,
        )
    }

    fn embeddings_response(&self, body: &[u8]) -> Result<EmbeddingsResponse, AdapterError> {
        let resp: BatchEmbedContentsResponse =
            serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))?;
        Ok(EmbeddingsResponse {
            object: "list".into(),
            data: resp
                .embeddings
                .into_iter()
                .enumerate()
                .map(|(i, e)| Embedding {
                    object: "embedding".into(),
                    index: i as u32,
                    embedding: Value::from(e.values),
                })
                .collect(),
            model: String::new(),
            usage: None,
        })
    }
}

/// Classifies a Gemini error answer by its `google.rpc` status name, falling
/// back to the HTTP status.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    let err = parse_error(body);
    let mut class = ErrorClass::from_status(status);
    if let Some(e) = &err {
        match e.status.as_deref() {
            Some("RESOURCE_EXHAUSTED") => class = ErrorClass::RateLimited,
            Some("UNAVAILABLE") => class = ErrorClass::Overloaded,
            Some("DEADLINE_EXCEEDED") => class = ErrorClass::Timeout,
            Some("PERMISSION_DENIED" | "UNAUTHENTICATED") => class = ErrorClass::Auth,
            Some("INVALID_ARGUMENT") => {
                class = if has_reason(e, "API_KEY_INVALID") {
                    ErrorClass::Auth
                } else if is_context_length(&e.message) {
                    ErrorClass::ContextLength
                } else {
                    ErrorClass::BadRequest
                }
            }
            _ => {}
        }
    }
    let message = err
        .as_ref()
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error_message(body));
    let mut out = UpstreamError::new(class, Some(status), message);
    out.retry_after = retry_after(headers).or_else(|| err.as_ref().and_then(retry_delay));
    out
}

/// `{"error": …}`, or `[{"error": …}]` as the non-SSE stream endpoint sends it.
fn parse_error(body: &[u8]) -> Option<ErrorStatus> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error").or_else(|| v.pointer("/0/error"))?;
    serde_json::from_value(err.clone()).ok()
}

fn has_reason(e: &ErrorStatus, reason: &str) -> bool {
    e.details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some(reason))
}

fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "token count",
        "number of tokens",
        "too many tokens",
        "context length",
        "context window",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// `google.rpc.RetryInfo.retryDelay`, a protobuf Duration such as `"7s"` or
/// `"1.203608125s"`.
fn retry_delay(e: &ErrorStatus) -> Option<Duration> {
    e.details.iter().find_map(|d| {
        let secs = d.get("retryDelay")?.as_str()?.strip_suffix('s')?;
        let secs: f64 = secs.trim().parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    })
}

/// A fixture file of `tests/fixtures/gemini/`, embedded at compile time.
#[cfg(test)]
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/gemini/", $name))
    };
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_response;
#[cfg(test)]
mod tests_stream;
