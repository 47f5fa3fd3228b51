//! Process-wide state shared by every request: the current config snapshot
//! (swapped atomically on reload), the dispatcher, metrics, live policy
//! state (rate counters, concurrency queues, budget spend) and reload status.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::directory::Directory;
use crate::dispatch::Dispatcher;
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::Metrics;

/// Result of the last reload, for `GET /admin/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    pub at: Option<u64>,
    pub ok: Option<bool>,
    pub error: Option<String>,
    pub trigger: Option<String>,
}

pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    pub dispatcher: Dispatcher,
    pub metrics: Metrics,
    pub config_path: Option<PathBuf>,
    pub last_reload: Mutex<ReloadStatus>,
    /// Next snapshot version.
    pub versions: AtomicU64,
    /// Set once shutdown began: `/readyz` answers 503 so balancers drain us.
    pub draining: AtomicBool,
    pub started_at: std::time::Instant,
    /// The control-plane store, when `store:` is configured.
    pub store: Option<sluice_store::Store>,
    /// Store-managed identities (keys, apps, tenants, subscriptions), a
    /// cache rebuilt when the store's revision moves; empty without a store.
    pub directory: ArcSwap<Directory>,
    /// Wakes the directory sync at once (after an admin change, or a Redis
    /// invalidation message).
    pub directory_changed: tokio::sync::Notify,
    /// Health of the store and of `shared_state`, as last seen by the sync.
    pub store_ok: AtomicBool,
    /// The JWT verifier of `jwt:`, when configured (swapped on reload).
    pub jwt: arc_swap::ArcSwapOption<crate::jwt::JwtVerifier>,
    /// The audit actor of the bootstrap `admin_key`: `config:admin_key`,
    /// or `cli:<user>` when the CLI serves the admin API in-process.
    pub bootstrap_actor: std::sync::OnceLock<String>,
    /// `shared_state`, when configured.
    pub redis: Option<redis::Client>,
    pub redis_ok: AtomicBool,
    /// Rate-limit counters, outside the snapshot: keyed by scope and rule,
    /// so a reload that keeps a rule keeps its counters.
    pub rates: crate::policy::rate::Rates,
    /// Concurrency queues, keyed by scope (outside the snapshot too).
    pub queues: crate::policy::concurrency::Queues,
    /// USD budget counters (spend restored from the store at start).
    pub budgets: crate::policy::budget::Budgets,
    /// The response cache (models with `cache:`), outside the snapshot.
    pub cache: crate::cache::ResponseCache,
    /// With `shared_state`: the one Redis call that admits a request under
    /// its budgets, rate limits and concurrency slots together.
    pub admission: Option<Arc<crate::policy::admission::Admission>>,
    /// Alert events (log, metric, webhook); `alerts.webhook` is swapped on
    /// reload.
    pub alerts: crate::alerts::Alerts,
    /// The webhook delivery task, until `Server::run` starts it.
    pub alerts_worker: Mutex<Option<crate::alerts::AlertsWorker>>,
    /// Finished requests' outcomes for the alert rules (fed only when the
    /// snapshot has rules).
    pub alert_feed: crate::alerts::rules::Feed,
    /// The alert rule evaluator task, until `Server::run` starts it.
    pub alert_evaluator: Mutex<Option<crate::alerts::rules::Evaluator>>,
    /// The request log's buffer, when it is on (`store:` set).
    pub request_log: Option<crate::telemetry::request_log::RequestLog>,
    /// The request-log writer task, until `Server::run` starts it.
    pub request_log_writer: Mutex<Option<crate::telemetry::request_log::Writer>>,
    /// Trace export (`tracing:`; the collector is swapped on reload).
    pub tracer: crate::telemetry::otel::Tracer,
    /// The trace export task, until `Server::run` starts it.
    pub tracer_worker: Mutex<Option<crate::telemetry::otel::TraceWorker>>,
}

pub type App = Arc<AppState>;
