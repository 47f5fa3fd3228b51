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
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::config::raw::SharedStateFailure;
use crate::policy::queue::{QueueRefusal, QueueSpec};
use crate::policy::Scope;

/// Concurrency slots in Redis.
pub struct SharedSlots {
    conn: ConnectionManager,
    script: redis::Script,
    on_failure: SharedStateFailure,
    timeout: Duration,
    failures: Counter,
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
    Refused(QueueRefusal),
}

impl SharedSlots {
    pub fn new(
        conn: ConnectionManager,
        on_failure: SharedStateFailure,
        timeout: Duration,
        failures: Counter,
    ) -> SharedSlots {
        SharedSlots {
            conn,
            script: redis::Script::new(include_str!("slot.lua")),
            on_failure,
            timeout,
            failures,
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
            let mut conn = self.conn.clone();
            let mut call = self.script.prepare_invoke();
            call.key(&key)
                .arg(spec.max_in_flight)
                .arg(&id)
                .arg(lease.as_millis() as u64);
            let reply = call.invoke_async::<i64>(&mut conn);
            match tokio::time::timeout(self.timeout, reply).await {
                Ok(Ok(1)) => {
                    return Taken::Slot(SharedSlot {
                        key,
                        id,
                        conn: self.conn.clone(),
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
        self.failures.inc();
        tracing::warn!(
            error = why,
            on_failure = self.on_failure.as_str(),
            "shared state unreachable for concurrency limits"
        );
        match self.on_failure {
            SharedStateFailure::FailClosed => Taken::Refused(QueueRefusal::Timeout {
                retry_after: Duration::from_secs(1),
                waited: Duration::ZERO,
            }),
            _ => Taken::Unchecked,
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
