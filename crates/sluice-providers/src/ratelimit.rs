//! The rate limits a provider reports on its answers, read from their
//! headers (pure: no I/O):
//!
//! - OpenAI and compatibles: `x-ratelimit-limit-requests`,
//!   `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` (a
//!   duration such as `1s`, `6m0s`, `20ms`) and the same for `-tokens`;
//! - Anthropic: `anthropic-ratelimit-requests-limit`, `-remaining`,
//!   `-reset` (an RFC 3339 time) and the same for `tokens`.
//!
//! A reset this module cannot read is left unknown; the caller decides how
//! long to trust the figures then.

use std::time::Duration;

/// One limit: what is left of it, out of how much, and when it refills.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limit {
    pub remaining: u64,
    pub limit: Option<u64>,
    /// Time until it is full again, when the provider said.
    pub reset: Option<Duration>,
}

/// The request and token limits of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimits {
    pub requests: Option<Limit>,
    pub tokens: Option<Limit>,
}

impl RateLimits {
    /// Reads the headers; `None` when they carry no rate-limit figure.
    /// `now_unix_ms` turns Anthropic's reset times into durations.
    pub fn from_headers(h: &http::HeaderMap, now_unix_ms: i64) -> Option<RateLimits> {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let num = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
        let openai = |what: &str| {
            let remaining = num(&format!("x-ratelimit-remaining-{what}"))?;
            Some(Limit {
                remaining,
                limit: num(&format!("x-ratelimit-limit-{what}")),
                reset: get(&format!("x-ratelimit-reset-{what}")).and_then(go_duration),
            })
        };
        let anthropic = |what: &str| {
            let remaining = num(&format!("anthropic-ratelimit-{what}-remaining"))?;
            Some(Limit {
                remaining,
                limit: num(&format!("anthropic-ratelimit-{what}-limit")),
                reset: get(&format!("anthropic-ratelimit-{what}-reset"))
                    .and_then(rfc3339_ms)
                    .map(|at| Duration::from_millis(u64::try_from(at - now_unix_ms).unwrap_or(0))),
            })
        };
        let limits = RateLimits {
            requests: openai("requests").or_else(|| anthropic("requests")),
            tokens: openai("tokens").or_else(|| anthropic("tokens")),
        };
        (limits.requests.is_some() || limits.tokens.is_some()).then_some(limits)
    }
}

/// A Go-style duration (`1h2m3.5s`, `6m0s`, `20ms`, `1s`).
fn go_duration(s: &str) -> Option<Duration> {
    let (mut total, mut num) = (0.0f64, String::new());
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += value * unit;
        any = true;
    }
    (any && num.is_empty()).then(|| Duration::from_secs_f64(total))
}

/// Unix milliseconds of an RFC 3339 UTC time (`2026-12-05T07:20:00Z`,
/// fractions allowed; other offsets are not read).
fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let secs: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // In range: checked above.
    let days = sluice_types::civil::days_from_civil(y, m as u32, day as u32);
    Some((days * 86_400 + hh * 3600 + mm * 60) * 1000 + (secs * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// OpenAI's documented example headers.
    #[test]
    fn openai_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let l = RateLimits::from_headers(&h, 0).unwrap();
        assert_eq!(
            l.requests,
            Some(Limit {
                remaining: 59,
                limit: Some(60),
                reset: Some(Duration::from_secs(1))
            })
        );
        assert_eq!(l.tokens.unwrap().reset, Some(Duration::from_secs(360)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("5"), None);
    }

    #[test]
    fn anthropic_headers() {
        let now = rfc3339_ms("2026-12-05T07:20:00Z").unwrap();
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-12-05T07:20:30Z"),
            ("anthropic-ratelimit-tokens-remaining", "12000"),
        ]);
        let l = RateLimits::from_headers(&h, now).unwrap();
        assert_eq!(l.requests.unwrap().remaining, 0);
        assert_eq!(l.requests.unwrap().reset, Some(Duration::from_secs(30)));
        assert_eq!(l.tokens.unwrap().limit, None);
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(rfc3339_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(
            RateLimits::from_headers(&headers(&[("x-other", "1")]), now),
            None
        );
    }
}
