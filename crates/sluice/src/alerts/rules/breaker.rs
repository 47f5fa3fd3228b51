//! `breaker_open`: a deployment's circuit breaker is not closed, or opened
//! since the last evaluation (so a breaker that opened and closed again
//! between two evaluations still fires once, then resolves). Read from the
//! breakers' live state: nothing on the request path.

use std::collections::HashMap;
use std::sync::Arc;

use crate::routing::breaker::Phase;

/// Whether a breaker seen in `phase`, having opened `opens` times (and
/// `seen` times at the last evaluation), fires.
pub fn verdict(phase: Phase, opens: u64, seen: u64) -> bool {
    phase != Phase::Closed || opens > seen
}

/// The open counts seen at the last evaluation, by deployment key.
#[derive(Debug, Default)]
pub struct Watch {
    seen: HashMap<Arc<str>, u64>,
}

impl Watch {
    /// Judges one deployment and remembers its count. A deployment seen
    /// for the first time has no history: only its phase counts.
    pub fn judge(&mut self, key: &Arc<str>, phase: Phase, opens: u64) -> bool {
        let seen = self.seen.insert(key.clone(), opens).unwrap_or(opens);
        verdict(phase, opens, seen)
    }

    /// Forgets deployments not in `keep` (gone from the config).
    pub fn retain(&mut self, keep: &std::collections::HashSet<Arc<str>>) {
        self.seen.retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_or_half_open_fires_closed_does_not() {
        assert!(verdict(Phase::Open, 1, 1));
        assert!(verdict(Phase::HalfOpen, 1, 1));
        assert!(!verdict(Phase::Closed, 1, 1));
    }

    #[test]
    fn an_open_and_close_between_evaluations_fires_once() {
        let mut w = Watch::default();
        let k: Arc<str> = "smart/up/gpt".into();
        assert!(!w.judge(&k, Phase::Closed, 0));
        assert!(w.judge(&k, Phase::Closed, 1), "opened and closed since");
        assert!(!w.judge(&k, Phase::Closed, 1));
        assert!(w.judge(&k, Phase::Open, 2));
    }

    #[test]
    fn a_first_look_goes_by_the_phase_alone() {
        let mut w = Watch::default();
        let k: Arc<str> = "m/p/u".into();
        assert!(!w.judge(&k, Phase::Closed, 7));
        let mut w = Watch::default();
        assert!(w.judge(&k, Phase::Open, 7));
    }
}
