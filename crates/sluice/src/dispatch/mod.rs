//! Routing's terminal step and the upstream transport: a plain, visible
//! fallback loop over the model's deployments (then its fallback models), one
//! shared pooled HTTP client, timeouts (connect, first byte, total, stream
//! idle), and stream relaying chunk by chunk. Dropping a returned stream drops
//! the upstream connection, which cancels the upstream call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use sluice_providers::{
    Adapter, AdapterError, ErrorClass, StreamDecoder, UpstreamError, UpstreamRequest,
};
use sluice_types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, TokenUsage,
};

use crate::config::raw::ServerConfig;

mod fallback;
mod pool;
mod transport;

pub use fallback::Tried;

use crate::error::{ErrorKind, GatewayError};
use crate::routing::Upstreams;
use crate::snapshot::{Backend, Deployment, Model, Snapshot, Timeouts};
use crate::telemetry::metrics::{Label, Metrics, RetryLabels};
use crate::telemetry::otel::request::{RequestTrace, TraceHeaders};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use transport::Transport;

/// A stream of canonical chunks; an `Err` item ends it (the upstream broke).
pub type ChunkStream = BoxStream<'static, Result<ChatChunk, GatewayError>>;

/// A non-streamed answer: the upstream's bytes when they can be relayed
/// verbatim (OpenAI-format upstream and client), else the parsed answer.
pub enum FullBody {
    Raw(Bytes),
    Parsed(Box<ChatResponse>),
}

pub enum ChatAnswer {
    Full {
        body: FullBody,
        usage: TokenUsage,
    },
    Stream(ChunkStream),
    /// From the response cache; no upstream was called.
    Cached(std::sync::Arc<crate::cache::Entry>),
}

/// What routing did, for headers, logs and metrics.
#[derive(Default, Clone)]
pub struct Attempts {
    /// The `models:` name that answered (after fallbacks).
    pub model: Option<Arc<str>>,
    /// The `providers:` name that answered (or failed last).
    pub provider: Option<Arc<str>>,
    /// The model and deployment index that answered (or failed last).
    pub served: Option<(Arc<Model>, usize)>,
    pub count: u32,
    /// Time spent waiting on the upstream until its answer (or stream) began.
    pub upstream: Duration,
    /// Each failed attempt: provider and error label.
    pub failures: Vec<(Arc<str>, &'static str)>,
    /// The request's trace, when `tracing:` is on: each attempt gets a
    /// span and sends its `traceparent` upstream.
    pub trace: Option<Box<RequestTrace>>,
}

pub struct Dispatcher {
    transport: Transport,
    /// Every deployment's live state (in flight, latency, breaker) and
    /// every model's retry budget.
    pub upstreams: Upstreams,
    retries: Family<RetryLabels, Counter>,
}

impl Dispatcher {
    pub fn new(server: &ServerConfig, metrics: &Metrics) -> Self {
        Dispatcher {
            transport: Transport::new(server),
            upstreams: Upstreams::default(),
            retries: metrics.retries.clone(),
        }
    }

    /// Reads the provider's rate-limit headers into the deployment's room
    /// (`usage_aware` models only).
    fn learn(&self, dep: &Deployment, headers: &http::HeaderMap) {
        if !dep.learns {
            return;
        }
        let now_ms = crate::mock::now_ms();
        if let Some(l) = sluice_providers::ratelimit::RateLimits::from_headers(headers, now_ms) {
            dep.live(&self.upstreams)
                .usage
                .learn(&l, std::time::Instant::now());
        }
    }

    /// An active health probe: whether `up` answers 2xx within `timeout`.
    pub async fn probe(&self, up: UpstreamRequest, timeout: Duration) -> bool {
        match self.transport.send(up, timeout).await {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    }

    /// Counts an extra attempt of `model`'s request: sent, or refused.
    fn retries(&self, model: &Arc<str>, sent: bool) {
        let outcome = if sent { "sent" } else { "refused" };
        let labels = RetryLabels {
            model: Label(model.clone()),
            outcome,
        };
        self.retries.get_or_create(&labels).inc();
    }

    /// Serves a chat request, trying deployments and fallbacks in order while
    /// the failure is retryable. A stream is committed once its headers arrive.
    pub async fn chat(
        &self,
        snap: &Snapshot,
        model: &Arc<Model>,
        req: &ChatRequest,
        want_raw: bool,
        att: &mut Attempts,
    ) -> Result<ChatAnswer, GatewayError> {
        let t = &snap.timeouts;
        let (answer, tried) = self
            .fallback_loop(snap, model, att, |m, dep, trace| {
                self.chat_once(dep, req, want_raw, t, &m.name, trace)
            })
            .await?;
        Ok(match answer {
            ChatAnswer::Stream(s) => ChatAnswer::Stream(watched(s, tried)),
            full => {
                tried.succeeded();
                full
            }
        })
    }

    async fn chat_once(
        &self,
        dep: &Deployment,
        req: &ChatRequest,
        want_raw: bool,
        t: &Timeouts,
        model_name: &str,
        trace: Option<TraceHeaders>,
    ) -> Result<ChatAnswer, GatewayError> {
        let pname = &*dep.provider.name;
        match &dep.provider.backend {
            Backend::Mock(mock) => {
                let plan = mock.next(pname).await?;
                let id = crate::http::request_id::short_id();
                let mut req = req.clone();
                req.model = model_name.to_owned();
                if req.is_stream() {
                    return Ok(ChatAnswer::Stream(mock.stream(
                        &req,
                        &id,
                        plan.truncate_after,
                    )));
                }
                let resp = mock.chat(&req, &id);
                let usage = resp
                    .usage
                    .as_ref()
                    .map(|u| u.to_tokens())
                    .unwrap_or_default();
                Ok(ChatAnswer::Full {
                    body: FullBody::Parsed(Box::new(resp)),
                    usage,
                })
            }
            Backend::Http(adapter) => {
                let mut up = adapter
                    .chat_request(req, &dep.target)
                    .map_err(|e| GatewayError::adapter(pname, e))?;
                if let Some(h) = trace {
                    h.apply(&mut up.headers);
                }
                let resp = self.send(up, t.first_byte, pname).await?;
                self.learn(dep, resp.headers());
                if !resp.status().is_success() {
                    return Err(read_error(adapter.as_ref(), resp, t.total, pname).await);
                }
                if req.is_stream() {
                    let decoder = adapter.stream_decoder();
                    return Ok(ChatAnswer::Stream(relay(
                        resp,
                        decoder,
                        t.stream_idle,
                        dep.provider.name.clone(),
                    )));
                }
                let body = read_body(resp, t.total, pname).await?;
                if want_raw && dep.provider.openai_wire {
                    let usage = usage_of_raw(&body).map_err(|e| GatewayError::adapter(pname, e))?;
                    return Ok(ChatAnswer::Full {
                        body: FullBody::Raw(body),
                        usage,
                    });
                }
                let parsed = adapter
                    .chat_response(&body)
                    .map_err(|e| GatewayError::adapter(pname, e))?;
                let usage = parsed
                    .usage
                    .as_ref()
                    .map(|u| u.to_tokens())
                    .unwrap_or_default();
                Ok(ChatAnswer::Full {
                    body: FullBody::Parsed(Box::new(parsed)),
                    usage,
                })
            }
        }
    }

    /// Serves an embeddings request with the same fallback loop.
    pub async fn embeddings(
        &self,
        snap: &Snapshot,
        model: &Arc<Model>,
        req: &EmbeddingsRequest,
        att: &mut Attempts,
    ) -> Result<(Bytes, TokenUsage), GatewayError> {
        let t = &snap.timeouts;
        let (answer, tried) = self
            .fallback_loop(snap, model, att, |_, dep, trace| {
                self.embeddings_once(dep, req, t, trace)
            })
            .await?;
        tried.succeeded();
        Ok(answer)
    }

    async fn embeddings_once(
        &self,
        dep: &Deployment,
        req: &EmbeddingsRequest,
        t: &Timeouts,
        trace: Option<TraceHeaders>,
    ) -> Result<(Bytes, TokenUsage), GatewayError> {
        let pname = &*dep.provider.name;
        let resp: EmbeddingsResponse = match &dep.provider.backend {
            Backend::Mock(mock) => {
                mock.next(pname).await?;
                mock.embeddings(req)?
            }
            Backend::Http(adapter) => {
                let mut up = adapter
                    .embeddings_request(req, &dep.target)
                    .map_err(|e| GatewayError::adapter(pname, e))?;
                if let Some(h) = trace {
                    h.apply(&mut up.headers);
                }
                let resp = self.send(up, t.first_byte, pname).await?;
                self.learn(dep, resp.headers());
                if !resp.status().is_success() {
                    return Err(read_error(adapter.as_ref(), resp, t.total, pname).await);
                }
                let body = read_body(resp, t.total, pname).await?;
                if dep.provider.openai_wire {
                    let usage = usage_of_raw(&body).map_err(|e| GatewayError::adapter(pname, e))?;
                    return Ok((body, usage));
                }
                adapter
                    .embeddings_response(&body)
                    .map_err(|e| GatewayError::adapter(pname, e))?
            }
        };
        let usage = resp
            .usage
            .as_ref()
            .map(|u| u.to_tokens())
            .unwrap_or_default();
        let body = serde_json::to_vec(&resp)
            .map_err(|e| GatewayError::new(ErrorKind::Internal, e.to_string()))?;
        Ok((Bytes::from(body), usage))
    }

    async fn send(
        &self,
        up: UpstreamRequest,
        first_byte: Duration,
        provider: &str,
    ) -> Result<transport::Response, GatewayError> {
        self.transport
            .send(up, first_byte)
            .await
            .map_err(|e| GatewayError::upstream(provider, e))
    }
}

async fn read_body(
    resp: transport::Response,
    total: Duration,
    provider: &str,
) -> Result<Bytes, GatewayError> {
    transport::read_body(resp, total)
        .await
        .map_err(|e| GatewayError::upstream(provider, e))
}

async fn read_error(
    adapter: &dyn Adapter,
    resp: transport::Response,
    total: Duration,
    provider: &str,
) -> GatewayError {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = read_body(resp, total, provider).await.unwrap_or_default();
    GatewayError::upstream(provider, adapter.classify_error(status, &headers, &body))
}

/// Reads only `usage` from an OpenAI-format body that is relayed verbatim,
/// without parsing the rest: the last `"usage":` key (a key cannot occur inside
/// a JSON string, where quotes are escaped) and the one value after it. Falls
/// back to a full parse when that does not work.
fn usage_of_raw(body: &[u8]) -> Result<TokenUsage, AdapterError> {
    use serde::Deserialize;
    if let Some(at) = memchr::memmem::rfind(body, b"\"usage\"") {
        let rest = &body[at + 7..];
        let rest = rest.trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":") {
            let mut de = serde_json::Deserializer::from_slice(value);
            if let Ok(u) = Option::<sluice_types::Usage>::deserialize(&mut de) {
                return Ok(u.map(|u| u.to_tokens()).unwrap_or_default());
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<sluice_types::Usage>,
    }
    let u: UsageOnly =
        serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))?;
    Ok(u.usage.map(|u| u.to_tokens()).unwrap_or_default())
}

/// A stream that keeps its deployment counted in flight until it ends,
/// reports its time to first token (`least_latency`), and tells the
/// deployment's breaker how it ended: a failure at its first error, a
/// success when it finished cleanly (a client leaving first settles
/// nothing).
fn watched(s: ChunkStream, tried: Tried) -> ChunkStream {
    futures::stream::unfold((s, tried, false), |(mut s, tried, mut tokens)| async move {
        match s.next().await {
            Some(item) => {
                match &item {
                    Err(_) => tried.failed_mid_stream(),
                    Ok(c) if !tokens && has_tokens(c) => {
                        tokens = true;
                        tried.first_token();
                    }
                    Ok(_) => {}
                }
                Some((item, (s, tried, tokens)))
            }
            None => {
                tried.succeeded();
                None
            }
        }
    })
    .boxed()
}

/// Whether a chunk carries output: text, reasoning or a tool call.
fn has_tokens(c: &ChatChunk) -> bool {
    c.choices.iter().any(|ch| {
        let d = &ch.delta;
        d.content.as_ref().is_some_and(|t| !t.is_empty())
            || d.reasoning_content.as_ref().is_some_and(|t| !t.is_empty())
            || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
    })
}

struct Relay {
    body: BoxStream<'static, Result<Bytes, UpstreamError>>,
    decoder: Box<dyn StreamDecoder>,
    pending: VecDeque<ChatChunk>,
    buf: Vec<ChatChunk>,
    idle: Duration,
    provider: Arc<str>,
    /// An error to emit once the chunks decoded before it are out.
    error: Option<GatewayError>,
    done: bool,
}

/// Decodes an upstream SSE body into canonical chunks as bytes arrive.
fn relay(
    resp: transport::Response,
    decoder: Box<dyn StreamDecoder>,
    idle: Duration,
    provider: Arc<str>,
) -> ChunkStream {
    let state = Relay {
        body: transport::body_stream(resp),
        decoder,
        pending: VecDeque::new(),
        buf: Vec::new(),
        idle,
        provider,
        error: None,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(c) = s.pending.pop_front() {
                return Some((Ok(c), s));
            }
            if let Some(e) = s.error.take() {
                return Some((Err(e), s));
            }
            if s.done {
                return None;
            }
            let next = tokio::time::timeout(s.idle, s.body.next()).await;
            let step = match next {
                Err(_) => Err(GatewayError::upstream(
                    &s.provider,
                    UpstreamError::new(
                        ErrorClass::Timeout,
                        None,
                        format!("stream idle for {:?}", s.idle),
                    ),
                )),
                Ok(Some(Ok(bytes))) => s
                    .decoder
                    .feed(&bytes, &mut s.buf)
                    .map_err(|e| GatewayError::adapter(&s.provider, e)),
                Ok(Some(Err(e))) => Err(GatewayError::upstream(&s.provider, e)),
                Ok(None) => {
                    s.done = true;
                    s.decoder
                        .finish(&mut s.buf)
                        .map_err(|e| GatewayError::adapter(&s.provider, e))
                }
            };
            s.pending.extend(s.buf.drain(..));
            if let Err(e) = step {
                s.done = true;
                s.error = Some(e);
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_without_a_full_parse_and_falls_back() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 999}"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;
        let u = usage_of_raw(body).unwrap();
        assert_eq!((u.input, u.output), (7, 3));
        let none = usage_of_raw(br#"{"id":"x","choices":[]}"#).unwrap();
        assert_eq!(none.total(), 0);
        assert_eq!(usage_of_raw(br#"{"usage":null}"#).unwrap().total(), 0);
        assert!(usage_of_raw(b"not json").is_err());
    }
}
