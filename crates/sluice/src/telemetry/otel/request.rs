//! The trace of one request while it runs: its ids (from the inbound
//! `traceparent`, or new), whether it is recorded, and a client span per
//! upstream attempt. Lives in `Attempts::trace` (the fallback loop opens
//! and closes the attempts) and becomes spans at completion
//! (`finish.rs`). Built only when `tracing:` is configured; an unsampled
//! trace still gives each attempt a span id to propagate, but records
//! nothing.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_types::FinishReason;

use super::context::{
    format_traceparent, new_span_id, new_trace_id, parse_traceparent, sample_new, SpanId, TraceId,
};
use super::span::{Kind, Span};
use crate::error::GatewayError;
use crate::snapshot::{Deployment, Model};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest `tracestate` passed on (the spec's limit; longer is dropped).
const MAX_TRACESTATE: usize = 512;

/// A request's trace (see the module docs).
#[derive(Clone, Debug)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The request's (server) span.
    pub span_id: SpanId,
    /// The caller's span, from its `traceparent`.
    pub parent: Option<SpanId>,
    /// Recorded and exported.
    pub sampled: bool,
    tracestate: Option<HeaderValue>,
    /// `chat` or `embeddings` (GenAI `gen_ai.operation.name`), else the
    /// endpoint's name.
    pub operation: &'static str,
    /// The request's `max_tokens` (after clamping), when it sets one.
    pub max_tokens: Option<u32>,
    origin: Instant,
    origin_ns: u64,
    pub(super) attempts: Vec<Attempt>,
    /// Why the answer ended, one per choice (`gen_ai.response.finish_reasons`).
    pub finish_reasons: Vec<&'static str>,
}

/// One upstream attempt's span while it runs.
#[derive(Clone, Debug)]
pub(super) struct Attempt {
    pub span: Span,
    /// Ended with an answer (a stream: its headers).
    pub answered: bool,
    /// Ended at all (an attempt cut by the request's deadline is not).
    pub ended: bool,
}

/// The headers an attempt carries upstream.
#[derive(Clone, Debug)]
pub struct TraceHeaders {
    traceparent: HeaderValue,
    tracestate: Option<HeaderValue>,
}

impl TraceHeaders {
    /// Sets `traceparent` (and `tracestate`) on an upstream request,
    /// replacing any the provider's config set.
    pub fn apply(self, h: &mut HeaderMap) {
        h.insert(TRACEPARENT.clone(), self.traceparent);
        match self.tracestate {
            Some(v) => h.insert(TRACESTATE.clone(), v),
            None => h.remove(&TRACESTATE),
        };
    }
}

impl RequestTrace {
    /// The trace of a request that started at `origin`: the caller's trace
    /// when its `traceparent` is valid (recorded if the caller recorded
    /// it), else a new one (recorded at `ratio`).
    pub fn start(headers: &HeaderMap, ratio: f64, endpoint: &'static str, origin: Instant) -> Self {
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()));
        let (trace_id, sampled) = match parent {
            Some(p) => (p.trace_id, p.sampled),
            None => {
                let id = new_trace_id();
                (id, sample_new(ratio, &id))
            }
        };
        let operation = match endpoint {
            "chat" | "messages" => "chat",
            other => other,
        };
        RequestTrace {
            trace_id,
            span_id: new_span_id(),
            parent: parent.map(|p| p.span_id),
            sampled,
            tracestate: parent.and_then(|_| tracestate(headers)),
            operation,
            max_tokens: None,
            origin,
            origin_ns: unix_ns(SystemTime::now())
                .saturating_sub(origin.elapsed().as_nanos() as u64),
            attempts: Vec::new(),
            finish_reasons: Vec::new(),
        }
    }

    /// UNIX nanoseconds of `at`.
    pub fn ns(&self, at: Instant) -> u64 {
        self.origin_ns + at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Opens the span of attempt `n` to `dep` of `model`, starting `at`;
    /// returns the headers it carries upstream.
    pub fn begin_attempt(
        &mut self,
        model: &Model,
        dep: &Deployment,
        n: u32,
        at: Instant,
    ) -> TraceHeaders {
        let span_id = new_span_id();
        let header = format_traceparent(&self.trace_id, &span_id, self.sampled);
        let headers = TraceHeaders {
            traceparent: HeaderValue::from_str(&header).expect("hex and dashes"),
            tracestate: self.tracestate.clone(),
        };
        if self.sampled {
            let span = super::finish::attempt_span(self, span_id, model, dep, n, at);
            self.attempts.push(Attempt {
                span,
                answered: false,
                ended: false,
            });
        }
        headers
    }

    /// Closes the open attempt `at`: answered, or failed with `error`.
    pub fn end_attempt(&mut self, at: Instant, error: Option<&GatewayError>) {
        let end_ns = self.ns(at);
        let Some(a) = self.attempts.last_mut().filter(|a| !a.ended) else {
            return;
        };
        a.ended = true;
        a.span.end_ns = end_ns;
        match error {
            None => a.answered = true,
            Some(e) => super::finish::failed(&mut a.span, e),
        }
    }

    /// A span of this trace (server or client), to fill in.
    pub(super) fn span(&self, id: SpanId, kind: Kind, name: String, start_ns: u64) -> Span {
        let parent = match kind {
            Kind::Server => self.parent,
            Kind::Client => Some(self.span_id),
        };
        Span {
            trace_id: self.trace_id,
            span_id: id,
            parent,
            name,
            kind,
            start_ns,
            end_ns: start_ns,
            attrs: Vec::with_capacity(16),
            error: None,
        }
    }

    /// When the request started, UNIX nanoseconds.
    /// Notes why the answer ended: each choice's finish reason, in order
    /// (a stream's as its chunks carry them).
    pub fn finished_with(&mut self, reasons: impl IntoIterator<Item = FinishReason>) {
        self.finish_reasons
            .extend(reasons.into_iter().map(FinishReason::as_str));
    }

    /// [`RequestTrace::finished_with`] for an OpenAI-format answer relayed
    /// as it came (read only when the request is traced).
    pub fn finished_raw(&mut self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Choice {
            #[serde(default)]
            finish_reason: Option<FinishReason>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            choices: Vec<Choice>,
        }
        if let Ok(a) = serde_json::from_slice::<Answer>(body) {
            self.finished_with(a.choices.into_iter().filter_map(|c| c.finish_reason));
        }
    }

    pub fn start_ns(&self) -> u64 {
        self.origin_ns
    }
}

/// The inbound `tracestate` to pass on: its header lines joined, when it
/// is within the spec's length.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut all = headers.get_all(&TRACESTATE).iter();
    let first = all.next()?;
    let mut joined = first.as_bytes().to_vec();
    for v in all {
        joined.push(b',');
        joined.extend_from_slice(v.as_bytes());
    }
    if joined.len() > MAX_TRACESTATE {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// UNIX nanoseconds of a wall-clock time.
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
