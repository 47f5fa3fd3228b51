//! The analytics benchmark: writes N request-log records (default 10 M,
//! `SLUICE_BENCH_ROWS`) spread over 30 days through `Store::write_new_logs`
//! (the writer's own path: day tables, rollups, one transaction per batch
//! of `SLUICE_BENCH_BATCH`, default 1000)
//! and reports the insert rate; then runs the admin API's 30-day queries
//! 20 times each and reports p50 / p95 / max.
//!
//! `cargo bench -p sluice-store --bench analytics -- sqlite|postgres`
//! (both when omitted). Postgres: `SLUICE_TEST_POSTGRES_URL` (default the
//! local server); a private schema is created and dropped.

use std::time::{Duration, Instant};

use sluice_store::{Dim, Interval, LogRecord, Store, UsageQuery};
use sqlx::Connection;

const DAY: i64 = 86_400_000;
const TENANTS: usize = 50;
const APPS_PER_TENANT: usize = 4;
const KEYS_PER_APP: usize = 2;
const MODELS: &[(&str, &str)] = &[
    ("smart", "openai"),
    ("smart", "anthropic"),
    ("cheap", "vllm"),
    ("embed", "openai"),
    ("sonnet", "anthropic"),
    ("flash", "gemini"),
    ("mini", "openai"),
    ("local", "ollama"),
];

fn main() {
    let rows: usize = std::env::var("SLUICE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let batch: usize = std::env::var("SLUICE_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for backend in ["sqlite", "postgres"] {
        if which.is_empty() || which.iter().any(|w| w == backend) {
            rt.block_on(run(backend, rows, batch));
        }
    }
}

async fn run(backend: &str, rows: usize, size: usize) {
    let (url, cleanup) = database(backend).await;
    let store = Store::connect(&url).await.unwrap();
    let end = (sluice_store::ids::now_ms() / DAY) * DAY;
    let start = end - 30 * DAY;
    println!("== {backend}: {rows} records over 30 days, batches of {size}");
    let t = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut batch = Vec::with_capacity(size);
    for i in 0..rows {
        // In time order, as a writer sees them.
        let ts = start + (i as i64 * 30 * DAY) / rows as i64;
        batch.push(record(&mut rng, i, ts));
        if batch.len() == size {
            store.write_new_logs(&batch).await.unwrap();
            batch.clear();
        }
        if i > 0 && i % 1_000_000 == 0 {
            println!(
                "  {i} written, {:.0} records/s",
                i as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    store.write_new_logs(&batch).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  insert: {rows} records in {secs:.1} s = {:.0} records/s",
        rows as f64 / secs
    );
    let q = |group_by: Vec<Dim>, interval: Option<Interval>| UsageQuery {
        from: start,
        to: end,
        group_by,
        interval,
        ..UsageQuery::default()
    };
    let queries: Vec<(&str, UsageQuery)> = vec![
        ("total", q(vec![], None)),
        ("by tenant", q(vec![Dim::Tenant], None)),
        ("by model per day", q(vec![Dim::Model], Some(Interval::Day))),
        (
            "by tenant+model per day",
            q(vec![Dim::Tenant, Dim::Model], Some(Interval::Day)),
        ),
        (
            "top 10 keys by cost",
            UsageQuery {
                order_by: Some("cost_micro"),
                limit: 10,
                ..q(vec![Dim::Key], None)
            },
        ),
        (
            "one tenant by app per day",
            UsageQuery {
                tenant: Some("tenant-07".into()),
                ..q(vec![Dim::App], Some(Interval::Day))
            },
        ),
        (
            "by model per hour",
            q(vec![Dim::Model], Some(Interval::Hour)),
        ),
        ("by key per day", q(vec![Dim::Key], Some(Interval::Day))),
        (
            "one tenant by key",
            UsageQuery {
                tenant: Some("tenant-03".into()),
                ..q(vec![Dim::Key], None)
            },
        ),
    ];
    for (name, query) in &queries {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..20 {
            let t = Instant::now();
            n = store.usage(query).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "  {name:<28} {n:>6} rows  p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
            ms(times[9]),
            ms(times[18]),
            ms(times[19])
        );
    }
    store.close().await;
    cleanup.await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn record(rng: &mut fastrand::Rng, i: usize, ts: i64) -> LogRecord {
    // Skewed: a few tenants send most traffic.
    let tenant = (rng.f64().powi(3) * TENANTS as f64) as usize;
    let app = rng.usize(..APPS_PER_TENANT);
    let key = rng.usize(..KEYS_PER_APP);
    let (model, provider) = MODELS[rng.usize(..MODELS.len())];
    let (tin, tout) = (rng.i64(10..4000), rng.i64(1..800));
    let failed = rng.u32(..100) < 2;
    LogRecord {
        id: format!("log_{i:012}"),
        ts,
        request_id: format!("req_{i}"),
        tenant: Some(format!("tenant-{tenant:02}")),
        app: Some(format!("app_{tenant:02}_{app}")),
        key_id: Some(format!("key_{tenant:02}_{app}_{key}")),
        key_name: Some(format!("key-{key}")),
        end_user: Some(format!("user-{}", rng.u32(..100_000))),
        client_ip: Some("10.1.2.3".into()),
        endpoint: "chat".into(),
        format: "openai".into(),
        model_requested: Some(model.into()),
        model: Some(model.into()),
        provider: Some(provider.into()),
        deployment: Some(format!("{model}-upstream")),
        stream: rng.bool(),
        status: if failed { 502 } else { 200 },
        error: failed.then(|| "upstream_error".into()),
        latency_us: rng.i64(50_000..3_000_000),
        upstream_us: rng.i64(40_000..2_900_000),
        ttft_us: Some(rng.i64(20_000..500_000)),
        tokens_in: tin,
        tokens_out: tout,
        cost_micro: Some(tin * 3 + tout * 15),
        attempts: 1,
        ..LogRecord::default()
    }
}

/// The URL to use and a clean-up to await at the end.
async fn database(
    backend: &str,
) -> (
    String,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
) {
    let tag = format!("{:08x}", fastrand::u32(..));
    if backend == "sqlite" {
        let file = std::env::temp_dir().join(format!("sluice-analytics-{tag}.db"));
        let url = format!("sqlite://{}", file.display());
        let cleanup = Box::pin(async move {
            for s in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{s}", file.display()));
            }
        });
        return (url, cleanup);
    }
    let base = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{tag}");
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let cleanup = Box::pin(async move {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await;
    });
    (url, cleanup)
}
