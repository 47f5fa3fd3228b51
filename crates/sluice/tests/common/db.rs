//! Fresh control-plane databases for gateway tests: a SQLite file in a temp
//! dir, or a new schema in the test Postgres (`SLUICE_TEST_POSTGRES_URL`,
//! default the local server). An unreachable Postgres fails the test.

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A store URL for a fresh, empty database of `backend`.
pub async fn fresh_store_url(backend: Backend) -> String {
    let tag = format!("{:016x}", fastrand::u64(..));
    match backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            super::temp_dir().join(format!("store-{tag}.db")).display()
        ),
        Backend::Postgres => {
            let base = postgres_url();
            let mut conn = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
                panic!("Postgres at {base} is unreachable ({e}); start one or set SLUICE_TEST_POSTGRES_URL (scripts/test.sh does this)")
            });
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA gw_{tag}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3Dgw_{tag}")
        }
    }
}
