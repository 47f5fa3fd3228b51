//! The in-process budget ledger: one counter per (scope, period, period
//! start) of micro-USD `spent` (settled) and `reserved` (admitted, not yet
//! settled). The counters of one (scope, period) live in one [`Cell`] (the
//! current period's, and past ones still reserved or unflushed), kept in a
//! sharded concurrent map; a budget rule holds a direct handle on its cells
//! (`policy/handle.rs`), and a reservation on the cell it reserved in, so
//! neither looks anything up. Every read-modify-write of a counter happens
//! under its cell's lock, held for a few instructions and never across an
//! `.await`, so admissions, settlements and alerts are atomic per counter.
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
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use sluice_store::{SpendDelta, SpendRow};

use super::{BudgetRule, Period};
use crate::policy::handle::store_id;
use crate::snapshot::NameHasher;

/// The counters of one scope and period kind: by period start, the current
/// one last (usually the only one).
#[derive(Debug)]
pub struct Cell {
    scope: Arc<str>,
    period: Period,
    counters: Mutex<Vec<(i64, Counter)>>,
}

impl Cell {
    fn new(scope: Arc<str>, period: Period) -> Cell {
        Cell {
            scope,
            period,
            counters: Mutex::new(Vec::with_capacity(1)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(i64, Counter)>> {
        // A panic cannot leave a counter half-updated (each update is a
        // few field writes), so a poisoned lock is still consistent.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The counter of the period starting at `start`, created if missing.
fn at(counters: &mut Vec<(i64, Counter)>, start: i64) -> &mut Counter {
    let i = match counters.iter().rposition(|(s, _)| *s == start) {
        Some(i) => i,
        None => {
            counters.push((start, Counter::default()));
            counters.len() - 1
        }
    };
    &mut counters[i].1
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

/// The cells of one budget rule, one per period it sets (in its order).
pub type RuleCells = Vec<Arc<Cell>>;

/// Budget counters of this process (see the module docs). Scopes are
/// config and store names, never request data, so the map hashes with
/// FNV-1a (a third of SipHash's instructions on these short keys).
#[derive(Debug)]
pub struct LocalLedger {
    /// This ledger's number, for the rules' handles.
    id: u64,
    cells: DashMap<(Arc<str>, Period), Arc<Cell>, BuildHasherDefault<NameHasher>>,
}

impl Default for LocalLedger {
    fn default() -> Self {
        LocalLedger {
            id: store_id(),
            cells: DashMap::default(),
        }
    }
}

impl LocalLedger {
    pub fn new() -> LocalLedger {
        LocalLedger::default()
    }

    /// The cell of `scope` and `period`, created on first use.
    fn cell(&self, scope: &Arc<str>, period: Period) -> Arc<Cell> {
        if let Some(c) = self.cells.get(&(scope.clone(), period)) {
            return c.clone();
        }
        self.cells
            .entry((scope.clone(), period))
            .or_insert_with(|| Arc::new(Cell::new(scope.clone(), period)))
            .clone()
    }

    /// Runs `f` on the cells of `rule` (one per period, in its order):
    /// through the rule's handle, else looked up (and left in the handle).
    pub fn with_cells<T>(&self, rule: &BudgetRule, f: impl FnOnce(&[Arc<Cell>]) -> T) -> T {
        if let Some(cells) = rule.cells.get::<RuleCells>(self.id) {
            return f(cells);
        }
        let cells: RuleCells = (rule.limits.iter())
            .map(|(period, _)| self.cell(&rule.key, *period))
            .collect();
        let cells = Arc::new(cells);
        rule.cells.fill(self.id, cells.clone());
        f(&cells)
    }

    /// Reserves `amount` micro-USD against `scope`'s `limit` for the period
    /// containing `now_ms`, or refuses when `spent + reserved + amount`
    /// would exceed the limit.
    pub fn reserve(
        &self,
        scope: &Arc<str>,
        period: Period,
        limit: u64,
        amount: u64,
        now_ms: i64,
    ) -> Result<Reservation, Exceeded> {
        reserve_in(&self.cell(scope, period), limit, amount, now_ms)
    }

    /// Reserves `amount` without checking the limit: for budgets that only
    /// alert (`on_exceed: alert_only`) and requests already downgraded. It
    /// is counted, settled and alerted like any other reservation.
    pub fn reserve_unchecked(
        &self,
        scope: &Arc<str>,
        period: Period,
        limit: u64,
        amount: u64,
        now_ms: i64,
    ) -> Reservation {
        reserve_unchecked_in(&self.cell(scope, period), limit, amount, now_ms)
    }

    /// Records `amount` settled elsewhere (in shared state) for the period
    /// starting at `start`: it counts here too and goes to the store with
    /// the next flush.
    pub fn record(&self, scope: &Arc<str>, period: Period, start: i64, amount: u64) {
        let cell = self.cell(scope, period);
        let mut counters = cell.lock();
        let counter = at(&mut counters, start);
        counter.spent = counter.spent.saturating_add(amount);
        counter.unflushed = counter.unflushed.saturating_add(amount);
    }

    /// Where `scope` stands in the period containing `now_ms`.
    pub fn standing(&self, scope: &Arc<str>, period: Period, now_ms: i64) -> Standing {
        let Some(cell) = self.cells.get(&(scope.clone(), period)).map(|c| c.clone()) else {
            return Standing::default();
        };
        let start = period.start_of(now_ms);
        let counters = cell.lock();
        counters
            .iter()
            .find(|(s, _)| *s == start)
            .map_or_else(Standing::default, |(_, c)| Standing {
                spent: c.spent,
                reserved: c.reserved,
            })
    }

    /// Drains the spend settled since the last call, one delta per counter
    /// (amounts above `i64::MAX` stay for the next call).
    pub fn take_unflushed(&self) -> Vec<SpendDelta> {
        let mut deltas = Vec::new();
        for entry in self.cells.iter() {
            let cell = entry.value();
            for (start, counter) in cell.lock().iter_mut() {
                let taken = counter.unflushed.min(i64::MAX as u64);
                if taken == 0 {
                    continue;
                }
                counter.unflushed -= taken;
                deltas.push(delta(cell, *start, taken));
            }
        }
        deltas
    }

    /// Puts back deltas from [`take_unflushed`](Self::take_unflushed) whose
    /// write failed, to go out with the next flush.
    pub fn requeue(&self, deltas: Vec<SpendDelta>) {
        for d in deltas {
            let Some(period) = Period::parse(&d.period) else {
                continue;
            };
            let cell = self.cell(&Arc::from(d.scope.as_str()), period);
            let mut counters = cell.lock();
            let counter = at(&mut counters, d.period_start);
            counter.unflushed = counter.unflushed.saturating_add(non_negative(d.micro_usd));
        }
    }

    /// Adds stored spend (`Store::spend_since` at startup) to the counters:
    /// it counts against the budgets but is not flushed again. Call it once,
    /// before serving: spend this ledger flushed itself would count twice.
    pub fn restore(&self, rows: &[SpendRow]) {
        for row in rows {
            let Some(period) = Period::parse(&row.period) else {
                tracing::warn!(period = %row.period, scope = %row.scope, "ignoring stored spend of an unknown period");
                continue;
            };
            let cell = self.cell(&Arc::from(row.scope.as_str()), period);
            let mut counters = cell.lock();
            let counter = at(&mut counters, row.period_start);
            counter.spent = counter.spent.saturating_add(non_negative(row.micro_usd));
            counter.alerted_below = counter.spent;
        }
    }

    /// Forgets counters of periods that ended before `now_ms` with nothing
    /// reserved and nothing unflushed, then cells left with no counter that
    /// nothing else holds.
    pub fn prune(&self, now_ms: i64) {
        // Under the shard's write lock: nobody can take a new `Arc` of a
        // cell meanwhile, so a count of 1 means no rule or reservation
        // holds it.
        self.cells.retain(|_, cell| {
            let current = cell.period.start_of(now_ms);
            let mut counters = cell.lock();
            counters.retain(|(start, c)| *start >= current || c.reserved > 0 || c.unflushed > 0);
            !(counters.is_empty() && Arc::strong_count(cell) == 1)
        });
    }

    /// Counters held, over every cell (for tests and metrics).
    pub fn len(&self) -> usize {
        self.cells.iter().map(|c| c.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cells in the map, for the tests of pruning.
    #[cfg(test)]
    pub(super) fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Sums over every counter, for the property tests.
    #[cfg(test)]
    pub(super) fn totals(&self) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for cell in self.cells.iter() {
            for (_, c) in cell.lock().iter() {
                t = (t.0 + c.spent, t.1 + c.reserved, t.2 + c.unflushed);
            }
        }
        t
    }
}

/// [`LocalLedger::reserve`] in a cell already at hand.
pub fn reserve_in(
    cell: &Arc<Cell>,
    limit: u64,
    amount: u64,
    now_ms: i64,
) -> Result<Reservation, Exceeded> {
    let start = cell.period.start_of(now_ms);
    let mut counters = cell.lock();
    let counter = at(&mut counters, start);
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
            resets_at_ms: cell.period.next_start(now_ms),
        });
    }
    counter.reserved += amount;
    drop(counters);
    Ok(Reservation::new(cell, start, amount, limit))
}

/// [`LocalLedger::reserve_unchecked`] in a cell already at hand.
pub fn reserve_unchecked_in(cell: &Arc<Cell>, limit: u64, amount: u64, now_ms: i64) -> Reservation {
    let start = cell.period.start_of(now_ms);
    let mut counters = cell.lock();
    let counter = at(&mut counters, start);
    counter.reserved = counter.reserved.saturating_add(amount);
    drop(counters);
    Reservation::new(cell, start, amount, limit)
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

fn delta(cell: &Cell, start: i64, micro_usd: u64) -> SpendDelta {
    SpendDelta {
        scope: cell.scope.to_string(),
        period: cell.period.as_str().to_owned(),
        period_start: start,
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
    /// The cell reserved in (its scope and period); holding it keeps the
    /// cell in the ledger until this settles.
    cell: Arc<Cell>,
    start: i64,
    amount: u64,
    limit: u64,
    /// Cleared by `settle`, so `Drop` does nothing after it.
    open: bool,
}

impl Reservation {
    fn new(cell: &Arc<Cell>, start: i64, amount: u64, limit: u64) -> Reservation {
        Reservation {
            cell: cell.clone(),
            start,
            amount,
            limit,
            open: true,
        }
    }

    /// Micro-USD reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The limit it was admitted under, in micro-USD.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn scope(&self) -> &Arc<str> {
        &self.cell.scope
    }

    pub fn period(&self) -> Period {
        self.cell.period
    }

    /// Unix ms of the start of the period it charges.
    pub fn period_start(&self) -> i64 {
        self.start
    }

    /// Charges `actual_micro_usd` (which may exceed the reservation) to the
    /// period reserved in, releases the reservation, and returns the
    /// fractions of `alert_at` (of the limit) that `spent` newly reached —
    /// each fires once per scope and period.
    pub fn settle(mut self, actual_micro_usd: u64, alert_at: &[f64]) -> Vec<f64> {
        self.open = false;
        self.end(actual_micro_usd, alert_at)
    }

    /// Gives the reservation back without spending anything.
    pub fn release(self) {
        self.settle(0, &[]);
    }

    /// `amount` leaves `reserved`, `actual` joins `spent` and the
    /// unflushed spend; returns the fractions newly crossed.
    fn end(&self, actual: u64, alert_at: &[f64]) -> Vec<f64> {
        let mut counters = self.cell.lock();
        let counter = at(&mut counters, self.start);
        counter.reserved = counter.reserved.saturating_sub(self.amount);
        counter.spent = counter.spent.saturating_add(actual);
        counter.unflushed = counter.unflushed.saturating_add(actual);
        newly_crossed(counter, self.limit, alert_at)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.end(0, &[]);
        }
    }
}
