//! The rate-limit stage on the hot path: one request's evaluation against
//! three rules (global, tenant, key — each one shared GCRA counter), as
//! `RequestCtx::limit_rate` runs it, plus the `x-ratelimit-*` headers it
//! adds to the answer. Limits are high enough never to refuse, so every
//! iteration takes the admitting path (three counter updates). Also: the
//! same with a `per: user` rule over 100,000 users, and a refusal (undo of
//! two rules and the 429 message). A second pass times 1,000,000 single
//! evaluations and prints p50/p99/p99.9 (bar: ≤ 5 µs for the whole policy
//! evaluation).
//!
//! The full evaluation (`policy/full`): three rate rules of which the key's
//! also limits tokens (a reservation of 1,100 tokens), a tenant budget and
//! a model budget (reserve the maximum cost, then settle both at the end),
//! and the token settlement — what one request costs in `limit_rate`,
//! `charge_budgets` and completion, without the prompt count (tiktoken:
//! about 20 µs per KiB of prompt, measured separately by `policy/count`).
//!
//! Run: `cargo bench -p sluice --bench policy`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use sluice::policy::rate::{LocalRates, RateStore, Who};
use sluice::snapshot::{hash_secret, KeyInfo, Snapshot};

const YAML: &str = "providers: { p: { kind: mock } }\nmodels: { m: { price: { input: 3, output: 15 }, policy: { budget: { usd_per_day: 1000000000 } }, deployments: [ { provider: p, model: m } ] } }\nglobal_policy: { rate_limit: { requests_per_second: 4000000000 } }\ntenants: { acme: { policy: { rate_limit: { requests_per_second: 4000000000 } } }, rich: { policy: { rate_limit: { requests_per_second: 4000000000 }, budget: { usd_per_month: 1000000000 } } } }\nkeys:\n  - { name: three, key: sk-bench-three-1, tenant: acme, policy: { rate_limit: { requests_per_second: 4000000000 } } }\n  - { name: users, key: sk-bench-users-1, tenant: acme, policy: { rate_limit: { requests_per_second: 4000000000, per: user } } }\n  - { name: tight, key: sk-bench-tight-1, tenant: acme, policy: { rate_limit: { requests_per_day: 1 } } }\n  - { name: full, key: sk-bench-full-1, tenant: rich, policy: { rate_limit: { requests_per_second: 4000000000, tokens_per_minute: 4000000000 } } }\n";

fn snapshot() -> Snapshot {
    let cfg = sluice::config::load_str(YAML, std::path::Path::new("bench.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    Snapshot::build(&cfg, 1).unwrap()
}

/// One request's whole rate evaluation: acquire, then the headers.
fn evaluate(rates: &LocalRates, key: &KeyInfo, who: &Who<'_>, headers: &mut HeaderMap) -> bool {
    let d = rates.acquire([&key.rates, &[]], who);
    d.note.write_headers(headers);
    d.refusal.is_none()
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let key = |s: &str| snap.keys[&hash_secret(s)].clone();
    let (three, users, tight) = (
        key("sk-bench-three-1"),
        key("sk-bench-users-1"),
        key("sk-bench-tight-1"),
    );
    assert_eq!(three.rates.len(), 3);
    let rates = LocalRates::default();
    let who = Who::default();
    let mut headers = HeaderMap::new();
    assert!(evaluate(&rates, &three, &who, &mut headers));
    c.bench_function("rate/3 rules (global, tenant, key)", |b| {
        b.iter(|| evaluate(&rates, black_box(&three), &who, &mut headers))
    });
    let names: Vec<String> = (0..100_000).map(|i| format!("user-{i}")).collect();
    let mut i = 0;
    c.bench_function("rate/3 rules, key per user (100k users)", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            let who = Who {
                user: Some(&names[i]),
                ..Who::default()
            };
            evaluate(&rates, black_box(&users), &who, &mut headers)
        })
    });
    assert!(evaluate(&rates, &tight, &who, &mut headers));
    c.bench_function("rate/refused by the key (undo 2 rules, 429 message)", |b| {
        b.iter(|| evaluate(&rates, black_box(&tight), &who, &mut headers))
    });
    percentiles(&rates, &three);
    full(c, &snap);
}

/// The whole policy evaluation of one request (see the module docs).
fn full(c: &mut Criterion, snap: &Snapshot) {
    use sluice::policy::budget::{self, LocalLedger};
    use std::sync::Arc;
    let key = snap.keys[&hash_secret("sk-bench-full-1")].clone();
    let model = snap.models["m"].clone();
    assert_eq!(
        (key.rates.len(), key.budgets.len(), model.budgets.len()),
        (3, 1, 1)
    );
    let rules = [&key.budgets[..], &model.budgets[..]];
    let price = model.price.unwrap();
    let (rates, ledger) = (LocalRates::default(), Arc::new(LocalLedger::new()));
    let who = Who {
        tokens: 1_100,
        ..Who::default()
    };
    let mut headers = HeaderMap::new();
    let now = 1_795_262_400_000;
    let usage = sluice_types::TokenUsage {
        input: 100,
        output: 250,
        ..Default::default()
    };
    let mut once = || {
        let d = rates.acquire([&key.rates, &model.rates], &who);
        d.note.write_headers(&mut headers);
        let amount = budget::max_cost_micro_usd(&price, 100, 1_000);
        let charges = match budget::admit(&ledger, rules, amount, now, false) {
            budget::Verdict::Admitted(c) => c,
            _ => unreachable!("the budgets are large"),
        };
        rates.settle([&key.rates, &model.rates], &d.note.holds, usage.total());
        black_box(budget::settle(
            charges,
            rules,
            budget::cost_micro_usd(&price, &usage),
        ));
    };
    c.bench_function(
        "policy/full (3 rate rules, token reservation, 2 budgets, settle)",
        |b| b.iter(&mut once),
    );
    let mut ns: Vec<u64> = Vec::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let t = Instant::now();
        once();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    println!(
        "full policy evaluation (1,000,000 single runs): p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs",
        p(0.5),
        p(0.99),
        p(0.999)
    );
    let prompt =
        "Hello, how are you today? I would like to know about the weather in Paris. ".repeat(14);
    c.bench_function("policy/count (1 KiB prompt, o200k_base)", |b| {
        b.iter(|| sluice::config::raw::Tokenizer::O200k.count(black_box(&prompt)))
    });
}

/// Times single evaluations and prints percentiles.
fn percentiles(rates: &LocalRates, key: &KeyInfo) {
    let who = Who::default();
    let mut headers = HeaderMap::new();
    let mut ns: Vec<u64> = Vec::with_capacity(1_000_000);
    for _ in 0..1_000_000 {
        let t = Instant::now();
        black_box(evaluate(rates, black_box(key), &who, &mut headers));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    println!(
        "rate evaluation, 3 rules (1,000,000 single runs): p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        p(0.5),
        p(0.99),
        p(0.999),
        p(1.0)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
