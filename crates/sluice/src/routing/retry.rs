//! Retries: how long to wait before another round over a model's
//! candidates (exponential backoff with full jitter, at least the
//! upstream's `retry-after`), and the retry budget that caps every extra
//! attempt — failover to another deployment or model, and retry rounds —
//! at a share of the model's requests, so a brown-out never becomes a
//! retry storm (Envoy's and linkerd's retry budgets).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::window::Window;

/// What the config sets (`models.X.retries`), with defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySpec {
    /// Extra rounds over the candidates.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Extra attempts allowed per request of the model, over the window.
    pub budget: f64,
    /// Extra attempts allowed a second whatever the traffic.
    pub min_per_second: u32,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: 0,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            budget: 0.2,
            min_per_second: 10,
        }
    }
}

impl RetrySpec {
    /// The wait before retry round `round` (1-based): a random time up to
    /// `backoff · 2^(round-1)` (capped at `max_backoff`), and at least the
    /// upstream's `retry_after`. `None` when that is longer than
    /// `max_backoff`: waiting so long is no retry, the caller answers.
    pub fn wait(&self, round: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry_after.is_some_and(|r| r > self.max_backoff) {
            return None;
        }
        let ceiling = self
            .backoff
            .saturating_mul(1u32 << round.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let jittered = ceiling.mul_f64(fastrand::f64());
        Some(jittered.max(retry_after.unwrap_or_default()))
    }
}

/// The length of the budget's window.
const WINDOW: Duration = Duration::from_secs(10);

/// One model's retry budget: requests and extra attempts over the last
/// [`WINDOW`].
#[derive(Debug, Default)]
pub struct RetryBudget {
    state: Mutex<Window<2>>,
}

/// The budget window's counts.
const REQUESTS: usize = 0;
const EXTRA: usize = 1;

impl RetryBudget {
    /// A request of the model arrived.
    pub fn request(&self, now: Instant) {
        self.lock().add(REQUESTS, 1, now, WINDOW);
    }

    /// Takes one extra attempt from the budget, if it has one.
    pub fn withdraw(&self, spec: &RetrySpec, now: Instant) -> bool {
        let mut w = self.lock();
        let [requests, extra] = w.recent(now, WINDOW);
        let allowed =
            spec.budget * requests + f64::from(spec.min_per_second) * WINDOW.as_secs_f64();
        if extra + 1.0 > allowed {
            return false;
        }
        w.add(EXTRA, 1, now, WINDOW);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window<2>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_under_its_cap_and_honours_retry_after() {
        let s = RetrySpec {
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..RetrySpec::default()
        };
        for _ in 0..200 {
            assert!(s.wait(1, None).unwrap() <= Duration::from_millis(100));
            assert!(s.wait(3, None).unwrap() <= Duration::from_millis(400));
            assert!(s.wait(9, None).unwrap() <= Duration::from_millis(500));
            let ra = Duration::from_millis(300);
            assert!(s.wait(1, Some(ra)).unwrap() >= ra);
        }
        // Full jitter spreads the waits over the whole range.
        let waits: Vec<Duration> = (0..200).map(|_| s.wait(3, None).unwrap()).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_millis(100)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(300)));
        // A retry-after longer than the ceiling ends the retries.
        assert_eq!(s.wait(1, Some(Duration::from_secs(2))), None);
    }

    #[test]
    fn the_budget_allows_its_share_of_requests_plus_a_floor() {
        let spec = RetrySpec {
            budget: 0.2,
            min_per_second: 1,
            ..RetrySpec::default()
        };
        let (b, t0) = (RetryBudget::default(), Instant::now());
        for _ in 0..1_000 {
            b.request(t0);
        }
        // 20 % of 1,000, plus 1/s over the 10 s window.
        let granted = (0..1_000).filter(|_| b.withdraw(&spec, t0)).count();
        assert_eq!(granted, 210);
        // Two windows later the old traffic no longer counts: the floor.
        let t1 = t0 + Duration::from_secs(25);
        let granted = (0..100).filter(|_| b.withdraw(&spec, t1)).count();
        assert_eq!(granted, 10);
    }
}
