//! `latency_p99`: the 99th percentile of a model's whole-request latency
//! (arrival to the last byte, streams included) over the window, from the
//! window's bucketed histogram (so at most 10% above the true value).

use std::time::Duration;

use super::window::Totals;

/// The p99 and whether it fires: `None` below `min_requests`.
pub fn verdict(t: &Totals, above: Duration, min_requests: u32) -> Option<(Duration, bool)> {
    if t.requests < u64::from(min_requests) {
        return None;
    }
    let p99 = t.quantile(0.99)?;
    Some((p99, p99 > above))
}

#[cfg(test)]
mod tests {
    use super::super::window::bucket_of;
    use super::*;

    fn totals(fast: u64, slow: u64, slow_ms: u64) -> Totals {
        let mut t = Totals {
            requests: fast + slow,
            ..Totals::default()
        };
        t.latency[bucket_of(Duration::from_millis(20))] += fast;
        t.latency[bucket_of(Duration::from_millis(slow_ms))] += slow;
        t
    }

    #[test]
    fn fires_when_more_than_one_percent_are_slow() {
        let (p99, firing) = verdict(&totals(97, 3, 3000), Duration::from_secs(2), 20).unwrap();
        assert!(firing && p99 >= Duration::from_secs(3), "{p99:?}");
        let (p99, firing) = verdict(&totals(199, 1, 3000), Duration::from_secs(2), 20).unwrap();
        assert!(!firing && p99 < Duration::from_millis(25), "{p99:?}");
    }

    #[test]
    fn no_verdict_below_min_requests() {
        assert_eq!(
            verdict(&totals(0, 5, 9000), Duration::from_secs(2), 20),
            None
        );
        assert_eq!(verdict(&Totals::default(), Duration::from_secs(2), 0), None);
    }
}
