//! The in-process budget ledger: one counter per (scope, period, period
//! start) of micro-USD `spent` (settled) and `reserved` (admitted, not yet
//! settled), in a sharded concurrent map. Every read-modify-write of a
//! counter happens under its shard's lock, held for a few instructions and
//! never across an `.await`, so admissions, settlements and alerts are
//! atomic per counter.
//!
//! Lifecycle of a request's money:
//! - [`LocalLedger::reserve`] admits `amount` (the request's maximum cost)
//!   when `spent + reserved + amount <= limit` and returns a [`Reservation`].
//!   A request whose maximum cost alone exceeds what is left is refused even
//!   if its real cost might have fit: what matters is the guarantee —
//!   concurrent requests cannot overspend, except by what a settlement adds
//!   beyond its own reservation.
//! - [`Reservation::settle`] moves it to `spent` at the real cost (which may
//!   exceed the reservation: `spent` records what was really spent) and
//!   reports the `alert_at` fractions newly crossed; [`Reservation::release`]
//!   settles at 0; dropping an unsettled reservation releases it, so an
//!   early return or a panic never leaks reserved money. `settle` consumes
//!   the reservation: settling twice does not compile.
//! - A reservation always settles into the period it was made in, also when
//!   that period has ended meanwhile (the simplest honest choice: the
//!   request was admitted against that period's budget).
//!
//! Alerts: each fraction fires at most once per scope and period — the
//! counter remembers what fired, under its lock, so concurrent settlements
//! cannot both report it. Spend loaded by [`LocalLedger::restore`] counts
//! as already alerted (the process that spent it alerted then), so a
//! restart does not repeat old alerts.
//!
//! Persistence: settled spend also accumulates per counter as *unflushed*;
//! [`LocalLedger::take_unflushed`] drains it as store deltas (each micro-USD
//! exactly once) and [`LocalLedger::requeue`] puts back deltas whose write
//! failed. [`LocalLedger::prune`] forgets counters of past periods with
//! nothing reserved and nothing unflushed.
//!
//! Several instances: each ledger sees its own settlements plus what it
//! restored at startup; other instances' spend since then reaches the store
//! but not this ledger.

use std::hash::BuildHasherDefault;
use std::sync::Arc;

use dashmap::DashMap;
use sluice_store::{SpendDelta, SpendRow};

use super::Period;
use crate::snapshot::NameHasher;

/// A counter's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CounterKey {
    scope: Arc<str>,
    period: Period,
    start: i64,
}

impl CounterKey {
    /// The counter of `scope` for the period containing `now_ms`.
    fn of(scope: &Arc<str>, period: Period, now_ms: i64) -> CounterKey {
        CounterKey {
            scope: scope.clone(),
            period,
            start: period.start_of(now_ms),
        }
    }
}

/// One budget counter, in micro-USD.
#[derive(Debug, Default)]
struct Counter {
    spent: u64,
    reserved: u64,
    /// Settled since the last [`LocalLedger::take_unflushed`].
    unflushed: u64,
    /// `spent` right after the last restore: fractions at or below it had
    /// fired before the restart.
    alerted_below: u64,
    /// The `alert_at` fractions (as `f64` bits) that fired in this period.
    alerted: Vec<u64>,
}

/// A scope's standing in one period, in micro-USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub spent: u64,
    pub reserved: u64,
}

/// A refused reservation: where the budget stands, in micro-USD, and when
/// it resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub spent: u64,
    pub reserved: u64,
    pub limit: u64,
    /// What the request asked to reserve.
    pub amount: u64,
    /// Unix ms of the next period's start.
    pub resets_at_ms: i64,
}

/// Budget counters of this process (see the module docs). Scopes are
/// config and store names, never request data, so the map hashes with
/// FNV-1a (a third of SipHash's instructions on these short keys).
#[derive(Debug, Default)]
pub struct LocalLedger {
    counters: DashMap<CounterKey, Counter, BuildHasherDefault<NameHasher>>,
}

impl LocalLedger {
    pub fn new() -> LocalLedger {
        LocalLedger::default()
    }

    /// Reserves `amount` micro-USD against `scope`'s `limit` for the period
    /// containing `now_ms`, or refuses when `spent + reserved + amount`
    /// would exceed the limit.
    pub fn reserve(
        self: &Arc<Self>,
        scope: &Arc<str>,
        period: Period,
        limit: u64,
        amount: u64,
        now_ms: i64,
    ) -> Result<Reservation, Exceeded> {
        let key = CounterKey::of(scope, period, now_ms);
        let mut counter = self.counters.entry(key.clone()).or_default();
        let fits = counter
            .spent
            .checked_add(counter.reserved)
            .and_then(|committed| committed.checked_add(amount))
            .is_some_and(|total| total <= limit);
        if !fits {
            return Err(Exceeded {
                spent: counter.spent,
                reserved: counter.reserved,
                limit,
                amount,
                resets_at_ms: period.next_start(now_ms),
            });
        }
        counter.reserved += amount;
        drop(counter);
        Ok(Reservation {
            ledger: self.clone(),
            key,
            amount,
            limit,
            open: true,
        })
    }

    /// Reserves `amount` without checking the limit: for budgets that only
    /// alert (`on_exceed: alert_only`) and requests already downgraded. It
    /// is counted, settled and alerted like any other reservation.
    pub fn reserve_unchecked(
        self: &Arc<Self>,
        scope: &Arc<str>,
        period: Period,
        limit: u64,
        amount: u64,
        now_ms: i64,
    ) -> Reservation {
        let key = CounterKey::of(scope, period, now_ms);
        let mut counter = self.counters.entry(key.clone()).or_default();
        counter.reserved = counter.reserved.saturating_add(amount);
        drop(counter);
        Reservation {
            ledger: self.clone(),
            key,
            amount,
            limit,
            open: true,
        }
    }

    /// Records `amount` settled elsewhere (in shared state) for the period
    /// starting at `start`: it counts here too and goes to the store with
    /// the next flush.
    pub fn record(&self, scope: &Arc<str>, period: Period, start: i64, amount: u64) {
        let key = CounterKey {
            scope: scope.clone(),
            period,
            start,
        };
        let mut counter = self.counters.entry(key).or_default();
        counter.spent = counter.spent.saturating_add(amount);
        counter.unflushed = counter.unflushed.saturating_add(amount);
    }

    /// Where `scope` stands in the period containing `now_ms`.
    pub fn standing(&self, scope: &Arc<str>, period: Period, now_ms: i64) -> Standing {
        let key = CounterKey::of(scope, period, now_ms);
        self.counters
            .get(&key)
            .map_or_else(Standing::default, |c| Standing {
                spent: c.spent,
                reserved: c.reserved,
            })
    }

    /// Drains the spend settled since the last call, one delta per counter
    /// (amounts above `i64::MAX` stay for the next call).
    pub fn take_unflushed(&self) -> Vec<SpendDelta> {
        let mut deltas = Vec::new();
        for mut entry in self.counters.iter_mut() {
            let taken = entry.unflushed.min(i64::MAX as u64);
            if taken == 0 {
                continue;
            }
            entry.unflushed -= taken;
            deltas.push(delta(entry.key(), taken));
        }
        deltas
    }

    /// Puts back deltas from [`take_unflushed`](Self::take_unflushed) whose
    /// write failed, to go out with the next flush.
    pub fn requeue(&self, deltas: Vec<SpendDelta>) {
        for d in deltas {
            let Some(key) = key_of(&d.scope, &d.period, d.period_start) else {
                continue;
            };
            let mut counter = self.counters.entry(key).or_default();
            counter.unflushed = counter.unflushed.saturating_add(non_negative(d.micro_usd));
        }
    }

    /// Adds stored spend (`Store::spend_since` at startup) to the counters:
    /// it counts against the budgets but is not flushed again. Call it once,
    /// before serving: spend this ledger flushed itself would count twice.
    pub fn restore(&self, rows: &[SpendRow]) {
        for row in rows {
            let Some(key) = key_of(&row.scope, &row.period, row.period_start) else {
                tracing::warn!(period = %row.period, scope = %row.scope, "ignoring stored spend of an unknown period");
                continue;
            };
            let mut counter = self.counters.entry(key).or_default();
            counter.spent = counter.spent.saturating_add(non_negative(row.micro_usd));
            counter.alerted_below = counter.spent;
        }
    }

    /// Forgets counters of periods that ended before `now_ms` with nothing
    /// reserved and nothing unflushed.
    pub fn prune(&self, now_ms: i64) {
        self.counters.retain(|key, counter| {
            key.start >= key.period.start_of(now_ms)
                || counter.reserved > 0
                || counter.unflushed > 0
        });
    }

    /// Counters held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Ends a reservation: `amount` leaves `reserved`, `actual` joins
    /// `spent` and the unflushed spend; returns the fractions newly crossed.
    fn settle(
        &self,
        key: &CounterKey,
        amount: u64,
        actual: u64,
        limit: u64,
        alert_at: &[f64],
    ) -> Vec<f64> {
        let mut counter = self.counters.entry(key.clone()).or_default();
        counter.reserved = counter.reserved.saturating_sub(amount);
        counter.spent = counter.spent.saturating_add(actual);
        counter.unflushed = counter.unflushed.saturating_add(actual);
        newly_crossed(&mut counter, limit, alert_at)
    }

    /// Sums over every counter, for the property tests.
    #[cfg(test)]
    pub(super) fn totals(&self) -> (u64, u64, u64) {
        self.counters.iter().fold((0, 0, 0), |(s, r, u), c| {
            (s + c.spent, r + c.reserved, u + c.unflushed)
        })
    }
}

/// The fractions of `limit` that `spent` has reached and that have not
/// fired in this period; marks them fired.
fn newly_crossed(counter: &mut Counter, limit: u64, alert_at: &[f64]) -> Vec<f64> {
    let mut fired = Vec::new();
    for &fraction in alert_at {
        let threshold = fraction * limit as f64;
        let reached = counter.spent as f64 >= threshold;
        let before_restart = counter.alerted_below as f64 >= threshold;
        if reached && !before_restart && !counter.alerted.contains(&fraction.to_bits()) {
            counter.alerted.push(fraction.to_bits());
            fired.push(fraction);
        }
    }
    fired
}

fn key_of(scope: &str, period: &str, start: i64) -> Option<CounterKey> {
    Some(CounterKey {
        scope: scope.into(),
        period: Period::parse(period)?,
        start,
    })
}

fn delta(key: &CounterKey, micro_usd: u64) -> SpendDelta {
    SpendDelta {
        scope: key.scope.to_string(),
        period: key.period.as_str().to_owned(),
        period_start: key.start,
        micro_usd: i64::try_from(micro_usd).unwrap_or(i64::MAX),
    }
}

fn non_negative(micro_usd: i64) -> u64 {
    u64::try_from(micro_usd).unwrap_or(0)
}

/// Money held for one request against one scope's budget; settle it with
/// the real cost. Dropped unsettled, it is released.
#[derive(Debug)]
#[must_use = "a reservation dropped at once is released at once"]
pub struct Reservation {
    ledger: Arc<LocalLedger>,
    key: CounterKey,
    amount: u64,
    limit: u64,
    /// Cleared by `settle`, so `Drop` does nothing after it.
    open: bool,
}

impl Reservation {
    /// Micro-USD reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The limit it was admitted under, in micro-USD.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn scope(&self) -> &Arc<str> {
        &self.key.scope
    }

    pub fn period(&self) -> Period {
        self.key.period
    }

    /// Unix ms of the start of the period it charges.
    pub fn period_start(&self) -> i64 {
        self.key.start
    }

    /// Charges `actual_micro_usd` (which may exceed the reservation) to the
    /// period reserved in, releases the reservation, and returns the
    /// fractions of `alert_at` (of the limit) that `spent` newly reached —
    /// each fires once per scope and period.
    pub fn settle(mut self, actual_micro_usd: u64, alert_at: &[f64]) -> Vec<f64> {
        self.open = false;
        self.ledger.settle(
            &self.key,
            self.amount,
            actual_micro_usd,
            self.limit,
            alert_at,
        )
    }

    /// Gives the reservation back without spending anything.
    pub fn release(self) {
        self.settle(0, &[]);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.ledger
                .settle(&self.key, self.amount, 0, self.limit, &[]);
        }
    }
}
