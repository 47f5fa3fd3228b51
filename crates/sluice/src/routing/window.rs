//! Counts over the last `len`, estimated from two fixed windows — the
//! current one, and the previous one weighted by how much of it still
//! overlaps the last `len` (the sliding-window estimate of Cloudflare's
//! rate limiter): two numbers per count, no per-event history. Used by the
//! circuit breaker (requests, failures), the retry budget (requests, extra
//! attempts) and deployments' usage (requests, tokens a minute).

use std::time::{Duration, Instant};

/// `N` counts over a sliding window; the caller passes the length.
#[derive(Debug)]
pub struct Window<const N: usize> {
    started: Option<Instant>,
    current: [u64; N],
    previous: [u64; N],
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Window {
            started: None,
            current: [0; N],
            previous: [0; N],
        }
    }
}

impl<const N: usize> Window<N> {
    /// Moves to the window `now` falls in.
    fn roll(&mut self, now: Instant, len: Duration) {
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= len * 2 {
            *self = Window {
                started: Some(now),
                ..Window::default()
            };
        } else if elapsed >= len {
            self.previous = self.current;
            self.current = [0; N];
            self.started = Some(started + len);
        }
    }

    /// Adds `n` to count `i` at `now`.
    pub fn add(&mut self, i: usize, n: u64, now: Instant, len: Duration) {
        self.roll(now, len);
        self.current[i] += n;
    }

    /// Every count over the last `len`, estimated.
    pub fn recent(&mut self, now: Instant, len: Duration) -> [f64; N] {
        self.roll(now, len);
        let into = self
            .started
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        let w = (1.0 - into / len.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
        std::array::from_fn(|i| self.current[i] as f64 + w * self.previous[i] as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_window_fades_as_the_current_one_goes_on() {
        let (len, t0) = (Duration::from_secs(10), Instant::now());
        let mut w = Window::<2>::default();
        w.add(0, 100, t0, len);
        w.add(1, 10, t0, len);
        assert_eq!(w.recent(t0, len), [100.0, 10.0]);
        // Half-way through the next window, half of the previous counts.
        let t1 = t0 + Duration::from_secs(15);
        w.add(0, 20, t1, len);
        assert_eq!(w.recent(t1, len), [70.0, 5.0]);
        // Two windows on, nothing old is left.
        assert_eq!(w.recent(t0 + Duration::from_secs(40), len), [0.0, 0.0]);
    }
}
