//! Key lookup on the hot path (`pipeline::find_key`): SHA-256 of the
//! presented secret, then the config's static keys, then the store-managed
//! directory — here holding 100,000 keys. Criterion measures the mean; a
//! second pass times 1,000,000 single lookups and prints p50/p99/p99.9,
//! the figure the issue bounds (p99 ≤ 20 µs for a cached key).
//!
//! Run: `cargo bench -p sluice --bench key_lookup`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::directory::Directory;
use sluice::pipeline::find_key;
use sluice::snapshot::Snapshot;
use sluice_store as st;

const KEYS: usize = 100_000;

fn fixture() -> (Snapshot, Directory) {
    let yaml = "providers: { p: { kind: mock } }\nmodels: { m: { deployments: [ { provider: p, model: m } ] } }\npolicies: { small: { limits: { max_output_tokens: 50 } } }\nkeys: [ { name: static, key: sk-static-0001 } ]\n";
    let cfg =
        sluice::config::load_str(yaml, std::path::Path::new("bench.yaml"), &|_| None).unwrap();
    let snap = Snapshot::build(&cfg, 1).unwrap();
    let tenant = st::Tenant {
        id: "ten_1".into(),
        name: "acme".into(),
        tier: None,
        policy: Some(serde_json::json!("small")),
        source: st::Source::Store,
        created_at: 0,
        updated_at: 0,
    };
    let app = st::App {
        id: "app_1".into(),
        tenant_id: "ten_1".into(),
        name: "web".into(),
        owner_user_id: None,
        policy: None,
        created_at: 0,
        updated_at: 0,
    };
    let keys = (0..KEYS)
        .map(|i| st::ApiKey {
            id: format!("key_{i}"),
            app_id: "app_1".into(),
            tenant_id: "ten_1".into(),
            name: format!("k{i}"),
            prefix: "sk-sluice-xxxx".into(),
            hash: hex::encode(sluice::snapshot::hash_secret(&secret(i))),
            scopes: st::Scopes::default(),
            policy: None,
            expires_at: None,
            revoked_at: None,
            rotated_from: None,
            created_by: "usr_1".into(),
            created_at: 0,
        })
        .collect();
    let rows = st::Directory {
        revision: 1,
        tenants: vec![tenant],
        apps: vec![app],
        keys,
        ..Default::default()
    };
    (snap, Directory::build(Arc::new(rows), &cfg))
}

fn secret(i: usize) -> String {
    format!("sk-sluice-bench{i:032}")
}

fn lookups(c: &mut Criterion) {
    let (snap, dir) = fixture();
    let hit = secret(KEYS / 2);
    assert!(find_key(&snap, &dir, &hit).is_some());
    c.bench_function("find_key/store key (100k cached)", |b| {
        b.iter(|| find_key(&snap, &dir, black_box(&hit)))
    });
    c.bench_function("find_key/static key", |b| {
        b.iter(|| find_key(&snap, &dir, black_box("sk-static-0001")))
    });
    c.bench_function("find_key/unknown key", |b| {
        b.iter(|| find_key(&snap, &dir, black_box("sk-sluice-nope")))
    });
    percentiles(&snap, &dir);
}

/// Times single lookups of random cached keys and prints percentiles.
fn percentiles(snap: &Snapshot, dir: &Directory) {
    let secrets: Vec<String> = (0..1000).map(|_| secret(fastrand::usize(..KEYS))).collect();
    let mut ns: Vec<u64> = Vec::with_capacity(1_000_000);
    for i in 0..1_000_000 {
        let s = &secrets[i % secrets.len()];
        let t = Instant::now();
        black_box(find_key(snap, dir, black_box(s)));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    println!(
        "find_key single lookups (1,000,000, {KEYS} keys cached): p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        p(0.5),
        p(0.99),
        p(0.999),
        p(1.0)
    );
}

criterion_group!(benches, lookups);
criterion_main!(benches);
