//! Token limits with a mock clock: reservation at admission, settlement to
//! the real usage (refunds and excess), requests larger than the quota, the
//! token headers, and the GCRA bound on settled usage as a property.

use std::time::Duration;

use governor::clock::FakeRelativeClock;
use proptest::prelude::*;

use super::*;
use crate::policy::{Decision, ROLLOUT_BUCKETS};

fn tokens_per_minute(n: u32) -> RateRule {
    let spec = RateSpec {
        counts: [0; 4],
        burst: None,
        tokens: [0, n, 0, 0],
    };
    RateRule {
        key: RuleKey::new(ScopeKind::Key, "k".into(), spec, None, false),
        label: "key `ci`".into(),
        policy: None,
        shadow: false,
        buckets: (0, ROLLOUT_BUCKETS),
        counters: Default::default(),
    }
}

fn rates() -> (LocalRates<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (LocalRates::with_clock(clock.clone()), clock)
}

fn ask(r: &LocalRates<FakeRelativeClock>, rules: &[RateRule], tokens: u32) -> Decision<RateNote> {
    let who = Who {
        tokens,
        ..Who::default()
    };
    r.acquire([rules, &[]], &who)
}

#[test]
fn a_reservation_holds_tokens_until_it_settles() {
    let (r, _clock) = rates();
    let rules = [tokens_per_minute(1000)];
    let first = ask(&r, &rules, 600);
    assert!(first.refusal.is_none());
    assert_eq!(first.note.holds.len(), 1);
    let s = first.note.tightest_tokens.unwrap();
    assert_eq!((s.limit, s.remaining), (1000, 400));
    let second = ask(&r, &rules, 600);
    let e = second.refusal.expect("600 + 600 > 1000");
    assert!(
        e.message
            .contains("token rate limit of key `ci`: 1000 tokens per minute")
            && e.message.contains("reserves about 600 tokens"),
        "{}",
        e.message
    );
    assert_eq!(second.note.tightest_tokens.map(|s| s.remaining), Some(0));
    assert!(second.note.holds.is_empty());
    // The first answer used 100 tokens: 500 come back at once.
    r.settle([&rules, &[]], &first.note.holds, 100);
    assert!(ask(&r, &rules, 600).refusal.is_none());
    assert!(
        ask(&r, &rules, 400).refusal.is_some(),
        "100 + 600 + 400 > 1000"
    );
}

#[test]
fn usage_beyond_the_reservation_is_charged() {
    let (r, clock) = rates();
    let rules = [tokens_per_minute(1000)];
    let d = ask(&r, &rules, 100);
    r.settle([&rules, &[]], &d.note.holds, 900);
    assert!(ask(&r, &rules, 200).refusal.is_some(), "900 used, 200 more");
    assert!(ask(&r, &rules, 100).refusal.is_none());
    // Tokens come back at the steady rate: 1000 a minute.
    clock.advance(Duration::from_secs(12));
    assert!(ask(&r, &rules, 200).refusal.is_none());
}

#[test]
fn a_failed_request_gives_its_whole_reservation_back() {
    let (r, _clock) = rates();
    let rules = [tokens_per_minute(1000)];
    let d = ask(&r, &rules, 1000);
    assert!(ask(&r, &rules, 1).refusal.is_some());
    r.settle([&rules, &[]], &d.note.holds, 0);
    assert!(ask(&r, &rules, 1000).refusal.is_none());
}

#[test]
fn a_request_larger_than_the_quota_is_refused_for_good() {
    let (r, _clock) = rates();
    let rules = [tokens_per_minute(1000)];
    let e = ask(&r, &rules, 1500).refusal.unwrap();
    assert!(
        e.message.contains("needs about 1500 tokens")
            && e.message.contains("allows at all: 1000 tokens per minute"),
        "{}",
        e.message
    );
    // Nothing was counted.
    assert!(ask(&r, &rules, 1000).refusal.is_none());
}

#[test]
fn requests_without_a_token_count_skip_token_gates() {
    let (r, _clock) = rates();
    let mut rule = tokens_per_minute(10);
    rule.key.spec.counts = [0, 100, 0, 0];
    let rules = [rule];
    for _ in 0..50 {
        let d = ask(&r, &rules, 0);
        assert!(d.refusal.is_none());
        assert!(d.note.holds.is_empty() && d.note.tightest_tokens.is_none());
    }
}

#[test]
fn a_later_refusal_gives_back_the_tokens_of_earlier_rules() {
    let (r, _clock) = rates();
    let tokens = tokens_per_minute(1000);
    let spec = RateSpec {
        counts: [1, 0, 0, 0],
        burst: None,
        tokens: [0; 4],
    };
    let requests = RateRule {
        key: RuleKey::new(ScopeKind::Model, "m".into(), spec, None, false),
        label: "model `m`".into(),
        policy: None,
        shadow: false,
        buckets: (0, ROLLOUT_BUCKETS),
        counters: Default::default(),
    };
    let rules = [tokens, requests];
    assert!(ask(&r, &rules, 400).refusal.is_none());
    for _ in 0..5 {
        assert!(ask(&r, &rules, 400).refusal.is_some(), "1 request a second");
    }
    // Only the admitted request's 400 tokens are held.
    assert_eq!(
        ask(&r, &rules[..1], 600)
            .note
            .tightest_tokens
            .map(|s| s.remaining),
        Some(0)
    );
}

#[test]
fn the_token_headers_follow_openai() {
    let (r, _clock) = rates();
    let d = ask(&r, &[tokens_per_minute(1000)], 250);
    let mut h = http::HeaderMap::new();
    d.note.write_headers(&mut h);
    assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
    assert_eq!(h["x-ratelimit-remaining-tokens"], "750");
    assert_eq!(h["x-ratelimit-reset-tokens"], "15s");
    assert!(h.get("x-ratelimit-limit-requests").is_none());
    // This thread remembers the values it wrote: an answer with other
    // figures gets its own, and the first figures come back right.
    for (reserve, remaining, reset) in [(100, "900", "6s"), (250, "750", "15s")] {
        let (r, _clock) = rates();
        let d = ask(&r, &[tokens_per_minute(1000)], reserve);
        let mut h = http::HeaderMap::new();
        d.note.write_headers(&mut h);
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
        assert_eq!(h["x-ratelimit-remaining-tokens"], remaining);
        assert_eq!(h["x-ratelimit-reset-tokens"], reset);
    }
}

proptest! {
    /// Settled at once with real usage up to the reservation, the tokens
    /// used by the requests admitted within any window of length t never
    /// exceed `quota + rate·t`.
    #[test]
    fn settled_usage_never_exceeds_quota_plus_rate_times_t(
        quota in 100u32..5000,
        ops in prop::collection::vec((0u64..20_000, 1u32..2000, 0u32..=100), 1..120),
    ) {
        let (r, clock) = rates();
        let rules = [tokens_per_minute(quota)];
        let (mut now, mut used) = (0u64, Vec::new());
        for (gap_ms, reserve, pct) in ops {
            clock.advance(Duration::from_millis(gap_ms));
            now += gap_ms;
            let d = ask(&r, &rules, reserve);
            if d.refusal.is_none() {
                let actual = u64::from(reserve) * u64::from(pct) / 100;
                r.settle([&rules, &[]], &d.note.holds, actual);
                used.push((now, actual));
            }
        }
        for i in 0..used.len() {
            let mut sum = 0u128;
            for j in i..used.len() {
                sum += u128::from(used[j].1);
                let t_ms = u128::from(used[j].0 - used[i].0);
                // quota + quota · t / 60 s, in thousandths of a token.
                let bound = u128::from(quota) * 60_000 + u128::from(quota) * t_ms;
                prop_assert!(sum * 60_000 <= bound, "{sum} tokens in {t_ms} ms, quota {quota}");
            }
        }
    }
}
