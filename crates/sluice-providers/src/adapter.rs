//! The `Adapter` trait every provider implements, and the plain data it
//! exchanges with the dispatcher.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use sluice_types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, TokenUsage,
};

use crate::{AdapterError, UpstreamError};

/// Where and as whom to call: one deployment of one provider, from the config.
/// Secrets come only from the config, never from the client.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Provider base URL without trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The provider-side model (or Azure deployment) name.
    pub model: String,
    pub api_key: Option<String>,
    /// Azure `api-version`, Anthropic `anthropic-version` override.
    pub api_version: Option<String>,
    /// Extra headers sent on every call to this provider.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A fully built upstream HTTP request.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UpstreamRequest {
    /// A JSON POST to `url` with the target's extra headers applied.
    pub fn post_json(url: String, body: Vec<u8>, target: &Target) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in &target.headers {
            headers.insert(k.clone(), v.clone());
        }
        UpstreamRequest {
            method: Method::POST,
            url,
            headers,
            body: Bytes::from(body),
        }
    }
}

impl UpstreamRequest {
    /// A GET of `url` with the target's extra headers (an active health
    /// probe).
    pub fn get(url: String, target: &Target) -> Self {
        let mut headers = HeaderMap::new();
        for (k, v) in &target.headers {
            headers.insert(k.clone(), v.clone());
        }
        UpstreamRequest {
            method: Method::GET,
            url,
            headers,
            body: Bytes::new(),
        }
    }

    /// Sets a credential header, marked sensitive so it is never logged.
    pub fn set_secret_header(
        &mut self,
        name: &'static str,
        value: &str,
    ) -> Result<(), AdapterError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            AdapterError::InvalidRequest("provider api_key is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(())
    }
}

/// A provider adapter: pure translation, no I/O.
pub trait Adapter: Send + Sync {
    /// Builds the upstream call for a canonical chat request. `req.model` is the
    /// client's name; the upstream model is `target.model`. When `req.is_stream()`
    /// the built request asks the provider to stream (and, where the provider
    /// needs asking, to include usage).
    fn chat_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError>;

    /// Parses a successful (2xx) non-streamed answer into the canonical form.
    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, AdapterError>;

    /// A fresh decoder for one streamed answer.
    fn stream_decoder(&self) -> Box<dyn StreamDecoder>;

    /// A cheap call that shows the provider answers — its model list by
    /// default, or `path` after the base URL — for active health checks.
    fn probe_request(
        &self,
        target: &Target,
        path: Option<&str>,
    ) -> Result<UpstreamRequest, AdapterError>;

    /// Classifies a non-2xx answer.
    fn classify_error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8])
        -> UpstreamError;

    /// Builds an embeddings call; providers without embeddings say so.
    fn embeddings_request(
        &self,
        req: &EmbeddingsRequest,
        target: &Target,
    ) -> Result<UpstreamRequest, AdapterError> {
        let _ = (req, target);
        Err(AdapterError::Unsupported("embeddings".into()))
    }

    /// Parses a successful embeddings answer.
    fn embeddings_response(&self, body: &[u8]) -> Result<EmbeddingsResponse, AdapterError> {
        let _ = body;
        Err(AdapterError::Unsupported("embeddings".into()))
    }
}

/// Turns one upstream stream's raw bytes into canonical chunks.
///
/// The decoder is fed the body as it arrives, in arbitrary splits (a split can
/// fall inside an SSE line or a UTF-8 character). It appends every complete
/// chunk to `out`. Chunks it emits follow OpenAI's conventions: the first
/// carries `delta.role = assistant`; a tool call's first fragment carries `id`,
/// `type` and `function.name`; the chunk that ends a choice carries
/// `finish_reason`. When the provider reports usage, the decoder emits a final
/// chunk with empty `choices` and `usage` set (the server drops it when the
/// client did not ask for it).
pub trait StreamDecoder: Send {
    /// Feeds the next bytes of the body.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), AdapterError>;

    /// The body ended. Errors with [`AdapterError::Truncated`] when the
    /// provider's end-of-stream marker was never seen (a reset mid-stream must
    /// never look like a clean finish).
    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError>;

    /// Usage seen so far (complete once the stream finished).
    fn usage(&self) -> TokenUsage;
}
