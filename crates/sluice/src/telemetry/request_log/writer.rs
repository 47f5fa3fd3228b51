//! The request-log writer: one task that takes records from the bounded
//! buffer, writes them to the store in batches (a batch is full at
//! `batch` records or `flush_every` after its first), and when the store
//! fails or is slower than `write_timeout` spills them to disk instead.
//! While anything is spilled, new batches are spilled too (order is kept)
//! and the writer replays the oldest segment every [`REPLAY_EVERY`], or at
//! once after a replay that worked, until the spill is empty. A fresh batch
//! takes the store's cheap path (`write_new_logs`: its ids are new); a
//! replay the idempotent one (`write_logs`), so a batch written again (a
//! timeout after the commit) counts once.
//!
//! On shutdown (the signal turns true after the last request drained) it
//! drains the buffer and writes or spills everything, so no record is lost
//! on a graceful stop. Retention drops day tables older than `retention`
//! at start and hourly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_store::{LogRecord, Store};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::spill::Spill;
use super::LogMetrics;

/// How often a non-empty spill is retried while the store fails.
pub const REPLAY_EVERY: Duration = Duration::from_secs(5);
/// How often the writer takes what is queued.
const TICK: Duration = Duration::from_millis(20);
/// How often retention runs.
const RETAIN_EVERY: Duration = Duration::from_secs(3600);

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub batch: usize,
    pub flush_every: Duration,
    pub write_timeout: Duration,
    /// Day tables older than this many days are dropped; `None` keeps all.
    pub retention_days: Option<i64>,
}

pub struct Writer {
    pub(super) rx: mpsc::Receiver<LogRecord>,
    pub(super) store: Store,
    pub(super) spill: Arc<Mutex<Spill>>,
    pub(super) tuning: Tuning,
    pub(super) metrics: LogMetrics,
}

impl Writer {
    /// Runs until `shutdown` turns true (or its sender goes away), then
    /// drains the buffer and ends.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.retain().await;
        let mut spilling = self.pending().await > 0;
        let mut next_replay = Instant::now();
        let mut next_retain = Instant::now() + RETAIN_EVERY;
        let mut batch = Vec::with_capacity(self.tuning.batch);
        loop {
            let stop = self.gather(&mut batch, &mut shutdown).await;
            if !batch.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(self.tuning.batch));
                spilling = self.flush(full, spilling).await;
            }
            if stop {
                break;
            }
            if spilling && Instant::now() >= next_replay {
                match self.replay_one().await {
                    Replay::Done => spilling = false,
                    Replay::More => next_replay = Instant::now(),
                    Replay::Failed => next_replay = Instant::now() + REPLAY_EVERY,
                }
            }
            if Instant::now() >= next_retain {
                self.retain().await;
                next_retain = Instant::now() + RETAIN_EVERY;
            }
        }
        // Every request has ended: write (or spill) what is left.
        self.rx.close();
        while let Some(r) = self.rx.recv().await {
            batch.push(r);
            if batch.len() >= self.tuning.batch {
                spilling = self.flush(std::mem::take(&mut batch), spilling).await;
            }
        }
        if !batch.is_empty() {
            self.flush(batch, spilling).await;
        }
        self.metrics.buffered.set(0);
    }

    /// Fills `batch` until it is full, `flush_every` passed, or shutdown;
    /// true on shutdown (or when every sender is gone).
    ///
    /// It takes what is queued every [`TICK`] instead of waiting on the
    /// channel: a receiver that waits is woken by every send, which at
    /// load is a task wake-up per request; polling costs one per tick.
    async fn gather(
        &mut self,
        batch: &mut Vec<LogRecord>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let until = Instant::now() + self.tuning.flush_every;
        loop {
            while batch.len() < self.tuning.batch {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return true,
                }
            }
            let now = Instant::now();
            if batch.len() >= self.tuning.batch || now >= until {
                break;
            }
            tokio::select! {
                () = sleep_until((now + TICK).min(until)) => {}
                r = stop.wait_for(|s| *s) => { drop(r); return true },
            }
        }
        let queued = self.rx.max_capacity() - self.rx.capacity();
        self.metrics.buffered.set(queued as i64);
        false
    }

    /// Writes a batch, or spills it when `spilling` or the write fails;
    /// returns whether the writer is spilling now.
    async fn flush(&self, mut batch: Vec<LogRecord>, spilling: bool) -> bool {
        for r in batch.iter_mut().filter(|r| r.id.is_empty()) {
            r.id = sluice_store::ids::new_id("log");
        }
        if !spilling {
            let started = std::time::Instant::now();
            let write = self.store.write_new_logs(&batch);
            match timeout(self.tuning.write_timeout, write).await {
                Ok(Ok(_)) => {
                    self.metrics.written.inc_by(batch.len() as u64);
                    self.metrics
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return false;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, records = batch.len(), "request log: the store refused a batch; spilling to disk until it is back");
                }
                Err(_) => {
                    tracing::warn!(timeout = ?self.tuning.write_timeout, records = batch.len(), "request log: the store did not take a batch in time; spilling to disk until it is back");
                }
            }
        }
        self.spill(batch).await;
        true
    }

    async fn spill(&self, batch: Vec<LogRecord>) {
        let n = batch.len() as u64;
        let spill = self.spill.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut s = spill.lock().unwrap_or_else(|p| p.into_inner());
            s.append(&batch).map(|()| s.pending())
        })
        .await;
        match done {
            Ok(Ok(pending)) => {
                self.metrics.spilled.inc_by(n);
                self.metrics.spill_pending.set(pending as i64);
            }
            Ok(Err(e)) => self.lost(n, "spill_failed", &e.to_string()),
            Err(e) => self.lost(n, "spill_failed", &e.to_string()),
        }
    }

    fn lost(&self, n: u64, reason: &'static str, error: &str) {
        self.metrics.dropped(reason).inc_by(n);
        tracing::error!(records = n, reason, error, "request log: records lost");
    }

    /// Replays the oldest spilled segment.
    async fn replay_one(&self) -> Replay {
        let spill = self.spill.clone();
        let seg = tokio::task::spawn_blocking(move || {
            spill.lock().unwrap_or_else(|p| p.into_inner()).oldest()
        })
        .await;
        let Ok(seg) = seg else { return Replay::Failed };
        let Some(seg) = seg else { return Replay::Done };
        if seg.corrupt > 0 {
            self.lost(
                seg.corrupt as u64,
                "spill_corrupt",
                "unreadable lines in a spill segment",
            );
        }
        for chunk in seg.records.chunks(self.tuning.batch.max(1)) {
            match timeout(self.tuning.write_timeout, self.store.write_logs(chunk)).await {
                Ok(Ok(_)) => {}
                _ => return Replay::Failed,
            }
        }
        let (spill, path) = (self.spill.clone(), seg.path.clone());
        let removed = tokio::task::spawn_blocking(move || {
            let mut s = spill.lock().unwrap_or_else(|p| p.into_inner());
            s.remove(&path).map(|()| s.pending())
        })
        .await;
        self.metrics.replayed.inc_by(seg.records.len() as u64);
        tracing::info!(
            records = seg.records.len(),
            "request log: replayed a spill segment into the store"
        );
        match removed {
            Ok(Ok(pending)) => {
                self.metrics.spill_pending.set(pending as i64);
                if pending == 0 {
                    Replay::Done
                } else {
                    Replay::More
                }
            }
            // Written but not removed: replaying it again adds nothing.
            _ => Replay::Failed,
        }
    }

    async fn pending(&self) -> usize {
        let spill = self.spill.clone();
        let n = tokio::task::spawn_blocking(move || {
            spill.lock().unwrap_or_else(|p| p.into_inner()).pending()
        })
        .await
        .unwrap_or(0);
        self.metrics.spill_pending.set(n as i64);
        n
    }

    async fn retain(&self) {
        let Some(days) = self.tuning.retention_days else {
            return;
        };
        let today = sluice_store::ids::now_ms().div_euclid(86_400_000);
        match self.store.drop_logs_before(today - days).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(
                    days = dropped.len(),
                    "request log: dropped day tables past retention"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "request log: retention failed; will retry"),
        }
    }
}

enum Replay {
    /// The spill is empty.
    Done,
    /// A segment went in; more are waiting.
    More,
    Failed,
}
