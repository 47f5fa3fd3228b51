//! One GCRA counter ("gate"): one interval of one rate rule. governor
//! decides (its GCRA, quota, clock and pruning) over a state store of
//! sluice's own, plugged in through governor's `StateStore` trait.
//!
//! Why a store of our own: governor's stores cannot give capacity back, yet
//! a request refused by a later rule must not keep what earlier rules
//! counted for it. This store remembers the write each admission made
//! (the theoretical arrival time before and after), so the caller can undo
//! it: exactly — a compare-and-swap back to the old value — when no other
//! request touched the counter since, otherwise not at all. Capacity can so
//! be lost under a race, never created: the GCRA bound always holds.
//!
//! Token gates count one cell per token: a request takes its reservation
//! (`check_n`) at admission and [`Gate::settle`]s to its real usage at the
//! end, which moves the counter back by what it did not use or forward by
//! what it used beyond (unchecked: it was already spent). Over any window,
//! the tokens admitted so exceed the quota by at most what requests used
//! beyond their reservations.

use std::cell::Cell;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

/// A clock the gates can share across threads.
pub trait RateClock: Clock + Clone + Send + Sync + 'static {}
impl<C: Clock + Clone + Send + Sync + 'static> RateClock for C {}

/// Hashes a `u64` key to itself: partition keys are already SipHash
/// outputs and rule keys carry a precomputed hash.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type PassThroughState = BuildHasherDefault<PassThrough>;

/// A counter's theoretical arrival time (ns since the gate's start; 0 =
/// never used) before and after one admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    before: u64,
    after: u64,
}

/// The store key of one check: the partition (0 for a shared counter) and,
/// once the check admitted, the write the store made.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    part: u64,
    wrote: Cell<Option<Write>>,
}

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        self.part == other.part
    }
}

impl Eq for Probe {}

impl Hash for Probe {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.part.hash(state);
    }
}

/// Counter cells: one shared ([`One`]) or one per partition ([`Many`]).
pub trait Cells: Default + Send + Sync + 'static {
    /// governor's read-decide-write on the cell of `probe`, recording the write.
    fn measure<T, E, F>(&self, probe: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>;
    /// Puts the cell of `part` back to before `w` if it still holds `w`'s result.
    fn undo(&self, part: u64, w: Write) -> bool;
    /// Replaces the cell of `part` by `f` of it (0 = never used); a
    /// missing partition cell is created only when `create`.
    fn adjust(&self, part: u64, create: bool, f: impl Fn(u64) -> u64);
    /// Forgets cells idle since `drop_below`: they are indistinguishable
    /// from new ones.
    fn retain_recent(&self, drop_below: u64);
    fn shrink_to_fit(&self);
    /// Cells in use.
    fn len(&self) -> usize;
}

/// The compare-and-swap loop of governor's in-memory state, recording the write.
fn cas<T, E, F>(cell: &AtomicU64, probe: &Probe, f: F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let mut before = cell.load(Ordering::Acquire);
    loop {
        let (out, next) = f((before != 0).then(|| Nanos::new(before)))?;
        let after = next.as_u64();
        match cell.compare_exchange_weak(before, after, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                probe.wrote.set(Some(Write { before, after }));
                return Ok(out);
            }
            Err(now) => before = now,
        }
    }
}

fn update(cell: &AtomicU64, f: impl Fn(u64) -> u64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(f(v)));
}

fn put_back(cell: &AtomicU64, w: Write) -> bool {
    cell.compare_exchange(w.after, w.before, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// One counter for everything under the rule's scope.
#[derive(Default)]
pub struct One(AtomicU64);

impl Cells for One {
    fn measure<T, E, F>(&self, probe: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        cas(&self.0, probe, f)
    }

    fn undo(&self, _part: u64, w: Write) -> bool {
        put_back(&self.0, w)
    }

    fn adjust(&self, _part: u64, _create: bool, f: impl Fn(u64) -> u64) {
        update(&self.0, f);
    }

    fn retain_recent(&self, drop_below: u64) {
        let tat = self.0.load(Ordering::Acquire);
        if tat != 0 && tat <= drop_below {
            let _ = self
                .0
                .compare_exchange(tat, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn shrink_to_fit(&self) {}

    fn len(&self) -> usize {
        usize::from(self.0.load(Ordering::Acquire) != 0)
    }
}

/// One counter per partition (end user or client IP hash).
#[derive(Default)]
pub struct Many(DashMap<u64, AtomicU64, PassThroughState>);

impl Many {
    /// Allocated slots (for tests of the pruning).
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl Cells for Many {
    fn measure<T, E, F>(&self, probe: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.0.get(&probe.part) {
            return cas(&cell, probe, f);
        }
        let cell = self.0.entry(probe.part).or_default();
        cas(&cell, probe, f)
    }

    fn undo(&self, part: u64, w: Write) -> bool {
        self.0.get(&part).is_some_and(|c| put_back(&c, w))
    }

    fn adjust(&self, part: u64, create: bool, f: impl Fn(u64) -> u64) {
        if let Some(cell) = self.0.get(&part) {
            return update(&cell, f);
        }
        if create {
            update(&self.0.entry(part).or_default(), f);
        }
    }

    fn retain_recent(&self, drop_below: u64) {
        self.0.retain(|_, c| c.load(Ordering::Acquire) > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The cells as governor's state store (shared with the gate, which undoes).
pub struct Handle<S>(Arc<S>);

impl<S: Cells> StateStore for Handle<S> {
    type Key = Probe;

    fn measure_and_replace<T, F, E>(&self, key: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure(key, f)
    }
}

impl<S: Cells> ShrinkableKeyedStateStore<Probe> for Handle<S> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below.as_u64());
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// An admission: the write to undo if another rule refuses, and where the
/// counter stands now.
#[derive(Clone, Copy, Debug)]
pub struct Passed {
    pub write: Option<Write>,
    /// Requests that could arrive at once now.
    pub remaining: u32,
    /// Until the counter is back to its initial (full) state.
    pub reset: Duration,
}

/// A refusal: when one request would be admitted, and when the counter is
/// full; `never` when the request asks for more than the whole quota.
#[derive(Clone, Copy, Debug)]
pub struct Refused {
    pub wait: Duration,
    pub reset: Duration,
    pub never: bool,
}

/// One GCRA counter (shared or partitioned) with its quota.
pub struct Gate<S: Cells, C: RateClock> {
    limiter: RateLimiter<Probe, Handle<S>, C, StateInformationMiddleware>,
    cells: Arc<S>,
    /// Read just before the limiter was built; governor keeps its own start
    /// private (ours is at most nanoseconds earlier: `reset` rounds down).
    start: C::Instant,
    quota: Quota,
    /// Nanoseconds one cell is worth (the emission interval).
    cell_ns: u64,
}

impl<S: Cells, C: RateClock> Gate<S, C> {
    /// A gate admitting `burst` at once and one more every `period`.
    pub fn new(period: Duration, burst: NonZeroU32, clock: C) -> Self {
        let period = period.max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let cells = Arc::new(S::default());
        let start = clock.now();
        let limiter: RateLimiter<_, _, _, StateInformationMiddleware> =
            RateLimiter::new(quota, Handle(cells.clone()), clock);
        Gate {
            limiter,
            cells,
            start,
            quota,
            cell_ns: quota.replenish_interval().as_nanos() as u64,
        }
    }

    /// Counts one request of partition `part`, or says when to retry.
    pub fn check(&self, part: u64) -> Result<Passed, Refused> {
        self.check_n(part, 1)
    }

    /// Counts `n` cells (tokens) of partition `part` at once, or says when
    /// to retry; `n` over the burst is refused for good (`never`).
    pub fn check_n(&self, part: u64, n: u32) -> Result<Passed, Refused> {
        let probe = Probe {
            part,
            wrote: Cell::new(None),
        };
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let outcome = match self.limiter.check_key_n(&probe, n) {
            Ok(o) => o,
            Err(_) => {
                let q = self.quota;
                let full = q.replenish_interval() * q.burst_size().get();
                return Err(Refused {
                    wait: full,
                    reset: full,
                    never: true,
                });
            }
        };
        match outcome {
            Ok(state) => {
                let write = probe.wrote.get();
                let now = self.limiter.clock().now().duration_since(self.start);
                let tat = write.map_or(0, |w| w.after);
                Ok(Passed {
                    write,
                    remaining: state.remaining_burst_capacity(),
                    reset: Duration::from_nanos(tat.saturating_sub(now.as_u64())),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let q = not_until.quota();
                let tau = q.replenish_interval() * (q.burst_size().get() - 1);
                Err(Refused {
                    wait,
                    reset: wait + tau,
                    never: false,
                })
            }
        }
    }

    /// Settles an admission of partition `part` that counted `reserved`
    /// cells to `actual`: gives back the difference (the counter's
    /// theoretical arrival time moves back; reaching 0, "unused", is the
    /// same as a full counter), or
    /// counts the excess without a check (it was already spent).
    pub fn settle(&self, part: u64, reserved: u32, actual: u64) {
        let cell = self.cell_ns;
        if actual < u64::from(reserved) {
            let back = (u64::from(reserved) - actual).saturating_mul(cell);
            self.cells
                .adjust(part, false, |tat| tat.saturating_sub(back));
        } else if actual > u64::from(reserved) {
            let more = (actual - u64::from(reserved)).saturating_mul(cell);
            let now = self
                .limiter
                .clock()
                .now()
                .duration_since(self.start)
                .as_u64();
            self.cells
                .adjust(part, true, |tat| tat.max(now.max(1)).saturating_add(more));
        }
    }

    /// Gives back what an admission of `part` counted, if still possible.
    pub fn undo(&self, part: u64, w: Write) -> bool {
        self.cells.undo(part, w)
    }

    /// Forgets idle partitions and releases their memory; true when the
    /// whole gate is idle (as good as new).
    pub fn prune(&self) -> bool {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.is_empty()
    }

    /// Cells in use.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn cells(&self) -> &S {
        &self.cells
    }
}
