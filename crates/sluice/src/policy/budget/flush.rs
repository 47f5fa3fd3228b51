//! Persisting the ledger: [`flush`] writes the spend settled since the last
//! flush to the store in one additive transaction (`Store::add_spend`), and
//! [`spawn_flusher`] does so on a timer, pruning ended periods after each
//! flush, and once more when the shutdown signal (the server's
//! `watch::Receiver<bool>`) turns true or its sender goes away.
//!
//! A failed write puts the deltas back into the ledger, so they go out with
//! the next flush: spend is never lost while the process lives. Stop the
//! flusher through its shutdown channel and await its handle; aborting it
//! mid-write could drop the deltas it holds.

use std::sync::Arc;
use std::time::Duration;

use sluice_store::{ids::now_ms, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LocalLedger;

/// Writes the unflushed spend; returns how many counters it wrote. On
/// failure the deltas are back in the ledger and the error is returned.
pub async fn flush(ledger: &LocalLedger, store: &Store) -> Result<usize, StoreError> {
    let deltas = ledger.take_unflushed();
    if deltas.is_empty() {
        return Ok(0);
    }
    match store.add_spend(&deltas).await {
        Ok(()) => Ok(deltas.len()),
        Err(e) => {
            ledger.requeue(deltas);
            Err(e)
        }
    }
}

/// Flushes `ledger` into `store` every `every` and once more at shutdown;
/// the task ends after that last flush. `every` is at least 1 ms.
pub fn spawn_flusher(
    ledger: Arc<LocalLedger>,
    store: Store,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let every = every.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    flush_or_warn(&ledger, &store).await;
                    ledger.prune(now_ms());
                }
                () = stopped(&mut shutdown) => break,
            }
        }
        if let Err(e) = flush(&ledger, &store).await {
            tracing::error!(error = %e, "budget spend: the final flush failed; spend since the last flush is not persisted");
        }
    })
}

/// Resolves once the signal is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn flush_or_warn(ledger: &LocalLedger, store: &Store) {
    if let Err(e) = flush(ledger, store).await {
        tracing::warn!(error = %e, "budget spend: flush failed; keeping the spend for the next flush");
    }
}
