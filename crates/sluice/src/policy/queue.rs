//! The admission queue of a `concurrency` policy: at most `max_in_flight`
//! requests of a scope hold a slot at once; up to `queue` more wait for one,
//! each for at most `queue_timeout`.
//!
//! **Admission.** A request takes a slot at once when one is free; slots
//! are handed to waiters as they come free, so a free slot means nobody is
//! waiting (that fast path is one lock and a counter: no clock read, no
//! allocation, no waiter structure touched). Otherwise it waits — unless
//! the queue already holds `queue` waiters (refused [`QueueRefusal::Full`],
//! a 429) or its deadline has already passed (refused
//! [`QueueRefusal::Timeout`], a 503). A waiter whose deadline passes before
//! a slot reaches it leaves the queue, refused `Timeout`.
//!
//! **Order.** Waiters are served by strict priority across the classes of
//! [`Priority`], and within a class by deficit round robin across flows
//! (`queue/drr.rs`): a flow flooding the queue gets its share of the slots,
//! not all of them, and shares are in cost (estimated tokens), not
//! requests. Within a flow, first come first served.
//!
//! **Hand-off.** A released slot goes straight to the next waiter: it is
//! taken out of the queue and counted in flight under the lock, then woken
//! through its oneshot channel after the lock is dropped. A waiter that is
//! no longer queued therefore owns a slot. So when the `acquire` future is
//! dropped (the client went away) or times out, it takes itself out of the
//! queue under the lock; if it was no longer there, a slot had just been
//! handed to it, which it keeps (timeout) or passes on like a release
//! (drop). No slot is leaked or created, and no lock is held across an
//! `.await`.
//!
//! **Retry-After.** Both refusals carry a hint computed from the observed
//! drain rate (`queue/drain.rs`).
//!
//! **Reload.** [`AdmissionQueue::set_spec`] applies a new spec at once: a
//! higher `max_in_flight` hands the new slots to waiters; a lower one lets
//! the requests in flight finish, admitting nobody until they are under it.
//! A smaller `queue` evicts nobody; a new timeout applies to new waiters.
//!
//! Files: `queue/spec.rs` (what the config sets: [`QueueSpec`],
//! [`Priority`]), `queue/refusal.rs` ([`QueueRefusal`], its 429 / 503),
//! `queue/drr.rs` (one class's waiters), `queue/drain.rs` (the drain rate).

mod drain;
mod drr;
mod refusal;
mod spec;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use drain::Drain;
use drr::{Drr, Waiter};
pub use refusal::QueueRefusal;
pub use spec::{Priority, QueueSpec};

/// The DRR quantum: one token of credit per flow and round. Rounds in
/// which no flow can be served are skipped in one step, so this costs
/// nothing, and flows alternate request by request, weighted by cost,
/// however small the requests. (A quantum of a "typical" 1,000 tokens let
/// a flood of 7-token requests take 140 grants a turn: measured, the
/// tenant at its share then got 4 % of it.)
pub const DEFAULT_QUANTUM: u64 = 1;

/// One scope's slots and waiters; share it in an `Arc`.
pub struct AdmissionQueue {
    state: Mutex<State>,
    quantum: u64,
}

struct State {
    spec: QueueSpec,
    in_flight: u32,
    /// One DRR per priority class, highest first.
    classes: [Drr; 5],
    next_id: u64,
    drain: Drain,
}

/// A held slot. Dropping it releases the slot to the next waiter (or the
/// pool).
#[must_use = "the slot is released when the permit is dropped"]
pub struct Permit {
    queue: Arc<AdmissionQueue>,
    waited: Duration,
    /// Whether the slot served a request (counted in the drain rate).
    used: bool,
}

/// Where a waiter is queued.
struct Ticket {
    class: Priority,
    flow: u64,
    id: u64,
    since: Instant,
    deadline: Instant,
}

enum Entry {
    Admitted,
    Refused(QueueRefusal),
    Queued(Ticket, oneshot::Receiver<()>),
}

impl AdmissionQueue {
    /// An idle queue; `quantum` (≥ 1) is the cost each flow may be served
    /// per DRR round (see [`DEFAULT_QUANTUM`]).
    pub fn new(spec: QueueSpec, quantum: u64) -> Self {
        AdmissionQueue {
            state: Mutex::new(State {
                spec,
                in_flight: 0,
                classes: Default::default(),
                next_id: 0,
                drain: Drain::new(Instant::now()),
            }),
            quantum: quantum.max(1),
        }
    }

    /// Takes a slot now or waits for one until `deadline`, or until
    /// `spec.timeout` from now if that is earlier (the caller passes its
    /// request's own deadline). `flow` is the DRR flow (e.g. the tenant);
    /// `cost` the request's estimated tokens (0 counts as 1).
    ///
    /// Cancel safe: dropping the future leaves the queue, passing on a slot
    /// that had just been handed to it.
    pub async fn acquire(
        self: &Arc<Self>,
        class: Priority,
        flow: u64,
        cost: u64,
        deadline: Instant,
    ) -> Result<Permit, QueueRefusal> {
        let (ticket, woken) = match self.enter(class, flow, cost, deadline) {
            Entry::Admitted => return Ok(self.permit(Duration::ZERO)),
            Entry::Refused(r) => return Err(r),
            Entry::Queued(ticket, woken) => (ticket, woken),
        };
        let mut wait = Wait {
            queue: self,
            ticket,
            done: false,
        };
        // Woken or timed out, the queue decides: granted ⇔ no longer queued.
        let _ = tokio::time::timeout_at(wait.ticket.deadline, woken).await;
        wait.finish()
    }

    /// Takes a slot only if one is free now (so nobody is waiting); never
    /// queues.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.lock().take_free().then(|| self.permit(Duration::ZERO))
    }

    /// Requests holding a slot.
    pub fn in_flight(&self) -> u32 {
        self.lock().in_flight
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> u32 {
        self.lock().waiting() as u32
    }

    /// No slot held and nobody waiting: the queue can be dropped from a map
    /// of queues (a new one starts the same, bar the drain-rate history).
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.in_flight == 0 && s.waiting() == 0
    }

    /// The spec in force.
    pub fn spec(&self) -> QueueSpec {
        self.lock().spec
    }

    /// Applies a reloaded spec at once (see the module docs).
    pub fn set_spec(&self, spec: QueueSpec) {
        let mut woken = Vec::new();
        {
            let mut s = self.lock();
            s.spec = spec;
            while let Some(w) = s.grant(self.quantum) {
                woken.push(w);
            }
        }
        for w in woken {
            let _ = w.send(());
        }
    }

    /// Admits, refuses or queues, under one lock.
    fn enter(&self, class: Priority, flow: u64, cost: u64, deadline: Instant) -> Entry {
        let mut s = self.lock();
        if s.take_free() {
            return Entry::Admitted;
        }
        let now = Instant::now();
        let retry_after = || s.drain.retry_after(s.ahead_of(class), now);
        if s.waiting() >= s.spec.queue as usize {
            return Entry::Refused(QueueRefusal::Full {
                retry_after: retry_after(),
            });
        }
        let deadline = now
            .checked_add(s.spec.timeout)
            .map_or(deadline, |d| d.min(deadline));
        if deadline <= now {
            return Entry::Refused(QueueRefusal::Timeout {
                retry_after: retry_after(),
                waited: Duration::ZERO,
            });
        }
        let (wake, woken) = oneshot::channel();
        let id = s.next_id;
        s.next_id += 1;
        let cost = cost.max(1);
        s.classes[class.rank()].push(flow, Waiter { id, cost, wake });
        let ticket = Ticket {
            class,
            flow,
            id,
            since: now,
            deadline,
        };
        Entry::Queued(ticket, woken)
    }

    /// Takes a waiter out of the queue: false if it was no longer queued,
    /// i.e. a slot had been handed to it.
    fn leave(&self, t: &Ticket) -> bool {
        self.lock().classes[t.class.rank()].remove(t.flow, t.id)
    }

    /// Gives a slot back: to the next waiter, or to the pool. `served`:
    /// the slot was used (a permit ended), which counts towards the drain
    /// rate.
    fn release(&self, served: bool) {
        let now = served.then(Instant::now);
        let next = {
            let mut s = self.lock();
            if let Some(now) = now {
                s.drain.record(now);
            }
            debug_assert!(s.in_flight > 0, "a slot released twice");
            s.in_flight = s.in_flight.saturating_sub(1);
            s.grant(self.quantum)
        };
        if let Some(w) = next {
            let _ = w.send(());
        }
    }

    fn permit(self: &Arc<Self>, waited: Duration) -> Permit {
        Permit {
            queue: Arc::clone(self),
            waited,
            used: true,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections do not panic; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hint for a caller of `class` now (for tests).
    #[cfg(test)]
    fn retry_after(&self, class: Priority) -> Duration {
        let s = self.lock();
        s.drain.retry_after(s.ahead_of(class), Instant::now())
    }
}

impl State {
    /// Takes a free slot if there is one and nobody waits for it.
    fn take_free(&mut self) -> bool {
        let free = self.in_flight < self.spec.max_in_flight && self.waiting() == 0;
        self.in_flight += u32::from(free);
        free
    }

    fn waiting(&self) -> usize {
        self.classes.iter().map(Drr::len).sum()
    }

    /// Waiters that would be served before a new one of `class`.
    fn ahead_of(&self, class: Priority) -> usize {
        self.classes[..=class.rank()].iter().map(Drr::len).sum()
    }

    /// Hands a free slot to the next waiter, if both exist: the waiter
    /// leaves the queue and counts in flight; the caller wakes it once
    /// the lock is dropped.
    fn grant(&mut self, quantum: u64) -> Option<oneshot::Sender<()>> {
        if self.in_flight >= self.spec.max_in_flight {
            return None;
        }
        let w = self.classes.iter_mut().find_map(|c| c.pop(quantum))?;
        self.in_flight += 1;
        Some(w.wake)
    }
}

/// A queued `acquire`: leaves the queue when dropped before it finished.
struct Wait<'a> {
    queue: &'a Arc<AdmissionQueue>,
    ticket: Ticket,
    done: bool,
}

impl Wait<'_> {
    /// After a wake-up or the deadline: the slot if one was handed over
    /// (even if the deadline has passed since), else the timeout refusal.
    fn finish(&mut self) -> Result<Permit, QueueRefusal> {
        self.done = true;
        let now = Instant::now();
        let waited = now.saturating_duration_since(self.ticket.since);
        let t = &self.ticket;
        let mut s = self.queue.lock();
        if !s.classes[t.class.rank()].remove(t.flow, t.id) {
            drop(s);
            return Ok(self.queue.permit(waited));
        }
        Err(QueueRefusal::Timeout {
            retry_after: s.drain.retry_after(s.ahead_of(t.class), now),
            waited,
        })
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if !self.done && !self.queue.leave(&self.ticket) {
            // Handed a slot it will never use: pass it on.
            self.queue.release(false);
        }
    }
}

impl Permit {
    /// The time the request spent queued (zero when a slot was free).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Gives the slot back unused (the request was refused by another
    /// policy before it ran): not counted in the drain rate.
    pub fn give_back(mut self) {
        self.used = false;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.queue.release(self.used);
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AdmissionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("AdmissionQueue")
            .field("spec", &s.spec)
            .field("in_flight", &s.in_flight)
            .field("waiting", &s.waiting())
            .field("quantum", &self.quantum)
            .finish()
    }
}
