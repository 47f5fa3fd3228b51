//! `spend_anomaly`: spend summed per `window` interval and per subject
//! (the gateway, a tenant or a model), an EWMA of its mean and variance,
//! and the z-score of each interval as it closes against the EWMA of the
//! intervals before it. An interval fires when its z-score is above `z`
//! after `warmup` intervals were folded in; only spikes fire, never drops.
//! A subject once seen counts a quiet interval as $0 spend.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::alerts::Subject;

/// Default EWMA smoothing factor.
pub const DEFAULT_ALPHA: f64 = 0.3;
/// Subjects kept per rule at most; new ones past it are not tracked.
const MAX_SUBJECTS: usize = 10_000;
/// Intervals closed at once at most (after a long pause the rest are
/// skipped, not replayed).
const MAX_CATCH_UP: u64 = 1000;

/// An exponentially weighted mean and variance.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ewma {
    /// Values folded in.
    pub n: u32,
    pub mean: f64,
    pub var: f64,
}

impl Ewma {
    /// Folds `x` in (the first value sets the mean).
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let diff = x - self.mean;
            let incr = alpha * diff;
            self.mean += incr;
            self.var = (1.0 - alpha) * (self.var + diff * incr);
        }
        self.n = self.n.saturating_add(1);
    }

    /// How many standard deviations `x` is above the mean. The deviation
    /// is floored at 1% of the mean (and a millionth of a dollar), so a
    /// perfectly flat history does not make every cent an anomaly.
    pub fn z(&self, x: f64) -> f64 {
        let floor = (self.mean.abs() * 0.01).max(1e-6);
        (x - self.mean) / self.var.sqrt().max(floor)
    }
}

/// The verdict on one closed interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub spend: f64,
    pub mean: f64,
    pub z: f64,
    pub firing: bool,
}

/// Judges `x` against the history `e` (before folding `x` in): no verdict
/// during warmup.
pub fn judge(e: &Ewma, x: f64, z: f64, warmup: u32) -> Option<Verdict> {
    (e.n >= warmup).then(|| {
        let score = e.z(x);
        Verdict {
            spend: x,
            mean: e.mean,
            z: score,
            firing: score > z,
        }
    })
}

/// One subject's series.
#[derive(Debug, Default)]
struct Series {
    current: f64,
    ewma: Ewma,
    last: Option<Verdict>,
}

/// A rule's series, by subject.
#[derive(Debug)]
pub struct Spend {
    origin: Instant,
    width: Duration,
    index: u64,
    z: f64,
    warmup: u32,
    alpha: f64,
    series: HashMap<Subject, Series>,
}

impl Spend {
    pub fn new(origin: Instant, width: Duration, z: f64, warmup: u32, alpha: f64) -> Spend {
        Spend {
            origin,
            width: width.max(Duration::from_millis(1)),
            index: 0,
            z,
            warmup,
            alpha,
            series: HashMap::new(),
        }
    }

    /// Adds `usd` of spend by `subject` now.
    pub fn record(&mut self, now: Instant, subject: Subject, usd: f64) {
        self.roll(now);
        let full = self.series.len() >= MAX_SUBJECTS;
        if let Some(s) = self.series.get_mut(&subject) {
            s.current += usd;
        } else if !full {
            self.series.entry(subject).or_default().current += usd;
        }
    }

    /// Closes the intervals that ended by `now`.
    pub fn roll(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.origin);
        let index = (since.as_nanos() / self.width.as_nanos()) as u64;
        let behind = index.saturating_sub(self.index);
        for _ in 0..behind.min(MAX_CATCH_UP) {
            self.close();
        }
        self.index = index.max(self.index);
    }

    fn close(&mut self) {
        let (z, warmup, alpha) = (self.z, self.warmup, self.alpha);
        for s in self.series.values_mut() {
            let x = std::mem::take(&mut s.current);
            s.last = judge(&s.ewma, x, z, warmup);
            s.ewma.update(x, alpha);
        }
    }

    /// The latest closed interval's verdict of every subject that has one.
    pub fn verdicts(&mut self, now: Instant) -> Vec<(Subject, Verdict)> {
        self.roll(now);
        let mut v: Vec<_> = (self.series.iter())
            .filter_map(|(k, s)| s.last.map(|l| (k.clone(), l)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_mean_and_variance_by_hand() {
        let mut e = Ewma::default();
        e.update(10.0, 0.5);
        assert_eq!((e.mean, e.var), (10.0, 0.0));
        e.update(20.0, 0.5);
        // diff 10, incr 5 → mean 15, var 0.5 × (0 + 10 × 5) = 25.
        assert_eq!((e.mean, e.var), (15.0, 25.0));
        assert_eq!(e.z(25.0), 2.0);
        e.update(15.0, 0.5);
        // diff 0 → mean 15, var 12.5.
        assert_eq!((e.mean, e.var), (15.0, 12.5));
    }

    #[test]
    fn a_flat_history_does_not_make_pennies_anomalies() {
        let mut e = Ewma::default();
        for _ in 0..10 {
            e.update(100.0, 0.3);
        }
        assert!(e.z(100.5) < 1.0, "{}", e.z(100.5));
        assert!(e.z(110.0) > 3.0);
        assert!(Ewma::default().z(0.0).abs() < f64::EPSILON);
    }

    /// Closes one interval per value and returns the verdicts.
    fn series(values: &[f64], z: f64, warmup: u32) -> Vec<Option<bool>> {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut sp = Spend::new(t0, s, z, warmup, DEFAULT_ALPHA);
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            sp.record(t0 + s * i as u32, Subject::Global, *v);
            let verdicts = sp.verdicts(t0 + s * (i as u32 + 1));
            out.push(verdicts.first().map(|(_, v)| v.firing));
        }
        out
    }

    #[test]
    fn a_spike_after_warmup_fires_and_the_next_normal_interval_does_not() {
        let v = series(&[10.0, 12.0, 9.0, 11.0, 10.0, 11.0, 40.0, 11.0], 3.0, 6);
        assert_eq!(
            v,
            [None, None, None, None, None, None, Some(true), Some(false)]
        );
    }

    #[test]
    fn no_verdict_during_warmup_even_for_a_spike() {
        let v = series(&[10.0, 11.0, 500.0], 3.0, 6);
        assert_eq!(v, [None, None, None]);
    }

    #[test]
    fn drops_and_normal_noise_do_not_fire() {
        let v = series(&[10.0, 12.0, 9.0, 11.0, 10.0, 11.0, 0.0, 12.0, 9.5], 3.0, 4);
        assert!(v.iter().flatten().all(|f| !f), "{v:?}");
    }

    #[test]
    fn quiet_intervals_count_as_zero_spend() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut sp = Spend::new(t0, s, 3.0, 2, 0.5);
        sp.record(t0, Subject::Tenant("acme".into()), 4.0);
        // Three intervals later: 4, 0, 0 folded in; mean 1, verdict on 0.
        let v = sp.verdicts(t0 + s * 3);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, Subject::Tenant("acme".into()));
        assert_eq!((v[0].1.spend, v[0].1.mean), (0.0, 2.0));
        assert!(!v[0].1.firing);
    }
}
