//! The observed drain rate of a queue (slot releases per second) and the
//! `Retry-After` derived from it.
//!
//! The rate is an exponentially time-decayed count of releases: each
//! release adds 1 to a mass that decays with time constant [`TAU`], so at
//! a steady rate r the mass settles at r·τ and mass / τ is the rate. While
//! the queue is younger than a few τ, the divisor is the decayed length of
//! its life instead, `τ·(1 − e^(−age/τ))`, which removes the start-up bias
//! (4 releases in the first 2 s read as 2/s, not 0.4/s). O(1) state, no
//! allocation, no timer: the decay is applied when a release is recorded
//! and when the rate is read.
//!
//! `retry_after = (waiters ahead + 1) / rate`, clamped to [`MIN_RETRY`] ..=
//! [`MAX_RETRY`]: the time for the queue to serve those ahead of the caller
//! and the caller itself. Before any release has been seen nothing is
//! known and the hint is [`MIN_RETRY`]; a queue whose slots stopped coming
//! free decays towards [`MAX_RETRY`].

use std::time::Duration;

use tokio::time::Instant;

/// The time constant of the decay, in seconds: releases older than a few
/// τ no longer count.
pub(super) const TAU: f64 = 10.0;
pub(super) const MIN_RETRY: Duration = Duration::from_secs(1);
pub(super) const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(super) struct Drain {
    created: Instant,
    last: Instant,
    /// Σ e^(−(last − tᵢ)/τ) over the releases tᵢ.
    mass: f64,
}

impl Drain {
    pub fn new(now: Instant) -> Self {
        Drain {
            created: now,
            last: now,
            mass: 0.0,
        }
    }

    /// One slot was released at `now`.
    pub fn record(&mut self, now: Instant) {
        self.mass = self.mass * decay(self.last, now) + 1.0;
        self.last = self.last.max(now);
    }

    /// Releases per second; `None` before the first release.
    pub fn per_sec(&self, now: Instant) -> Option<f64> {
        if self.mass == 0.0 {
            return None;
        }
        let age = now.saturating_duration_since(self.created).as_secs_f64();
        let window = TAU * -(-age / TAU).exp_m1();
        let mass = self.mass * decay(self.last, now);
        Some(if window > 0.0 {
            mass / window
        } else {
            f64::INFINITY
        })
    }

    /// How long until a caller with `ahead` waiters before it would likely
    /// be served (see the module docs).
    pub fn retry_after(&self, ahead: usize, now: Instant) -> Duration {
        let Some(rate) = self.per_sec(now) else {
            return MIN_RETRY;
        };
        let secs = (ahead as f64 + 1.0) / rate;
        if secs.is_nan() {
            return MAX_RETRY;
        }
        Duration::from_secs_f64(secs.clamp(MIN_RETRY.as_secs_f64(), MAX_RETRY.as_secs_f64()))
    }
}

/// The factor by which the mass decays from `from` to `to`.
fn decay(from: Instant, to: Instant) -> f64 {
    (-to.saturating_duration_since(from).as_secs_f64() / TAU).exp()
}
