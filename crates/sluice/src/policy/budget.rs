//! USD budgets (`budget` in a policy): what a request costs, the UTC
//! calendar periods budgets count over, and the in-process ledger that
//! admits, settles and persists spend. Config resolution and the request
//! stage that uses them live elsewhere; this module is pure accounting.
//!
//! - `budget/cost.rs`: [`cost_micro_usd`] (the real cost of an answer) and
//!   [`max_cost_micro_usd`] (the most a request can cost, reserved at
//!   admission), in whole millionths of a dollar, rounded up; [`micro_usd`]
//!   converts a configured USD limit.
//! - `budget/period.rs`: [`Period`] — day, ISO week, month — with UTC
//!   calendar boundaries in Unix milliseconds (civil-date arithmetic by hand).
//! - `budget/ledger.rs`: [`LocalLedger`], counters per (scope, period,
//!   period start) of `spent` and `reserved` micro-USD. A request reserves
//!   its maximum cost ([`LocalLedger::reserve`]); the [`Reservation`] it gets
//!   is settled to the real cost when the answer ends, and released if it is
//!   dropped unsettled (an error, a panic, a disconnect). Settling reports
//!   the `alert_at` fractions newly crossed. Settled spend accumulates as
//!   unflushed deltas for the store.
//! - `budget/rule.rs`: [`BudgetRule`] (a level's merged `budget`), and a
//!   request's [`admit`]ion under its levels' rules — a reservation per rule
//!   and period, `on_exceed` when one does not fit — and [`settle`]ment,
//!   which returns the alerts due.
//! - `budget/flush.rs`: [`flush`] and [`spawn_flusher`], which write those
//!   deltas with `Store::add_spend` on a timer and once more at shutdown.
//!
//! The guarantee (config.md, "Policy semantics"): a reservation is admitted
//! only when `spent + reserved + amount <= limit`, so concurrent requests
//! whose real cost does not exceed their reservation can never overspend; a
//! request costing more than it reserved (an underestimated prompt) adds at
//! most its own excess.

mod cost;
mod flush;
mod ledger;
mod period;
mod rule;
#[cfg(test)]
mod rule_tests;
mod shared;
#[cfg(test)]
mod tests;

pub use cost::{cost_micro_usd, max_cost_micro_usd, micro_usd};
pub use flush::{flush, spawn_flusher};
pub use ledger::{Exceeded, LocalLedger, Reservation, Standing};
pub use period::Period;
pub use rule::{admit, settle, usd, BudgetRule, Charge, Charges, Crossed, Verdict};
pub use shared::{BudgetCall, HeldCounter, SharedHold, SharedLedger, LEASE_MARGIN};

use std::sync::Arc;
use std::time::Duration;

/// Where budget counters live: in this process, or shared by every
/// instance through Redis (`shared_state`).
pub enum Budgets {
    Local(Arc<LocalLedger>),
    Shared(SharedLedger),
}

impl Budgets {
    /// This instance's ledger: the record flushed to the store (and, for
    /// a local setup, the counters themselves).
    pub fn ledger(&self) -> &Arc<LocalLedger> {
        match self {
            Budgets::Local(l) => l,
            Budgets::Shared(s) => s.local(),
        }
    }

    /// Reserves a request's maximum cost under its budgets ([`admit`]).
    pub async fn admit(
        &self,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
        lease: Duration,
    ) -> Verdict {
        match self {
            Budgets::Local(l) => admit(l, rules, amount, now_ms, downgraded),
            Budgets::Shared(s) => s.admit(rules, amount, now_ms, downgraded, lease).await,
        }
    }

    /// Settles a request at `cost` (`rules`: its budget rules, as at
    /// admission); `report` gets each alert due.
    pub fn settle(
        &self,
        charges: Charges,
        rules: [&[Arc<BudgetRule>]; 2],
        cost: u64,
        report: impl Fn(&Crossed) + Send + 'static,
    ) {
        match self {
            Budgets::Local(_) => settle(charges, rules, cost).iter().for_each(report),
            Budgets::Shared(s) => s.settle(charges, rules, cost, report),
        }
    }
}
