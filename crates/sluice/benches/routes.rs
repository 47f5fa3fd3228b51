//! Conditional routes on the hot path: picking the serving model among 100
//! rules (`routing/routes.rs`), as `RequestCtx::route_chat` does once the
//! request is parsed. Three cases: the request matches the last of 100
//! rules that all name its model (the worst case: every rule evaluated),
//! it matches none of them, and a split (sticky per key) matches first. A
//! second pass times 1,000,000 single picks of the worst case and prints
//! p50/p99 (bar: ≤ 1 µs per request for 100 rules).
//!
//! Run: `cargo bench -p sluice --bench routes`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderValue;
use sluice::routing::routes::{Request, Routes};

/// 99 rules for `smart` that a premium, short, tool-less request misses —
/// by tier, tenant, app, tag, size, tools, images, stream, in turn — then
/// one it matches.
fn yaml() -> String {
    let misses = [
        "tenant_tier: free",
        "tenant: [globex, initech]",
        "app: mobile",
        "tags: { team: ads }",
        "input_tokens_over: 50000",
        "tools: true",
        "images: true",
        "stream: true",
        "tenant_tier: [free, trial], input_tokens_under: 10",
    ];
    let mut routes = String::new();
    for i in 0..99 {
        let cond = misses[i % misses.len()];
        routes.push_str(&format!(
            "  - {{ name: r{i}, match: {{ model: smart, {cond} }}, to: cheap }}\n"
        ));
    }
    routes.push_str("  - { name: last, match: { model: smart, tenant_tier: premium, tags: { team: search } }, to: next }\n");
    routes.push_str(
        "  - { name: canary, match: { model: other }, split: { other: 90, next: 10 } }\n",
    );
    format!(
        "providers: {{ p: {{ kind: mock }} }}\nmodels:\n  smart: {{ deployments: [ {{ provider: p, model: s }} ] }}\n  cheap: {{ deployments: [ {{ provider: p, model: c }} ] }}\n  next: {{ deployments: [ {{ provider: p, model: n }} ] }}\n  other: {{ deployments: [ {{ provider: p, model: o }} ] }}\nroutes:\n{routes}"
    )
}

fn routes() -> Routes {
    let cfg = sluice::config::load_str(&yaml(), std::path::Path::new("bench.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    Routes::build(&cfg.routes)
}

fn request(tags: &[Option<HeaderValue>]) -> Request<'_> {
    Request {
        tenant: Some("acme"),
        tier: Some("premium"),
        app: Some("web"),
        tags,
        input_tokens: 120,
        tools: false,
        images: false,
        stream: false,
        key: 0x5eed,
        user: None,
    }
}

fn bench(c: &mut Criterion) {
    let r = routes();
    let search = [Some(HeaderValue::from_static("search"))];
    let other = [Some(HeaderValue::from_static("other"))];
    assert_eq!(&**r.pick("smart", &request(&search)).unwrap().1, "next");
    assert!(r.pick("smart", &request(&other)).is_none());
    let mut g = c.benchmark_group("routes");
    g.bench_function("100 rules, the last matches", |b| {
        b.iter(|| black_box(r.pick(black_box("smart"), &request(&search))))
    });
    g.bench_function("100 rules, none matches", |b| {
        b.iter(|| black_box(r.pick(black_box("smart"), &request(&other))))
    });
    g.bench_function("a sticky split", |b| {
        b.iter(|| black_box(r.pick(black_box("other"), &request(&search))))
    });
    g.finish();
    percentiles(&r, &search);
}

/// Single-pick latencies of the worst case, in ns.
fn percentiles(r: &Routes, tags: &[Option<HeaderValue>]) {
    let mut ns: Vec<u64> = (0..1_000_000)
        .map(|_| {
            let t = Instant::now();
            black_box(r.pick(black_box("smart"), &request(tags)));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    println!(
        "routes/100 rules, the last matches: p50 {} ns, p99 {} ns, p99.9 {} ns (bar: 1,000 ns)",
        at(0.5),
        at(0.99),
        at(0.999)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
