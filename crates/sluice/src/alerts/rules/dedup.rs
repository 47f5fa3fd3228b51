//! Deduplication: one rule and subject's alert state. It emits `firing`
//! once when the condition starts to hold, then nothing while it keeps
//! holding — except a reminder every `repeat_every` when set — and
//! `resolved` once when it stops holding; after that it may fire again.

use std::time::{Duration, Instant};

use crate::alerts::RuleState;

/// A rule and subject's state between evaluations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dedup {
    /// When the last firing event went out, while firing.
    firing_since_sent: Option<Instant>,
}

impl Dedup {
    /// Whether it is firing now.
    pub fn firing(&self) -> bool {
        self.firing_since_sent.is_some()
    }

    /// Takes one evaluation's verdict; returns the event to send, if any.
    pub fn step(
        &mut self,
        firing: bool,
        now: Instant,
        repeat_every: Option<Duration>,
    ) -> Option<RuleState> {
        match (self.firing_since_sent, firing) {
            (None, true) => {
                self.firing_since_sent = Some(now);
                Some(RuleState::Firing)
            }
            (Some(sent), true) => {
                let due = repeat_every.is_some_and(|r| now.saturating_duration_since(sent) >= r);
                due.then(|| {
                    self.firing_since_sent = Some(now);
                    RuleState::Firing
                })
            }
            (Some(_), false) => {
                self.firing_since_sent = None;
                Some(RuleState::Resolved)
            }
            (None, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn run(verdicts: &[bool], repeat: Option<Duration>) -> Vec<Option<RuleState>> {
        let t0 = Instant::now();
        let mut d = Dedup::default();
        (verdicts.iter().enumerate())
            .map(|(i, f)| d.step(*f, t0 + S * i as u32, repeat))
            .collect()
    }

    #[test]
    fn fires_once_resolves_once_and_fires_again() {
        use RuleState::{Firing as F, Resolved as R};
        assert_eq!(
            run(&[false, true, true, true, false, false, true, false], None),
            [None, Some(F), None, None, Some(R), None, Some(F), Some(R)]
        );
    }

    #[test]
    fn reminds_every_repeat_every_while_firing() {
        use RuleState::{Firing as F, Resolved as R};
        assert_eq!(
            run(&[true, true, true, true, true, false], Some(S * 2)),
            [Some(F), None, Some(F), None, Some(F), Some(R)]
        );
    }

    #[test]
    fn knows_whether_it_fires() {
        let mut d = Dedup::default();
        assert!(!d.firing());
        d.step(true, Instant::now(), None);
        assert!(d.firing());
    }
}
