//! Concurrency slots shared by every instance (`shared_state`): after a
//! request got its slot from this instance's queue for a level, it also
//! takes one of the level's `max_in_flight` slots in Redis (`slot.lua`,
//! one round trip when one is free), so the instances together never run
//! more than `max_in_flight`. When none is free it retries (2 ms, doubling
//! to 50 ms) until its deadline — priority and fairness hold within each
//! instance's queue; across instances the waiting requests compete as they
//! retry. A slot is released when the request ends; one whose instance died
//! is freed when its lease (the request's longest life plus 5 s) ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::config::raw::SharedStateFailure;
use crate::policy::queue::{QueueRefusal, QueueSpec};
use crate::policy::shared_state::SharedState;
use crate::policy::Scope;

/// Concurrency slots in Redis.
pub struct SharedSlots {
    state: Arc<SharedState>,
    script: redis::Script,
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
    pub fn new(state: Arc<SharedState>) -> SharedSlots {
        SharedSlots {
            state,
            script: redis::Script::new(include_str!("slot.lua")),
            instance: format!("{:016x}", fastrand::u64(..)),
            seq: AtomicU64::new(0),
        }
    }

    /// Takes a slot of `scope` (of `spec.max_in_flight`), retrying until
    /// `deadline`; the slot lives at most `lease` if never given back.
    pub async fn take(
        &self,
        scope: &Scope,
        spec: QueueSpec,
        deadline: Instant,
        lease: Duration,
    ) -> Taken {
        let key = format!("sluice:cc:{}:{}", scope.kind.as_str(), scope.id);
        let id = format!(
            "{}:{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let mut conn = self.state.conn();
            let mut call = self.script.prepare_invoke();
            call.key(&key)
                .arg(spec.max_in_flight)
                .arg(&id)
                .arg(lease.as_millis() as u64);
            let reply = call.invoke_async::<i64>(&mut conn);
            match tokio::time::timeout(self.state.timeout, reply).await {
                Ok(Ok(1)) => {
                    return Taken::Slot(SharedSlot {
                        key,
                        id,
                        conn: self.state.conn(),
                    })
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return self.failed(&e.to_string()),
                Err(_) => return self.failed("no answer within shared_state_timeout"),
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

    fn failed(&self, why: &str) -> Taken {
        self.state.failed("concurrency limits", why);
        match self.state.on_failure {
            SharedStateFailure::FailClosed => Taken::Unavailable,
            SharedStateFailure::Local | SharedStateFailure::FailOpen => Taken::Unchecked,
        }
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
