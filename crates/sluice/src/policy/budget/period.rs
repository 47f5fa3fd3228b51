//! Budget periods on the UTC calendar: a day from 00:00 UTC, an ISO week
//! from Monday 00:00 UTC, a month from the 1st 00:00 UTC. Times are Unix
//! milliseconds; dates are converted with Howard Hinnant's
//! `days_from_civil` / `civil_from_days` (proleptic Gregorian, exact for
//! every i64 day count we can meet), so no date crate is needed.

/// A budget period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day,
    Week,
    Month,
}

const DAY_MS: i64 = 86_400_000;

/// 1970-01-01 was a Thursday: days since the epoch + 3 is days since a
/// Monday.
const EPOCH_WEEKDAY_FROM_MONDAY: i64 = 3;

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// The name stored in `spend.period`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Unix ms of the start of the period containing `now_ms`.
    pub fn start_of(self, now_ms: i64) -> i64 {
        let days = now_ms.div_euclid(DAY_MS);
        let start = match self {
            Period::Day => days,
            Period::Week => days - (days + EPOCH_WEEKDAY_FROM_MONDAY).rem_euclid(7),
            Period::Month => {
                let (y, m, _) = civil_from_days(days);
                days_from_civil(y, m, 1)
            }
        };
        start * DAY_MS
    }

    /// Unix ms of the start of the period after the one containing
    /// `now_ms`: when a budget resets.
    pub fn next_start(self, now_ms: i64) -> i64 {
        let start = self.start_of(now_ms);
        match self {
            Period::Day => start + DAY_MS,
            Period::Week => start + 7 * DAY_MS,
            Period::Month => {
                let (y, m, _) = civil_from_days(start / DAY_MS);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

pub(super) use sluice_types::civil::{civil_from_days, days_from_civil};
