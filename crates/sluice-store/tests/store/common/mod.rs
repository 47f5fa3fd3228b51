//! Test harness: a fresh database per test on each backend — a temp SQLite
//! file, or a private schema in the Postgres named by
//! `SLUICE_TEST_POSTGRES_URL` — removed afterwards, plus small builders and
//! assertions shared by the entity tests.

use std::future::Future;
use std::path::PathBuf;

use sluice_store::ids::new_id;
use sluice_store::{
    Actor, ApiKey, App, ListQuery, NewApp, NewKey, NewTenant, Result, Role, Store, StoreError,
    Tenant,
};
use sqlx::{Connection, Executor};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Strings that would break SQL built by formatting values into it.
pub const NASTY: &[&str] = &[
    "' OR '1'='1",
    "x'); DROP TABLE tenants;--",
    "\"; DELETE FROM api_keys; --",
    "100% _match_ \\ back\\slash",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's database: where it is and how to remove it.
#[derive(Debug, Clone)]
pub struct Db {
    pub url: String,
    file: Option<PathBuf>,
    schema: Option<String>,
}

impl Db {
    pub async fn create(kind: Kind) -> Db {
        let tag = new_id("t").to_lowercase();
        match kind {
            Kind::Sqlite => {
                let file = std::env::temp_dir().join(format!("sluice-store-{tag}.db"));
                Db {
                    url: format!("sqlite://{}", file.display()),
                    file: Some(file),
                    schema: None,
                }
            }
            Kind::Postgres => {
                let base = postgres_url();
                let schema = format!("s_{tag}");
                let mut conn = admin_connection(&base).await;
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .await
                    .expect("CREATE SCHEMA");
                conn.close().await.ok();
                let sep = if base.contains('?') { '&' } else { '?' };
                Db {
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    file: None,
                    schema: Some(schema),
                }
            }
        }
    }

    pub async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting {}: {e}", self.url))
    }

    /// Best effort: the test's result matters more than its clean-up.
    pub async fn destroy(&self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = file.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        if let Some(schema) = &self.schema {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await {
                let _ = conn
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .await;
                let _ = conn.close().await;
            }
        }
    }
}

pub fn postgres_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

async fn admin_connection(url: &str) -> sqlx::PgConnection {
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "the Postgres tests need a server: connecting to `{url}` failed: {e}\n\
             Set SLUICE_TEST_POSTGRES_URL to a Postgres URL (a database you may create \
             schemas in), or run `scripts/test.sh`, which finds or starts one."
        ),
    }
}

/// Runs `body` with its own database; removes the database afterwards,
/// also when the body panics (and then re-raises the panic).
pub async fn run_db<F, Fut>(kind: Kind, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = Db::create(kind).await;
    let outcome = tokio::spawn(body(db.clone())).await;
    db.destroy().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `body` with a migrated store on a fresh database.
pub async fn run<F, Fut>(kind: Kind, body: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_db(kind, |db| async move {
        let store = db.connect().await;
        body(store.clone()).await;
        store.close().await;
    })
    .await
}

/// Declares, for each `async fn name(store: Store)`, a module `name` with
/// one test per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::common::run(crate::common::Kind::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn postgres() {
                crate::common::run(crate::common::Kind::Postgres, super::$name).await
            }
        }
    )*};
}
pub(crate) use both;

/// As [`both!`], for `async fn name(db: Db)` that manage their own stores.
macro_rules! both_db {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::common::run_db(crate::common::Kind::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn postgres() {
                crate::common::run_db(crate::common::Kind::Postgres, super::$name).await
            }
        }
    )*};
}
pub(crate) use both_db;

pub fn admin() -> Actor {
    Actor {
        id: "usr_root".to_owned(),
        role: Role::Admin,
        tenant_id: None,
    }
}

pub fn actor(id: &str, role: Role, tenant_id: Option<&str>) -> Actor {
    Actor {
        id: id.to_owned(),
        role,
        tenant_id: tenant_id.map(str::to_owned),
    }
}

pub fn q() -> ListQuery {
    ListQuery::default()
}

pub async fn tenant(s: &Store, name: &str) -> Tenant {
    s.create_tenant(
        &admin(),
        NewTenant {
            name: name.to_owned(),
            ..NewTenant::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("creating tenant {name}: {e}"))
}

pub async fn app(s: &Store, tenant_id: &str, name: &str) -> App {
    s.create_app(
        &admin(),
        NewApp {
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            ..NewApp::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("creating app {name}: {e}"))
}

pub async fn key(s: &Store, app_id: &str, name: &str) -> (ApiKey, String) {
    s.create_key(
        &admin(),
        NewKey {
            app_id: app_id.to_owned(),
            name: name.to_owned(),
            ..NewKey::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("creating key {name}: {e}"))
}

pub fn expect_invalid<T: std::fmt::Debug>(r: Result<T>, needle: &str) {
    match r {
        Err(StoreError::Invalid(m)) => assert!(m.contains(needle), "`{m}` lacks `{needle}`"),
        other => panic!("expected Invalid containing `{needle}`, got {other:?}"),
    }
}

pub fn expect_conflict<T: std::fmt::Debug>(r: Result<T>, needle: &str) {
    match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(needle), "`{m}` lacks `{needle}`"),
        other => panic!("expected Conflict containing `{needle}`, got {other:?}"),
    }
}

pub fn expect_not_found<T: std::fmt::Debug>(r: Result<T>, needle: &str) {
    match r {
        Err(StoreError::NotFound(m)) => assert!(m.contains(needle), "`{m}` lacks `{needle}`"),
        other => panic!("expected NotFound containing `{needle}`, got {other:?}"),
    }
}

/// The store's tables (migration bookkeeping included).
pub async fn tables(s: &Store) -> Vec<String> {
    let sql = match s.backend() {
        sluice_store::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        sluice_store::Backend::Postgres => {
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        }
    };
    sqlx::query_scalar(sql)
        .fetch_all(s.pool())
        .await
        .expect("listing tables")
}

/// Every value of every column of every table (migration bookkeeping
/// included), cast to text, as `table.column = value`.
pub async fn all_text(s: &Store) -> Vec<String> {
    let columns_sql = match s.backend() {
        sluice_store::Backend::Sqlite => "SELECT name FROM pragma_table_info($1)",
        sluice_store::Backend::Postgres => {
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let mut out = Vec::new();
    for table in tables(s).await {
        let columns: Vec<String> = sqlx::query_scalar(columns_sql)
            .bind(&table)
            .fetch_all(s.pool())
            .await
            .expect("listing columns");
        assert!(!columns.is_empty(), "no columns found for {table}");
        for column in columns {
            // Blobs (sqlx's migration checksums) as hex on SQLite; Postgres
            // casts bytea to hex text itself.
            let as_text = match s.backend() {
                sluice_store::Backend::Sqlite => format!(
                    "CASE typeof({column}) WHEN 'blob' THEN hex({column}) ELSE CAST({column} AS TEXT) END"
                ),
                sluice_store::Backend::Postgres => format!("CAST({column} AS TEXT)"),
            };
            let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {as_text} FROM {table}"
            )))
            .fetch_all(s.pool())
            .await
            .unwrap_or_else(|e| panic!("reading {table}.{column}: {e}"));
            out.extend(
                values
                    .into_iter()
                    .flatten()
                    .map(|v| format!("{table}.{column} = {v}")),
            );
        }
    }
    out
}

/// The store's tables are all still there and readable.
pub async fn tables_survive(s: &Store) {
    let found = tables(s).await;
    for t in [
        "meta",
        "tenants",
        "apps",
        "api_keys",
        "users",
        "admin_credentials",
        "audit_log",
        "subscriptions",
    ] {
        assert!(found.iter().any(|f| f == t), "table {t} is gone: {found:?}");
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(s.pool())
            .await
            .unwrap_or_else(|e| panic!("table {t} unreadable: {e}"));
    }
}

/// Rows in a table, through raw SQL.
pub async fn count(s: &Store, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(s.pool())
        .await
        .expect("count")
}
