//! Prometheus metrics (`GET /metrics`). Labels are bounded: endpoint, model and
//! provider names come from the config, status is a class (`2xx`…), error
//! codes are a fixed set. Never key names, tenants' users or free text.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::policy::queue::Priority;
use crate::policy::ScopeKind;

/// A label value shared by reference count (no allocation per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

impl From<&'static str> for Label {
    fn from(s: &'static str) -> Self {
        Label(Arc::from(s))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub model: Label,
    pub provider: Label,
    pub status: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: Label,
    pub provider: Label,
}

/// One deployment: its model, provider and upstream model (all config).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub model: Label,
    pub provider: Label,
    pub deployment: Label,
}

/// An extra attempt of a model's request (failover or retry): `sent`, or
/// `refused` by the retry budget.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub model: Label,
    pub outcome: &'static str,
}

/// A route (`routes:`) that picked a request's model, and that model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Label,
    pub model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: Label,
    pub direction: &'static str,
}

/// A rate-limit rule that refused (`enforce`) or would have (`shadow`):
/// its level and partition, never ids.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLabels {
    pub scope: &'static str,
    pub per: &'static str,
    /// `requests` or `tokens`.
    pub limit: &'static str,
    pub mode: &'static str,
}

/// A concurrency queue's level and the waiting request's class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub scope: &'static str,
    pub priority: &'static str,
}

/// A concurrency refusal: level, class and reason (`queue_full`,
/// `queue_timeout`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueRefusalLabels {
    pub scope: &'static str,
    pub priority: &'static str,
    pub reason: &'static str,
}

/// A budget a request would exceed: its level and what `on_exceed` did
/// (`block`, `alert_only`, `downgrade`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub scope: &'static str,
    pub action: &'static str,
}

/// A level (`global`, `tenant`, `app`, `key`, `model`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// An alert event: its kind and the level of the scope it is about
/// (`tenant`, `app`, …), never the scope's id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub kind: &'static str,
    pub scope: &'static str,
}

/// An alert rule, by its configured name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn overhead_hist() -> Histogram {
    Histogram::new([
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1,
    ])
}

fn latency_hist() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistFamily<ModelLabels>,
    pub overhead: HistFamily<ModelLabels>,
    pub upstream: HistFamily<ModelLabels>,
    pub ttft: HistFamily<ModelLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub attempts_failed: Family<ModelLabels, Counter>,
    pub reloads: Family<ResultLabels, Counter>,
    pub rate_limited: Family<RateLabels, Counter>,
    pub queue_wait: HistFamily<QueueLabels>,
    pub queue_refused: Family<QueueRefusalLabels, Counter>,
    pub queue_in_flight: Family<ScopeLabels, Gauge>,
    pub queue_waiting: Family<ScopeLabels, Gauge>,
    pub budget_exceeded: Family<BudgetLabels, Counter>,
    pub budget_spend: Family<ScopeLabels, Counter>,
    pub shared_state_failures: Counter,
    pub breaker_state: Family<DeploymentLabels, Gauge>,
    pub retries: Family<RetryLabels, Counter>,
    pub routed: Family<RouteLabels, Counter>,
    pub deployment_in_flight: Family<DeploymentLabels, Gauge>,
    /// `queue_wait`'s series by level and priority class, looked up once.
    queue_wait_handles: Handles<Histogram, 25>,
    /// `budget_spend`'s series by level, looked up once.
    budget_spend_handles: Handles<Counter, 5>,
    pub alerts: Family<AlertLabels, Counter>,
    pub alerts_dropped: Family<ReasonLabels, Counter>,
    pub alert_deliveries: Family<ResultLabels, Counter>,
    /// Subjects each alert rule currently fires for.
    pub alert_rules_firing: Family<RuleLabels, Gauge>,
    /// Request outcomes the rule evaluator's queue had no room for.
    pub alert_samples_dropped: Counter,
    pub request_log: super::request_log::LogMetrics,
    pub usage: super::usage_metrics::UsageMetrics,
    pub cache: crate::cache::metrics::CacheMetrics,
    pub trace_spans_exported: Counter,
    pub trace_spans_dropped: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint, served model, provider, status class and error code",
            requests.clone(),
        );
        let duration: HistFamily<ModelLabels> = Family::new_with_constructor(latency_hist);
        registry.register(
            "request_duration_seconds",
            "Whole request time as the client saw it (streams: until the last byte)",
            duration.clone(),
        );
        let overhead: HistFamily<ModelLabels> = Family::new_with_constructor(overhead_hist);
        registry.register(
            "gateway_overhead_seconds",
            "Time spent in sluice itself: time to the answer's start minus upstream time",
            overhead.clone(),
        );
        let upstream: HistFamily<ModelLabels> = Family::new_with_constructor(latency_hist);
        registry.register(
            "upstream_duration_seconds",
            "Upstream time until its answer (or stream) began, all attempts",
            upstream.clone(),
        );
        let ttft: HistFamily<ModelLabels> = Family::new_with_constructor(latency_hist);
        registry.register(
            "time_to_first_token_seconds",
            "Streams: request start to the first content chunk sent",
            ttft.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "tokens",
            "Tokens by served model and direction (input, output)",
            tokens.clone(),
        );
        let attempts_failed = Family::default();
        registry.register(
            "upstream_attempts_failed",
            "Failed upstream attempts that were retried elsewhere or ended the request",
            attempts_failed.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Config reloads by result (ok, error)",
            reloads.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (mode enforce) or that a shadow one would have refused (mode shadow), by scope and partition",
            rate_limited.clone(),
        );
        let queue_wait: HistFamily<QueueLabels> = Family::new_with_constructor(latency_hist);
        registry.register(
            "queue_wait_seconds",
            "Time requests admitted through a concurrency limit waited for their slots, by narrowest-first level and priority class",
            queue_wait.clone(),
        );
        let queue_refused = Family::default();
        registry.register(
            "queue_refused",
            "Requests refused by a concurrency queue: full (429) or no slot in time (503), by level and priority class",
            queue_refused.clone(),
        );
        let routed = Family::default();
        registry.register(
            "routed",
            "Requests whose serving model a route (`routes:`) picked, by route and model (compare a canary with its incumbent by the per-model series)",
            routed.clone(),
        );
        let retries = Family::default();
        registry.register(
            "retries",
            "Extra attempts of requests (failover to another deployment or model, and retry rounds): sent, or refused by the model's retry budget",
            retries.clone(),
        );
        let breaker_state = Family::default();
        registry.register(
            "breaker_state",
            "Circuit breaker of each deployment: 0 closed, 1 open, 2 half-open (read at scrape time)",
            breaker_state.clone(),
        );
        let deployment_in_flight = Family::default();
        registry.register(
            "deployment_in_flight",
            "Requests sent to each deployment whose answer has not ended",
            deployment_in_flight.clone(),
        );
        let queue_in_flight = Family::default();
        registry.register(
            "queue_in_flight",
            "Concurrency slots held, summed over the queues of each level",
            queue_in_flight.clone(),
        );
        let queue_waiting = Family::default();
        registry.register(
            "queue_waiting",
            "Requests waiting for a concurrency slot, summed over the queues of each level",
            queue_waiting.clone(),
        );
        let budget_exceeded = Family::default();
        registry.register(
            "budget_exceeded",
            "Requests that would have exceeded a USD budget, by level and what on_exceed did (block, alert_only, downgrade)",
            budget_exceeded.clone(),
        );
        let budget_spend = Family::default();
        registry.register(
            "budget_spend_microdollars",
            "Spend charged to budgets, in millionths of a USD, by level (a request under several levels counts at each)",
            budget_spend.clone(),
        );
        let shared_state_failures = Counter::default();
        registry.register(
            "shared_state_failures",
            "Rate-limit checks that got no answer from shared_state in time (or an error) and were decided by on_shared_state_failure",
            shared_state_failures.clone(),
        );
        let alerts = Family::default();
        registry.register(
            "alerts",
            "Alert events emitted (logged, and queued for the webhook when one is configured), by kind and scope level",
            alerts.clone(),
        );
        let alerts_dropped = Family::default();
        registry.register(
            "alerts_dropped",
            "Alert events that never reached a delivery attempt, by reason (queue_full, closed, shutdown_timeout, unconfigured)",
            alerts_dropped.clone(),
        );
        let alert_deliveries = Family::default();
        registry.register(
            "alert_deliveries",
            "Alert webhook deliveries by final result (ok, failed: every attempt failed or a 4xx answer)",
            alert_deliveries.clone(),
        );
        let alert_rules_firing = Family::default();
        registry.register(
            "alert_rules_firing",
            "Subjects (models, deployments, tenants) each alert rule currently fires for",
            alert_rules_firing.clone(),
        );
        let alert_samples_dropped = Counter::default();
        registry.register(
            "alert_samples_dropped",
            "Request outcomes not seen by the alert rules because their queue was full",
            alert_samples_dropped.clone(),
        );
        let trace_spans_exported = Counter::default();
        registry.register(
            "trace_spans_exported",
            "Trace spans the OTLP collector accepted",
            trace_spans_exported.clone(),
        );
        let trace_spans_dropped = Family::default();
        registry.register(
            "trace_spans_dropped",
            "Trace spans not exported, by reason (queue_full, closed, export_failed, unconfigured, shutdown_timeout)",
            trace_spans_dropped.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the output could not keep up",
            super::sink::DROPPED.clone(),
        );
        let request_log = super::request_log::LogMetrics::register(&mut registry);
        let usage = super::usage_metrics::UsageMetrics::register(&mut registry);
        let cache = crate::cache::metrics::CacheMetrics::register(&mut registry);
        Metrics {
            request_log,
            usage,
            cache,
            registry,
            requests,
            duration,
            overhead,
            upstream,
            ttft,
            tokens,
            attempts_failed,
            reloads,
            rate_limited,
            queue_wait,
            queue_refused,
            queue_in_flight,
            queue_waiting,
            budget_exceeded,
            budget_spend,
            shared_state_failures,
            queue_wait_handles: Handles::default(),
            budget_spend_handles: Handles::default(),
            alerts,
            alerts_dropped,
            alert_deliveries,
            alert_rules_firing,
            alert_samples_dropped,
            trace_spans_exported,
            trace_spans_dropped,
            breaker_state,
            deployment_in_flight,
            retries,
            routed,
        }
    }

    /// Sets the queue gauges from `(level, in flight, waiting)` sums (read
    /// at scrape time; levels without a live queue read 0).
    pub fn set_queue_totals(&self, totals: &[(&'static str, u64, u64)]) {
        for scope in ["global", "tenant", "app", "key", "model"] {
            let (f, w) = totals
                .iter()
                .find(|t| t.0 == scope)
                .map_or((0, 0), |t| (t.1, t.2));
            let l = ScopeLabels { scope };
            self.queue_in_flight.get_or_create(&l).set(f as i64);
            self.queue_waiting.get_or_create(&l).set(w as i64);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The `queue_wait` series of a level and priority class (no label
    /// hashing after the first use).
    pub fn queue_wait_of(&self, scope: ScopeKind, priority: Priority) -> &Histogram {
        let i = scope as usize * 5 + priority as usize;
        self.queue_wait_handles.get(i, || {
            self.queue_wait
                .get_or_create(&QueueLabels {
                    scope: scope.as_str(),
                    priority: priority.as_str(),
                })
                .clone()
        })
    }

    /// The `budget_spend` series of a level (no label hashing after the
    /// first use).
    pub fn budget_spend_of(&self, scope: ScopeKind) -> &Counter {
        self.budget_spend_handles.get(scope as usize, || {
            self.budget_spend
                .get_or_create(&ScopeLabels {
                    scope: scope.as_str(),
                })
                .clone()
        })
    }

    pub fn observe(h: &HistFamily<ModelLabels>, labels: &ModelLabels, d: Duration) {
        h.get_or_create(labels).observe(d.as_secs_f64());
    }
}

/// Handles of a family's series for a small fixed set of label sets, by
/// index, each looked up in the family on first use: then recording costs
/// no label hashing and no lock. A handle shares its value with the
/// family's series.
pub struct Handles<M, const N: usize>([OnceLock<M>; N]);

impl<M, const N: usize> Default for Handles<M, N> {
    fn default() -> Self {
        Handles(std::array::from_fn(|_| OnceLock::new()))
    }
}

impl<M, const N: usize> Handles<M, N> {
    /// The handle at `i` (< N), made by `make` the first time.
    pub fn get(&self, i: usize, make: impl FnOnce() -> M) -> &M {
        self.0[i].get_or_init(make)
    }
}

/// Handles to one (model, provider) pair's series, looked up once and kept
/// on the deployment: recording a request then costs no label hashing. A
/// handle shares its value with the family's series, so a config reload
/// (new deployment, new handles) keeps counting the same series.
pub struct SeriesHandles {
    pub duration: Histogram,
    pub overhead: Histogram,
    pub upstream: Histogram,
    pub ttft: Histogram,
    pub tokens_in: Counter,
    pub tokens_out: Counter,
    /// `requests` answered `2xx` / `ok`, by endpoint ([`ok_index`]).
    pub requests_ok: Handles<Counter, 3>,
}

/// The index of an endpoint in [`SeriesHandles::requests_ok`].
pub fn ok_index(endpoint: &str) -> Option<usize> {
    ["chat", "messages", "embeddings"]
        .iter()
        .position(|e| *e == endpoint)
}

impl SeriesHandles {
    pub fn new(m: &Metrics, labels: &ModelLabels) -> Self {
        let tokens = |direction| {
            m.tokens
                .get_or_create(&TokenLabels {
                    model: labels.model.clone(),
                    direction,
                })
                .clone()
        };
        SeriesHandles {
            duration: m.duration.get_or_create(labels).clone(),
            overhead: m.overhead.get_or_create(labels).clone(),
            upstream: m.upstream.get_or_create(labels).clone(),
            ttft: m.ttft.get_or_create(labels).clone(),
            tokens_in: tokens("input"),
            tokens_out: tokens("output"),
            requests_ok: Handles::default(),
        }
    }
}
