//! The schema migrations, embedded at compile time: one SQL file per version
//! and backend under `migrations/{sqlite,postgres}/`, run by sqlx's
//! [`Migrator`] (which records them in `_sqlx_migrations`). To add one, add
//! `NNNN_name.sql` for both backends and a line to [`MIGRATIONS`]; never edit
//! a released file (its checksum is verified on every start).

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use crate::Backend;

/// One schema version in both dialects.
struct Embedded {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Embedded {
        version: 2,
        description: "subscriptions",
        sqlite: include_str!("../migrations/sqlite/0002_subscriptions.sql"),
        postgres: include_str!("../migrations/postgres/0002_subscriptions.sql"),
    },
    Embedded {
        version: 3,
        description: "spend",
        sqlite: include_str!("../migrations/sqlite/0003_spend.sql"),
        postgres: include_str!("../migrations/postgres/0003_spend.sql"),
    },
    Embedded {
        version: 4,
        description: "request log",
        sqlite: include_str!("../migrations/sqlite/0004_request_log.sql"),
        postgres: include_str!("../migrations/postgres/0004_request_log.sql"),
    },
    Embedded {
        version: 5,
        description: "cache hits, key totals",
        sqlite: include_str!("../migrations/sqlite/0005_cache_hits_key_totals.sql"),
        postgres: include_str!("../migrations/postgres/0005_cache_hits_key_totals.sql"),
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The migrator for one backend.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|m| {
            let sql = match backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            Migration::new(
                m.version,
                m.description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
