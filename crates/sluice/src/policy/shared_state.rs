//! The connection to `shared_state` (Redis) that the shared rate, budget and
//! concurrency stores use, and what they do alike when it fails: count the
//! failure (`sluice_shared_state_failures_total`), log it — at most once
//! every 10 s, however many requests fail — and leave the decision to
//! `on_shared_state_failure`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;

use crate::config::raw::SharedStateFailure;

/// Failures are logged at most this often.
const LOG_EVERY_S: u64 = 10;

/// The shared-state connection and its failure handling.
pub struct SharedState {
    conn: ConnectionManager,
    pub on_failure: SharedStateFailure,
    /// The longest a request waits for one call.
    pub timeout: Duration,
    failures: Counter,
    /// Unix seconds of the last failure logged.
    last_logged: AtomicU64,
}

impl SharedState {
    /// A connection that dials lazily (the first request connects) and
    /// re-dials in the background after a failure; each call gives up after
    /// `timeout`.
    pub fn connect(
        client: redis::Client,
        on_failure: SharedStateFailure,
        timeout: Duration,
        failures: Counter,
    ) -> redis::RedisResult<SharedState> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(SharedState {
            conn: ConnectionManager::new_lazy_with_config(client, cfg)?,
            on_failure,
            timeout,
            failures,
            last_logged: AtomicU64::new(0),
        })
    }

    /// A handle to the connection (cheap: the manager is shared).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Counts a failed call of `what` (rate limits, budgets, …) and logs it,
    /// at most every 10 s.
    pub fn failed(&self, what: &str, why: &str) {
        self.failures.inc();
        let now = crate::mock::now_ms().max(0) as u64 / 1000;
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = now >= last + LOG_EVERY_S
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            tracing::warn!(
                error = why,
                on_failure = self.on_failure.as_str(),
                "shared state unreachable for {what}; further failures are counted in sluice_shared_state_failures_total and logged at most every 10 s"
            );
        }
    }
}
