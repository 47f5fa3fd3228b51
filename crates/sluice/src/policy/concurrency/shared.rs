//! Concurrency slots shared by every instance (`shared_state`): after a
//! request got its slot from this instance's queue for a level, it also
//! takes one of the level's `max_in_flight` slots in Redis (in the
//! request's admission call, `policy/admission.lua`, when the local slot
//! was free at once; alone after waiting for it), so the instances together never run
//! more than `max_in_flight`. When none is free it retries (2 ms, doubling
//! to 50 ms) until its deadline — priority and fairness hold within each
//! instance's queue; across instances the waiting requests compete as they
//! retry. A slot is released when the request ends; one whose instance died
//! is freed when its lease (the request's longest life plus 5 s) ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::ScriptInvocation;
use tokio::time::Instant;

use crate::config::raw::SharedStateFailure;
use crate::policy::admission::{parse, Admission, Reply};
use crate::policy::queue::{QueueRefusal, QueueSpec};
use crate::policy::Scope;

/// Concurrency slots in Redis.
pub struct SharedSlots {
    admission: Arc<Admission>,
    instance: String,
    seq: AtomicU64,
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
    pub fn new(admission: Arc<Admission>) -> SharedSlots {
        SharedSlots {
            admission,
            instance: format!("{:016x}", fastrand::u64(..)),
            seq: AtomicU64::new(0),
        }
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

    /// Takes the slot of `call`, retrying until `deadline`.
    pub async fn take(&self, call: SlotCall, deadline: Instant) -> Taken {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let reply = self
                .admission
                .call(None, None, std::slice::from_ref(&call))
                .await;
            match reply.as_deref().and_then(|v| parse(v, 0, 0)) {
                Some(Reply::Admitted { taken: 1, .. }) => return Taken::Slot(self.taken(call)),
                Some(Reply::Admitted { .. }) => {}
                _ => return self.fallback(),
            }
            if Instant::now() + pause >= deadline {
                return Taken::Refused(QueueRefusal::Timeout {
                    retry_after: Duration::from_secs(1),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
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
    /// Adds this slot's key and arguments to the admission call.
    pub fn write(&self, call: &mut ScriptInvocation<'_>) {
        call.key(&self.key)
            .arg(self.max)
            .arg(&self.id)
            .arg(self.lease_ms);
    }
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
                let r: redis::RedisResult<i64> = redis::cmd("ZREM").arg(&key).arg(&id).query_async(&mut conn).await;
                if r.is_err() {
                    tracing::warn!("shared state: releasing a concurrency slot failed; it frees when its lease ends");
                }
            });
        }
    }
}
