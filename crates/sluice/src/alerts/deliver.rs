//! The delivery worker: one task taking events from the queue and POSTing
//! each to the webhook current at that moment, up to
//! [`Tuning::in_flight`] at once (so one slow receiver answer does not
//! hold the queue).
//!
//! An attempt that fails with a connect error, a timeout, another transport
//! error, a 5xx or a 429 is retried after [`Tuning::backoff`]; a 4xx (or a
//! redirect: none are followed) is final. Every event ends counted in
//! `sluice_alert_deliveries_total{result="ok"|"failed"}` or, when it never
//! got an attempt, in `sluice_alerts_dropped_total`.
//!
//! Shutdown: when the signal turns true (or its sender goes away) the
//! worker closes the queue — later `emit`s count as dropped (`closed`) —
//! delivers what was queued and in flight within
//! [`Tuning::shutdown_flush`], then counts whatever is left as dropped
//! (`shutdown_timeout`) with one ERROR line, and ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::signature::{sign, EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};
use super::{AlertEvent, AlertsError, Shared, QUEUE_CAPACITY};
use crate::config::raw::WebhookConfig;

/// Queue size, retry and shutdown timing of the worker.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Events waiting for delivery, at most. Default [`QUEUE_CAPACITY`].
    pub queue: usize,
    /// Wait before each retry; its length is the number of retries.
    /// Default 0.5 s, 2 s (3 attempts).
    pub backoff: Vec<Duration>,
    /// Deliveries in progress at once. Default 8.
    pub in_flight: usize,
    /// How long queued and in-flight events may still go out after the
    /// shutdown signal. Default 5 s.
    pub shutdown_flush: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            queue: QUEUE_CAPACITY,
            backoff: vec![Duration::from_millis(500), Duration::from_secs(2)],
            in_flight: 8,
            shutdown_flush: Duration::from_secs(5),
        }
    }
}

/// Delivers queued events; run it with [`AlertsWorker::spawn`] or
/// [`AlertsWorker::run`].
pub struct AlertsWorker {
    rx: mpsc::Receiver<AlertEvent>,
    ctx: Arc<Ctx>,
    in_flight: usize,
    shutdown_flush: Duration,
}

/// What every delivery needs.
struct Ctx {
    shared: Arc<Shared>,
    client: reqwest::Client,
    backoff: Vec<Duration>,
}

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Failure {
    pub reason: String,
    pub retry: bool,
}

impl AlertsWorker {
    pub(super) fn new(
        rx: mpsc::Receiver<AlertEvent>,
        shared: Arc<Shared>,
        tuning: Tuning,
    ) -> Result<AlertsWorker, AlertsError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertsError::Client(chain(&e)))?;
        Ok(AlertsWorker {
            rx,
            ctx: Arc::new(Ctx {
                shared,
                client,
                backoff: tuning.backoff,
            }),
            in_flight: tuning.in_flight.max(1),
            shutdown_flush: tuning.shutdown_flush,
        })
    }

    /// Runs the worker as a task; await the handle after signalling
    /// `shutdown` so queued events go out.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    /// Delivers events until `shutdown` turns true (or its sender is gone,
    /// or every [`super::Alerts`] handle is dropped), then flushes.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut deliveries = JoinSet::new();
        loop {
            let next = tokio::select! {
                () = stopped(&mut shutdown) => None,
                ev = next_event(&mut self.rx, &mut deliveries, self.in_flight) => ev,
            };
            let Some(ev) = next else { break };
            deliveries.spawn(deliver(self.ctx.clone(), ev));
        }
        self.flush(deliveries).await;
    }

    /// Closes the queue and delivers what is in it and in flight, for at
    /// most `shutdown_flush`; counts the rest as dropped.
    async fn flush(mut self, mut deliveries: JoinSet<()>) {
        self.rx.close();
        let (rx, ctx, max) = (&mut self.rx, &self.ctx, self.in_flight);
        let all = async {
            while let Some(ev) = next_event(rx, &mut deliveries, max).await {
                deliveries.spawn(deliver(ctx.clone(), ev));
            }
            while deliveries.join_next().await.is_some() {}
        };
        if tokio::time::timeout(self.shutdown_flush, all).await.is_ok() {
            return;
        }
        let mut lost = 0u64;
        while self.rx.try_recv().is_ok() {
            lost += 1;
        }
        deliveries.abort_all();
        while let Some(done) = deliveries.join_next().await {
            lost += u64::from(done.is_err_and(|e| e.is_cancelled()));
        }
        if lost > 0 {
            self.ctx.shared.counters.dropped("shutdown_timeout", lost);
            tracing::error!(
                lost,
                flush = ?self.shutdown_flush,
                "alerts still queued or in delivery at the shutdown deadline were not delivered"
            );
        }
    }
}

/// Resolves once the signal is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Waits for a free delivery slot, then for the next queued event (`None`:
/// the queue is closed and empty). Cancel-safe.
async fn next_event(
    rx: &mut mpsc::Receiver<AlertEvent>,
    deliveries: &mut JoinSet<()>,
    max: usize,
) -> Option<AlertEvent> {
    while deliveries.len() >= max {
        deliveries.join_next().await;
    }
    rx.recv().await
}

/// Delivers one event: attempts with backoff, then counts the outcome.
async fn deliver(ctx: Arc<Ctx>, ev: AlertEvent) {
    let counters = &ctx.shared.counters;
    let body = match serde_json::to_vec(&ev) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            counters.delivered("failed");
            return tracing::error!(id = %ev.id, error = %e, "alert not serializable; not delivered");
        }
    };
    let attempts = ctx.backoff.len() + 1;
    for attempt in 1..=attempts {
        let Some(hook) = ctx.shared.webhook.load_full() else {
            counters.dropped("unconfigured", 1);
            return tracing::warn!(id = %ev.id, kind = ev.kind.as_str(), "alert webhook removed from the config; event not delivered");
        };
        let failure = match post(&ctx.client, &hook, &ev, body.clone()).await {
            Ok(()) => {
                counters.delivered("ok");
                return tracing::debug!(id = %ev.id, attempt, "alert delivered");
            }
            Err(f) => f,
        };
        let to = origin(&hook.url);
        if failure.retry && attempt < attempts {
            let wait = ctx.backoff[attempt - 1];
            tracing::warn!(id = %ev.id, attempt, to, reason = %failure.reason, retry_in = ?wait, "alert webhook attempt failed; retrying");
            tokio::time::sleep(wait).await;
        } else {
            counters.delivered("failed");
            return tracing::error!(id = %ev.id, kind = ev.kind.as_str(), scope = %ev.scope, attempts = attempt, to, reason = %failure.reason, "alert webhook delivery failed; event not delivered");
        }
    }
}

/// One signed POST.
async fn post(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    ev: &AlertEvent,
    body: Bytes,
) -> Result<(), Failure> {
    let signature = sign(hook.secret.expose().as_bytes(), unix_now(), &body);
    let sent = client
        .post(hook.url.as_str())
        .timeout(hook.timeout.0)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, ev.kind.as_str())
        .header(EVENT_ID_HEADER, ev.id.as_str())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => classify(answer.status()),
        Err(e) => Err(Failure {
            retry: !e.is_builder(),
            // Without the URL: its path may carry a token.
            reason: chain(&e.without_url()),
        }),
    }
}

/// 2xx delivers; 5xx and 429 are worth another attempt; anything else
/// (4xx, a redirect) is final.
pub(super) fn classify(status: StatusCode) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    Err(Failure {
        reason: format!("answered HTTP {}", status.as_u16()),
        retry: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
    })
}

/// `scheme://host:port` of the URL, for logs (never the path or query,
/// which may carry a token).
pub(super) fn origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(invalid URL)".to_string(),
        |u| u.origin().ascii_serialization(),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
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
