//! `error_rate`: the share of a model's requests answered with a 5xx
//! (upstream failures, timeouts, no deployment available, internal
//! errors) over the window. 4xx answers — sluice's own 429s and 402s, bad
//! requests, client disconnects (499) — are requests but not errors.

use super::window::Totals;

/// Whether `status` counts as an error.
pub fn is_error(status: u16) -> bool {
    (500..=599).contains(&status)
}

/// The error share and whether it fires: `None` below `min_requests`
/// (no verdict: not firing).
pub fn verdict(t: &Totals, above: f64, min_requests: u32) -> Option<(f64, bool)> {
    if t.requests == 0 || t.requests < u64::from(min_requests) {
        return None;
    }
    let rate = t.errors as f64 / t.requests as f64;
    Some((rate, rate > above))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, errors: u64) -> Totals {
        Totals {
            requests,
            errors,
            ..Totals::default()
        }
    }

    #[test]
    fn fires_above_the_share_with_enough_requests() {
        assert_eq!(verdict(&totals(20, 2), 0.05, 20), Some((0.1, true)));
        assert_eq!(verdict(&totals(100, 5), 0.05, 20), Some((0.05, false)));
        assert_eq!(verdict(&totals(100, 0), 0.05, 20), Some((0.0, false)));
    }

    #[test]
    fn no_verdict_below_min_requests() {
        assert_eq!(verdict(&totals(19, 19), 0.05, 20), None);
        assert_eq!(verdict(&totals(0, 0), 0.05, 0), None);
    }

    #[test]
    fn only_5xx_are_errors() {
        assert!(is_error(500) && is_error(502) && is_error(503) && is_error(504));
        for s in [200, 400, 402, 404, 429, 499] {
            assert!(!is_error(s), "{s}");
        }
    }
}
