//! Peak-EWMA latency of one deployment (Finagle's and linkerd's balancer
//! cost): a slower sample than the estimate replaces it at once (peaks
//! count fully), a faster one pulls it down with a weight that decays with
//! the time since the last sample (`TAU`) — and by at least a tenth, so a
//! busy deployment's one slow outlier (a first connection, a GC pause)
//! fades within a few dozen requests rather than seconds. The balancer's
//! cost of a deployment is this estimate times its requests in flight plus
//! one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How fast the estimate forgets: a sample `TAU` old weighs 1/e.
const TAU: Duration = Duration::from_secs(10);

/// The most an estimate keeps of itself per faster sample.
const KEEP_AT_MOST: f64 = 0.9;

#[derive(Debug, Default)]
pub struct PeakEwma {
    /// (estimate in µs, time of the last sample); none before the first.
    state: Mutex<Option<(f64, Instant)>>,
}

impl PeakEwma {
    /// Adds one observed latency.
    pub fn observe(&self, latency: Duration, now: Instant) {
        let rtt = latency.as_secs_f64() * 1e6;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = match *s {
            None => rtt,
            Some((est, _)) if rtt > est => rtt,
            Some((est, at)) => {
                let age = now.saturating_duration_since(at).as_secs_f64();
                let w = (-age / TAU.as_secs_f64()).exp().min(KEEP_AT_MOST);
                est * w + rtt * (1.0 - w)
            }
        };
        *s = Some((next, now));
    }

    /// The estimate in µs (0 before any sample: an unmeasured deployment
    /// looks fastest, so it gets measured).
    pub fn micros(&self) -> f64 {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.map_or(0.0, |(est, _)| est)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_count_at_once_and_fade_with_time() {
        let (e, t0) = (PeakEwma::default(), Instant::now());
        assert_eq!(e.micros(), 0.0);
        e.observe(Duration::from_millis(10), t0);
        assert_eq!(e.micros(), 10_000.0);
        e.observe(Duration::from_millis(100), t0);
        assert_eq!(e.micros(), 100_000.0, "a peak replaces the estimate");
        // A fast sample right after moves it a tenth of the way; many fast
        // samples in a row bring it down; a sample long after, almost all.
        e.observe(Duration::from_millis(10), t0 + Duration::from_millis(1));
        assert!((e.micros() - 91_000.0).abs() < 10.0, "{}", e.micros());
        for i in 2..40 {
            e.observe(Duration::from_millis(10), t0 + Duration::from_millis(i));
        }
        assert!(e.micros() < 12_000.0, "{}", e.micros());
        e.observe(Duration::from_millis(100), t0 + Duration::from_millis(50));
        e.observe(Duration::from_millis(10), t0 + Duration::from_secs(60));
        assert!(e.micros() < 11_000.0, "{}", e.micros());
    }
}
