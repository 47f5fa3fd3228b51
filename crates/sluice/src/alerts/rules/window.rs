//! A sliding window of request outcomes in fixed time slots: per slot the
//! request count, the 5xx count and a latency histogram with exponential
//! buckets (each bound 10% above the previous, 1 ms to ~3 min). Old slots
//! fall out as time moves; memory is bounded by [`SLOTS`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Slots per window: the window slides in steps of `window / SLOTS`.
pub const SLOTS: u32 = 20;
/// Latency buckets; the last one holds everything above its lower bound.
pub const BUCKETS: usize = 128;
/// Growth of each bucket bound over the previous one.
const GROWTH: f64 = 1.1;

/// Bucket `i` holds latencies up to [`bucket_bound`]`(i)`.
pub fn bucket_of(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1000.0;
    if ms <= 1.0 {
        return 0;
    }
    let i = (ms.ln() / GROWTH.ln()).ceil();
    (i as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i` (1 ms × 1.1^i).
pub fn bucket_bound(i: usize) -> Duration {
    Duration::from_secs_f64(GROWTH.powi(i as i32) / 1000.0)
}

/// Sums over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub latency: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            requests: 0,
            errors: 0,
            latency: vec![0; BUCKETS],
        }
    }
}

impl Totals {
    /// The q-quantile (0 < q ≤ 1) as the upper bound of the bucket that
    /// holds it (at most 10% above the true value); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n: u64 = self.latency.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.latency.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_bound(i));
            }
        }
        Some(bucket_bound(BUCKETS - 1))
    }
}

#[derive(Debug)]
struct Slot {
    index: u64,
    requests: u64,
    errors: u64,
    latency: Box<[u32; BUCKETS]>,
}

/// One window's slots, oldest first.
#[derive(Debug)]
pub struct Window {
    origin: Instant,
    width: Duration,
    slots: VecDeque<Slot>,
}

impl Window {
    /// A window of `window` starting at `origin`.
    pub fn new(window: Duration, origin: Instant) -> Window {
        Window {
            origin,
            width: (window / SLOTS).max(Duration::from_millis(1)),
            slots: VecDeque::new(),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        (since.as_nanos() / self.width.as_nanos()) as u64
    }

    /// Counts one finished request.
    pub fn record(&mut self, now: Instant, error: bool, latency: Duration) {
        let index = self.index(now);
        self.expire(index);
        if self.slots.back().is_none_or(|s| s.index < index) {
            self.slots.push_back(Slot {
                index,
                requests: 0,
                errors: 0,
                latency: Box::new([0; BUCKETS]),
            });
        }
        // A late sample (an older slot) lands in the newest slot.
        if let Some(s) = self.slots.back_mut() {
            s.requests += 1;
            s.errors += u64::from(error);
            let b = &mut s.latency[bucket_of(latency)];
            *b = b.saturating_add(1);
        }
    }

    /// Drops slots older than the window ending in slot `index`.
    fn expire(&mut self, index: u64) {
        let oldest = index.saturating_sub(u64::from(SLOTS) - 1);
        while self.slots.front().is_some_and(|s| s.index < oldest) {
            self.slots.pop_front();
        }
    }

    /// Sums of the window ending now.
    pub fn totals(&mut self, now: Instant) -> Totals {
        self.expire(self.index(now));
        let mut t = Totals::default();
        for s in &self.slots {
            t.requests += s.requests;
            t.errors += s.errors;
            for (sum, c) in t.latency.iter_mut().zip(s.latency.iter()) {
                *sum += u64::from(*c);
            }
        }
        t
    }

    /// No request in the window.
    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.expire(self.index(now));
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn buckets_grow_by_ten_percent_and_hold_their_bound() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(MS), 0);
        for ms in [2u64, 10, 250, 1999, 2000, 60_000] {
            let d = MS * ms as u32;
            let i = bucket_of(d);
            assert!(bucket_bound(i) >= d, "{ms} ms in bucket {i}");
            assert!(
                bucket_bound(i) <= d.mul_f64(1.1001),
                "{ms} ms in bucket {i}"
            );
        }
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
    }

    #[test]
    fn p99_of_a_histogram() {
        let mut t = Totals::default();
        assert_eq!(t.quantile(0.99), None);
        t.latency[bucket_of(MS * 10)] = 98;
        t.latency[bucket_of(MS * 3000)] = 2;
        let p99 = t.quantile(0.99).unwrap();
        assert!(p99 >= MS * 3000 && p99 < MS * 3300, "{p99:?}");
        let p98 = t.quantile(0.98).unwrap();
        assert!(p98 >= MS * 10 && p98 < MS * 11, "{p98:?}");
    }

    #[test]
    fn old_slots_leave_the_window() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), t0);
        for _ in 0..5 {
            w.record(t0, true, MS * 5);
        }
        w.record(t0 + Duration::from_secs(6), false, MS * 5);
        let t = w.totals(t0 + Duration::from_secs(9));
        assert_eq!((t.requests, t.errors), (6, 5));
        let t = w.totals(t0 + Duration::from_secs(11));
        assert_eq!((t.requests, t.errors), (1, 0), "the first slot expired");
        assert!(w.is_empty(t0 + Duration::from_secs(17)));
    }
}
