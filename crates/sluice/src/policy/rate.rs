//! Request rate limits (`rate_limit` in a policy): the rules a caller is
//! subject to, what a request records, and how a refusal is worded.
//!
//! Every level of a caller (global, tenant, app, key) and the model each
//! contribute a rule — the level's merged `rate_limit` (plus a shadow
//! overlay, if the level has one) — with counters shared by everything under
//! that level ([`Scope`]). A rule counts
//! each interval it sets (second, minute, hour, day) with one GCRA gate:
//! over any window of length t a gate admits at most `burst + rate·t`.
//! `per: user|ip` gives each end user / client IP its own counters within
//! the level.
//!
//! Several rules: a request is admitted only if every applicable rule
//! admits it, and only then does it count. Rules are checked in order
//! (global, tenant, app, key, model); when one refuses, what the rules
//! before it counted for the request is undone (`rate/gcra.rs`). A shadow
//! rule counts like an enforced one, but when it would refuse, the request
//! goes on uncounted by it and the rule is recorded (`would_block`). How a
//! level's `mode: shadow` and `rollout` items become rules: `rate/resolve.rs`.
//! The counters live in a [`RateStore`] outside the snapshot.

mod gcra;
mod registry;
mod resolve;
mod shared;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use sha2::Digest;

pub use gcra::{Many, One, PassThroughState, RateClock, Refused};
pub use registry::{LocalRates, RateStore};
pub use shared::{RateCall, SharedRates};

pub use resolve::{variants, Variant};

use super::few::Few;
pub use super::few::RuleAt;
use super::handle::Handle;
use super::{Scope, ScopeKind};
use crate::config::merge::Item;
use crate::config::raw::{RateLimitConfig, RatePer};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::Decision;

/// Where the rate counters live: in this process, or shared by every
/// instance through Redis (`shared_state`).
pub enum Rates {
    Local(LocalRates),
    Shared(SharedRates),
}

impl Rates {
    /// Admits the request under every applicable rule, or refuses it
    /// (see [`RateStore::acquire`]); the shared store asks Redis once.
    pub async fn acquire(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        match self {
            Rates::Local(l) => l.acquire(rules, who),
            Rates::Shared(s) => s.acquire(rules, who).await,
        }
    }

    /// Settles token holds on `rules` (the request's, as at admission)
    /// to the tokens really used.
    pub fn settle(&self, rules: [&[RateRule]; 2], holds: &Holds, actual: u64) {
        match self {
            Rates::Local(l) => l.settle(rules, holds, actual),
            Rates::Shared(s) => s.settle(rules, holds, actual),
        }
    }

    /// Forgets idle local counters.
    pub fn prune(&self) {
        match self {
            Rates::Local(l) => l.prune(),
            Rates::Shared(s) => s.prune(),
        }
    }
}

/// The intervals a rate limit counts over (seconds, unit), shortest first.
const INTERVALS: [(u64, &str); 4] = [
    (1, "second"),
    (60, "minute"),
    (3600, "hour"),
    (86_400, "day"),
];

/// What one rule counts: requests and tokens per interval, and the burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateSpec {
    /// Requests per second, minute, hour, day; 0 = not limited over it.
    pub counts: [u32; 4],
    /// Requests that may arrive at once on the shortest interval set
    /// (default: that interval's count).
    pub burst: Option<u32>,
    /// Input + output tokens per second, minute, hour, day (only minute
    /// and day are configurable); 0 = not limited over it.
    pub tokens: [u32; 4],
}

/// One interval of a rule: a GCRA gate counting requests (one cell each)
/// or tokens (one cell per token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateSpec {
    /// Index into second, minute, hour, day.
    pub interval: usize,
    pub count: u32,
    pub burst: u32,
    /// Counts tokens, not requests.
    pub tokens: bool,
}

impl RateSpec {
    /// The spec of a `rate_limit` block; `None` when it sets no rate.
    pub fn from_config(c: &RateLimitConfig) -> Option<RateSpec> {
        let counts = c.request_counts().map(|n| n.unwrap_or(0));
        let tokens = c.token_counts().map(|n| n.unwrap_or(0));
        (counts.iter().chain(&tokens).any(|n| *n > 0)).then_some(RateSpec {
            counts,
            burst: c.burst.filter(|b| *b > 0),
            tokens,
        })
    }

    /// The request gates, shortest interval first, then the token gates.
    /// The shortest request gate takes `burst`; longer intervals and token
    /// gates allow their whole count at once (each is a quota over a
    /// sliding window of its length).
    pub fn gates(&self) -> impl Iterator<Item = GateSpec> + '_ {
        let first = self.counts.iter().position(|n| *n > 0);
        let burst = self.burst;
        let requests = self.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(
            move |(interval, &count)| GateSpec {
                interval,
                count,
                burst: match burst {
                    Some(b) if Some(interval) == first => b,
                    _ => count,
                },
                tokens: false,
            },
        );
        let tokens =
            self.tokens
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(interval, &count)| GateSpec {
                    interval,
                    count,
                    burst: count,
                    tokens: true,
                });
        requests.chain(tokens)
    }

    /// Whether any gate counts tokens.
    pub fn counts_tokens(&self) -> bool {
        self.tokens.iter().any(|n| *n > 0)
    }
}

impl GateSpec {
    /// Time between two requests at the steady rate, rounded up to the
    /// nanosecond so the configured rate is never exceeded.
    pub fn period(&self) -> Duration {
        let ns = INTERVALS[self.interval].0 * 1_000_000_000;
        Duration::from_nanos(ns.div_ceil(u64::from(self.count.max(1))))
    }

    fn unit(&self) -> &'static str {
        INTERVALS[self.interval].1
    }
}

/// Identifies a rule's counters: equal keys share them, across reloads
/// too; a changed spec, partition or mode is a new key with fresh counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleKey {
    hash: u64,
    pub kind: ScopeKind,
    pub scope: Arc<str>,
    pub spec: RateSpec,
    pub per: Option<RatePer>,
    /// A shadow rule never shares counters with an enforced one.
    pub shadow: bool,
    /// The same identity as a hex digest, equal on every instance: the
    /// rule's name in shared state.
    pub stable: Arc<str>,
}

impl RuleKey {
    pub fn new(
        kind: ScopeKind,
        scope: Arc<str>,
        spec: RateSpec,
        per: Option<RatePer>,
        shadow: bool,
    ) -> Self {
        let mut h = std::hash::DefaultHasher::new();
        (kind, &*scope, spec, per, shadow).hash(&mut h);
        let identity = format!(
            "{}|{scope}|{:?}|{:?}|{:?}|{per:?}|{shadow}",
            kind.as_str(),
            spec.counts,
            spec.burst,
            spec.tokens
        );
        let digest = sha2::Sha256::digest(identity.as_bytes());
        RuleKey {
            stable: hex::encode(&digest[..10]).into(),
            hash: h.finish(),
            kind,
            scope,
            spec,
            per,
            shadow,
        }
    }
}

impl Hash for RuleKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// One rate rule a request is subject to.
#[derive(Clone, Debug)]
pub struct RateRule {
    pub key: RuleKey,
    /// "key `ci`", "the gateway-wide limit".
    pub label: Arc<str>,
    /// The named policy that set it, if any.
    pub policy: Option<Arc<str>>,
    /// Recorded, never refusing.
    pub shadow: bool,
    /// The rollout buckets it applies to: `buckets.0 <= bucket < buckets.1`.
    pub buckets: (u16, u16),
    /// Its counters in the local store, once used (`policy/handle.rs`).
    pub counters: Handle,
}

impl RateRule {
    /// The rules of one level (see `rate/resolve.rs`): those applying to
    /// `bucket` when the caller is known, else every variant.
    pub fn of_level(scope: &Scope, items: &[Item<'_>], bucket: Option<u16>) -> Vec<RateRule> {
        variants(items)
            .into_iter()
            .filter(|v| bucket.is_none_or(|b| v.buckets.contains(&b)))
            .filter_map(|v| RateRule::of_variant(scope, &v))
            .collect()
    }

    fn of_variant(scope: &Scope, v: &Variant<'_>) -> Option<RateRule> {
        let spec = RateSpec::from_config(&v.rate)?;
        Some(RateRule {
            key: RuleKey::new(scope.kind, scope.id.clone(), spec, v.rate.per, v.shadow),
            label: scope.label.clone(),
            policy: v.policy.map(Into::into),
            shadow: v.shadow,
            buckets: (v.buckets.start, v.buckets.end),
            counters: Handle::default(),
        })
    }

    pub fn applies_to(&self, bucket: u16) -> bool {
        (self.buckets.0..self.buckets.1).contains(&bucket)
    }

    fn hit(&self, tokens: bool) -> Hit {
        Hit {
            label: self.label.clone(),
            kind: self.key.kind,
            per: self.key.per,
            tokens,
        }
    }

    /// The 429 for a refusal by `gate` of a request reserving `cost`
    /// tokens, naming the limit (never another caller's data: no end user
    /// or IP is echoed).
    fn refusal(&self, gate: GateSpec, refused: Refused, cost: u32) -> GatewayError {
        let secs = refused.wait.as_secs_f64().ceil().max(1.0) as u64;
        let kind = if gate.tokens {
            "token rate limit"
        } else {
            "rate limit"
        };
        let subject = match self.key.kind {
            ScopeKind::Global => format!("the gateway-wide {kind}"),
            _ => format!("{kind} of {}", self.label),
        };
        let policy = self
            .policy
            .as_ref()
            .map(|p| format!(" (policy `{p}`)"))
            .unwrap_or_default();
        let per = match self.key.per {
            Some(RatePer::User) => " per end user",
            Some(RatePer::Ip) => " per client IP",
            None => "",
        };
        let (count, unit) = (gate.count, gate.unit());
        let what = match (gate.tokens, count) {
            (true, _) => "tokens",
            (false, 1) => "request",
            (false, _) => "requests",
        };
        let burst = if gate.burst == count {
            String::new()
        } else {
            format!(", at most {} at once", gate.burst)
        };
        let message = if refused.never {
            format!("this request needs about {cost} tokens (prompt + maximum output), more than the {subject}{policy}{per} allows at all: {count} {what} per {unit}; lower `max_tokens` or shorten the prompt")
        } else if gate.tokens {
            format!("{subject}{policy}{per}: {count} {what} per {unit}; this request reserves about {cost} tokens (prompt + maximum output); retry in {secs} s")
        } else {
            format!("{subject}{policy}{per}: {count} {what} per {unit}{burst}; retry in {secs} s")
        };
        let mut e = GatewayError::new(ErrorKind::RateLimited, message);
        e.retry_after = Some(Duration::from_secs(secs));
        e
    }
}

/// Who a request is for, as partitioned rules see it, and what it costs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Who<'a> {
    /// Tokens the request reserves (prompt + maximum output); 0 when it
    /// is not a token-counted request.
    pub tokens: u32,
    /// The end user; requests without one share one bucket (`-`).
    pub user: Option<&'a str>,
    /// The client IP; unknown ones share one bucket.
    pub ip: Option<IpAddr>,
    /// The caller's rollout bucket.
    pub bucket: u16,
}

/// What the rate stage records for a request.
#[derive(Clone, Debug, Default)]
pub struct RateNote {
    /// The enforced limit with the fewest requests remaining, for the
    /// `x-ratelimit-*-requests` headers.
    pub tightest: Option<Standing>,
    /// The enforced token limit with the fewest tokens remaining, for the
    /// `x-ratelimit-*-tokens` headers.
    pub tightest_tokens: Option<Standing>,
    /// The token reservations to settle when the request ends.
    pub holds: Holds,
    /// The enforced rule that refused the request.
    pub limited: Option<Hit>,
    /// The first shadow rule that would have refused it (admitted requests only).
    pub would_block: Option<Hit>,
}

/// Where one limit stands after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The configured count per interval.
    pub limit: u32,
    /// Requests that could arrive at once now.
    pub remaining: u32,
    /// Until the limit is back to its initial state.
    pub reset: Duration,
}

/// A rule that refused (or would have), for the access log and metrics.
#[derive(Clone, Debug)]
pub struct Hit {
    pub label: Arc<str>,
    pub kind: ScopeKind,
    pub per: Option<RatePer>,
    /// A token limit, not a request limit.
    pub tokens: bool,
}

impl Hit {
    /// The metric label value of the partition.
    pub fn per_label(&self) -> &'static str {
        match self.per {
            None => "none",
            Some(RatePer::User) => "user",
            Some(RatePer::Ip) => "ip",
        }
    }

    /// The metric label value of what the limit counts.
    pub fn limit_label(&self) -> &'static str {
        if self.tokens {
            "tokens"
        } else {
            "requests"
        }
    }
}

/// A token reservation one rule holds for a request until it settles.
/// It names the rule by its place among the request's rules, which the
/// request keeps (its key and model): no clone of the rule or its
/// counters' `Arc`, each of which would be a write to a cache line every
/// worker shares, at admission and again at the settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenHold {
    pub rule: RuleAt,
    /// The partition counted.
    pub part: u64,
    /// Tokens reserved.
    pub reserved: u32,
}

/// A request's token holds.
pub type Holds = Few<TokenHold>;

impl RateNote {
    fn tighten(&mut self, requests: Option<Standing>, tokens: Option<Standing>) {
        for (slot, s) in [
            (&mut self.tightest, requests),
            (&mut self.tightest_tokens, tokens),
        ] {
            if let Some(s) = s {
                if slot.is_none_or(|t| s.remaining < t.remaining) {
                    *slot = Some(s);
                }
            }
        }
    }

    /// The `x-ratelimit-*` headers of the tightest request and token limits.
    pub fn write_headers(&self, h: &mut HeaderMap) {
        use http::HeaderName as N;
        static REQUESTS: [N; 3] = [
            N::from_static("x-ratelimit-limit-requests"),
            N::from_static("x-ratelimit-remaining-requests"),
            N::from_static("x-ratelimit-reset-requests"),
        ];
        static TOKENS: [N; 3] = [
            N::from_static("x-ratelimit-limit-tokens"),
            N::from_static("x-ratelimit-remaining-tokens"),
            N::from_static("x-ratelimit-reset-tokens"),
        ];
        if let Some(s) = &self.tightest {
            s.write_headers(h, &REQUESTS, 0);
        }
        if let Some(s) = &self.tightest_tokens {
            s.write_headers(h, &TOKENS, 1);
        }
    }
}

/// The last limit, remaining and reset header values this thread wrote,
/// for the request headers (slot 0) and the token headers (slot 1).
/// Limits are the same from answer to answer, and remaining counts and
/// resets often are (a caller well under its limit stays at the full
/// burst); a clone of a remembered value shares its bytes, where a new
/// value costs an allocation and its formatting.
#[derive(Default)]
struct Memo {
    limit: [Option<(u32, HeaderValue)>; 2],
    remaining: [Option<(u32, HeaderValue)>; 2],
    reset: [Option<HeaderValue>; 2],
}

/// The remembered value of `n`, or a new one, remembered.
fn number(memo: &mut Option<(u32, HeaderValue)>, n: u32) -> HeaderValue {
    match memo {
        Some((m, v)) if *m == n => v.clone(),
        _ => {
            let v = HeaderValue::from(n);
            *memo = Some((n, v.clone()));
            v
        }
    }
}

thread_local! {
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::default();
}

impl Standing {
    /// The limit, remaining and reset headers under `names`; `slot`: 0
    /// for the request headers, 1 for the token headers ([`Memo`]).
    fn write_headers(&self, h: &mut HeaderMap, names: &[http::HeaderName; 3], slot: usize) {
        let mut buf = [0u8; 32];
        let reset = reset_text(self.reset, &mut buf);
        let (limit, remaining, reset) = MEMO.with_borrow_mut(|m| {
            let limit = number(&mut m.limit[slot], self.limit);
            let remaining = number(&mut m.remaining[slot], self.remaining);
            let reset = match &m.reset[slot] {
                Some(v) if v.as_bytes() == reset => Some(v.clone()),
                _ => HeaderValue::from_bytes(reset).ok().inspect(|v| {
                    m.reset[slot] = Some(v.clone());
                }),
            };
            (limit, remaining, reset)
        });
        h.insert(names[0].clone(), limit);
        h.insert(names[1].clone(), remaining);
        if let Some(v) = reset {
            h.insert(names[2].clone(), v);
        }
    }
}

/// OpenAI's duration style: `12ms`, `1s`, `6m0s`, `1h2m3s` (below a second
/// in whole milliseconds, above in whole seconds, rounded up). No heap, no
/// formatting machinery (it runs for every limited answer).
pub fn reset_text(d: Duration, buf: &mut [u8; 32]) -> &[u8] {
    let mut n = 0;
    let mut put = |v: u128, unit: &[u8], buf: &mut [u8; 32]| {
        let mut digits = [0u8; 40];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &b in digits[i..].iter().chain(unit) {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    if d < Duration::from_secs(1) {
        put(d.as_nanos().div_ceil(1_000_000), b"ms", buf);
    } else {
        let s = d.as_nanos().div_ceil(1_000_000_000);
        let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
        if h > 0 {
            put(h, b"h", buf);
        }
        if h > 0 || m > 0 {
            put(m, b"m", buf);
        }
        put(s, b"s", buf);
    }
    &buf[..n]
}
