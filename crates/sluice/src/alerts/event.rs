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
}

impl AlertKind {
    /// The JSON `kind`, the `x-sluice-event` header and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BudgetThreshold => "budget_threshold",
            AlertKind::BudgetExceeded => "budget_exceeded",
        }
    }
}

/// One alert, as logged and as POSTed to the webhook.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `evt_` + 32 hex digits, unique per event and the same on every
    /// delivery attempt: receivers dedupe retries by it.
    pub id: String,
    pub kind: AlertKind,
    /// For people: "tenant `acme`", "key `ci`", "the gateway-wide limit".
    pub scope: String,
    /// The scope's level: `global`, `tenant`, `app`, `key`, `model`.
    pub scope_kind: &'static str,
    /// Tenant name, app id, key id, model name; empty for `global`.
    pub scope_id: String,
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
    /// When the event was created, RFC 3339 (UTC).
    pub at: String,
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
            period: period.as_str(),
            period_start: rfc3339_ms(period_start_ms),
            fraction: 0.0,
            spent_usd: 0.0,
            limit_usd: 0.0,
            policy: None,
            at: crate::telemetry::rfc3339(SystemTime::now()),
        }
    }

    /// Sets the fraction and the spend, given in micro-USD as the ledger
    /// counts it.
    pub fn with_spend(mut self, fraction: f64, spent_micro_usd: u64, limit_micro_usd: u64) -> Self {
        self.fraction = fraction;
        self.spent_usd = usd(spent_micro_usd);
        self.limit_usd = usd(limit_micro_usd);
        self
    }

    /// Names the policy that set the budget.
    pub fn with_policy(mut self, policy: impl Into<String>) -> Self {
        self.policy = Some(policy.into());
        self
    }

    /// One line for the log: "tenant `acme` reached 80% of its month
    /// budget ($400.00 of $500.00)".
    pub fn summary(&self) -> String {
        let what = match self.kind {
            AlertKind::BudgetThreshold => format!("reached {}% of", percent(self.fraction)),
            AlertKind::BudgetExceeded => "exceeded".to_string(),
        };
        format!(
            "{} {what} its {} budget (${:.2} of ${:.2})",
            self.scope, self.period, self.spent_usd, self.limit_usd
        )
    }
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
