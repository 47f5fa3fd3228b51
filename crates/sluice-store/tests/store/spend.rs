//! Persisted budget spend: the additive upsert (one call, many calls, many
//! concurrent callers), what `spend_since` returns, what is refused, that
//! spend is neither audited nor a revision, and an upgrade from v2.

use sluice_store::{SpendDelta, SpendRow, Store, StoreError};

use crate::common::*;

both!(
    deltas_add_up_per_counter,
    many_deltas_in_one_call,
    concurrent_calls_sum_exactly,
    other_periods_and_scopes_are_untouched,
    spend_since_returns_current_periods_in_order,
    unknown_period_refuses_the_whole_call,
    spend_is_neither_audited_nor_a_revision
);
both_db!(upgrade_from_v2_adds_the_spend_table);

const DAY: i64 = 86_400_000;
/// 2028-02-29T00:00:00Z.
const LEAP_DAY: i64 = 1_835_395_200_000;

fn delta(scope: &str, period: &str, start: i64, micro_usd: i64) -> SpendDelta {
    SpendDelta {
        scope: scope.to_owned(),
        period: period.to_owned(),
        period_start: start,
        micro_usd,
    }
}

async fn deltas_add_up_per_counter(s: Store) {
    assert_eq!(s.spend_of("tenant:acme", "day", LEAP_DAY).await.unwrap(), 0);
    s.add_spend(&[delta("tenant:acme", "day", LEAP_DAY, 1_500)])
        .await
        .unwrap();
    s.add_spend(&[delta("tenant:acme", "day", LEAP_DAY, 2_250)])
        .await
        .unwrap();
    assert_eq!(
        s.spend_of("tenant:acme", "day", LEAP_DAY).await.unwrap(),
        3_750
    );
    // A negative delta corrects; an empty call writes nothing.
    s.add_spend(&[delta("tenant:acme", "day", LEAP_DAY, -750)])
        .await
        .unwrap();
    s.add_spend(&[]).await.unwrap();
    let rows = s.spend_since(0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].micro_usd, 3_000);
    assert!(rows[0].updated_at > 0);
}

/// More counters than one statement holds, and the same counter several
/// times in one call.
async fn many_deltas_in_one_call(s: Store) {
    let mut deltas: Vec<SpendDelta> = (0..250)
        .map(|i| delta(&format!("key:k{i:03}"), "month", LEAP_DAY, i))
        .collect();
    deltas.push(delta("key:k007", "month", LEAP_DAY, 1_000));
    deltas.push(delta("key:k007", "month", LEAP_DAY, 1_000));
    s.add_spend(&deltas).await.unwrap();
    let rows = s.spend_since(LEAP_DAY).await.unwrap();
    assert_eq!(rows.len(), 250);
    assert_eq!(
        s.spend_of("key:k007", "month", LEAP_DAY).await.unwrap(),
        2_007
    );
    assert_eq!(
        s.spend_of("key:k249", "month", LEAP_DAY).await.unwrap(),
        249
    );
    let total: i64 = rows.iter().map(|r| r.micro_usd).sum();
    assert_eq!(total, (0..250).sum::<i64>() + 2_000);
}

/// 16 tasks × 10 calls, each adding to the same three counters (listed in
/// a different order by every other task): every delta counts once and no
/// transaction deadlocks.
async fn concurrent_calls_sum_exactly(s: Store) {
    let tasks: Vec<_> = (0..16i64)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..10i64 {
                    let mut deltas = vec![
                        delta("global", "day", LEAP_DAY, 1),
                        delta("tenant:acme", "day", LEAP_DAY, t),
                        delta("model:smart", "week", LEAP_DAY, i),
                    ];
                    if t % 2 == 1 {
                        deltas.reverse();
                    }
                    s.add_spend(&deltas).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.spend_of("global", "day", LEAP_DAY).await.unwrap(), 160);
    assert_eq!(
        s.spend_of("tenant:acme", "day", LEAP_DAY).await.unwrap(),
        (0..16).sum::<i64>() * 10
    );
    assert_eq!(
        s.spend_of("model:smart", "week", LEAP_DAY).await.unwrap(),
        (0..10).sum::<i64>() * 16
    );
}

async fn other_periods_and_scopes_are_untouched(s: Store) {
    s.add_spend(&[
        delta("tenant:acme", "day", LEAP_DAY - DAY, 10),
        delta("tenant:acme", "week", LEAP_DAY, 20),
        delta("tenant:beta", "day", LEAP_DAY, 30),
    ])
    .await
    .unwrap();
    s.add_spend(&[delta("tenant:acme", "day", LEAP_DAY, 5)])
        .await
        .unwrap();
    assert_eq!(
        s.spend_of("tenant:acme", "day", LEAP_DAY - DAY)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        s.spend_of("tenant:acme", "week", LEAP_DAY).await.unwrap(),
        20
    );
    assert_eq!(
        s.spend_of("tenant:beta", "day", LEAP_DAY).await.unwrap(),
        30
    );
    assert_eq!(s.spend_of("tenant:acme", "day", LEAP_DAY).await.unwrap(), 5);
}

async fn spend_since_returns_current_periods_in_order(s: Store) {
    s.add_spend(&[
        delta("tenant:b", "day", LEAP_DAY, 2),
        delta("tenant:a", "month", LEAP_DAY - 28 * DAY, 1),
        delta("tenant:a", "day", LEAP_DAY - DAY, 3),
        delta("tenant:a", "day", LEAP_DAY, 4),
    ])
    .await
    .unwrap();
    let rows = s.spend_since(LEAP_DAY - DAY).await.unwrap();
    let seen: Vec<(&str, &str, i64, i64)> = rows
        .iter()
        .map(|r: &SpendRow| {
            (
                r.scope.as_str(),
                r.period.as_str(),
                r.period_start,
                r.micro_usd,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("tenant:a", "day", LEAP_DAY - DAY, 3),
            ("tenant:a", "day", LEAP_DAY, 4),
            ("tenant:b", "day", LEAP_DAY, 2),
        ]
    );
    assert!(s.spend_since(LEAP_DAY + 1).await.unwrap().is_empty());
}

async fn unknown_period_refuses_the_whole_call(s: Store) {
    let r = s
        .add_spend(&[
            delta("global", "day", LEAP_DAY, 1),
            delta("global", "year", LEAP_DAY, 1),
        ])
        .await;
    assert!(
        matches!(&r, Err(StoreError::Invalid(m)) if m.contains("year")),
        "{r:?}"
    );
    let r = s
        .add_spend(&[
            delta("global", "day", LEAP_DAY, i64::MAX),
            delta("global", "day", LEAP_DAY, 1),
        ])
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert_eq!(count(&s, "spend").await, 0);
    // The table refuses a bad period itself.
    let raw = sqlx::query(
        "INSERT INTO spend (scope, period, period_start, micro_usd, updated_at) \
         VALUES ('global', 'year', 0, 1, 0)",
    )
    .execute(s.pool())
    .await;
    assert!(raw.is_err(), "the CHECK constraint must refuse `year`");
}

async fn spend_is_neither_audited_nor_a_revision(s: Store) {
    s.add_spend(&[delta("global", "month", LEAP_DAY, 42)])
        .await
        .unwrap();
    assert_eq!(s.revision().await.unwrap(), 0);
    assert_eq!(count(&s, "audit_log").await, 0);
}

/// A v2 database with data in it upgrades to v3; the old data stays and
/// spend works.
async fn upgrade_from_v2_adds_the_spend_table(db: Db) {
    let old = Store::connect_unmigrated(&db.url).await.unwrap();
    assert_eq!(old.migrate_to(2).await.unwrap(), 2);
    assert!(tables(&old).await.iter().all(|t| t != "spend"));
    let t = tenant(&old, "legacy").await;
    old.close().await;

    let s = db.connect().await;
    assert_eq!(s.schema_version().await.unwrap(), 5);
    let kept = s.get_tenant(&t.id).await.unwrap().expect("tenant kept");
    assert_eq!(kept.name, "legacy");
    assert_eq!(s.revision().await.unwrap(), 1);
    tables_survive(&s).await;
    s.add_spend(&[delta("tenant:legacy", "day", LEAP_DAY, 7)])
        .await
        .unwrap();
    s.add_spend(&[delta("tenant:legacy", "day", LEAP_DAY, 7)])
        .await
        .unwrap();
    assert_eq!(
        s.spend_of("tenant:legacy", "day", LEAP_DAY).await.unwrap(),
        14
    );
    s.close().await;
}
