//! The request log: one [`LogRecord`] per request, kept in one table per
//! UTC day (`request_log_YYYYMMDD`; on Postgres a partition of
//! `request_log`), so retention drops whole tables instead of deleting rows.
//!
//! [`Store::write_logs`] writes a batch in one transaction: the rows whose
//! id is not stored yet (so a batch written twice — a spill file replayed
//! after a crash — adds nothing the second time) and, for exactly those,
//! the hourly and daily rollups (`rollup.rs`). [`Store::logs`] lists
//! records newest first, day table by day table; [`Store::drop_logs_before`]
//! is retention.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize, Serializer};
use sqlx::any::AnyRow;
use sqlx::Row;

use sluice_types::civil::{civil_from_days, days_from_civil};

use crate::db::{json_rows, Sql, Tx};
use crate::rollup::{sum_batch, sums_json, upsert_json, TABLES};
use crate::{Backend, Result, Store, StoreError};

pub(crate) const DAY_MS: i64 = 86_400_000;

/// One request, as the gateway recorded it. Identities are ids (a static
/// key's is `static:<name>`), never secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Unique per record (the writer's; `request_id` may repeat).
    pub id: String,
    /// Unix ms the request arrived.
    pub ts: i64,
    pub request_id: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub end_user: Option<String>,
    pub client_ip: Option<String>,
    /// `chat`, `messages`, `embeddings`, …
    pub endpoint: String,
    /// The inbound API format: `openai` or `anthropic`.
    pub format: String,
    pub model_requested: Option<String>,
    /// The `models:` name that served.
    pub model: Option<String>,
    pub provider: Option<String>,
    /// The provider's model (or Azure deployment) that served.
    pub deployment: Option<String>,
    pub route: Option<String>,
    pub stream: bool,
    pub status: i64,
    pub error: Option<String>,
    pub error_source: Option<String>,
    pub latency_us: i64,
    pub upstream_us: i64,
    pub ttft_us: Option<i64>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub usage_estimated: bool,
    /// Millionths of a dollar; `None` when the model has no price.
    pub cost_micro: Option<i64>,
    pub attempts: i64,
    /// `provider: error` of each failed attempt, in order.
    pub failed_attempts: Option<String>,
    /// The limit that refused the request.
    pub rate_limited: Option<String>,
    /// The shadow limit that would have refused it.
    pub would_block: Option<String>,
    /// The `alert_only` budget it went over.
    pub budget_over: Option<String>,
    pub downgraded_from: Option<String>,
    pub queue_wait_us: Option<i64>,
    /// Answered from the gateway's response cache (no upstream call).
    pub cache_hit: bool,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

/// Columns in bind order (`LogRecord::args`).
pub(crate) const COLUMNS: &[(&str, &str)] = &[
    ("id", "TEXT NOT NULL"),
    ("ts", "BIGINT NOT NULL"),
    ("request_id", "TEXT NOT NULL"),
    ("tenant", "TEXT"),
    ("app", "TEXT"),
    ("key_id", "TEXT"),
    ("key_name", "TEXT"),
    ("end_user", "TEXT"),
    ("client_ip", "TEXT"),
    ("endpoint", "TEXT NOT NULL"),
    ("format", "TEXT NOT NULL"),
    ("model_requested", "TEXT"),
    ("model", "TEXT"),
    ("provider", "TEXT"),
    ("deployment", "TEXT"),
    ("route", "TEXT"),
    ("stream", "BIGINT NOT NULL"),
    ("status", "BIGINT NOT NULL"),
    ("error", "TEXT"),
    ("error_source", "TEXT"),
    ("latency_us", "BIGINT NOT NULL"),
    ("upstream_us", "BIGINT NOT NULL"),
    ("ttft_us", "BIGINT"),
    ("tokens_in", "BIGINT NOT NULL"),
    ("tokens_out", "BIGINT NOT NULL"),
    ("cache_read", "BIGINT NOT NULL"),
    ("cache_write", "BIGINT NOT NULL"),
    ("reasoning", "BIGINT NOT NULL"),
    ("usage_estimated", "BIGINT NOT NULL"),
    ("cost_micro", "BIGINT"),
    ("attempts", "BIGINT NOT NULL"),
    ("failed_attempts", "TEXT"),
    ("rate_limited", "TEXT"),
    ("would_block", "TEXT"),
    ("budget_over", "TEXT"),
    ("downgraded_from", "TEXT"),
    ("queue_wait_us", "BIGINT"),
    ("cache_hit", "BIGINT NOT NULL"),
    ("request_body", "TEXT"),
    ("response_body", "TEXT"),
];

impl LogRecord {
    /// The UTC day (days since 1970-01-01) of the record's table.
    pub fn day(&self) -> i64 {
        self.ts.div_euclid(DAY_MS)
    }
}

/// A record as one JSON row of [`json_rows`]`(COLUMNS)`: its values in
/// column order (flags as 0 or 1), written straight from the record.
/// Only the columns in `.1` (a bit per column) are written.
struct JsonRow<'a>(&'a LogRecord, u64);

/// One value of a [`JsonRow`].
enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Cell::Text(v) => v.serialize(s),
            Cell::Int(v) => v.serialize(s),
        }
    }
}

impl<'a> JsonRow<'a> {
    fn cells(&self) -> [Cell<'a>; 40] {
        let r: &'a LogRecord = self.0;
        fn t(v: &Option<String>) -> Cell<'_> {
            Cell::Text(v.as_deref())
        }
        fn s(v: &str) -> Cell<'_> {
            Cell::Text(Some(v))
        }
        let i = |v: i64| Cell::Int(Some(v));
        let b = |v: bool| Cell::Int(Some(i64::from(v)));
        [
            s(&r.id),
            i(r.ts),
            s(&r.request_id),
            t(&r.tenant),
            t(&r.app),
            t(&r.key_id),
            t(&r.key_name),
            t(&r.end_user),
            t(&r.client_ip),
            s(&r.endpoint),
            s(&r.format),
            t(&r.model_requested),
            t(&r.model),
            t(&r.provider),
            t(&r.deployment),
            t(&r.route),
            b(r.stream),
            i(r.status),
            t(&r.error),
            t(&r.error_source),
            i(r.latency_us),
            i(r.upstream_us),
            Cell::Int(r.ttft_us),
            i(r.tokens_in),
            i(r.tokens_out),
            i(r.cache_read),
            i(r.cache_write),
            i(r.reasoning),
            b(r.usage_estimated),
            Cell::Int(r.cost_micro),
            i(r.attempts),
            t(&r.failed_attempts),
            t(&r.rate_limited),
            t(&r.would_block),
            t(&r.budget_over),
            t(&r.downgraded_from),
            Cell::Int(r.queue_wait_us),
            b(r.cache_hit),
            t(&r.request_body),
            t(&r.response_body),
        ]
    }
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let used = |(i, _): &(usize, Cell<'_>)| self.1 >> i & 1 == 1;
        s.collect_seq(
            self.cells()
                .into_iter()
                .enumerate()
                .filter(used)
                .map(|(_, c)| c),
        )
    }
}

impl Cell<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Cell::Text(None) | Cell::Int(None))
    }
}

/// The columns (a bit per column of [`COLUMNS`]) with a value in any of
/// `records`: a batch is written with only those, the rest are NULL. Most
/// records leave a third of the columns empty (bodies, errors, policy
/// notes), and SQLite reads each JSON value by walking the ones before it.
fn used_columns(records: &[&LogRecord]) -> u64 {
    let mut used = 0u64;
    for r in records {
        for (i, c) in JsonRow(r, 0).cells().iter().enumerate() {
            used |= u64::from(!c.is_null()) << i;
        }
    }
    used
}

/// Records as one JSON argument for [`json_rows`] of the `used` columns.
fn records_json(records: &[&LogRecord], used: u64) -> String {
    let rows: Vec<JsonRow<'_>> = records.iter().map(|r| JsonRow(r, used)).collect();
    // Serializing strings and integers cannot fail.
    serde_json::to_string(&rows).unwrap_or_default()
}

/// Filters of [`Store::logs`]; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    pub tenant: Option<String>,
    /// Only these apps (a developer's own), when set.
    pub apps: Option<Vec<String>>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub end_user: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub request_id: Option<String>,
    /// Exact status, or a class: 2, 4, 5 (`status / 100`).
    pub status: Option<i64>,
    pub status_class: Option<i64>,
    /// Records strictly older than this `(ts, id)` (the previous page's
    /// last), for paging.
    pub before: Option<(i64, String)>,
    pub limit: usize,
}

/// The name of a day's table.
pub fn day_table(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("request_log_{y:04}{m:02}{d:02}")
}

/// The day a table name stands for, if it is a day table.
fn table_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("request_log_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let (m, d) = (n / 100 % 100, n % 100);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(n / 10_000, m as u32, d as u32);
    (day_table(day) == name).then_some(day)
}

impl Store {
    /// Writes a batch of records and their rollups in one transaction;
    /// returns how many were new (a record whose id is already stored is
    /// skipped and not counted again in the rollups).
    ///
    /// Set-based, so the cost per record is small: the ids already stored
    /// are looked up in one query, the rest of the batch goes into its day
    /// table as one JSON argument, and the rollups are summed in Rust and
    /// upserted with one statement per table (`rollup.rs`).
    pub async fn write_logs(&self, records: &[LogRecord]) -> Result<usize> {
        self.write_batch(records, true).await
    }

    /// [`Store::write_logs`] for records that cannot be stored yet (the
    /// writer's first attempt at a batch with fresh ids): skips the
    /// duplicate check. For anything that may have been written before (a
    /// spill replay) use [`Store::write_logs`].
    pub async fn write_new_logs(&self, records: &[LogRecord]) -> Result<usize> {
        self.write_batch(records, false).await
    }

    async fn write_batch(&self, records: &[LogRecord], dedup: bool) -> Result<usize> {
        let mut by_day: BTreeMap<i64, Vec<&LogRecord>> = BTreeMap::new();
        for r in records {
            by_day.entry(r.day()).or_default().push(r);
        }
        for day in by_day.keys() {
            self.ensure_day_table(*day).await?;
        }
        let mut tx = self.begin_write().await?;
        let mut stored: Vec<&LogRecord> = Vec::with_capacity(records.len());
        for (day, mut rows) in by_day {
            let table = day_table(day);
            if dedup {
                let known = self.stored_ids(&mut tx, &table, &rows).await?;
                rows.retain(|r| !known.contains(r.id.as_str()));
            }
            if rows.is_empty() {
                continue;
            }
            // The whole batch as one JSON argument, unpacked by the
            // database: binding arguments one by one costs far more.
            let used = used_columns(&rows);
            Sql::new(self.insert_json(&table, used))
                .bind(records_json(&rows, used))
                .execute(&mut *tx)
                .await?;
            stored.append(&mut rows);
        }
        for table in TABLES {
            let sums = sum_batch(table, stored.iter().copied());
            if !sums.is_empty() {
                Sql::new(upsert_json(self.backend, table))
                    .bind(sums_json(table, &sums))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(stored.len())
    }

    /// The ids of `rows` already in `table`.
    async fn stored_ids(
        &self,
        tx: &mut Tx,
        table: &str,
        rows: &[&LogRecord],
    ) -> Result<HashSet<String>> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let list = match self.backend {
            Backend::Sqlite => "SELECT value FROM json_each($1)",
            Backend::Postgres => "SELECT jsonb_array_elements_text($1::jsonb)",
        };
        let found = Sql::new(format!("SELECT id FROM {table} WHERE id IN ({list})"))
            .bind(serde_json::to_string(&ids).unwrap_or_default())
            .fetch_all(&mut **tx, |r| Ok(r.try_get::<String, _>("id")?))
            .await?;
        Ok(found.into_iter().collect())
    }

    /// `INSERT INTO table (<used columns>) SELECT <records> FROM <one JSON
    /// argument>`.
    fn insert_json(&self, table: &str, used: u64) -> String {
        let cols: Vec<(&str, &str)> = (COLUMNS.iter().enumerate())
            .filter(|(i, _)| used >> i & 1 == 1)
            .map(|(_, c)| *c)
            .collect();
        let (values, from) = json_rows(self.backend, &cols);
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        format!(
            "INSERT INTO {table} ({}) SELECT {values} FROM {from}",
            names.join(", ")
        )
    }

    /// Creates a day's table (and its indexes) unless this store already
    /// did; another instance creating it at the same moment is fine.
    async fn ensure_day_table(&self, day: i64) -> Result<()> {
        if self.known_days().contains(&day) {
            return Ok(());
        }
        let table = day_table(day);
        let ddl = match self.backend {
            Backend::Sqlite => {
                let cols: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("{n} {t}")).collect();
                vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS {table} ({}, PRIMARY KEY (id))",
                        cols.join(", ")
                    ),
                    format!("CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts)"),
                    format!("CREATE INDEX IF NOT EXISTS {table}_tenant ON {table} (tenant, ts)"),
                ]
            }
            Backend::Postgres => vec![format!(
                "CREATE TABLE IF NOT EXISTS {table} PARTITION OF request_log \
                 FOR VALUES FROM ({}) TO ({})",
                day * DAY_MS,
                (day + 1) * DAY_MS
            )],
        };
        for stmt in ddl {
            if let Err(e) = Sql::new(stmt).execute(&self.pool).await {
                // A concurrent CREATE … IF NOT EXISTS can still lose the
                // race on Postgres; the table is there either way.
                if !self.day_tables().await?.contains(&day) {
                    return Err(e.into());
                }
            }
        }
        self.known_days().insert(day);
        Ok(())
    }

    /// Adds the columns a newer version brought to SQLite day tables
    /// created before it (on Postgres the migration alters the parent,
    /// and its partitions follow). A column that must not be NULL gets 0.
    pub(crate) async fn upgrade_day_tables(&self) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        for day in self.day_tables().await? {
            let table = day_table(day);
            let have = Sql::new(format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&self.pool, |r| Ok(r.try_get::<String, _>("name")?))
                .await?;
            for (name, ty) in COLUMNS.iter().filter(|(n, _)| !have.iter().any(|h| h == n)) {
                let default = if ty.ends_with("NOT NULL") {
                    " DEFAULT 0"
                } else {
                    ""
                };
                Sql::new(format!(
                    "ALTER TABLE {table} ADD COLUMN {name} {ty}{default}"
                ))
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    fn known_days(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.known_days.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every day that has a table, oldest first.
    pub async fn day_tables(&self) -> Result<Vec<i64>> {
        let text = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'request_log%'"
            }
            Backend::Postgres => {
                "SELECT CAST(tablename AS TEXT) AS name FROM pg_catalog.pg_tables \
                 WHERE schemaname = current_schema() AND tablename LIKE 'request_log%'"
            }
        };
        let names = Sql::new(text)
            .fetch_all(&self.pool, |r| Ok(r.try_get::<String, _>("name")?))
            .await?;
        let mut days: Vec<i64> = names.iter().filter_map(|n| table_day(n)).collect();
        days.sort_unstable();
        Ok(days)
    }

    /// Retention: drops every day table older than `day`; returns the days
    /// dropped.
    pub async fn drop_logs_before(&self, day: i64) -> Result<Vec<i64>> {
        let old: Vec<i64> = self
            .day_tables()
            .await?
            .into_iter()
            .filter(|d| *d < day)
            .collect();
        for d in &old {
            Sql::new(format!("DROP TABLE IF EXISTS {}", day_table(*d)))
                .execute(&self.pool)
                .await?;
            self.known_days().remove(d);
        }
        Ok(old)
    }

    /// Records matching `q`, newest first, at most `q.limit` (1..=1000).
    pub async fn logs(&self, q: &LogQuery) -> Result<Vec<LogRecord>> {
        if q.to <= q.from {
            return Err(StoreError::Invalid("`to` must be after `from`".into()));
        }
        let limit = q.limit.clamp(1, 1000);
        let (first, last) = (q.from.div_euclid(DAY_MS), (q.to - 1).div_euclid(DAY_MS));
        let days: Vec<i64> = self
            .day_tables()
            .await?
            .into_iter()
            .filter(|d| (first..=last).contains(d))
            .rev()
            .collect();
        let mut out = Vec::new();
        for day in days {
            let want = limit - out.len();
            let mut rows = log_select(&day_table(day), q, want)
                .fetch_all(&self.pool, log_record)
                .await?;
            out.append(&mut rows);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// The record's fields, in column order (for exports).
pub fn column_names() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|(c, _)| *c)
}

/// The `SELECT` of one day table for [`Store::logs`].
fn log_select(table: &str, q: &LogQuery, limit: usize) -> Sql {
    let names: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let mut sql = Sql::new(String::new());
    let mut conds = vec![
        format!("ts >= {}", sql.push_arg(q.from)),
        format!("ts < {}", sql.push_arg(q.to)),
    ];
    let mut eq = |col: &str, v: &Option<String>, sql: &mut Sql| {
        if let Some(v) = v {
            conds.push(format!("{col} = {}", sql.push_arg(v.as_str())));
        }
    };
    eq("tenant", &q.tenant, &mut sql);
    eq("app", &q.app, &mut sql);
    eq("key_id", &q.key_id, &mut sql);
    eq("end_user", &q.end_user, &mut sql);
    eq("model", &q.model, &mut sql);
    eq("provider", &q.provider, &mut sql);
    eq("request_id", &q.request_id, &mut sql);
    if let Some(s) = q.status {
        conds.push(format!("status = {}", sql.push_arg(s)));
    }
    if let Some(c) = q.status_class {
        let lo = sql.push_arg(c * 100);
        let hi = sql.push_arg(c * 100 + 100);
        conds.push(format!("status >= {lo} AND status < {hi}"));
    }
    if let Some(apps) = &q.apps {
        let ps: Vec<String> = apps.iter().map(|a| sql.push_arg(a.as_str())).collect();
        conds.push(match ps.is_empty() {
            true => "1 = 0".to_owned(),
            false => format!("app IN ({})", ps.join(", ")),
        });
    }
    if let Some((ts, id)) = &q.before {
        let (t1, t2, i) = (
            sql.push_arg(*ts),
            sql.push_arg(*ts),
            sql.push_arg(id.as_str()),
        );
        conds.push(format!("(ts < {t1} OR (ts = {t2} AND id < {i}))"));
    }
    sql.set_text(format!(
        "SELECT {} FROM {table} WHERE {} ORDER BY ts DESC, id DESC LIMIT {limit}",
        names.join(", "),
        conds.join(" AND ")
    ));
    sql
}

fn log_record(r: &AnyRow) -> Result<LogRecord> {
    let flag = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(LogRecord {
        id: r.try_get("id")?,
        ts: r.try_get("ts")?,
        request_id: r.try_get("request_id")?,
        tenant: r.try_get("tenant")?,
        app: r.try_get("app")?,
        key_id: r.try_get("key_id")?,
        key_name: r.try_get("key_name")?,
        end_user: r.try_get("end_user")?,
        client_ip: r.try_get("client_ip")?,
        endpoint: r.try_get("endpoint")?,
        format: r.try_get("format")?,
        model_requested: r.try_get("model_requested")?,
        model: r.try_get("model")?,
        provider: r.try_get("provider")?,
        deployment: r.try_get("deployment")?,
        route: r.try_get("route")?,
        stream: flag("stream")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        error_source: r.try_get("error_source")?,
        latency_us: r.try_get("latency_us")?,
        upstream_us: r.try_get("upstream_us")?,
        ttft_us: r.try_get("ttft_us")?,
        tokens_in: r.try_get("tokens_in")?,
        tokens_out: r.try_get("tokens_out")?,
        cache_read: r.try_get("cache_read")?,
        cache_write: r.try_get("cache_write")?,
        reasoning: r.try_get("reasoning")?,
        usage_estimated: flag("usage_estimated")?,
        cost_micro: r.try_get("cost_micro")?,
        attempts: r.try_get("attempts")?,
        failed_attempts: r.try_get("failed_attempts")?,
        rate_limited: r.try_get("rate_limited")?,
        would_block: r.try_get("would_block")?,
        budget_over: r.try_get("budget_over")?,
        downgraded_from: r.try_get("downgraded_from")?,
        queue_wait_us: r.try_get("queue_wait_us")?,
        cache_hit: flag("cache_hit")?,
        request_body: r.try_get("request_body")?,
        response_body: r.try_get("response_body")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_writes_the_columns_any_record_uses() {
        let bare = LogRecord::default();
        let mut full = LogRecord {
            tenant: Some("acme".into()),
            response_body: Some("{}".into()),
            ..LogRecord::default()
        };
        let names = |used: u64| -> Vec<&str> {
            (COLUMNS.iter().enumerate())
                .filter(|(i, _)| used >> i & 1 == 1)
                .map(|(_, (n, _))| *n)
                .collect()
        };
        // NOT NULL columns always; nullable ones only when set somewhere.
        let required: Vec<&str> = (COLUMNS.iter())
            .filter(|(_, t)| t.ends_with("NOT NULL"))
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names(used_columns(&[&bare])), required);
        let used = used_columns(&[&bare, &full]);
        assert_eq!(names(used).len(), required.len() + 2);
        assert!(names(used).contains(&"tenant") && names(used).contains(&"response_body"));
        // A record's JSON has exactly the used columns, in order.
        full.id = "log_1".into();
        let json: serde_json::Value = serde_json::from_str(&records_json(&[&full], used)).unwrap();
        assert_eq!(json[0].as_array().unwrap().len(), names(used).len());
        assert_eq!(
            (&json[0][0], &json[0][3]),
            (&"log_1".into(), &"acme".into())
        );
    }

    #[test]
    fn day_tables_name_utc_days() {
        assert_eq!(day_table(0), "request_log_19700101");
        // 2028-02-29
        assert_eq!(
            day_table(1_835_395_200_000 / DAY_MS),
            "request_log_20280229"
        );
        for day in [-1, 0, 11_016, 20_427, 21_243, 40_000] {
            assert_eq!(table_day(&day_table(day)), Some(day));
        }
        assert_eq!(table_day("request_log_20260230"), None);
        assert_eq!(table_day("request_log"), None);
        assert_eq!(table_day("request_log_2026120"), None);
        assert_eq!(table_day("request_log_2026120x"), None);
    }
}
