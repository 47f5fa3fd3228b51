//! The request log and its rollups: rows land in day tables and read back
//! whole; a batch written twice counts once; rollups sum exactly what was
//! inserted, by hour and by day; usage queries group, filter and order;
//! retention drops whole day tables; hostile strings stay data.

use sluice_store::request_log::day_table;
use sluice_store::rollup::{bucket_of, quantile_ms};
use sluice_store::{Backend, Dim, Interval, LogQuery, LogRecord, Store, StoreError, UsageQuery};

use crate::common::*;

both!(
    records_read_back_whole_newest_first,
    a_batch_written_twice_counts_once,
    rollups_sum_by_hour_and_day,
    usage_filters_groups_and_orders,
    retention_drops_whole_days,
    hostile_strings_are_data,
    fresh_and_replayed_batches_sum_alike,
    apps_and_keys_are_kept_by_day
);
both_db!(upgrade_from_v4_keeps_the_request_log);

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2028-02-29T00:00:00Z.
const LEAP_DAY: i64 = 1_835_395_200_000;

fn rec(n: usize, ts: i64, tenant: &str, model: &str) -> LogRecord {
    LogRecord {
        id: format!("log_{ts}_{n:06}"),
        ts,
        request_id: format!("req_{n}"),
        tenant: Some(tenant.to_owned()),
        app: Some(format!("app_{tenant}")),
        key_id: Some(format!("key_{tenant}")),
        key_name: Some("ci".into()),
        end_user: Some(format!("user{}", n % 3)),
        client_ip: Some("10.0.0.1".into()),
        endpoint: "chat".into(),
        format: "openai".into(),
        model_requested: Some(model.into()),
        model: Some(model.into()),
        provider: Some("mock".into()),
        deployment: Some(format!("{model}-v1")),
        route: None,
        stream: n.is_multiple_of(2),
        status: 200,
        error: None,
        error_source: None,
        latency_us: 40_000 + (n as i64 % 10) * 1000,
        upstream_us: 35_000,
        ttft_us: Some(20_000),
        tokens_in: 10,
        tokens_out: 20,
        cache_read: 2,
        cache_write: 1,
        reasoning: 3,
        usage_estimated: false,
        cost_micro: Some(150),
        attempts: 1,
        failed_attempts: None,
        rate_limited: None,
        would_block: Some("key `ci` requests/minute".into()),
        budget_over: None,
        downgraded_from: None,
        queue_wait_us: Some(12),
        cache_hit: false,
        request_body: None,
        response_body: Some("{\"ok\":true}".into()),
    }
}

fn all_of(from: i64, to: i64) -> LogQuery {
    LogQuery {
        from,
        to,
        limit: 1000,
        ..LogQuery::default()
    }
}

async fn records_read_back_whole_newest_first(s: Store) {
    let batch: Vec<LogRecord> = (0..30)
        .map(|n| rec(n, LEAP_DAY - DAY + n as i64 * 2 * HOUR, "acme", "smart"))
        .collect();
    assert_eq!(s.write_logs(&batch).await.unwrap(), 30);
    // Spanning three UTC days: three tables.
    let days = s.day_tables().await.unwrap();
    assert_eq!(days.len(), 3, "{days:?}");
    let got = s.logs(&all_of(0, LEAP_DAY + 10 * DAY)).await.unwrap();
    let mut want = batch.clone();
    want.reverse();
    assert_eq!(got, want);
    // Paging: strictly older than the last one seen.
    let mut q = all_of(0, LEAP_DAY + 10 * DAY);
    q.limit = 7;
    let first = s.logs(&q).await.unwrap();
    assert_eq!(first, want[..7]);
    let last = first.last().unwrap();
    q.before = Some((last.ts, last.id.clone()));
    assert_eq!(s.logs(&q).await.unwrap(), want[7..14]);
    // The range is half-open.
    let q = all_of(batch[3].ts, batch[5].ts);
    let ids: Vec<_> = s
        .logs(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [batch[4].id.clone(), batch[3].id.clone()]);
}

async fn a_batch_written_twice_counts_once(s: Store) {
    let batch: Vec<LogRecord> = (0..450)
        .map(|n| rec(n, LEAP_DAY + n as i64, "acme", "smart"))
        .collect();
    assert_eq!(s.write_logs(&batch).await.unwrap(), 450);
    // A replay of the same batch, and one overlapping it by half.
    assert_eq!(s.write_logs(&batch).await.unwrap(), 0);
    let more: Vec<LogRecord> = (225..675)
        .map(|n| rec(n, LEAP_DAY + n as i64, "acme", "smart"))
        .collect();
    assert_eq!(s.write_logs(&more).await.unwrap(), 225);
    let rows = s.logs(&all_of(LEAP_DAY, LEAP_DAY + DAY)).await.unwrap();
    assert_eq!(rows.len(), 675);
    let usage = s
        .usage(&UsageQuery {
            from: LEAP_DAY,
            to: LEAP_DAY + DAY,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].sums.requests, 675);
    assert_eq!(usage[0].sums.cost_micro, 675 * 150);
}

async fn rollups_sum_by_hour_and_day(s: Store) {
    // Day 1: 3 requests at 01:xx and 2 at 05:xx (one a 503); day 2: 4.
    let mut batch = Vec::new();
    for (n, ts) in [
        LEAP_DAY + HOUR,
        LEAP_DAY + HOUR + 10,
        LEAP_DAY + 2 * HOUR - 1,
        LEAP_DAY + 5 * HOUR,
        LEAP_DAY + 5 * HOUR + 1,
        LEAP_DAY + DAY,
        LEAP_DAY + DAY + 1,
        LEAP_DAY + DAY + 2,
        LEAP_DAY + 2 * DAY - 1,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rec(n, ts, "acme", "smart");
        // Two answers from the response cache on day 1, one on day 2.
        r.cache_hit = matches!(n, 1 | 2 | 7);
        if n == 4 {
            r.status = 503;
            r.cost_micro = None;
            r.latency_us = 2_500_000;
        }
        batch.push(r);
    }
    // Two batches, as two flushes would write them.
    s.write_logs(&batch[..4]).await.unwrap();
    s.write_logs(&batch[4..]).await.unwrap();
    let q = |interval, from, to| UsageQuery {
        from,
        to,
        interval: Some(interval),
        ..UsageQuery::default()
    };
    let hours = s
        .usage(&q(Interval::Hour, LEAP_DAY, LEAP_DAY + DAY))
        .await
        .unwrap();
    let got: Vec<_> = hours
        .iter()
        .map(|r| (r.period.unwrap(), r.sums.requests, r.sums.errors_5xx))
        .collect();
    assert_eq!(got, [(LEAP_DAY + HOUR, 3, 0), (LEAP_DAY + 5 * HOUR, 2, 1)]);
    let days = s
        .usage(&q(Interval::Day, LEAP_DAY, LEAP_DAY + 2 * DAY))
        .await
        .unwrap();
    let got: Vec<_> = days
        .iter()
        .map(|r| (r.period.unwrap(), r.sums.requests, r.sums.cost_micro))
        .collect();
    assert_eq!(got, [(LEAP_DAY, 5, 600), (LEAP_DAY + DAY, 4, 600)]);
    // Days from the hourly table (a range not on day edges) agree.
    let days_h = s
        .usage(&q(Interval::Day, LEAP_DAY + HOUR, LEAP_DAY + 2 * DAY))
        .await
        .unwrap();
    assert_eq!(days_h, days);
    let d = &days[0].sums;
    assert_eq!(
        (
            d.tokens_in,
            d.tokens_out,
            d.cache_read,
            d.cache_write,
            d.reasoning
        ),
        (50, 100, 10, 5, 15)
    );
    assert_eq!((d.cache_hits, days[1].sums.cache_hits), (2, 1));
    // The histogram: four fast requests and the slow 503.
    assert_eq!(d.latency.iter().sum::<i64>(), 5);
    assert_eq!(d.latency[bucket_of(2_500_000)], 1);
    let p50 = quantile_ms(&d.latency, 0.5).unwrap();
    assert!((30.0..=50.0).contains(&p50), "p50 {p50}");
    let p99 = quantile_ms(&d.latency, 0.99).unwrap();
    assert!((2_000.0..=3_000.0).contains(&p99), "p99 {p99}");
}

async fn usage_filters_groups_and_orders(s: Store) {
    let mut batch = Vec::new();
    for n in 0..12 {
        let tenant = ["acme", "globex", "initech"][n % 3];
        let model = ["smart", "cheap"][n % 2];
        let mut r = rec(n, LEAP_DAY + n as i64 * 1000, tenant, model);
        r.cost_micro = Some(match tenant {
            "globex" => 1000,
            "acme" => 10,
            _ => 5,
        });
        batch.push(r);
    }
    // A static key without app or tenant.
    let mut stray = rec(99, LEAP_DAY + 5, "x", "smart");
    (stray.tenant, stray.app, stray.cost_micro) = (None, None, Some(1));
    batch.push(stray);
    s.write_logs(&batch).await.unwrap();
    let base = UsageQuery {
        from: LEAP_DAY,
        to: LEAP_DAY + DAY,
        ..UsageQuery::default()
    };
    let by = s
        .usage(&UsageQuery {
            group_by: vec![Dim::Tenant, Dim::Model],
            ..base.clone()
        })
        .await
        .unwrap();
    let got: Vec<_> = by
        .iter()
        .map(|r| (r.dims.clone(), r.sums.requests))
        .collect();
    let d = |t: Option<&str>, m: &str| vec![t.map(str::to_owned), Some(m.to_owned())];
    assert_eq!(
        got,
        [
            (d(None, "smart"), 1),
            (d(Some("acme"), "cheap"), 2),
            (d(Some("acme"), "smart"), 2),
            (d(Some("globex"), "cheap"), 2),
            (d(Some("globex"), "smart"), 2),
            (d(Some("initech"), "cheap"), 2),
            (d(Some("initech"), "smart"), 2),
        ]
    );
    // Top consumers by cost.
    let top = s
        .usage(&UsageQuery {
            group_by: vec![Dim::Key],
            order_by: Some("cost_micro"),
            limit: 2,
            ..base.clone()
        })
        .await
        .unwrap();
    let got: Vec<_> = top
        .iter()
        .map(|r| (r.dims[0].clone().unwrap(), r.sums.cost_micro))
        .collect();
    assert_eq!(
        got,
        [("key_globex".to_owned(), 4000), ("key_acme".to_owned(), 40)]
    );
    // Filters, and a developer restricted to apps.
    let only = |q: UsageQuery| {
        let s = s.clone();
        async move { s.usage(&q).await.unwrap() }
    };
    let acme = only(UsageQuery {
        tenant: Some("acme".into()),
        model: Some("smart".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(acme[0].sums.requests, 2);
    let mine = only(UsageQuery {
        apps: Some(vec!["app_initech".into(), "app_nobody".into()]),
        ..base.clone()
    })
    .await;
    assert_eq!(mine[0].sums.requests, 4);
    let none = only(UsageQuery {
        apps: Some(vec![]),
        ..base.clone()
    })
    .await;
    assert!(none.is_empty(), "{none:?}");
    // An empty range has no rows; a backwards one is refused.
    let empty = only(UsageQuery {
        from: LEAP_DAY + 3 * DAY,
        to: LEAP_DAY + 4 * DAY,
        ..base.clone()
    })
    .await;
    assert!(empty.is_empty());
    let bad = s
        .usage(&UsageQuery {
            from: LEAP_DAY + DAY,
            to: LEAP_DAY,
            ..base.clone()
        })
        .await;
    assert!(bad.is_err());
}

async fn retention_drops_whole_days(s: Store) {
    let batch: Vec<LogRecord> = (0..5)
        .map(|n| rec(n, LEAP_DAY + n as i64 * DAY, "acme", "smart"))
        .collect();
    s.write_logs(&batch).await.unwrap();
    let day0 = LEAP_DAY / DAY;
    assert_eq!(
        s.day_tables().await.unwrap(),
        (day0..day0 + 5).collect::<Vec<_>>()
    );
    assert_eq!(
        s.drop_logs_before(day0 + 3).await.unwrap(),
        [day0, day0 + 1, day0 + 2]
    );
    assert_eq!(s.day_tables().await.unwrap(), [day0 + 3, day0 + 4]);
    let left = s.logs(&all_of(0, LEAP_DAY + 10 * DAY)).await.unwrap();
    assert_eq!(left.len(), 2);
    // A dropped day can be written again (its table is recreated).
    s.write_logs(&batch[..1]).await.unwrap();
    assert!(s.day_tables().await.unwrap().contains(&day0));
    assert!(day_table(day0).ends_with("20280229"));
}

async fn hostile_strings_are_data(s: Store) {
    let batch: Vec<LogRecord> = NASTY
        .iter()
        .enumerate()
        .map(|(n, nasty)| {
            let mut r = rec(n, LEAP_DAY + n as i64, nasty, nasty);
            r.end_user = Some(nasty.to_string());
            r
        })
        .collect();
    s.write_logs(&batch).await.unwrap();
    for nasty in NASTY {
        let mut q = all_of(LEAP_DAY, LEAP_DAY + DAY);
        q.tenant = Some(nasty.to_string());
        q.end_user = Some(nasty.to_string());
        let got = s.logs(&q).await.unwrap();
        assert_eq!(got.len(), 1, "{nasty}");
        let usage = s
            .usage(&UsageQuery {
                from: LEAP_DAY,
                to: LEAP_DAY + DAY,
                model: Some(nasty.to_string()),
                group_by: vec![Dim::Tenant],
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(usage[0].dims[0].as_deref(), Some(*nasty));
    }
}

/// The writer's two paths — fresh batches (no duplicate check) and
/// replays — give the same rows and rollups; a fresh batch replayed (a
/// timeout after its commit) adds nothing.
async fn fresh_and_replayed_batches_sum_alike(s: Store) {
    let make = |prefix: &str| -> Vec<LogRecord> {
        (0..300)
            .map(|n| {
                let tenant = format!("{prefix}-{}", n % 4);
                let mut r = rec(
                    n,
                    LEAP_DAY - 2 * HOUR + n as i64 * 60_000,
                    &tenant,
                    ["a", "b", "c"][n % 3],
                );
                r.id = format!("{prefix}_{n}");
                r.latency_us = (n as i64 * 7919) % 90_000_000;
                r.status = [200, 200, 429, 503][n % 4];
                r.cost_micro = (n % 5 != 0).then_some(n as i64);
                if n % 7 == 0 {
                    (r.model, r.provider, r.app) = (None, None, None);
                }
                r
            })
            .collect()
    };
    let (fresh, replayed) = (make("fresh"), make("replay"));
    assert_eq!(s.write_new_logs(&fresh).await.unwrap(), 300);
    assert_eq!(
        s.write_logs(&fresh).await.unwrap(),
        0,
        "a replay adds nothing"
    );
    assert_eq!(s.write_logs(&replayed).await.unwrap(), 300);
    let every = vec![Dim::Tenant, Dim::App, Dim::Key, Dim::Model, Dim::Provider];
    let coarse = vec![Dim::Tenant, Dim::Model, Dim::Provider];
    for (interval, group_by) in [
        (Interval::Hour, coarse.clone()),
        (Interval::Day, coarse),
        (Interval::Day, every),
    ] {
        let rows = s
            .usage(&UsageQuery {
                from: LEAP_DAY - DAY,
                to: LEAP_DAY + DAY,
                interval: Some(interval),
                group_by,
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        let side = |prefix: &str| -> Vec<_> {
            rows.iter()
                .filter(|r| r.dims[0].as_deref().unwrap().starts_with(prefix))
                .map(|r| (r.period, r.dims[1..].to_vec(), r.sums.clone()))
                .collect()
        };
        let (f, r) = (side("fresh"), side("replay"));
        assert!(f.len() > 10, "{f:?}");
        assert_eq!(f.len(), r.len());
        for (a, b) in f.iter().zip(&r) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.2, b.2, "{interval:?} {:?}", a.1);
        }
    }
    assert_eq!(s.logs(&all_of(0, LEAP_DAY + DAY)).await.unwrap().len(), 600);
}

/// Apps and keys are in the daily key rollups only: grouping or filtering by
/// them per hour is refused; their ranges are whole UTC days; the rollups
/// agree on the totals, the key totals (no model split) with the split.
async fn apps_and_keys_are_kept_by_day(s: Store) {
    let batch: Vec<LogRecord> = (0..40)
        .map(|n| {
            let mut r = rec(
                n,
                LEAP_DAY + n as i64 * HOUR / 2,
                ["acme", "globex"][n % 2],
                ["smart", "cheap", "fast"][n % 3],
            );
            r.provider = Some(["mock", "other"][n % 4 / 2].into());
            r
        })
        .collect();
    s.write_logs(&batch).await.unwrap();
    let q = |group_by: Vec<Dim>, interval, from, to| UsageQuery {
        from,
        to,
        group_by,
        interval,
        ..UsageQuery::default()
    };
    let refused = s
        .usage(&q(
            vec![Dim::Key],
            Some(Interval::Hour),
            LEAP_DAY,
            LEAP_DAY + DAY,
        ))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let mut by_app = q(vec![], Some(Interval::Hour), LEAP_DAY, LEAP_DAY + DAY);
    by_app.app = Some("app_acme".into());
    assert!(s.usage(&by_app).await.is_err());
    // An afternoon's range by key covers the whole day.
    let keys = s
        .usage(&q(
            vec![Dim::Key],
            None,
            LEAP_DAY + 13 * HOUR,
            LEAP_DAY + 14 * HOUR,
        ))
        .await
        .unwrap();
    let total: i64 = keys.iter().map(|r| r.sums.requests).sum();
    assert_eq!(total, 40);
    // The same afternoon by tenant is two hours' worth (hourly rollup).
    let tenants = s
        .usage(&q(
            vec![Dim::Tenant],
            None,
            LEAP_DAY + 13 * HOUR,
            LEAP_DAY + 14 * HOUR,
        ))
        .await
        .unwrap();
    assert_eq!(tenants.iter().map(|r| r.sums.requests).sum::<i64>(), 2);
    // By key from the key totals, and by key and model (or provider) from
    // the split rollup: summed over the models they are the same rows.
    let day = |group_by| q(group_by, None, LEAP_DAY, LEAP_DAY + DAY);
    let totals = s.usage(&day(vec![Dim::Key])).await.unwrap();
    assert_eq!(totals.len(), 2);
    for split in [vec![Dim::Key, Dim::Model], vec![Dim::Key, Dim::Provider]] {
        let rows = s.usage(&day(split.clone())).await.unwrap();
        assert!(rows.len() > totals.len(), "{split:?}");
        for t in &totals {
            let mut sum = sluice_store::Sums::default();
            for r in rows.iter().filter(|r| r.dims[0] == t.dims[0]) {
                sum.requests += r.sums.requests;
                sum.tokens_in += r.sums.tokens_in;
                sum.cost_micro += r.sums.cost_micro;
                for (a, b) in sum.latency.iter_mut().zip(r.sums.latency) {
                    *a += b;
                }
            }
            assert_eq!(
                (sum.requests, sum.tokens_in, sum.cost_micro, sum.latency),
                (
                    t.sums.requests,
                    t.sums.tokens_in,
                    t.sums.cost_micro,
                    t.sums.latency
                ),
                "{split:?}"
            );
        }
    }
    // A key filtered to one model reads the split rollup too.
    let mut one = day(vec![Dim::Key]);
    one.model = Some("cheap".into());
    let cheap = s.usage(&one).await.unwrap();
    assert_eq!(cheap.iter().map(|r| r.sums.requests).sum::<i64>(), 13);
    for group_by in [vec![], vec![Dim::Tenant], vec![Dim::App]] {
        let day = s
            .usage(&q(group_by.clone(), None, LEAP_DAY, LEAP_DAY + DAY))
            .await
            .unwrap();
        assert_eq!(
            day.iter().map(|r| r.sums.requests).sum::<i64>(),
            40,
            "{group_by:?}"
        );
    }
}

/// A store at v4 with a day table (as the v4 writer made it, without
/// `cache_hit`) and a key rollup row, upgraded: the row reads back as no
/// cache hit, the key totals hold the old sums, and new records (cache
/// hits among them) go into the old day table.
async fn upgrade_from_v4_keeps_the_request_log(db: Db) {
    let old = Store::connect_unmigrated(&db.url).await.unwrap();
    assert_eq!(old.migrate_to(4).await.unwrap(), 4);
    let day = LEAP_DAY / DAY;
    let table = day_table(day);
    let ddl = match old.backend() {
        Backend::Sqlite => format!(
            "CREATE TABLE {table} (id TEXT NOT NULL, ts BIGINT NOT NULL, \
             request_id TEXT NOT NULL, tenant TEXT, app TEXT, key_id TEXT, key_name TEXT, \
             end_user TEXT, client_ip TEXT, endpoint TEXT NOT NULL, format TEXT NOT NULL, \
             model_requested TEXT, model TEXT, provider TEXT, deployment TEXT, route TEXT, \
             stream BIGINT NOT NULL, status BIGINT NOT NULL, error TEXT, error_source TEXT, \
             latency_us BIGINT NOT NULL, upstream_us BIGINT NOT NULL, ttft_us BIGINT, \
             tokens_in BIGINT NOT NULL, tokens_out BIGINT NOT NULL, \
             cache_read BIGINT NOT NULL, cache_write BIGINT NOT NULL, \
             reasoning BIGINT NOT NULL, usage_estimated BIGINT NOT NULL, cost_micro BIGINT, \
             attempts BIGINT NOT NULL, failed_attempts TEXT, rate_limited TEXT, \
             would_block TEXT, budget_over TEXT, downgraded_from TEXT, queue_wait_us BIGINT, \
             request_body TEXT, response_body TEXT, PRIMARY KEY (id))"
        ),
        Backend::Postgres => format!(
            "CREATE TABLE {table} PARTITION OF request_log FOR VALUES FROM ({}) TO ({})",
            day * DAY,
            (day + 1) * DAY
        ),
    };
    let lat: Vec<String> = (0..25).map(|i| format!("lat_{i:02}")).collect();
    let zeros = vec!["0"; 30].join(", ");
    for stmt in [
        ddl,
        format!(
            "INSERT INTO {table} (id, ts, request_id, tenant, app, key_id, endpoint, format, \
             model, stream, status, latency_us, upstream_us, tokens_in, tokens_out, \
             cache_read, cache_write, reasoning, usage_estimated, attempts) VALUES \
             ('log_old', {}, 'req_old', 'acme', 'app_acme', 'key_acme', 'chat', 'openai', \
             'smart', 0, 200, 40000, 35000, 10, 20, 0, 0, 0, 0, 1)",
            LEAP_DAY + HOUR
        ),
        format!(
            "INSERT INTO usage_daily_keys (bucket, tenant, app, key_id, model, provider, \
             requests, errors_4xx, errors_5xx, tokens_in, tokens_out, cache_read, \
             cache_write, reasoning, cost_micro, latency_us, upstream_us, {}) VALUES \
             ({LEAP_DAY}, 'acme', 'app_acme', 'key_acme', 'smart', 'mock', 1, 0, 0, 10, 20, \
             {zeros}, 1)",
            lat.join(", ")
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(old.pool())
            .await
            .unwrap();
    }
    old.close().await;

    let s = Store::connect(&db.url).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 5);
    let old_rows = s.logs(&all_of(LEAP_DAY, LEAP_DAY + DAY)).await.unwrap();
    assert_eq!(old_rows.len(), 1);
    assert_eq!(
        (old_rows[0].id.as_str(), old_rows[0].cache_hit),
        ("log_old", false)
    );
    let by_key = UsageQuery {
        from: LEAP_DAY,
        to: LEAP_DAY + DAY,
        group_by: vec![Dim::Key],
        ..UsageQuery::default()
    };
    let sums = |rows: &[sluice_store::UsageRow]| {
        rows.iter()
            .map(|r| {
                (
                    r.dims[0].clone().unwrap(),
                    r.sums.requests,
                    r.sums.cache_hits,
                    r.sums.tokens_in,
                )
            })
            .collect::<Vec<_>>()
    };
    let rows = s.usage(&by_key).await.unwrap();
    assert_eq!(sums(&rows), [("key_acme".to_owned(), 1, 0, 10)]);
    let mut hit = rec(1, LEAP_DAY + 2 * HOUR, "acme", "smart");
    hit.cache_hit = true;
    s.write_logs(&[hit]).await.unwrap();
    let rows = s.usage(&by_key).await.unwrap();
    assert_eq!(sums(&rows), [("key_acme".to_owned(), 2, 1, 20)]);
    let all = s.logs(&all_of(LEAP_DAY, LEAP_DAY + DAY)).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.cache_hit).collect::<Vec<_>>(),
        [true, false]
    );
    s.close().await;
}
