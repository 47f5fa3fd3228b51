//! Concurrency slots shared by every instance (`shared_state`): after a
//! request got its slot from this instance's queue for a level, it also
//! takes one of the level's `max_in_flight` slots in Redis (in the
//! request's admission call, `policy/admission.lua`, when the local slot
//! was free at once; alone after waiting for it), so the instances together never run
//! more than `max_in_flight`. When none is free it waits in the level's
//! shared line (`take_slot.lua`): a ticket ordered by priority class, then
//! by start-time fair queueing across the level's flows, so priority and
//! fairness hold across instances as within each one. A slot given back
//! (`release_slot.lua`) publishes the ticket at the head of its line on
//! [`FREED`]; every instance listens, and the one whose request holds that
//! ticket wakes it to try at once. Besides, each waiting request retries
//! on its own (2 ms, doubling to 50 ms: a wake-up lost while the
//! subscription was down) until its deadline, and the head of the line
//! also when the first slot's lease ends (a slot whose instance died is
//! freed then, and nobody announces it);
//! each try renews its ticket, which lapses a second after the last one (a
//! request that gave up or whose instance died). The slot is taken in the
//! admission call only when nobody waits in the line. A slot is released
//! when the request ends; one whose instance died is freed when its lease
//! (the request's longest life plus 5 s) ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use dashmap::DashMap;
use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::raw::SharedStateFailure;
use crate::policy::admission::Admission;
use crate::policy::queue::{Priority, QueueRefusal, QueueSpec};
use crate::policy::{Scope, ScopeKind};

/// How long a waiting request's ticket outlives its last try.
const TICKET_LEASE: Duration = Duration::from_secs(1);

/// The channel a released slot's line publishes its head ticket on.
pub const FREED: &str = "sluice:cc:freed";

static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release_slot.lua")));

/// Concurrency slots in Redis.
pub struct SharedSlots {
    admission: Arc<Admission>,
    instance: String,
    seq: AtomicU64,
    take_slot: Script,
    /// Requests of this instance waiting in a shared line, by scope kind
    /// (`ScopeKind as usize`), for the queue gauges.
    waiting: [AtomicU64; 5],
    /// The waiting requests of this instance, by slot id: a [`FREED`]
    /// message naming one wakes it.
    wakers: Arc<DashMap<String, Arc<Notify>>>,
    /// For the [`FREED`] subscription, started with the first wait.
    client: redis::Client,
    listening: AtomicBool,
}

/// Counts a request waiting in a shared line while it lives.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicU64) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A waiting request's place in a level's shared line.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub class: Priority,
    /// Its flow at this level (tenant, app, key or end user).
    pub flow: u64,
    /// Estimated tokens, at least 1.
    pub cost: u64,
}

/// A slot taken in Redis, given back when dropped.
#[derive(Debug)]
pub struct SharedSlot {
    key: String,
    id: String,
    conn: ConnectionManager,
}

/// One slot of the admission call (`admission.lua`): a level's slots, and
/// the id and lease this request takes one under.
#[derive(Debug)]
pub struct SlotCall {
    key: String,
    id: String,
    max: u32,
    lease_ms: u64,
}

/// What taking a shared slot came to.
pub enum Taken {
    Slot(SharedSlot),
    /// The shared state failed and `on_shared_state_failure` lets the
    /// request go on its local slot.
    Unchecked,
    /// No slot came free in time.
    Refused(QueueRefusal),
    /// The shared state failed and `on_shared_state_failure: fail_closed`
    /// refuses the request.
    Unavailable,
}

impl SharedSlots {
    pub fn new(admission: Arc<Admission>, client: redis::Client) -> SharedSlots {
        SharedSlots {
            admission,
            instance: format!("{:016x}", fastrand::u64(..)),
            seq: AtomicU64::new(0),
            take_slot: Script::new(include_str!("take_slot.lua")),
            waiting: Default::default(),
            wakers: Arc::default(),
            client,
            listening: AtomicBool::new(false),
        }
    }

    /// Subscribes to [`FREED`] (once per instance), resubscribing with
    /// backoff when the connection drops.
    fn listen(&self) {
        if self.listening.swap(true, Ordering::Relaxed) {
            return;
        }
        let (client, wakers) = (self.client.clone(), self.wakers.clone());
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut backoff = Duration::from_millis(100);
            loop {
                if let Ok(mut sub) = client.get_async_pubsub().await {
                    if sub.subscribe(FREED).await.is_ok() {
                        backoff = Duration::from_millis(100);
                        let mut messages = sub.on_message();
                        while let Some(m) = messages.next().await {
                            wake(&wakers, m.get_payload_bytes());
                        }
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// Requests of this instance waiting in the shared lines of `kind`'s
    /// levels (each holds its local slot meanwhile).
    pub fn waiting(&self, kind: ScopeKind) -> u64 {
        self.waiting[kind as usize].load(Ordering::Relaxed)
    }

    /// The call part for one slot of `scope` (of `spec.max_in_flight`),
    /// living at most `lease` if never given back.
    pub fn prepare(&self, scope: &Scope, spec: QueueSpec, lease: Duration) -> SlotCall {
        SlotCall {
            key: format!("sluice:cc:{}:{}", scope.kind.as_str(), scope.id),
            id: format!(
                "{}:{}",
                self.instance,
                self.seq.fetch_add(1, Ordering::Relaxed)
            ),
            max: spec.max_in_flight,
            lease_ms: lease.as_millis() as u64,
        }
    }

    /// The slot an admission call took for `call`.
    pub fn taken(&self, call: SlotCall) -> SharedSlot {
        SharedSlot {
            key: call.key,
            id: call.id,
            conn: self.admission.state().conn(),
        }
    }

    /// Takes the slot of `call` in its turn in the level's line (`place`),
    /// retrying until `deadline`.
    pub async fn take(
        &self,
        call: SlotCall,
        kind: ScopeKind,
        place: Place,
        deadline: Instant,
    ) -> Taken {
        let _waiting = Waiting::new(&self.waiting[kind as usize]);
        self.listen();
        let waker = Arc::new(Notify::new());
        self.wakers.insert(call.id.clone(), waker.clone());
        let _registered = Registered(&self.wakers, call.id.clone());
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        // The ticket's arrival number, given by the first try.
        let mut arrival = 0;
        loop {
            let mut inv = self.take_slot.prepare_invoke();
            inv.key(&call.key)
                .key(line_key(&call.key, "line"))
                .key(line_key(&call.key, "tickets"))
                .key(line_key(&call.key, "flows"))
                .key(line_key(&call.key, "clock"))
                .arg(call.max)
                .arg(&call.id)
                .arg(call.lease_ms)
                .arg(place.class as u8)
                .arg(format!("{:016x}", place.flow))
                .arg(place.cost.max(1))
                .arg(TICKET_LEASE.as_millis() as u64)
                .arg(arrival);
            let lapse = match self.admission.invoke(&inv).await.as_deref() {
                Some([1, ..]) => return Taken::Slot(self.taken(call)),
                Some([0, ahead, n, lapse]) => {
                    arrival = *n;
                    if *ahead == 0 {
                        *lapse
                    } else {
                        -1
                    }
                }
                _ => return self.fallback(),
            };
            let wait = next_try(pause, lapse);
            if Instant::now() + wait >= deadline {
                self.leave_line(&call, arrival);
                return Taken::Refused(QueueRefusal::Timeout {
                    retry_after: Duration::from_secs(1),
                    waited: started.elapsed(),
                });
            }
            // Woken when a slot of this level is given back with this
            // ticket at the head of the line; else the next poll, or the
            // first slot's lease end for the head.
            tokio::select! {
                _ = waker.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Takes a request that gave up out of the line at once (its ticket
    /// would lapse within [`TICKET_LEASE`] anyway).
    fn leave_line(&self, call: &SlotCall, arrival: i64) {
        let mut conn = self.admission.state().conn();
        let (line, tickets) = (line_key(&call.key, "line"), line_key(&call.key, "tickets"));
        let ticket = format!("{arrival:016x}{}", call.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _: redis::RedisResult<()> = redis::pipe()
                    .zrem(&line, &ticket)
                    .zrem(&tickets, &ticket)
                    .query_async(&mut conn)
                    .await;
            });
        }
    }

    /// What the shared state's failure (already counted and logged) means
    /// for a slot: as `on_shared_state_failure` says.
    pub fn fallback(&self) -> Taken {
        match self.admission.state().on_failure {
            SharedStateFailure::FailClosed => Taken::Unavailable,
            SharedStateFailure::Local | SharedStateFailure::FailOpen => Taken::Unchecked,
        }
    }
}

impl SlotCall {
    /// Adds this slot's keys and arguments to the admission call.
    pub fn write(&self, call: &mut ScriptInvocation<'_>) {
        call.key(&self.key)
            .key(line_key(&self.key, "tickets"))
            .arg(self.max)
            .arg(&self.id)
            .arg(self.lease_ms);
    }
}

/// How long a waiting request sleeps before its next try: its backoff
/// `pause`, or less when the first slot's lease ends sooner (`lapse_ms`
/// from now; negative: not to be waited for).
fn next_try(pause: Duration, lapse_ms: i64) -> Duration {
    match u64::try_from(lapse_ms) {
        Ok(ms) => pause.min(Duration::from_millis(ms)),
        Err(_) => pause,
    }
}

/// Wakes the waiting request whose ticket a [`FREED`] message names (the
/// ticket is its 16-digit arrival number, then its slot id).
fn wake(wakers: &DashMap<String, Arc<Notify>>, ticket: &[u8]) {
    let id = ticket.get(16..).and_then(|b| std::str::from_utf8(b).ok());
    if let Some(w) = id.and_then(|id| wakers.get(id)) {
        w.notify_one();
    }
}

/// Takes a waiting request's waker out of the map when it stops waiting.
struct Registered<'a>(&'a DashMap<String, Arc<Notify>>, String);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}

/// A key of the line of the level whose slots are at `slots`.
fn line_key(slots: &str, part: &str) -> String {
    [slots, ":", part].concat()
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        let (key, id, mut conn) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.id),
            self.conn.clone(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let r: redis::RedisResult<i64> = RELEASE
                    .key(&key)
                    .key(line_key(&key, "line"))
                    .arg(&id)
                    .arg(FREED)
                    .invoke_async(&mut conn)
                    .await;
                if r.is_err() {
                    tracing::warn!("shared state: releasing a concurrency slot failed; it frees when its lease ends");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_message_wakes_the_request_holding_the_ticket_only() {
        let wakers = DashMap::new();
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        wakers.insert("inst:7".to_owned(), a.clone());
        wakers.insert("inst:8".to_owned(), b.clone());
        wake(&wakers, b"00000000000000a2inst:7");
        wake(&wakers, b"short");
        wake(&wakers, b"0000000000000001other:1");
        // a has a permit stored; b has none.
        tokio::time::timeout(Duration::from_millis(100), a.notified())
            .await
            .expect("a is woken");
        let b_woken = tokio::time::timeout(Duration::from_millis(20), b.notified()).await;
        assert!(b_woken.is_err());
    }

    #[test]
    fn the_head_tries_again_when_the_first_lease_ends_if_that_is_sooner() {
        let pause = Duration::from_millis(50);
        assert_eq!(next_try(pause, 7), Duration::from_millis(7));
        assert_eq!(next_try(pause, 0), Duration::ZERO);
        assert_eq!(next_try(pause, 65_000), pause, "a live slot's lease");
        assert_eq!(next_try(pause, -1), pause, "no slot held");
    }
}
