//! Anthropic Messages API: the upstream adapter (canonical OpenAI-shaped
//! request → `POST /v1/messages`, and its answer, stream and errors back) and
//! the inbound translator for clients that speak the Anthropic format to sluice.
//!
//! | file | what |
//! | --- | --- |
//! | `request.rs` | canonical [`ChatRequest`] → [`MessagesRequest`] |
//! | `response.rs` | [`MessagesResponse`] → canonical [`ChatResponse`]; stop reasons and usage |
//! | `stream.rs` | Anthropic SSE → canonical chunks ([`AnthropicStreamDecoder`]) |
//! | `inbound.rs` | the inverse: Anthropic-format client request in, Anthropic answer out |
//! | `encoder.rs` | canonical chunks → Anthropic SSE for such clients ([`inbound::StreamEncoder`]) |
//!
//! Fields kept for same-family round trips travel in the canonical shapes'
//! `extra` maps: `cache_control` on text parts and on tool definitions, the
//! assistant message's `thinking_blocks` (signed thinking blocks, LiteLLM's
//! convention) and the request's `thinking` and `top_k`.

mod encoder;
pub mod inbound;
mod request;
mod response;
mod stream;

use http::{HeaderMap, HeaderValue, StatusCode};
use sluice_types::anthropic::{ErrorBody, MessagesRequest, MessagesResponse};
use sluice_types::{ChatRequest, ChatResponse};

pub use request::{to_messages_request, DEFAULT_MAX_TOKENS};
pub use response::{finish_reason, to_chat_response, token_usage};
pub use stream::AnthropicStreamDecoder;

use crate::{
    error_message, retry_after, Adapter, AdapterError, ErrorClass, StreamDecoder, Target,
    UpstreamError, UpstreamRequest,
};

/// The `anthropic-version` header sent when the target sets no `api_version`.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";

/// Adapter for Anthropic's Messages API.
///
/// The URL is `{base_url}/v1/messages` (a `base_url` that already ends in
/// `/v1` gets only `/messages`). Headers: `x-api-key` from the target's key,
/// `anthropic-version` from its `api_version` or [`DEFAULT_API_VERSION`] (a
/// `anthropic-version` in the target's `headers` wins), then the target's
/// headers (e.g. `anthropic-beta`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicAdapter;

impl AnthropicAdapter {
    pub fn new() -> Self {
        AnthropicAdapter
    }
}

fn messages_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// Adds the credential and `anthropic-version`.
fn authorized(mut up: UpstreamRequest, target: &Target) -> Result<UpstreamRequest, AdapterError> {
    if let Some(key) = &target.api_key {
        up.set_secret_header("x-api-key", key)?;
    }
    if !up.headers.contains_key("anthropic-version") {
        let version = target.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        let value = HeaderValue::from_str(version).map_err(|_| {
            AdapterError::InvalidRequest("api_version is not a valid header value".into())
        })?;
        up.headers.insert("anthropic-version", value);
    }
    Ok(up)
}

impl Adapter for AnthropicAdapter {
    /// See [`to_messages_request`] for the mapping, its defaults
    /// (`max_tokens` [`DEFAULT_MAX_TOKENS`]) and what is refused.
    fn chat_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        let body: MessagesRequest = to_messages_request(req, &target.model)?;
        let body =
            serde_json::to_vec(&body).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        let up = UpstreamRequest::post_json(messages_url(&target.base_url), body, target);
        authorized(up, target)
    }

    /// `GET {base_url}/v1/models`.
    fn probe_request(
        &self,
        target: &Target,
        path: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError> {
        let base = target.base_url.trim_end_matches('/');
        let url = match path {
            Some(p) => [base, p].concat(),
            None if base.ends_with("/v1") => [base, "/models"].concat(),
            None => [base, "/v1/models"].concat(),
        };
        authorized(UpstreamRequest::get(url, target), target)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, AdapterError> {
        let resp: MessagesResponse =
            serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))?;
        Ok(to_chat_response(resp))
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicStreamDecoder::default())
    }

    fn classify_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> UpstreamError {
        classify(status, headers, body)
    }
}

/// Classifies an Anthropic error answer: by status first, then by the body's
/// `error.type` (`overloaded_error` → overloaded whatever the status,
/// `rate_limit_error` → rate limited, `authentication_error` /
/// `permission_error` → auth, an `invalid_request_error` about the prompt's
/// length or the context window → context length). `retry-after` is honoured.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    let mut class = ErrorClass::from_status(status);
    if let Ok(err) = serde_json::from_slice::<ErrorBody>(body) {
        let message = err.error.message.to_ascii_lowercase();
        match err.error.kind.as_str() {
            "overloaded_error" => class = ErrorClass::Overloaded,
            "rate_limit_error" => class = ErrorClass::RateLimited,
            "authentication_error" | "permission_error" => class = ErrorClass::Auth,
            "request_too_large" => class = ErrorClass::ContextLength,
            "invalid_request_error"
                if message.contains("prompt is too long")
                    || message.contains("context window")
                    || message.contains("context length") =>
            {
                class = ErrorClass::ContextLength
            }
            _ => {}
        }
    }
    let mut err = UpstreamError::new(class, Some(status), error_message(body));
    err.retry_after = retry_after(headers);
    err
}

#[cfg(test)]
mod tests;
