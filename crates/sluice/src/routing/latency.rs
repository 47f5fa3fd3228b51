//! Peak-EWMA latency of one deployment (Finagle's and linkerd's balancer
//! cost): a slower sample than the estimate replaces it at once (peaks
//! count fully), a faster one pulls it down with a weight that decays with
//! the time since the last sample (`TAU`). The balancer's cost of a
//! deployment is this estimate times its requests in flight plus one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How fast the estimate forgets: a sample `TAU` old weighs 1/e.
const TAU: Duration = Duration::from_secs(10);

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
                let w = (-age / TAU.as_secs_f64()).exp();
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
        // A fast sample right after barely moves it; one TAU later, most.
        e.observe(Duration::from_millis(10), t0 + Duration::from_millis(1));
        assert!(e.micros() > 99_000.0, "{}", e.micros());
        e.observe(Duration::from_millis(10), t0 + Duration::from_secs(30));
        assert!(e.micros() < 15_000.0, "{}", e.micros());
    }
}
