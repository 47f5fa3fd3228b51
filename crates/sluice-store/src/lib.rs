//! sluice's control-plane store: tenants, apps, API keys, users and their
//! admin credentials, subscriptions and the append-only audit log, behind one
//! [`Store`] with two backends — SQLite (embedded default, WAL) and Postgres
//! (several instances) — through sqlx's `Any` driver, with versioned
//! migrations per backend that run on connect.
//!
//! Every mutation takes the [`Actor`] making it, writes its audit entry and
//! bumps the store's revision in the same transaction, so a change is never
//! unaudited and every gateway instance can notice it by polling
//! [`Store::revision`]. Budget spend ([`Store::add_spend`]) is accounting,
//! not an admin change: it is neither audited nor counted in the revision.

mod analytics;
mod apps;
mod audit;
mod db;
mod directory;
mod error;
pub mod ids;
mod keys;
mod migrations;
pub mod model;
pub mod request_log;
pub mod rollup;
mod rows;
mod spend;
mod subscriptions;
mod tenants;
mod users;
mod validate;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Connection, Executor};

pub use analytics::{Dim, Interval, UsageQuery, UsageRow};
pub use error::StoreError;
pub use model::*;
pub use request_log::{LogQuery, LogRecord};
pub use rollup::Sums;
pub use spend::{SpendDelta, SpendRow};

/// The SQL dialect behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the control-plane database.
#[derive(Clone)]
pub struct Store {
    pool: sqlx::AnyPool,
    backend: Backend,
    /// Request-log day tables this store created or found.
    known_days: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl Store {
    /// Connects (creating a SQLite file if missing, in WAL mode) and runs
    /// every pending migration. `url` is `sqlite://path` (relative to the
    /// process's working directory; the caller resolves config-relative
    /// paths) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = Store::connect_unmigrated(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (for tests of upgrades).
    pub async fn connect_unmigrated(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options: AnyConnectOptions = backend.connect_url(url).parse()?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file: set it once, before the pool
            // opens concurrent connections.
            let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.close().await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store {
            pool,
            backend,
            known_days: Default::default(),
        })
    }

    /// Applies pending migrations; returns the schema version reached.
    pub async fn migrate(&self) -> Result<i64> {
        self.migrate_to(migrations::latest_version()).await
    }

    /// Applies migrations up to and including `version` (tests of upgrades).
    pub async fn migrate_to(&self, version: i64) -> Result<i64> {
        migrations::migrator(self.backend)
            .run_to(version, &self.pool)
            .await?;
        self.upgrade_day_tables().await?;
        self.schema_version().await
    }

    /// The highest applied migration version (0 on an empty database).
    pub async fn schema_version(&self) -> Result<i64> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists).fetch_one(&self.pool).await?;
        if exists == 0 {
            return Ok(0);
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A counter bumped by every mutation: pollers reload when it moves.
    pub async fn revision(&self) -> Result<i64> {
        db::read_revision(&self.pool).await
    }

    /// The connection pool, for tests that check what the database itself
    /// refuses (e.g. UPDATE on the audit log). Not part of the API.
    #[doc(hidden)]
    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// Connections per pool: enough for an admin API and the directory poller.
const POOL_SIZE: u32 = 10;

/// Set on every SQLite connection (sqlx's defaults, made explicit): foreign
/// keys enforced, wait up to 10 s for a lock, and `synchronous = NORMAL`
/// (durable at checkpoints, safe with WAL).
const SQLITE_PRAGMAS: &str =
    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;";

impl Backend {
    /// The backend a store URL names.
    fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::Invalid(format!(
                "store URL scheme `{scheme}` is not supported: use `sqlite://path` or `postgres://…`"
            )))
        }
    }

    /// The URL to connect with: a SQLite file is created when missing
    /// (`mode=rwc`) unless the URL sets a `mode` itself.
    fn connect_url(self, url: &str) -> String {
        if self != Backend::Sqlite {
            return url.to_owned();
        }
        match url.split_once('?') {
            None => format!("{url}?mode=rwc"),
            Some((_, query)) if query.split('&').any(|p| p.starts_with("mode=")) => url.to_owned(),
            Some(_) => format!("{url}&mode=rwc"),
        }
    }
}
