//! What a deployment may still take this minute: its configured caps
//! (`rpm`, `tpm`), counted by this instance over a sliding minute, and —
//! for `strategy: usage_aware` — the provider's own limits, learned from
//! the rate-limit headers of its answers (`sluice_providers::ratelimit`)
//! and from its 429s (blocked until `retry-after`, else 1 s).
//!
//! A deployment that is out of room is skipped like an open breaker; if
//! every candidate is, the request is refused with 429 and the time until
//! the first has room again, never sent to be refused upstream.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_providers::ratelimit::{Limit, RateLimits};

use super::window::Window;

/// A deployment's configured caps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Caps {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

const MINUTE: Duration = Duration::from_secs(60);

/// How long learned figures count when the provider gave no reset.
const LEARNED_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Usage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Requests sent and tokens used over the last minute.
    minute: Window<2>,
    /// What the provider last said is left, and until when that holds.
    requests_left: Option<(Limit, Instant)>,
    tokens_left: Option<(Limit, Instant)>,
    /// A 429's `retry-after`.
    blocked_until: Option<Instant>,
}

/// The minute window's counts.
const REQUESTS: usize = 0;
const TOKENS: usize = 1;

/// A learned limit still in force.
fn learned(l: Option<(Limit, Instant)>, now: Instant) -> Option<Limit> {
    l.filter(|(_, until)| now < *until).map(|(l, _)| l)
}

impl Usage {
    /// `Ok` when the deployment has room for one more request now, else
    /// when it will (as far as is known).
    pub fn room(&self, caps: &Caps, now: Instant) -> Result<(), Instant> {
        let mut s = self.lock();
        if let Some(until) = s.blocked_until.filter(|u| now < *u) {
            return Err(until);
        }
        let [requests, tokens] = s.minute.recent(now, MINUTE);
        let soon = now + Duration::from_secs(1);
        if caps.rpm.is_some_and(|r| requests >= f64::from(r))
            || caps.tpm.is_some_and(|t| tokens >= t as f64)
        {
            return Err(soon);
        }
        for l in [s.requests_left, s.tokens_left] {
            if let Some((_, until)) = l.filter(|(l, until)| l.remaining == 0 && now < *until) {
                return Err(until);
            }
        }
        Ok(())
    }

    /// The share of its room left (0–1): the tightest of its caps and the
    /// provider's limits; 1 when nothing is known.
    pub fn headroom(&self, caps: &Caps, now: Instant) -> f64 {
        let mut s = self.lock();
        let [requests, tokens] = s.minute.recent(now, MINUTE);
        let mut left: f64 = 1.0;
        if let Some(r) = caps.rpm {
            left = left.min(1.0 - requests / f64::from(r.max(1)));
        }
        if let Some(t) = caps.tpm {
            left = left.min(1.0 - tokens / t.max(1) as f64);
        }
        for l in [learned(s.requests_left, now), learned(s.tokens_left, now)]
            .into_iter()
            .flatten()
        {
            if let Some(limit) = l.limit.filter(|n| *n > 0) {
                left = left.min(l.remaining as f64 / limit as f64);
            }
        }
        left.max(0.0)
    }

    /// A request was sent to it.
    pub fn sent(&self, now: Instant) {
        self.lock().minute.add(REQUESTS, 1, now, MINUTE);
    }

    /// An answer of it used `tokens`.
    pub fn used(&self, tokens: u64, now: Instant) {
        self.lock().minute.add(TOKENS, tokens, now, MINUTE);
    }

    /// What the provider said of its limits on an answer.
    pub fn learn(&self, limits: &RateLimits, now: Instant) {
        let mut s = self.lock();
        let until = |l: &Limit| now + l.reset.unwrap_or(LEARNED_FOR);
        if let Some(l) = limits.requests {
            s.requests_left = Some((l, until(&l)));
        }
        if let Some(l) = limits.tokens {
            s.tokens_left = Some((l, until(&l)));
        }
    }

    /// It answered 429: no more requests until `retry_after` (else 1 s).
    pub fn rate_limited(&self, retry_after: Option<Duration>, now: Instant) {
        let until = now + retry_after.unwrap_or(Duration::from_secs(1));
        let mut s = self.lock();
        s.blocked_until = Some(s.blocked_until.map_or(until, |u| u.max(until)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_over_a_sliding_minute() {
        let (u, t0) = (Usage::default(), Instant::now());
        let caps = Caps {
            rpm: Some(3),
            tpm: Some(1_000),
        };
        for _ in 0..3 {
            assert_eq!(u.room(&caps, t0), Ok(()));
            u.sent(t0);
        }
        assert!(u.room(&caps, t0).is_err(), "three a minute");
        assert!((u.headroom(&caps, t0) - 0.0).abs() < 1e-9);
        // Half a minute into the next minute, half of the old ones count.
        let t1 = t0 + Duration::from_secs(90);
        assert_eq!(u.room(&caps, t1), Ok(()));
        // Tokens: 1,000 a minute used up.
        u.used(1_000, t1);
        assert!(u.room(&caps, t1).is_err());
    }

    #[test]
    fn learned_limits_and_429s_keep_it_out_until_they_reset() {
        let (u, t0) = (Usage::default(), Instant::now());
        let caps = Caps::default();
        let limits = RateLimits {
            requests: Some(Limit {
                remaining: 0,
                limit: Some(60),
                reset: Some(Duration::from_secs(10)),
            }),
            tokens: Some(Limit {
                remaining: 5_000,
                limit: Some(10_000),
                reset: None,
            }),
        };
        u.learn(&limits, t0);
        assert_eq!(u.room(&caps, t0), Err(t0 + Duration::from_secs(10)));
        assert_eq!(u.headroom(&caps, t0), 0.0);
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(u.room(&caps, t1), Ok(()));
        assert!(
            (u.headroom(&caps, t1) - 0.5).abs() < 1e-9,
            "tokens half used"
        );
        u.rate_limited(Some(Duration::from_secs(30)), t1);
        assert_eq!(u.room(&caps, t1), Err(t1 + Duration::from_secs(30)));
        assert_eq!(u.room(&caps, t1 + Duration::from_secs(31)), Ok(()));
    }
}
