//! From a level's merged `budget` to its rule, and one request's admission
//! under the rules of its levels: a reservation of its maximum cost per
//! rule and period, what `on_exceed` says when one does not fit, and the
//! settlement at the end, which reports the alerts to send.

use std::sync::Arc;
use std::time::Duration;

use super::ledger::{reserve_in, reserve_unchecked_in};
use super::{micro_usd, Exceeded, LocalLedger, Period, Reservation};
use crate::config::raw::{BudgetConfig, OnExceed};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::few::{Few, RuleAt};
use crate::policy::handle::Handle;
use crate::policy::{Scope, ScopeKind};

/// One level's budget.
#[derive(Clone, Debug)]
pub struct BudgetRule {
    /// Names the level in messages and events.
    pub scope: Scope,
    /// The store's name of the scope: `global`, `tenant:<name>`,
    /// `app:<id>`, `key:<id>`, `model:<name>`.
    pub key: Arc<str>,
    /// Micro-USD per period, for the periods set.
    pub limits: Box<[(Period, u64)]>,
    pub alert_at: Arc<[f64]>,
    pub on_exceed: OnExceed,
    /// Its counters in the local ledger, one per period, once used
    /// (`policy/handle.rs`).
    pub cells: Handle,
}

impl BudgetRule {
    /// The rule of a level's merged `budget`, if it sets a period.
    pub fn of_level(scope: &Scope, b: Option<&BudgetConfig>) -> Option<BudgetRule> {
        let b = b?;
        let limits: Box<[(Period, u64)]> = [Period::Day, Period::Week, Period::Month]
            .into_iter()
            .zip(b.limits())
            .filter_map(|(p, usd)| Some((p, micro_usd(usd?))))
            .collect();
        if limits.is_empty() {
            return None;
        }
        let key = match scope.kind {
            ScopeKind::Global => "global".to_owned(),
            kind => format!("{}:{}", kind.as_str(), scope.id),
        };
        Some(BudgetRule {
            scope: scope.clone(),
            key: key.into(),
            limits,
            alert_at: b.alert_at.clone().unwrap_or_default().into(),
            on_exceed: b.on_exceed.clone().unwrap_or(OnExceed::Block),
            cells: Handle::default(),
        })
    }
}

/// One reservation a request holds, and its rule's place among the
/// request's budget rules (`policy/few.rs`: no clone of the rule).
#[derive(Debug)]
pub struct Charge {
    pub reservation: Reservation,
    pub rule: RuleAt,
}

/// A request's budget admission.
#[derive(Debug, Default)]
pub struct Charges {
    pub held: Few<Charge>,
    /// Its holds in shared state (`shared_state`), when admitted there.
    pub shared: Option<super::shared::SharedHold>,
    /// The first `alert_only` budget it went over (label, level), for the
    /// log and metrics.
    pub over: Option<(Arc<str>, ScopeKind)>,
}

/// What the budgets say about a request.
#[derive(Debug)]
pub enum Verdict {
    Admitted(Charges),
    /// Serve it with this model instead (a budget's `downgrade:<model>` at
    /// this level).
    Downgrade(String, ScopeKind),
    /// A `block` budget at this level refused it.
    Refused(GatewayError, ScopeKind),
}

/// An alert to send: `fraction` of `rule`'s budget for `period` was reached.
#[derive(Clone, Debug)]
pub struct Crossed {
    pub rule: Arc<BudgetRule>,
    pub period: Period,
    pub period_start: i64,
    pub fraction: f64,
    pub limit: u64,
    /// The spend that crossed it, when the shared state reported it (else
    /// read it from the local ledger).
    pub spent: Option<u64>,
}

/// Reserves `amount` micro-USD under every period of every rule. When one
/// does not fit, its `on_exceed` decides: `block` refuses (releasing what
/// was reserved), `alert_only` admits it anyway, `downgrade` asks for
/// another model — unless `downgraded`: a request already moved to a
/// cheaper model is admitted like `alert_only`, so it keeps being served.
pub fn admit(
    ledger: &Arc<LocalLedger>,
    rules: [&[Arc<BudgetRule>]; 2],
    amount: u64,
    now_ms: i64,
    downgraded: bool,
) -> Verdict {
    let mut charges = Charges::default();
    for (rule, at) in RuleAt::placed(rules) {
        let refused = ledger.with_cells(rule, |cells| {
            for (&(period, limit), cell) in rule.limits.iter().zip(cells) {
                let reservation = match reserve_in(cell, limit, amount, now_ms) {
                    Ok(r) => r,
                    Err(ex) => match (&rule.on_exceed, downgraded) {
                        (OnExceed::Block, _) => {
                            let e = refusal(rule, period, &ex, now_ms);
                            return Some(Verdict::Refused(e, rule.scope.kind));
                        }
                        (OnExceed::Downgrade(to), false) => {
                            return Some(Verdict::Downgrade(to.clone(), rule.scope.kind))
                        }
                        (OnExceed::AlertOnly, _) | (OnExceed::Downgrade(_), true) => {
                            charges
                                .over
                                .get_or_insert_with(|| (rule.scope.label.clone(), rule.scope.kind));
                            reserve_unchecked_in(cell, limit, amount, now_ms)
                        }
                    },
                };
                charges.held.push(Charge {
                    reservation,
                    rule: at,
                });
            }
            None
        });
        if let Some(v) = refused {
            return v;
        }
    }
    Verdict::Admitted(charges)
}

/// Settles every reservation at `cost` micro-USD; returns the alerts due.
/// `rules` are the request's budget rules, as at admission.
pub fn settle(charges: Charges, rules: [&[Arc<BudgetRule>]; 2], cost: u64) -> Vec<Crossed> {
    let mut due = Vec::new();
    for Charge { reservation, rule } in charges.held {
        // Always there (the request keeps its rules); without its rule a
        // reservation still settles its money, with no alert.
        let Some(rule) = rule.get(rules) else {
            reservation.settle(cost, &[]);
            continue;
        };
        let (period, period_start, limit) = (
            reservation.period(),
            reservation.period_start(),
            reservation.limit(),
        );
        for fraction in reservation.settle(cost, &rule.alert_at) {
            due.push(Crossed {
                rule: rule.clone(),
                period,
                period_start,
                fraction,
                limit,
                spent: None,
            });
        }
    }
    due
}

/// Dollars with cents (and more digits below a cent).
pub fn usd(micro: u64) -> String {
    if micro < 10_000 && micro > 0 {
        format!("${:.4}", micro as f64 / 1e6)
    } else {
        format!("${:.2}", micro as f64 / 1e6)
    }
}

/// The 402 of a `block` budget, naming it, with `Retry-After` until the
/// period resets.
pub(super) fn refusal(
    rule: &BudgetRule,
    period: Period,
    ex: &Exceeded,
    now_ms: i64,
) -> GatewayError {
    let wait_s = u64::try_from((ex.resets_at_ms - now_ms).max(1000) / 1000).unwrap_or(1);
    let mut e = GatewayError::new(
        ErrorKind::BudgetExceeded,
        format!(
            "budget of {} exceeded: {} of {} per {} spent and {} held by requests in flight; this request may cost up to {}; the budget resets at {}",
            rule.scope.label,
            usd(ex.spent),
            usd(ex.limit),
            period.as_str(),
            usd(ex.reserved),
            usd(ex.amount),
            crate::telemetry::rfc3339(
                std::time::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(ex.resets_at_ms).unwrap_or(0))
            ),
        ),
    );
    e.retry_after = Some(Duration::from_secs(wait_s));
    e
}
