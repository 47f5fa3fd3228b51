//! One deployment's circuit breaker: **closed** (requests flow) → **open**
//! after `failures` consecutive failures, or a failure rate of at least
//! `failure_rate` over the last `window` once `min_requests` were seen →
//! **half-open** when `cooldown` has passed, letting `half_open_requests`
//! trial requests through → **closed** when a trial succeeds, or open again
//! (for another cooldown) when one fails.
//!
//! With `slow_call`, an answer that took longer than that to start counts
//! as a failure too (latency-based outlier detection).
//!
//! Pure state and a clock passed in: no I/O, no `.await`, a short lock.
//! The spec comes from the snapshot on every call, so a reload applies at
//! once while the state (outside the snapshot) survives it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::window::Window;

/// The breaker window's counts.
const REQUESTS: usize = 0;
const FAILURES: usize = 1;

/// What the config sets (`models.X.circuit_breaker`), with defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSpec {
    pub failures: u32,
    pub failure_rate: f64,
    pub window: Duration,
    pub min_requests: u32,
    pub cooldown: Duration,
    pub half_open_requests: u32,
    /// An answer that took longer than this to start counts as a failure.
    pub slow_call: Option<Duration>,
}

impl Default for BreakerSpec {
    /// Envoy's outlier detection and Hystrix, roughly: 5 failures in a
    /// row, or half of at least 20 requests in 30 s; 30 s open; one trial.
    fn default() -> Self {
        BreakerSpec {
            failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_requests: 20,
            cooldown: Duration::from_secs(30),
            half_open_requests: 1,
            slow_call: None,
        }
    }
}

/// The breaker's state, as exported (`sluice_breaker_state`, status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open => "open",
            Phase::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        }
    }
}

/// May a request go to the deployment now?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Yes (closed).
    Yes,
    /// Yes, as one of the half-open trials: its outcome decides.
    Trial,
    /// No: open (or every trial is out); it may be asked again at `until`.
    No { until: Instant },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive: u32,
    /// Open until (open).
    until: Instant,
    /// Requests and failures over the last `spec.window`.
    window: Window<2>,
    trials_out: u32,
    /// Times it moved to open (for `breaker_open` alert rules, which may
    /// look after it already closed again).
    opens: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new(Instant::now())
    }
}

impl Breaker {
    pub fn new(now: Instant) -> Breaker {
        Breaker {
            state: Mutex::new(State {
                phase: Phase::Closed,
                consecutive: 0,
                until: now,
                window: Window::default(),
                trials_out: 0,
                opens: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No critical section panics; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The phase now (an open breaker whose cooldown passed reads
    /// half-open: the next request is its trial).
    pub fn phase(&self, now: Instant) -> Phase {
        let s = self.lock();
        match s.phase {
            Phase::Open if now >= s.until => Phase::HalfOpen,
            p => p,
        }
    }

    /// How many times it opened since it was created.
    pub fn opens(&self) -> u64 {
        self.lock().opens
    }

    /// Whether a request may go now; a `Trial` must be followed by
    /// [`record`](Self::record) with `trial: true`.
    pub fn admit(&self, spec: &BreakerSpec, now: Instant) -> Admit {
        let mut s = self.lock();
        match s.phase {
            Phase::Closed => Admit::Yes,
            Phase::Open if now < s.until => Admit::No { until: s.until },
            Phase::Open | Phase::HalfOpen => {
                if s.phase == Phase::Open {
                    s.phase = Phase::HalfOpen;
                    s.trials_out = 0;
                }
                if s.trials_out < spec.half_open_requests.max(1) {
                    s.trials_out += 1;
                    Admit::Trial
                } else {
                    Admit::No {
                        until: now + spec.cooldown.min(Duration::from_secs(1)),
                    }
                }
            }
        }
    }

    /// The outcome of an active health probe of the deployment's provider:
    /// a failure opens the breaker at once (for a cooldown), a success
    /// closes an open or half-open one at once — the probe is the trial,
    /// and no request pays for it. Returns the phase it moved to.
    pub fn probe(&self, spec: &BreakerSpec, ok: bool, now: Instant) -> Option<Phase> {
        let mut s = self.lock();
        let before = s.phase;
        if ok && s.phase != Phase::Closed {
            s.phase = Phase::Closed;
            s.consecutive = 0;
            s.trials_out = 0;
            s.window = Window::default();
        } else if !ok {
            open(&mut s, spec, now);
        }
        (s.phase != before).then_some(s.phase)
    }

    /// A trial that ended without an outcome (its client left): another
    /// request may take it.
    pub fn abandon_trial(&self) {
        let mut s = self.lock();
        if s.phase == Phase::HalfOpen {
            s.trials_out = s.trials_out.saturating_sub(1);
        }
    }

    /// The outcome of a request admitted by [`admit`](Self::admit).
    /// Returns the phase it moved to, if it changed.
    pub fn record(&self, spec: &BreakerSpec, ok: bool, trial: bool, now: Instant) -> Option<Phase> {
        let mut s = self.lock();
        let before = s.phase;
        match (s.phase, trial) {
            (Phase::HalfOpen, true) => {
                s.trials_out = s.trials_out.saturating_sub(1);
                if ok {
                    s.phase = Phase::Closed;
                    s.consecutive = 0;
                    s.window = Window::default();
                } else {
                    open(&mut s, spec, now);
                }
            }
            (Phase::Closed, _) => {
                s.window.add(REQUESTS, 1, now, spec.window);
                if ok {
                    s.consecutive = 0;
                } else {
                    s.consecutive += 1;
                    s.window.add(FAILURES, 1, now, spec.window);
                    if s.consecutive >= spec.failures.max(1) || over_rate(&mut s.window, spec, now)
                    {
                        open(&mut s, spec, now);
                    }
                }
            }
            // A request admitted before the breaker opened, ending after:
            // the breaker already decided.
            _ => {}
        }
        (s.phase != before).then_some(s.phase)
    }
}

fn open(s: &mut State, spec: &BreakerSpec, now: Instant) {
    if s.phase != Phase::Open {
        s.opens += 1;
    }
    s.phase = Phase::Open;
    s.until = now + spec.cooldown;
    s.consecutive = 0;
    s.trials_out = 0;
}

fn over_rate(w: &mut Window<2>, spec: &BreakerSpec, now: Instant) -> bool {
    let [requests, failures] = w.recent(now, spec.window);
    requests >= f64::from(spec.min_requests.max(1)) && failures / requests >= spec.failure_rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BreakerSpec {
        BreakerSpec {
            failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            cooldown: Duration::from_secs(5),
            half_open_requests: 1,
            slow_call: None,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_one_trial() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        assert_eq!(b.record(&s, false, false, t0), None);
        assert_eq!(
            b.record(&s, true, false, t0),
            None,
            "a success resets the run"
        );
        assert_eq!(b.record(&s, false, false, t0), None);
        assert_eq!(b.record(&s, false, false, t0), None);
        assert_eq!(b.record(&s, false, false, t0), Some(Phase::Open));
        let until = t0 + Duration::from_secs(5);
        assert_eq!(
            b.admit(&s, t0 + Duration::from_secs(4)),
            Admit::No { until }
        );
        assert_eq!(b.phase(t0 + Duration::from_secs(4)), Phase::Open);
        // Cooldown over: one trial, and nobody else meanwhile.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.phase(t1), Phase::HalfOpen);
        assert_eq!(b.admit(&s, t1), Admit::Trial);
        assert!(matches!(b.admit(&s, t1), Admit::No { .. }));
        assert_eq!(b.record(&s, true, true, t1), Some(Phase::Closed));
        assert_eq!(b.admit(&s, t1), Admit::Yes);
    }

    #[test]
    fn a_failed_trial_opens_it_for_another_cooldown() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(&s, false, false, t0);
        }
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(b.admit(&s, t1), Admit::Trial);
        assert_eq!(b.record(&s, false, true, t1), Some(Phase::Open));
        let until = t1 + Duration::from_secs(5);
        assert_eq!(
            b.admit(&s, t1 + Duration::from_secs(1)),
            Admit::No { until }
        );
        // A request admitted before it opened changes nothing.
        assert_eq!(b.record(&s, true, false, t1), None);
        assert_eq!(b.phase(t1), Phase::Open);
    }

    #[test]
    fn opens_on_the_failure_rate_once_enough_requests_were_seen() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        // Alternate failure and success: never 3 in a row, 50 % failing.
        for i in 0..9 {
            assert_eq!(b.record(&s, i % 2 == 1, false, t0), None, "request {i}");
        }
        // The tenth request reaches min_requests with 5 of 10 failed.
        assert_eq!(b.record(&s, false, false, t0), Some(Phase::Open));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        for i in 0..9 {
            b.record(&s, i % 2 == 1, false, t0);
        }
        // Two windows later the old requests no longer count.
        let t1 = t0 + Duration::from_secs(25);
        for i in 0..9 {
            assert_eq!(b.record(&s, i % 3 != 0, false, t1), None, "request {i}");
        }
        assert_eq!(b.phase(t1), Phase::Closed);
    }

    #[test]
    fn a_failed_probe_opens_and_a_good_one_closes() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        assert_eq!(b.probe(&s, true, t0), None, "closed stays closed");
        assert_eq!(b.probe(&s, false, t0), Some(Phase::Open));
        assert!(matches!(b.admit(&s, t0), Admit::No { .. }));
        // Still failing: open for another cooldown from now.
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(b.probe(&s, false, t1), None);
        assert!(matches!(
            b.admit(&s, t0 + Duration::from_secs(6)),
            Admit::No { .. }
        ));
        assert_eq!(b.probe(&s, true, t1), Some(Phase::Closed));
        assert_eq!(b.admit(&s, t1), Admit::Yes);
    }

    #[test]
    fn an_abandoned_trial_is_given_back() {
        let (t0, s) = (Instant::now(), spec());
        let b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(&s, false, false, t0);
        }
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(&s, t1), Admit::Trial);
        assert!(matches!(b.admit(&s, t1), Admit::No { .. }));
        b.abandon_trial();
        assert_eq!(
            b.admit(&s, t1),
            Admit::Trial,
            "the next request is the trial"
        );
    }

    #[test]
    fn several_trials_when_configured() {
        let t0 = Instant::now();
        let s = BreakerSpec {
            half_open_requests: 2,
            ..spec()
        };
        let b = Breaker::new(t0);
        for _ in 0..3 {
            b.record(&s, false, false, t0);
        }
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.admit(&s, t1), Admit::Trial);
        assert_eq!(b.admit(&s, t1), Admit::Trial);
        assert!(matches!(b.admit(&s, t1), Admit::No { .. }));
    }
}
