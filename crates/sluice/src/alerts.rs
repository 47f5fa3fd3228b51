//! Alert events (budget thresholds crossed, budgets exceeded): a WARN log
//! line, a metric, and a signed webhook POST — all off the request path.
//!
//! [`Alerts::emit`] is what request code calls. It never waits and never
//! fails: it logs the event, counts it (`sluice_alerts_total{kind,scope}`)
//! and, when a webhook is configured, `try_send`s it into a bounded queue.
//! An event that cannot be queued (queue full, worker gone) is logged at
//! ERROR and counted in `sluice_alerts_dropped_total{reason}` — never lost
//! silently.
//!
//! An [`AlertsWorker`] (one task) takes events from the queue and delivers
//! a few at a time (`alerts/deliver.rs`): a JSON POST signed Stripe-style
//! (`alerts/signature.rs`), retried with backoff on connect errors,
//! timeouts, 5xx and 429. Each final outcome is counted in
//! `sluice_alert_deliveries_total{result}`. When its shutdown signal turns
//! true it stops taking new events, delivers what is queued within
//! [`Tuning::shutdown_flush`], and counts what it could not.
//!
//! The webhook (URL, secret, timeout) sits in an `ArcSwapOption` shared by
//! every [`Alerts`] clone and the worker, so [`Alerts::set_webhook`] on a
//! config reload changes where events go without restarting anything.
//!
//! Alert rules (`alerts.rules`: error rate, p99 latency, breaker open,
//! spend anomaly) are judged by their own task (`alerts/rules.rs`) and
//! emit through the same [`Alerts::emit`], deduplicated.
//!
//! Module map: `event.rs` (the event and its JSON), `signature.rs` (sign
//! and verify `x-sluice-signature`), `deliver.rs` (the worker),
//! `rules.rs` and `rules/` (the rule evaluator).

mod deliver;
mod event;
pub mod rules;
mod signature;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use deliver::{AlertsWorker, Tuning};
pub use event::{AlertEvent, AlertKind, BudgetFields, RuleFields, RuleState, Subject};
pub use signature::{sign, verify, EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};

use crate::config::raw::WebhookConfig;
use crate::telemetry::metrics::{AlertLabels, Metrics, ReasonLabels, ResultLabels};

/// Events waiting for the webhook, at most (default [`Tuning::queue`]).
pub const QUEUE_CAPACITY: usize = 1024;

/// Setting up alert delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("cannot create the HTTP client for alert webhooks: {0}")]
    Client(String),
}

/// The handle request code holds: cheap to clone, [`Alerts::emit`] never
/// blocks.
#[derive(Clone)]
pub struct Alerts {
    tx: mpsc::Sender<AlertEvent>,
    shared: Arc<Shared>,
}

/// What the handles and the worker share.
struct Shared {
    webhook: ArcSwapOption<WebhookConfig>,
    counters: Counters,
}

/// The alert metric families (shared with the registry in [`Metrics`]).
#[derive(Clone)]
struct Counters {
    alerts: Family<AlertLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    deliveries: Family<ResultLabels, Counter>,
}

impl Counters {
    fn new(m: &Metrics) -> Counters {
        Counters {
            alerts: m.alerts.clone(),
            dropped: m.alerts_dropped.clone(),
            deliveries: m.alert_deliveries.clone(),
        }
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }

    fn delivered(&self, result: &'static str) {
        self.deliveries
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

impl Alerts {
    /// The handle and its worker, with the default [`Tuning`]. Run the
    /// worker ([`AlertsWorker::spawn`]) once a runtime is up; until then
    /// events wait in the queue. Needs no runtime itself.
    pub fn new(
        webhook: Option<WebhookConfig>,
        metrics: &Metrics,
    ) -> Result<(Alerts, AlertsWorker), AlertsError> {
        Alerts::with_tuning(webhook, metrics, Tuning::default())
    }

    /// [`Alerts::new`] with explicit queue size, backoff and flush bound.
    pub fn with_tuning(
        webhook: Option<WebhookConfig>,
        metrics: &Metrics,
        tuning: Tuning,
    ) -> Result<(Alerts, AlertsWorker), AlertsError> {
        let (tx, rx) = mpsc::channel(tuning.queue.max(1));
        let shared = Arc::new(Shared {
            webhook: ArcSwapOption::from_pointee(webhook),
            counters: Counters::new(metrics),
        });
        let worker = AlertsWorker::new(rx, shared.clone(), tuning)?;
        Ok((Alerts { tx, shared }, worker))
    }

    /// [`Alerts::new`] and [`AlertsWorker::spawn`] in one call (inside a
    /// tokio runtime). Await the handle after signalling `shutdown` to let
    /// queued events go out.
    pub fn spawn(
        webhook: Option<WebhookConfig>,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Alerts, JoinHandle<()>), AlertsError> {
        let (alerts, worker) = Alerts::new(webhook, metrics)?;
        Ok((alerts, worker.spawn(shutdown)))
    }

    /// Logs the event at WARN, counts it, and queues it for the webhook if
    /// one is configured. Never blocks, never fails: an event that cannot
    /// be queued is logged at ERROR and counted as dropped.
    pub fn emit(&self, ev: AlertEvent) {
        log_event(&ev);
        let labels = AlertLabels {
            kind: ev.kind.as_str(),
            scope: ev.scope_kind,
        };
        self.shared.counters.alerts.get_or_create(&labels).inc();
        if self.shared.webhook.load().is_none() {
            return;
        }
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => self.drop_event(&ev, "queue_full"),
            Err(mpsc::error::TrySendError::Closed(ev)) => self.drop_event(&ev, "closed"),
        }
    }

    /// Replaces the webhook (config reload); `None` turns delivery off.
    /// Events already queued go to the webhook current when they are sent.
    pub fn set_webhook(&self, webhook: Option<WebhookConfig>) {
        self.shared.webhook.store(webhook.map(Arc::new));
    }

    /// Whether events are currently queued for a webhook.
    pub fn has_webhook(&self) -> bool {
        self.shared.webhook.load().is_some()
    }

    fn drop_event(&self, ev: &AlertEvent, reason: &'static str) {
        self.shared.counters.dropped(reason, 1);
        tracing::error!(
            id = %ev.id,
            kind = ev.kind.as_str(),
            scope = %ev.scope,
            reason,
            "alert not queued for the webhook: it will not be delivered"
        );
    }
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("webhook", &self.has_webhook())
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}

/// The WARN line every event gets: its fields, nothing else.
fn log_event(ev: &AlertEvent) {
    let b = ev.budget.as_ref();
    let r = ev.rule.as_ref();
    tracing::warn!(
        id = %ev.id,
        kind = ev.kind.as_str(),
        scope = %ev.scope,
        scope_kind = ev.scope_kind,
        scope_id = %ev.scope_id,
        period = b.map(|b| b.period),
        period_start = b.map(|b| b.period_start.as_str()),
        fraction = b.map(|b| b.fraction),
        spent_usd = b.map(|b| b.spent_usd),
        limit_usd = b.map(|b| b.limit_usd),
        policy = b.and_then(|b| b.policy.as_deref()),
        rule = r.map(|r| r.rule.as_str()),
        state = r.map(|r| r.state.as_str()),
        value = r.and_then(|r| r.value),
        threshold = r.and_then(|r| r.threshold),
        "alert: {}",
        ev.summary()
    );
}
