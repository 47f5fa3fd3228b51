//! OpenAI-compatible providers (OpenAI, vLLM, Ollama, Mistral, Groq, Together,
//! DeepSeek, OpenRouter…) and Azure OpenAI, which speaks the same body format
//! with a different URL and auth header.

mod stream;

use http::{HeaderMap, StatusCode};
use sluice_types::{
    ChatRequest, ChatResponse, Content, ContentPart, EmbeddingsRequest, EmbeddingsResponse,
    StreamOptions,
};

pub use stream::OpenAiStreamDecoder;

use crate::{
    error_message, retry_after, Adapter, AdapterError, ErrorClass, StreamDecoder, Target,
    UpstreamError, UpstreamRequest,
};

/// How the upstream wants to be addressed and authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{base}/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `{base}/openai/deployments/{model}/chat/completions?api-version=…`, `api-key`.
    Azure,
}

/// Adapter for OpenAI-format upstreams.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiAdapter {
    pub flavor: Flavor,
}

/// Azure's default `api-version` when the config gives none.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

impl OpenAiAdapter {
    pub fn new(flavor: Flavor) -> Self {
        OpenAiAdapter { flavor }
    }

    fn url(&self, target: &Target, op: &str) -> String {
        let base = target.base_url.trim_end_matches('/');
        match self.flavor {
            Flavor::OpenAi => [base, "/", op].concat(),
            Flavor::Azure => format!(
                "{base}/openai/deployments/{}/{op}?api-version={}",
                target.model,
                target
                    .api_version
                    .as_deref()
                    .unwrap_or(AZURE_DEFAULT_API_VERSION)
            ),
        }
    }

    fn post(
        &self,
        target: &Target,
        op: &str,
        body: Vec<u8>,
    ) -> Result<UpstreamRequest, AdapterError> {
        let up = UpstreamRequest::post_json(self.url(target, op), body, target);
        self.authorized(up, target)
    }

    /// Adds the provider's credential.
    fn authorized(
        &self,
        mut up: UpstreamRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        if let Some(key) = &target.api_key {
            let (name, value) = match self.flavor {
                Flavor::OpenAi => ("authorization", ["Bearer ", key].concat()),
                Flavor::Azure => ("api-key", key.clone()),
            };
            up.set_secret_header(name, &value)?;
        }
        Ok(up)
    }
}

impl Adapter for OpenAiAdapter {
    /// `GET {base_url}/models`; Azure: `GET {base_url}/openai/models`.
    fn probe_request(
        &self,
        target: &Target,
        path: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError> {
        let base = target.base_url.trim_end_matches('/');
        let url = match (path, self.flavor) {
            (Some(p), _) => [base, p].concat(),
            (None, Flavor::OpenAi) => [base, "/models"].concat(),
            (None, Flavor::Azure) => format!(
                "{base}/openai/models?api-version={}",
                target
                    .api_version
                    .as_deref()
                    .unwrap_or(AZURE_DEFAULT_API_VERSION)
            ),
        };
        self.authorized(UpstreamRequest::get(url, target), target)
    }

    fn chat_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        let mut out = req.clone();
        out.model = target.model.clone();
        strip_anthropic_only(&mut out);
        if req.is_stream() {
            // Always ask for usage so sluice can account the stream; the server
            // drops the usage chunk when the client did not ask for it.
            let opts = out
                .stream_options
                .get_or_insert_with(StreamOptions::default);
            opts.include_usage = true;
        }
        let body =
            serde_json::to_vec(&out).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        self.post(target, "chat/completions", body)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, AdapterError> {
        serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiStreamDecoder::default())
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
        let mut out = req.clone();
        out.model = target.model.clone();
        let body =
            serde_json::to_vec(&out).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        self.post(target, "embeddings", body)
    }

    fn embeddings_response(&self, body: &[u8]) -> Result<EmbeddingsResponse, AdapterError> {
        serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))
    }
}

/// Removes fields that only Anthropic understands and that the Anthropic
/// inbound translator keeps in `extra` maps for Anthropic upstreams:
/// `thinking` (request), `thinking_blocks` (messages) and `cache_control`
/// (content parts, tools). OpenAI rejects unknown fields.
fn strip_anthropic_only(req: &mut ChatRequest) {
    req.extra.remove("thinking");
    for m in &mut req.messages {
        m.extra.remove("thinking_blocks");
        if let Some(Content::Parts(parts)) = &mut m.content {
            for p in parts {
                if let ContentPart::Text { extra, .. } | ContentPart::ImageUrl { extra, .. } = p {
                    extra.remove("cache_control");
                }
            }
        }
    }
    for t in req.tools.iter_mut().flatten() {
        t.function.extra.remove("cache_control");
    }
}

/// Classifies an OpenAI-format error answer by status, then by `error.code`.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    let mut class = ErrorClass::from_status(status);
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    match code.as_deref() {
        Some("context_length_exceeded") | Some("string_above_max_length") => {
            class = ErrorClass::ContextLength
        }
        Some("content_filter") | Some("content_policy_violation") => {
            class = ErrorClass::ContentFiltered
        }
        _ => {}
    }
    let mut err = UpstreamError::new(class, Some(status), error_message(body));
    err.retry_after = retry_after(headers);
    err
}

#[cfg(test)]
mod tests;
