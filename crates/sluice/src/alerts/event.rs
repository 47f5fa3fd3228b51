//! The alert event and its JSON body. Field names are a documented,
//! stable contract with webhook receivers (`docs/configuration.md`,
//! "alerts"): add fields, never rename or remove one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::policy::budget::Period;
use crate::policy::Scope;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Spend reached one of the budget's `alert_at` fractions.
    BudgetThreshold,
    /// Spend reached the limit (or a request was refused for it).
    BudgetExceeded,
    /// An `error_rate` rule: a model's share of 5xx answers.
    ErrorRate,
    /// A `latency_p99` rule: a model's p99 whole-request latency.
    LatencyP99,
    /// A `breaker_open` rule: a deployment's circuit breaker.
    BreakerOpen,
    /// A `spend_anomaly` rule: an interval's spend far above its EWMA.
    SpendAnomaly,
}

impl AlertKind {
    /// The JSON `kind`, the `x-sluice-event` header and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BudgetThreshold => "budget_threshold",
            AlertKind::BudgetExceeded => "budget_exceeded",
            AlertKind::ErrorRate => "error_rate",
            AlertKind::LatencyP99 => "latency_p99",
            AlertKind::BreakerOpen => "breaker_open",
            AlertKind::SpendAnomaly => "spend_anomaly",
        }
    }
}

/// One alert, as logged and as POSTed to the webhook. Budget events carry
/// the budget fields, rule events the rule fields; neither carries the
/// other's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `evt_` + 32 hex digits, unique per event and the same on every
    /// delivery attempt: receivers dedupe retries by it.
    pub id: String,
    pub kind: AlertKind,
    /// For people: "tenant `acme`", "key `ci`", "the gateway-wide limit",
    /// "model `smart`", "deployment `smart/up/gpt-4o`".
    pub scope: String,
    /// The scope's level: `global`, `tenant`, `app`, `key`, `model`,
    /// `deployment`.
    pub scope_kind: &'static str,
    /// Tenant name, app id, key id, model name, deployment; empty for
    /// `global`.
    pub scope_id: String,
    /// Budget events only.
    #[serde(flatten)]
    pub budget: Option<BudgetFields>,
    /// Rule events only.
    #[serde(flatten)]
    pub rule: Option<RuleFields>,
    /// When the event was created, RFC 3339 (UTC).
    pub at: String,
}

/// The fields of a budget event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetFields {
    /// The budget period: `day`, `week` or `month`.
    pub period: &'static str,
    /// Start of that period (UTC), RFC 3339.
    pub period_start: String,
    /// The `alert_at` fraction crossed (`budget_threshold`), or spent/limit.
    pub fraction: f64,
    pub spent_usd: f64,
    pub limit_usd: f64,
    /// The policy that set the budget, when known.
    pub policy: Option<String>,
}

/// The fields of a rule event (`alerts.rules`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleFields {
    /// The rule's `name`.
    pub rule: String,
    /// `firing` (started, or a `repeat_every` reminder) or `resolved`.
    pub state: RuleState,
    /// What was observed: error share (0..1), p99 seconds, z-score; none
    /// for `breaker_open`.
    pub value: Option<f64>,
    /// The rule's threshold in the same unit; none for `breaker_open`.
    pub threshold: Option<f64>,
    /// `ratio`, `seconds`, `z` or `state`.
    pub unit: &'static str,
    /// The rule's window in seconds; none for `breaker_open`.
    pub window_secs: Option<f64>,
    /// Requests in the window (`error_rate`, `latency_p99`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Spend of the last interval and its EWMA mean (`spend_anomaly`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_usd: Option<f64>,
    /// A breaker's phase: `open`, `half_open`, `closed` (`breaker_open`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
}

/// Whether a rule event starts (or repeats) an alert or ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    Firing,
    Resolved,
}

impl RuleState {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Firing => "firing",
            RuleState::Resolved => "resolved",
        }
    }
}

/// What a rule event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// Everything together.
    Global,
    Model(String),
    /// A deployment by its stable key `model/provider/upstream model`.
    Deployment(String),
    Tenant(String),
}

impl Subject {
    /// `scope_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Global => "global",
            Subject::Model(_) => "model",
            Subject::Deployment(_) => "deployment",
            Subject::Tenant(_) => "tenant",
        }
    }

    /// `scope_id`.
    pub fn id(&self) -> &str {
        match self {
            Subject::Global => "",
            Subject::Model(s) | Subject::Deployment(s) | Subject::Tenant(s) => s,
        }
    }

    /// `scope`.
    pub fn label(&self) -> String {
        match self {
            Subject::Global => "the gateway".to_string(),
            s => format!("{} `{}`", s.kind(), s.id()),
        }
    }
}

impl AlertEvent {
    /// A budget event about `scope` in the period starting at
    /// `period_start_ms` (Unix ms, e.g. `Reservation::period_start`), with
    /// a fresh id and `at` = now. Spend figures start at 0: set them with
    /// [`AlertEvent::with_spend`].
    pub fn budget(kind: AlertKind, scope: &Scope, period: Period, period_start_ms: i64) -> Self {
        AlertEvent {
            id: new_event_id(),
            kind,
            scope: scope.label.to_string(),
            scope_kind: scope.kind.as_str(),
            scope_id: scope.id.to_string(),
            budget: Some(BudgetFields {
                period: period.as_str(),
                period_start: rfc3339_ms(period_start_ms),
                fraction: 0.0,
                spent_usd: 0.0,
                limit_usd: 0.0,
                policy: None,
            }),
            rule: None,
            at: crate::telemetry::rfc3339(SystemTime::now()),
        }
    }

    /// A rule event about `subject`, with a fresh id and `at` = now.
    pub fn rule(kind: AlertKind, subject: &Subject, fields: RuleFields) -> Self {
        AlertEvent {
            id: new_event_id(),
            kind,
            scope: subject.label(),
            scope_kind: subject.kind(),
            scope_id: subject.id().to_string(),
            budget: None,
            rule: Some(fields),
            at: crate::telemetry::rfc3339(SystemTime::now()),
        }
    }

    /// Sets the fraction and the spend, given in micro-USD as the ledger
    /// counts it (budget events).
    pub fn with_spend(mut self, fraction: f64, spent_micro_usd: u64, limit_micro_usd: u64) -> Self {
        if let Some(b) = &mut self.budget {
            b.fraction = fraction;
            b.spent_usd = usd(spent_micro_usd);
            b.limit_usd = usd(limit_micro_usd);
        }
        self
    }

    /// Names the policy that set the budget (budget events).
    pub fn with_policy(mut self, policy: impl Into<String>) -> Self {
        if let Some(b) = &mut self.budget {
            b.policy = Some(policy.into());
        }
        self
    }

    /// One line for the log: "tenant `acme` reached 80% of its month
    /// budget ($400.00 of $500.00)", "rule `slow` firing: model `smart`
    /// latency_p99 2.4 above 2 seconds".
    pub fn summary(&self) -> String {
        if let Some(r) = &self.rule {
            return rule_summary(self, r);
        }
        let Some(b) = &self.budget else {
            return format!("{} {}", self.scope, self.kind.as_str());
        };
        let what = match self.kind {
            AlertKind::BudgetThreshold => format!("reached {}% of", percent(b.fraction)),
            _ => "exceeded".to_string(),
        };
        format!(
            "{} {what} its {} budget (${:.2} of ${:.2})",
            self.scope, b.period, b.spent_usd, b.limit_usd
        )
    }
}

fn rule_summary(ev: &AlertEvent, r: &RuleFields) -> String {
    let mut out = format!(
        "rule `{}` {}: {} {}",
        r.rule,
        r.state.as_str(),
        ev.scope,
        ev.kind.as_str()
    );
    if let (Some(v), Some(t)) = (r.value, r.threshold) {
        let rel = if v > t { "above" } else { "not above" };
        out.push_str(&format!(" {v:.4} {rel} {t} {}", r.unit));
    }
    if let Some(p) = r.phase {
        out.push_str(&format!(" (breaker {p})"));
    }
    out
}

/// `evt_` + 32 random hex digits.
pub fn new_event_id() -> String {
    format!("evt_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Unix milliseconds as RFC 3339 UTC (negative clamps to the epoch).
fn rfc3339_ms(ms: i64) -> String {
    let since = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    crate::telemetry::rfc3339(UNIX_EPOCH + since)
}

fn usd(micro: u64) -> f64 {
    micro as f64 / 1_000_000.0
}

/// 0.8 → "80", 0.955 → "95.5".
fn percent(fraction: f64) -> String {
    let p = (fraction * 1000.0).round() / 10.0;
    format!("{p}")
}
