//! OpenTelemetry tracing: a SERVER span per request and a CLIENT span per
//! upstream attempt, with the GenAI semantic-convention attributes,
//! exported as OTLP/HTTP JSON off the request path; W3C `traceparent`
//! sent upstream on every attempt.
//!
//! The request path only touches [`request::RequestTrace`] (ids, times,
//! a few attributes) and, once at completion, [`Tracer::export`], which
//! `try_send`s the finished spans into a bounded queue and never waits. A
//! span that cannot be queued (queue full, worker gone) is counted in
//! `sluice_trace_spans_dropped_total{reason}` and logged (at most one
//! ERROR line per reason every 10 s) — never lost silently.
//!
//! One [`TraceWorker`] task (`otel/export.rs`) batches the queue (up to
//! [`Tuning::batch`] spans, or what came within [`Tuning::interval`]) and
//! POSTs each batch to the collector current at that moment, retrying with
//! backoff; exported spans are counted in
//! `sluice_trace_spans_exported_total`. The collector settings sit in an
//! `ArcSwapOption` shared by every [`Tracer`] clone and the worker, so a
//! reload ([`Tracer::configure`]) redirects or stops exports at once.
//!
//! Module map: `context.rs` (ids, `traceparent`, sampling), `span.rs` (the
//! span model), `encode.rs` (OTLP JSON), `request.rs` (a request's trace
//! and its attempts), `finish.rs` (the spans of a completed request),
//! `export.rs` (the worker).

pub mod context;
pub mod encode;
mod export;
mod finish;
pub mod request;
pub mod span;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;

pub use export::{TraceWorker, Tuning};
pub use finish::finish;
pub use span::Span;

use crate::config::raw::TracingConfig;
use crate::telemetry::metrics::{Metrics, ReasonLabels};

/// Setting up the exporter failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot create the HTTP client for trace export: {0}")]
    Client(String),
}

/// Where and how spans are exported (from `tracing:`).
#[derive(Debug)]
pub struct Exporter {
    /// `{otlp_endpoint}/v1/traces`.
    pub url: String,
    pub service_name: String,
    /// The collector's headers, marked sensitive.
    pub headers: reqwest::header::HeaderMap,
    pub timeout: Duration,
}

impl Exporter {
    /// The exporter of a validated `tracing:` section.
    pub fn from_config(cfg: &TracingConfig) -> Exporter {
        let base = cfg.otlp_endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &cfg.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes());
            let value = reqwest::header::HeaderValue::from_str(value.expose());
            if let (Ok(n), Ok(mut v)) = (name, value) {
                v.set_sensitive(true);
                headers.insert(n, v);
            }
        }
        Exporter {
            url,
            service_name: cfg.service_name.clone(),
            headers,
            timeout: cfg.timeout.0,
        }
    }
}

/// The handle request code holds: cheap to clone; [`Tracer::export`]
/// never blocks.
#[derive(Clone)]
pub struct Tracer {
    tx: mpsc::Sender<Span>,
    shared: Arc<Shared>,
}

/// What the handles and the worker share.
struct Shared {
    exporter: ArcSwapOption<Exporter>,
    dropped: Family<ReasonLabels, Counter>,
    exported: Counter,
    /// When a drop was last logged (ms since the UNIX epoch), and the
    /// drops since.
    last_log_ms: AtomicU64,
    unlogged: AtomicU64,
}

/// Drops are logged at most this often.
const DROP_LOG_EVERY_MS: u64 = 10_000;

impl Shared {
    /// Counts `n` spans lost for `reason` and logs it, rate-limited.
    fn dropped(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
        self.unlogged.fetch_add(n, Ordering::Relaxed);
        let now = u64::try_from(crate::mock::now_ms()).unwrap_or(0);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= DROP_LOG_EVERY_MS;
        if due
            && (self.last_log_ms)
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let lost = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::error!(
                lost,
                reason,
                "trace spans dropped (counted in sluice_trace_spans_dropped_total; this line is logged at most every 10 s)"
            );
        }
    }
}

impl Tracer {
    /// The handle and its worker, with the default [`Tuning`]. Run the
    /// worker ([`TraceWorker::spawn`]) once a runtime is up.
    pub fn new(
        cfg: Option<&TracingConfig>,
        metrics: &Metrics,
    ) -> Result<(Tracer, TraceWorker), TraceError> {
        Tracer::with_tuning(cfg, metrics, Tuning::default())
    }

    /// [`Tracer::new`] with explicit queue, batch and retry settings.
    pub fn with_tuning(
        cfg: Option<&TracingConfig>,
        metrics: &Metrics,
        tuning: Tuning,
    ) -> Result<(Tracer, TraceWorker), TraceError> {
        let (tx, rx) = mpsc::channel(tuning.queue.max(1));
        let shared = Arc::new(Shared {
            exporter: ArcSwapOption::from_pointee(cfg.map(Exporter::from_config)),
            dropped: metrics.trace_spans_dropped.clone(),
            exported: metrics.trace_spans_exported.clone(),
            last_log_ms: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        });
        let worker = TraceWorker::new(rx, shared.clone(), tuning)?;
        Ok((Tracer { tx, shared }, worker))
    }

    /// Applies a (re)loaded `tracing:` section; `None` stops exporting
    /// (spans still queued are then counted as dropped, `unconfigured`).
    pub fn configure(&self, cfg: Option<&TracingConfig>) {
        let next = cfg.map(|c| Arc::new(Exporter::from_config(c)));
        self.shared.exporter.store(next);
    }

    /// Queues finished spans for export. Never waits: a span that does not
    /// fit is counted as dropped and logged.
    pub fn export(&self, spans: Vec<Span>) {
        let mut lost = (0u64, 0u64);
        for s in spans {
            match self.tx.try_send(s) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => lost.0 += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => lost.1 += 1,
            }
        }
        self.shared.dropped("queue_full", lost.0);
        self.shared.dropped("closed", lost.1);
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("exporting", &self.shared.exporter.load().is_some())
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}
