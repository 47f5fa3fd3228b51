//! The export worker: one task that takes spans from the queue in batches
//! (up to [`Tuning::batch`], or what arrived within [`Tuning::interval`]
//! of the first) and POSTs each batch, OTLP/HTTP JSON, to the collector
//! current at that moment.
//!
//! A connect error, a timeout, a 5xx or a 429 is retried after each of
//! [`Tuning::backoff`]; any other answer is final. Every span ends counted:
//! `sluice_trace_spans_exported_total`, or
//! `sluice_trace_spans_dropped_total{reason}` — `export_failed` (every
//! attempt failed), `unconfigured` (a reload removed `tracing:`),
//! `shutdown_timeout` (still queued when the shutdown flush ended).
//!
//! Shutdown: when the signal turns true (or its sender goes away) the
//! worker closes the queue (later spans count as `closed`), exports what
//! it holds within [`Tuning::shutdown_flush`], and counts the rest.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::encode::export_body;
use super::{Exporter, Shared, Span, TraceError};

/// Queue size, batching, retries and shutdown timing of the worker.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Spans waiting for export, at most. Default 4096.
    pub queue: usize,
    /// Spans per export, at most. Default 512.
    pub batch: usize,
    /// How long a batch waits for more spans after its first. Default 1 s.
    pub interval: Duration,
    /// Wait before each retry; its length is the number of retries.
    /// Default 0.5 s, 2 s (3 attempts).
    pub backoff: Vec<Duration>,
    /// How long queued spans may still be exported after the shutdown
    /// signal. Default 3 s.
    pub shutdown_flush: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            queue: 4096,
            batch: 512,
            interval: Duration::from_secs(1),
            backoff: vec![Duration::from_millis(500), Duration::from_secs(2)],
            shutdown_flush: Duration::from_secs(3),
        }
    }
}

/// Exports queued spans; run it with [`TraceWorker::spawn`].
pub struct TraceWorker {
    rx: mpsc::Receiver<Span>,
    shared: Arc<Shared>,
    client: reqwest::Client,
    tuning: Tuning,
}

impl TraceWorker {
    pub(super) fn new(
        rx: mpsc::Receiver<Span>,
        shared: Arc<Shared>,
        tuning: Tuning,
    ) -> Result<TraceWorker, TraceError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TraceError::Client(e.to_string()))?;
        Ok(TraceWorker {
            rx,
            shared,
            client,
            tuning,
        })
    }

    /// Runs the worker as a task; await the handle after signalling
    /// `shutdown` so queued spans go out.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    /// Exports batches until `shutdown` turns true (or every [`super::Tracer`]
    /// is gone), then flushes.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let first = tokio::select! {
                () = stopped(&mut shutdown) => break,
                s = self.rx.recv() => match s {
                    Some(s) => s,
                    None => break,
                },
            };
            let batch = self.fill(first).await;
            self.send(&batch).await;
        }
        self.flush().await;
    }

    /// A batch: `first` and what arrives within the interval, up to the
    /// batch size.
    async fn fill(&mut self, first: Span) -> Vec<Span> {
        let mut batch = Vec::with_capacity(self.tuning.batch.clamp(1, 64));
        batch.push(first);
        let until = tokio::time::Instant::now() + self.tuning.interval;
        while batch.len() < self.tuning.batch {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                s = self.rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
            }
        }
        batch
    }

    /// Closes the queue and exports what is in it, for at most
    /// `shutdown_flush`; counts the rest as dropped.
    async fn flush(mut self) {
        self.rx.close();
        let mut rest = Vec::new();
        while let Ok(s) = self.rx.try_recv() {
            rest.push(s);
        }
        let mut done = 0usize;
        let all = async {
            for batch in rest.chunks(self.tuning.batch.max(1)) {
                self.send(batch).await;
                done += batch.len();
            }
        };
        let _ = tokio::time::timeout(self.tuning.shutdown_flush, all).await;
        self.shared
            .dropped("shutdown_timeout", (rest.len() - done) as u64);
    }

    /// Exports one batch: attempts with backoff, then counts the outcome.
    async fn send(&self, batch: &[Span]) {
        let n = batch.len() as u64;
        let Some(exp) = self.shared.exporter.load_full() else {
            return self.shared.dropped("unconfigured", n);
        };
        let body = match export_body(&exp.service_name, batch) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "trace spans not serializable");
                return self.shared.dropped("export_failed", n);
            }
        };
        let attempts = self.tuning.backoff.len() + 1;
        for attempt in 1..=attempts {
            match post(&self.client, &exp, body.clone()).await {
                Ok(()) => {
                    self.shared.exported.inc_by(n);
                    return;
                }
                Err((retry, reason)) if retry && attempt < attempts => {
                    let wait = self.tuning.backoff[attempt - 1];
                    tracing::warn!(attempt, to = %origin(&exp.url), %reason, retry_in = ?wait, "trace export failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err((_, reason)) => {
                    tracing::warn!(attempts = attempt, to = %origin(&exp.url), %reason, spans = n, "trace export failed; spans dropped");
                    return self.shared.dropped("export_failed", n);
                }
            }
        }
    }
}

/// Resolves once the signal is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One POST; `Err((worth retrying, why))`.
async fn post(client: &reqwest::Client, exp: &Exporter, body: Bytes) -> Result<(), (bool, String)> {
    let sent = client
        .post(exp.url.as_str())
        .timeout(exp.timeout)
        .headers(exp.headers.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => {
            let s = answer.status();
            let retry = s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS;
            Err((retry, format!("answered HTTP {}", s.as_u16())))
        }
        Err(e) => Err((!e.is_builder(), chain(&e.without_url()))),
    }
}

/// `scheme://host:port` of the URL, for logs.
fn origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(invalid URL)".to_string(),
        |u| u.origin().ascii_serialization(),
    )
}

/// An error with its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
