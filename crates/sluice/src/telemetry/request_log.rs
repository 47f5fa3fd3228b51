//! The request log: one record per request in the store, written off the
//! request path. [`RequestLog::record`] (called once per request, at
//! completion) builds the record and `try_send`s it into a bounded buffer;
//! it never waits. The [`writer::Writer`] task batches the buffer into the
//! store, spills to disk while the store is down or slow and replays the
//! spill when it is back (`writer.rs`, `spill.rs`). A record that cannot
//! be kept — buffer full, spill unwritable, spill line unreadable — is
//! counted in `sluice_request_log_dropped_total{reason}` and logged; none
//! is lost silently.
//!
//! Module map: `record.rs` (the record of a request), `bodies.rs` (bodies
//! kept per `log_bodies`), `writer.rs` (the task), `spill.rs` (the spill
//! files).

pub mod bodies;
mod record;
mod spill;
pub mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_store::{LogRecord, Store};
use sluice_types::TokenUsage;
use tokio::sync::mpsc;

use crate::config::raw::RequestLogConfig;
use crate::pipeline::RequestCtx;
use crate::telemetry::metrics::ReasonLabels;
pub use writer::{Tuning, Writer};

/// The request path's handle: a sender into the buffer.
pub struct RequestLog {
    tx: mpsc::Sender<LogRecord>,
    metrics: LogMetrics,
    /// Unix seconds of the last "buffer full" log line (rate-limits it).
    last_full_log: AtomicU64,
}

/// The writer's metrics (registered once, shared by handle and writer).
#[derive(Clone)]
pub struct LogMetrics {
    pub written: Counter,
    pub spilled: Counter,
    pub replayed: Counter,
    dropped: Family<ReasonLabels, Counter>,
    pub buffered: Gauge,
    pub spill_pending: Gauge,
    pub flush_seconds: Histogram,
}

impl LogMetrics {
    /// Registers the request-log metrics.
    pub fn register(registry: &mut Registry) -> LogMetrics {
        let m = LogMetrics {
            written: Counter::default(),
            spilled: Counter::default(),
            replayed: Counter::default(),
            dropped: Family::default(),
            buffered: Gauge::default(),
            spill_pending: Gauge::default(),
            flush_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        };
        let r = registry;
        r.register(
            "request_log_written",
            "Request-log records written to the store (directly)",
            m.written.clone(),
        );
        r.register(
            "request_log_spilled",
            "Request-log records spilled to disk because the store failed or was slow",
            m.spilled.clone(),
        );
        r.register(
            "request_log_replayed",
            "Spilled request-log records written to the store after it came back",
            m.replayed.clone(),
        );
        r.register(
            "request_log_dropped",
            "Request-log records that could not be kept, by reason (buffer_full, spill_failed, spill_corrupt)",
            m.dropped.clone(),
        );
        r.register(
            "request_log_buffered",
            "Request-log records waiting in memory for the writer",
            m.buffered.clone(),
        );
        r.register(
            "request_log_spill_pending",
            "Request-log records waiting in the spill files",
            m.spill_pending.clone(),
        );
        r.register(
            "request_log_flush_seconds",
            "Time to write one batch of request-log records to the store",
            m.flush_seconds.clone(),
        );
        m
    }

    pub fn dropped(&self, reason: &'static str) -> Counter {
        self.dropped.get_or_create(&ReasonLabels { reason }).clone()
    }
}

impl RequestLog {
    /// The handle and its writer (spawn it with [`Writer::spawn`]). The
    /// spill directory is created now, so a bad one fails the start.
    pub fn new(
        cfg: &RequestLogConfig,
        store: Store,
        spill_dir: &Path,
        metrics: &LogMetrics,
    ) -> anyhow::Result<(RequestLog, Writer)> {
        let spill = spill::Spill::open(spill_dir)
            .map_err(|e| anyhow::anyhow!("request_log.spill_dir `{}`: {e}", spill_dir.display()))?;
        let (tx, rx) = mpsc::channel(cfg.buffer.max(1));
        let writer = Writer {
            rx,
            store,
            spill: Arc::new(Mutex::new(spill)),
            tuning: Tuning {
                batch: cfg.batch.max(1),
                flush_every: cfg.flush_every.0.max(Duration::from_millis(1)),
                write_timeout: cfg.write_timeout.0,
                retention_days: cfg
                    .retention
                    .map(|d| (d.0.as_secs() / 86_400).max(1) as i64),
            },
            metrics: metrics.clone(),
        };
        let log = RequestLog {
            tx,
            metrics: metrics.clone(),
            last_full_log: AtomicU64::new(0),
        };
        Ok((log, writer))
    }

    /// Queues the record of a finished request; never waits.
    pub fn record(&self, ctx: &RequestCtx, usage: TokenUsage, total: Duration) {
        let rec = record::of(ctx, usage, total);
        if let Err(e) = self.tx.try_send(rec) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "buffer_full",
                mpsc::error::TrySendError::Closed(_) => "writer_stopped",
            };
            self.metrics.dropped(reason).inc();
            self.log_drop(reason);
        }
    }

    /// One ERROR line a second at most.
    fn log_drop(&self, reason: &'static str) {
        let now = sluice_store::ids::now_ms() as u64 / 1000;
        let last = self.last_full_log.swap(now, Ordering::Relaxed);
        if last != now {
            tracing::error!(reason, "request log: a record could not be queued and is lost (see sluice_request_log_dropped_total)");
        }
    }
}
