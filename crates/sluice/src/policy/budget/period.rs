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

/// Days since 1970-01-01 of a proleptic Gregorian date (`m` in 1..=12).
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (i64::from(m) + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01.
pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are in range by construction.
    (y, m as u32, d as u32)
}
