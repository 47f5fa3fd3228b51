//! Times in the admin API: Unix milliseconds, or RFC 3339 strings
//! (`2030-01-31T12:00:00Z`, `2030-01-31T12:00:00.250+02:00`) on input.

use serde::Deserialize;
use utoipa::ToSchema;

/// Unix milliseconds.
pub type Millis = i64;

/// A point in time: Unix milliseconds or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TimeArg {
    Millis(i64),
    Rfc3339(String),
}

impl TimeArg {
    pub fn millis(&self) -> Result<Millis, String> {
        match self {
            TimeArg::Millis(ms) => Ok(*ms),
            TimeArg::Rfc3339(s) => parse_time(s),
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Parses Unix milliseconds (all digits) or an RFC 3339 date-time.
pub fn parse_time(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| format!("`{s}` is out of range for Unix milliseconds"));
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!(
            "`{}` is not a time: use RFC 3339 (2030-01-31T12:00:00Z) or Unix milliseconds",
            s.chars().take(64).collect::<String>()
        )
    })
}

fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = f[..digits].chars().chain("00".chars()).take(3).collect();
        frac_ms = ms.parse().ok()?;
        rest = &f[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (num_in(rest, 1..3)?, num_in(rest, 4..6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = sluice_types::civil::days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(r)?;
    t.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| t.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_millis() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(parse_time("2024-02-29T12:30:15.25Z"), Ok(1_709_209_815_250));
        assert_eq!(
            parse_time("2024-02-29T14:30:15.250+02:00"),
            parse_time("2024-02-29T12:30:15.250Z")
        );
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        for bad in [
            "",
            "yesterday",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+2:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Z'; DROP TABLE keys; --",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_args() {
        assert_eq!(TimeArg::Millis(5).millis(), Ok(5));
        assert!(TimeArg::Rfc3339("soon".into()).millis().is_err());
    }
}
