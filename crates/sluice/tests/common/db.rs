//! Fresh control-plane databases for gateway tests: a SQLite file in a temp
//! dir, or a new schema in the test Postgres (`SLUICE_TEST_POSTGRES_URL`,
//! default the local server; an unreachable Postgres fails the test). The
//! schemas a test created are dropped by [`cleanup_after`] once it ends,
//! also when it panics — on the test's own runtime, so the gateway tasks it
//! aborted can still roll back what they held.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use sqlx::Connection;

thread_local! {
    /// Schemas created by the test running on this thread (each
    /// `#[tokio::test]` has its own current-thread runtime).
    static SCHEMAS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                $crate::common::db::cleanup_after(super::$name(
                    $crate::common::db::Backend::Sqlite,
                ))
                .await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                $crate::common::db::cleanup_after(super::$name(
                    $crate::common::db::Backend::Postgres,
                ))
                .await
            })*
        }
    };
}

pub fn postgres_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// An empty database for one test; `url` is what `store:` takes.
pub struct FreshStore {
    pub url: String,
}

impl FreshStore {
    pub async fn new(backend: Backend) -> FreshStore {
        let tag = format!("{:016x}", fastrand::u64(..));
        match backend {
            Backend::Sqlite => FreshStore {
                url: format!(
                    "sqlite://{}",
                    super::temp_dir().join(format!("store-{tag}.db")).display()
                ),
            },
            Backend::Postgres => {
                let base = postgres_url();
                let schema = format!("gw_{tag}");
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
                    panic!("Postgres at {base} is unreachable ({e}); start one or set SLUICE_TEST_POSTGRES_URL (scripts/test.sh does this)")
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let _ = conn.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                SCHEMAS.with(|s| s.borrow_mut().push(schema));
                FreshStore { url }
            }
        }
    }
}

/// Runs a test body, then drops the Postgres schemas it created (best
/// effort, bounded by a lock timeout), then re-raises its panic if any.
pub async fn cleanup_after(body: impl Future<Output = ()>) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    let schemas = SCHEMAS.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if !schemas.is_empty() {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await {
            for schema in schemas {
                let sql =
                    format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
            }
            let _ = conn.close().await;
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
