//! Rate limits with a mock clock: the GCRA bound and the "a refused request
//! counts nowhere" rule as properties (proptest), shadow and rollout, the
//! partitions, pruning of a million idle users, and the wording of a 429.

use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use proptest::prelude::*;

use super::gcra::Gate;
use super::*;
use crate::policy::{Decision, ROLLOUT_BUCKETS};

const SECOND: u64 = 1_000_000_000;

fn spec(counts: [u32; 4], burst: Option<u32>) -> RateSpec {
    RateSpec {
        counts,
        burst,
        tokens: [0; 4],
    }
}

fn rule(kind: ScopeKind, id: &str, spec: RateSpec, per: Option<RatePer>) -> RateRule {
    RateRule {
        key: RuleKey::new(kind, id.into(), spec, per, false),
        label: format!("{} `{id}`", kind.as_str()).into(),
        policy: Some("standard".into()),
        shadow: false,
        buckets: (0, ROLLOUT_BUCKETS),
        counters: Default::default(),
    }
}

fn shadowed(mut r: RateRule) -> RateRule {
    r.key = RuleKey::new(r.key.kind, r.key.scope.clone(), r.key.spec, r.key.per, true);
    r.shadow = true;
    r
}

fn per_second(n: u32, burst: u32) -> RateSpec {
    spec([n, 0, 0, 0], Some(burst))
}

fn rates() -> (LocalRates<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (LocalRates::with_clock(clock.clone()), clock)
}

fn admitted(d: &Decision<RateNote>) -> bool {
    d.refusal.is_none()
}

fn go(r: &LocalRates<FakeRelativeClock>, rules: &[RateRule]) -> Decision<RateNote> {
    r.acquire([rules, &[]], &Who::default())
}

#[test]
fn burst_applies_to_the_shortest_interval_and_periods_round_up() {
    let s = spec([0, 600, 10_000, 0], Some(50));
    let g: Vec<GateSpec> = s.gates().collect();
    assert_eq!(
        g,
        [
            GateSpec {
                interval: 1,
                count: 600,
                burst: 50,
                tokens: false,
            },
            GateSpec {
                interval: 2,
                count: 10_000,
                burst: 10_000,
                tokens: false,
            },
        ]
    );
    let third = GateSpec {
        interval: 0,
        count: 3,
        burst: 3,
        tokens: false,
    };
    assert_eq!(third.period(), Duration::from_nanos(333_333_334));
    assert_eq!(
        spec([0, 60, 0, 0], None).gates().next().map(|g| g.burst),
        Some(60)
    );
}

#[test]
fn reset_reads_like_openai() {
    let text = |d: Duration| {
        let mut buf = [0u8; 32];
        String::from_utf8(reset_text(d, &mut buf).to_vec()).unwrap()
    };
    assert_eq!(text(Duration::ZERO), "0ms");
    assert_eq!(text(Duration::from_micros(11_200)), "12ms");
    assert_eq!(text(Duration::from_millis(1000)), "1s");
    assert_eq!(text(Duration::from_millis(1001)), "2s");
    assert_eq!(text(Duration::from_secs(360)), "6m0s");
    assert_eq!(text(Duration::from_secs(86_400)), "24h0m0s");
    assert_eq!(text(Duration::from_secs(3723)), "1h2m3s");
    assert_eq!(text(Duration::from_secs(59)), "59s");
}

#[test]
fn a_gate_admits_the_burst_then_the_rate() {
    let clock = FakeRelativeClock::default();
    let gate: Gate<One, _> =
        Gate::new(Duration::from_secs(1), 3.try_into().unwrap(), clock.clone());
    let remaining: Vec<u32> = (0..3).map(|_| gate.check(0).unwrap().remaining).collect();
    assert_eq!(remaining, [2, 1, 0]);
    let refused = gate.check(0).unwrap_err();
    assert_eq!(refused.wait, Duration::from_secs(1));
    assert_eq!(refused.reset, Duration::from_secs(3));
    clock.advance(Duration::from_secs(1));
    let p = gate.check(0).unwrap();
    assert_eq!((p.remaining, p.reset), (0, Duration::from_secs(3)));
}

#[test]
fn a_refusal_by_a_later_rule_counts_nowhere() {
    let (r, _clock) = rates();
    let roomy = rule(ScopeKind::Global, "", per_second(10, 10), None);
    let tight = rule(ScopeKind::Key, "k", per_second(1, 1), None);
    let both = [roomy.clone(), tight];
    assert!(admitted(&go(&r, &both)));
    for _ in 0..20 {
        let d = go(&r, &both);
        assert!(!admitted(&d));
        assert_eq!(d.note.limited.as_ref().map(|h| &*h.label), Some("key `k`"));
    }
    // The roomy rule counted only the one admitted request.
    let d = go(&r, std::slice::from_ref(&roomy));
    assert_eq!(d.note.tightest.map(|s| s.remaining), Some(8));
}

#[test]
fn the_tightest_enforced_limit_goes_in_the_headers() {
    let (r, _clock) = rates();
    let rules = [
        rule(ScopeKind::Global, "", spec([100, 0, 0, 0], None), None),
        rule(ScopeKind::Tenant, "t", spec([0, 5, 0, 0], None), None),
    ];
    let s = go(&r, &rules).note.tightest.unwrap();
    assert_eq!((s.limit, s.remaining), (5, 4));
    assert_eq!(s.reset, Duration::from_secs(12));
}

#[test]
fn shadow_rules_record_and_never_refuse() {
    let (r, _clock) = rates();
    let rules = [shadowed(rule(ScopeKind::Key, "k", per_second(1, 1), None))];
    let first = go(&r, &rules);
    assert!(admitted(&first) && first.note.would_block.is_none());
    assert!(
        first.note.tightest.is_none(),
        "shadow limits are not advertised"
    );
    let second = go(&r, &rules);
    assert!(admitted(&second));
    assert_eq!(
        second.note.would_block.map(|h| h.label),
        Some("key `k`".into())
    );
}

#[test]
fn rollout_picks_callers_by_bucket() {
    let (r, _clock) = rates();
    let mut half = rule(ScopeKind::Key, "k", per_second(1, 1), None);
    half.buckets = (0, ROLLOUT_BUCKETS / 2);
    let rules = [half];
    let run = |bucket| {
        let who = Who {
            bucket,
            ..Who::default()
        };
        (0..3)
            .filter(|_| admitted(&r.acquire([&rules, &[]], &who)))
            .count()
    };
    assert_eq!(
        run(ROLLOUT_BUCKETS - 1),
        3,
        "outside the rollout: unlimited"
    );
    assert_eq!(run(0), 1, "inside: limited");
}

#[test]
fn partitions_count_apart_and_anonymous_callers_share_one() {
    let (r, _clock) = rates();
    let rules = [rule(
        ScopeKind::Key,
        "k",
        per_second(1, 1),
        Some(RatePer::User),
    )];
    let user = |u: Option<&'static str>| {
        let who = Who {
            user: u,
            ..Who::default()
        };
        admitted(&r.acquire([&rules, &[]], &who))
    };
    assert!(user(Some("alice")) && user(Some("bob")) && user(None));
    assert!(!user(Some("alice")) && !user(None));
    let ips = [rule(
        ScopeKind::Global,
        "",
        per_second(1, 1),
        Some(RatePer::Ip),
    )];
    let ip = |a: [u8; 4]| {
        let who = Who {
            ip: Some(a.into()),
            ..Who::default()
        };
        admitted(&r.acquire([&ips, &[]], &who))
    };
    assert!(ip([10, 0, 0, 1]) && ip([10, 0, 0, 2]) && !ip([10, 0, 0, 1]));
}

#[test]
fn refusals_name_the_limit_and_when_to_retry() {
    let (r, _clock) = rates();
    let rules = [rule(
        ScopeKind::Key,
        "ci",
        spec([0, 600, 0, 0], Some(2)),
        Some(RatePer::User),
    )];
    let who = Who {
        user: Some("secret-user"),
        ..Who::default()
    };
    let mut d = r.acquire([&rules, &[]], &who);
    for _ in 0..2 {
        d = r.acquire([&rules, &[]], &who);
    }
    let e = d.refusal.unwrap();
    assert_eq!(
        e.message,
        "rate limit of key `ci` (policy `standard`) per end user: 600 requests per minute, at most 2 at once; retry in 1 s"
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let s = d.note.tightest.unwrap();
    assert_eq!((s.limit, s.remaining), (600, 0));
    let global = [rule(ScopeKind::Global, "", spec([1, 0, 0, 0], None), None)];
    go(&r, &global);
    let e = go(&r, &global).refusal.unwrap();
    assert!(
        e.message
            .starts_with("the gateway-wide rate limit (policy `standard`): 1 request per second"),
        "{}",
        e.message
    );
}

#[test]
fn a_million_idle_users_are_pruned_and_their_memory_released() {
    let clock = FakeRelativeClock::default();
    let gate: Gate<Many, _> =
        Gate::new(Duration::from_secs(1), 5.try_into().unwrap(), clock.clone());
    for user in 1..=1_000_000u64 {
        assert!(gate.check(user).is_ok());
    }
    assert_eq!(gate.len(), 1_000_000);
    assert!(gate.cells().capacity() >= 1_000_000);
    clock.advance(Duration::from_millis(500));
    for user in 1..=10u64 {
        assert!(gate.check(user).is_ok());
    }
    // Idle = full for a whole period: the million at 2 s, the ten at 3 s.
    clock.advance(Duration::from_millis(2000));
    assert!(!gate.prune(), "ten users are still active");
    assert_eq!(gate.len(), 10);
    assert!(
        gate.cells().capacity() < 10_000,
        "{}",
        gate.cells().capacity()
    );
    clock.advance(Duration::from_secs(2));
    assert!(gate.prune());
    assert_eq!(gate.len(), 0);
}

#[test]
fn the_registry_drops_idle_rules_and_keeps_busy_ones() {
    let (r, clock) = rates();
    let users = rule(
        ScopeKind::Global,
        "",
        spec([0, 60, 0, 0], None),
        Some(RatePer::User),
    );
    let key = rule(ScopeKind::Key, "k", spec([0, 6000, 0, 0], None), None);
    let rules = [users.clone(), key];
    for i in 0..1000 {
        let name = format!("user-{i}");
        let who = Who {
            user: Some(&name),
            ..Who::default()
        };
        assert!(admitted(&r.acquire([&rules, &[]], &who)));
    }
    assert_eq!(r.partitions(&users.key).map(|p| p.0), Some(1000));
    r.prune();
    assert_eq!(r.len(), 2, "nothing is idle yet");
    clock.advance(Duration::from_secs(61));
    r.prune();
    // Rules still in use keep their counters (their handles hold them),
    // but idle cells are forgotten: the users' and the key's own.
    assert_eq!(r.len(), 2, "the rules are still in use");
    assert_eq!(r.partitions(&users.key).map(|p| p.0), Some(0));
    // A forgotten counter starts as new: full capacity.
    let s = go(&r, &rules[1..]).note.tightest.unwrap();
    assert_eq!(s.remaining, 5999);
    // Rules no longer in use (a reload dropped them) are forgotten once idle.
    drop((rules, users));
    clock.advance(Duration::from_secs(61));
    r.prune();
    assert!(r.is_empty(), "idle rules nobody uses are forgotten");
}

#[test]
fn a_rule_counts_through_its_handle_into_the_registry_entry() {
    let (r, _clock) = rates();
    let key = rule(ScopeKind::Key, "k", per_second(10, 10), None);
    // A second rule equal to the first (another key's view of a shared
    // level, or the same rule after a reload) shares its counters.
    let twin = rule(ScopeKind::Key, "k", per_second(10, 10), None);
    for _ in 0..4 {
        assert!(admitted(&go(&r, std::slice::from_ref(&key))));
    }
    let s = go(&r, std::slice::from_ref(&twin)).note.tightest.unwrap();
    assert_eq!(s.remaining, 5, "one counter for both rules");
    // Pruning while both are held keeps that one counter.
    r.prune();
    assert_eq!(r.len(), 1);
    let s = go(&r, std::slice::from_ref(&key)).note.tightest.unwrap();
    assert_eq!(s.remaining, 4);
    // A rule used with another registry counts there, not here.
    let (other, _clock) = rates();
    let s = go(&other, std::slice::from_ref(&key))
        .note
        .tightest
        .unwrap();
    assert_eq!(s.remaining, 9);
    let s = go(&r, std::slice::from_ref(&twin)).note.tightest.unwrap();
    assert_eq!(s.remaining, 3);
}

#[test]
fn concurrent_requests_never_exceed_the_tightest_burst() {
    let (r, _clock) = rates();
    let r = Arc::new(r);
    let rules: Arc<[RateRule]> = Arc::from(vec![
        rule(ScopeKind::Global, "", per_second(50, 50), None),
        rule(ScopeKind::Tenant, "t", per_second(30, 30), None),
        rule(ScopeKind::Key, "k", per_second(40, 40), None),
    ]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (r, rules) = (r.clone(), rules.clone());
            std::thread::spawn(move || (0..500).filter(|_| admitted(&go(&r, &rules))).count())
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        (1..=30).contains(&total),
        "{total} admitted, the tightest burst is 30"
    );
}

/// One arrival: the time since the previous one, in thousandths of the
/// tightest period.
fn arrivals() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(prop_oneof![3 => Just(0u32), 7 => 0u32..3000], 1..250)
}

/// Admitted requests within a window never exceed `burst + rate·t`.
fn check_bound(times: &[u64], g: GateSpec) -> Result<(), TestCaseError> {
    let interval = u128::from(INTERVALS[g.interval].0 * SECOND);
    for i in 0..times.len() {
        for j in i..times.len() {
            let n = (j - i + 1) as u128;
            let t = u128::from(times[j] - times[i]);
            prop_assert!(
                n * interval <= u128::from(g.burst) * interval + u128::from(g.count) * t,
                "{n} admitted in {t} ns under {g:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn gcra_never_admits_more_than_burst_plus_rate_times_t(
        count in 1u32..100,
        interval in 0usize..4,
        burst in 1u32..30,
        gaps in arrivals(),
    ) {
        let g = GateSpec {
            interval,
            count,
            burst,
            tokens: false,
        };
        let clock = FakeRelativeClock::default();
        let gate: Gate<One, _> = Gate::new(g.period(), burst.try_into().unwrap(), clock.clone());
        let step = g.period().as_nanos() as u64 / 1000;
        let (mut now, mut times) = (0u64, Vec::new());
        for gap in gaps {
            clock.advance(Duration::from_nanos(step * u64::from(gap)));
            now += step * u64::from(gap);
            if gate.check(0).is_ok() {
                times.push(now);
            }
        }
        prop_assert!(!times.is_empty());
        check_bound(&times, g)?;
    }

    #[test]
    fn a_refused_request_consumes_no_rules_capacity(
        specs in prop::collection::vec((1u32..20, 0usize..2, 1u32..8, any::<bool>()), 2..4),
        gaps in arrivals(),
    ) {
        let (r, clock) = rates();
        let rules: Vec<RateRule> = specs.iter().enumerate().map(|(i, (n, iv, b, shadow))| {
            let mut counts = [0; 4];
            counts[*iv] = *n;
            let rr = rule(ScopeKind::Key, &format!("k{i}"), spec(counts, Some(*b)), None);
            if *shadow { shadowed(rr) } else { rr }
        }).collect();
        let mut model = Model::new(&rules);
        let step = model.shortest() / 1000;
        let mut now = 0;
        for gap in gaps {
            clock.advance(Duration::from_nanos(step * u64::from(gap)));
            now += step * u64::from(gap);
            let got = admitted(&go(&r, &rules));
            prop_assert_eq!(got, model.admit(now), "at {} ns", now);
        }
        for (i, times) in model.admitted.iter().enumerate() {
            let g = rules[i].key.spec.gates().next().unwrap();
            check_bound(times, g)?;
        }
    }
}

/// The reference: every rule's GCRA state, updated only when the request
/// is admitted by all enforced rules (and, for a shadow rule, by itself).
struct Model {
    rules: Vec<(u64, u64, bool)>,
    tat: Vec<Option<u64>>,
    admitted: Vec<Vec<u64>>,
}

impl Model {
    fn new(rules: &[RateRule]) -> Model {
        let rules: Vec<_> = rules
            .iter()
            .map(|r| {
                let g = r.key.spec.gates().next().unwrap();
                let t = g.period().as_nanos() as u64;
                (t, t * u64::from(g.burst - 1), r.shadow)
            })
            .collect();
        let n = rules.len();
        Model {
            rules,
            tat: vec![None; n],
            admitted: vec![Vec::new(); n],
        }
    }

    fn shortest(&self) -> u64 {
        self.rules.iter().map(|r| r.0).min().unwrap_or(SECOND)
    }

    fn admit(&mut self, now: u64) -> bool {
        let allows: Vec<bool> = self
            .rules
            .iter()
            .zip(&self.tat)
            .map(|((_, tau, _), tat)| tat.is_none_or(|tat| now + tau >= tat))
            .collect();
        let ok = self
            .rules
            .iter()
            .zip(&allows)
            .all(|((_, _, shadow), a)| *a || *shadow);
        if ok {
            for (i, (t, _, _)) in self.rules.iter().enumerate() {
                if allows[i] {
                    self.tat[i] = Some(self.tat[i].unwrap_or(now).max(now) + t);
                    self.admitted[i].push(now);
                }
            }
        }
        ok
    }
}
