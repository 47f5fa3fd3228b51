//! Connecting, migrations (including an upgrade from v1 with data in it),
//! SQLite settings, and what the database itself refuses.

use serde_json::json;
use sluice_store::ids::{hash_secret, now_ms};
use sluice_store::{AuditQuery, Backend, Role, Source, Store, StoreError, SubState};

use crate::common::*;

both!(
    fresh_store_is_at_latest_version,
    audit_log_refuses_update_and_delete,
    foreign_keys_are_enforced
);
both_db!(
    upgrade_from_v1_keeps_data,
    unmigrated_store_reports_version_0
);

async fn fresh_store_is_at_latest_version(s: Store) {
    assert_eq!(s.schema_version().await.unwrap(), 5);
    assert_eq!(s.revision().await.unwrap(), 0);
    s.ping().await.unwrap();
    // Running the migrations again changes nothing.
    assert_eq!(s.migrate().await.unwrap(), 5);
    assert_eq!(s.migrate_to(1).await.unwrap(), 5, "never goes down");
    assert_eq!(s.revision().await.unwrap(), 0);
}

async fn unmigrated_store_reports_version_0(db: Db) {
    let s = Store::connect_unmigrated(&db.url).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 0);
    assert_eq!(s.migrate_to(1).await.unwrap(), 1);
    assert_eq!(s.schema_version().await.unwrap(), 1);
    assert!(tables(&s).await.iter().all(|t| t != "subscriptions"));
    assert_eq!(s.migrate().await.unwrap(), 5);
    s.close().await;
}

async fn audit_log_refuses_update_and_delete(s: Store) {
    tenant(&s, "acme").await;
    let before = s.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(before.len(), 1);

    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory'")
        .execute(s.pool())
        .await;
    let err = update
        .expect_err("UPDATE on audit_log must fail")
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    let delete = sqlx::query("DELETE FROM audit_log").execute(s.pool()).await;
    let err = delete
        .expect_err("DELETE on audit_log must fail")
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    if s.backend() == Backend::Postgres {
        let truncate = sqlx::query("TRUNCATE audit_log").execute(s.pool()).await;
        assert!(truncate.is_err(), "TRUNCATE on audit_log must fail");
    }

    let after = s.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(before, after);
    // Appending still works.
    tenant(&s, "beta").await;
    assert_eq!(count(&s, "audit_log").await, 2);
}

async fn foreign_keys_are_enforced(s: Store) {
    let r = sqlx::query(
        "INSERT INTO apps (id, tenant_id, name, created_at, updated_at) \
         VALUES ('app_x', 'ten_missing', 'x', 0, 0)",
    )
    .execute(s.pool())
    .await;
    assert!(r.is_err(), "an app of a missing tenant must be refused");
}

/// A database created at v1 with rows written by raw SQL in the v1 schema,
/// then upgraded: everything reads back through the API.
async fn upgrade_from_v1_keeps_data(db: Db) {
    let old = Store::connect_unmigrated(&db.url).await.unwrap();
    assert_eq!(old.migrate_to(1).await.unwrap(), 1);
    let now = now_ms();
    let key_hash = hash_secret("sk-sluice-legacylegacylegacylegacylegacylegacy00");
    let cred_hash = hash_secret("sa-sluice-legacy");
    use Val::{I, T};
    let statements: &[(&'static str, Vec<Val>)] = &[
        (
            "INSERT INTO tenants (id, name, tier, policy, source, created_at, updated_at) \
             VALUES ('ten_legacy', 'legacy', 'gold', '{\"rpm\":10}', 'store', $1, $1)",
            vec![I(now)],
        ),
        (
            "INSERT INTO users (id, name, role, tenant_id, created_at, updated_at) \
             VALUES ('usr_legacy', 'olddev', 'developer', 'ten_legacy', $1, $1)",
            vec![I(now)],
        ),
        (
            "INSERT INTO apps (id, tenant_id, name, owner_user_id, policy, created_at, updated_at) \
             VALUES ('app_legacy', 'ten_legacy', 'oldapp', 'usr_legacy', NULL, $1, $1)",
            vec![I(now)],
        ),
        (
            "INSERT INTO api_keys (id, app_id, tenant_id, name, prefix, hash, scopes, created_by, created_at) \
             VALUES ('key_legacy', 'app_legacy', 'ten_legacy', 'old key', 'sk-sluice-lega', $1, \
             '{\"models\":[\"m1\"]}', 'usr_legacy', $2)",
            vec![T(key_hash.clone()), I(now)],
        ),
        (
            "INSERT INTO admin_credentials (id, user_id, prefix, hash, created_at) \
             VALUES ('cred_legacy', 'usr_legacy', 'sa-sluice-lega', $1, $2)",
            vec![T(cred_hash.clone()), I(now)],
        ),
        (
            "INSERT INTO audit_log (id, at, actor, actor_role, tenant_id, action, target_type, target_id, after) \
             VALUES ('aud_legacy', $1, 'usr_root', 'admin', 'ten_legacy', 'tenant.create', 'tenant', 'ten_legacy', '{}')",
            vec![I(now)],
        ),
        ("UPDATE meta SET revision = $1 WHERE id = 1", vec![I(7)]),
    ];
    for (sql, args) in statements {
        let query = args.iter().fold(sqlx::query(*sql), |q, a| match a {
            T(t) => q.bind(t.clone()),
            I(i) => q.bind(*i),
        });
        query
            .execute(old.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    old.close().await;

    let s = db.connect().await;
    assert_eq!(s.schema_version().await.unwrap(), 5);
    assert_eq!(s.revision().await.unwrap(), 7);
    let t = s
        .get_tenant("ten_legacy")
        .await
        .unwrap()
        .expect("tenant kept");
    assert_eq!(
        (t.name.as_str(), t.tier.as_deref(), t.source, t.policy),
        (
            "legacy",
            Some("gold"),
            Source::Store,
            Some(json!({"rpm": 10}))
        )
    );
    let u = s.get_user("usr_legacy").await.unwrap().expect("user kept");
    assert_eq!(
        (u.role, u.tenant_id.as_deref()),
        (Role::Developer, Some("ten_legacy"))
    );
    let a = s.get_app("app_legacy").await.unwrap().expect("app kept");
    assert_eq!(a.owner_user_id.as_deref(), Some("usr_legacy"));
    let k = s.get_key("key_legacy").await.unwrap().expect("key kept");
    assert_eq!(k.hash, key_hash);
    assert_eq!(k.scopes.models, Some(vec!["m1".to_owned()]));
    let (cred, user) = s
        .credential_by_hash(&cred_hash)
        .await
        .unwrap()
        .expect("credential kept");
    assert_eq!(
        (cred.id.as_str(), user.id.as_str()),
        ("cred_legacy", "usr_legacy")
    );
    let audit = s.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].id, "aud_legacy");
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.keys.len(), 1);

    // What v2 adds works on the old rows.
    let sub = s
        .request_subscription(&admin(), "app_legacy", "model:m1", None)
        .await
        .unwrap();
    assert_eq!(sub.state, SubState::Pending);
    assert_eq!(s.revision().await.unwrap(), 8);
    assert!(sqlx::query("DELETE FROM audit_log")
        .execute(s.pool())
        .await
        .is_err());
    s.close().await;
}

enum Val {
    T(String),
    I(i64),
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_foreign_keys_and_busy_timeout() {
    run_db(Kind::Sqlite, |db| async move {
        let path = db.url.trim_start_matches("sqlite://").to_owned();
        assert!(!std::path::Path::new(&path).exists());
        let s = db.connect().await;
        assert!(std::path::Path::new(&path).exists(), "file created");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert!(timeout >= 5000, "busy_timeout {timeout}");
        s.close().await;
        // Reopening finds the data.
        let s = db.connect().await;
        assert_eq!(s.schema_version().await.unwrap(), 5);
        s.close().await;
    })
    .await
}

#[tokio::test]
async fn concurrent_writers_on_sqlite_wait_instead_of_failing() {
    run(Kind::Sqlite, |s| async move {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { tenant(&s, &format!("t{i}")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.revision().await.unwrap(), 16);
    })
    .await
}

#[tokio::test]
async fn concurrent_writers_on_postgres_each_bump_the_revision_once() {
    run(Kind::Postgres, |s| async move {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { tenant(&s, &format!("t{i}")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.revision().await.unwrap(), 16);
        assert_eq!(count(&s, "audit_log").await, 16);
    })
    .await
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_a_clear_message() {
    match Store::connect("mysql://localhost/db").await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("mysql"), "{m}"),
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    }
}
