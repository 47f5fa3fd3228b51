//! Shared SQL plumbing: statements with their bound arguments, transactions,
//! paged list queries with filters, the audit + revision step every mutation
//! ends with, and the mapping of database errors. All SQL text here is built
//! from fixed fragments; every value travels as a bound `$N` argument.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor, Transaction};

use crate::ids::{new_id, now_ms};
use crate::{Actor, Backend, Page, Result, Store, StoreError};

/// A transaction on the store's pool.
pub(crate) type Tx = Transaction<'static, Any>;

/// Maps a row to an entity.
pub(crate) type RowMapper<T> = fn(&AnyRow) -> Result<T>;

/// A value bound to a `$N` placeholder. Only types every backend handles
/// the same way through the `Any` driver.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

/// SQL text and its arguments, in placeholder order.
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next `$N` of the text.
    pub(crate) fn bind(mut self, arg: impl Into<Arg>) -> Sql {
        self.args.push(arg.into());
        self
    }

    /// Adds an argument and returns its placeholder, for built-up text.
    pub(crate) fn push_arg(&mut self, arg: impl Into<Arg>) -> String {
        self.placeholder(arg)
    }

    /// Replaces the text (built after its placeholders).
    pub(crate) fn set_text(&mut self, text: String) {
        self.text = text;
    }

    fn placeholder(&mut self, arg: impl Into<Arg>) -> String {
        self.args.push(arg.into());
        format!("${}", self.args.len())
    }

    fn into_query(self) -> Query<'static, Any, AnyArguments> {
        self.args
            .into_iter()
            .fold(sqlx::query(AssertSqlSafe(self.text)), |q, arg| match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            })
    }

    /// Runs a statement; returns the number of rows it touched.
    pub(crate) async fn execute<'c, E>(self, ex: E) -> Result<u64, sqlx::Error>
    where
        E: Executor<'c, Database = Any>,
    {
        Ok(self.into_query().execute(ex).await?.rows_affected())
    }

    pub(crate) async fn fetch_all<'c, E, T>(self, ex: E, map: RowMapper<T>) -> Result<Vec<T>>
    where
        E: Executor<'c, Database = Any>,
    {
        let rows = self.into_query().fetch_all(ex).await?;
        rows.iter().map(map).collect()
    }

    pub(crate) async fn fetch_optional<'c, E, T>(
        self,
        ex: E,
        map: RowMapper<T>,
    ) -> Result<Option<T>>
    where
        E: Executor<'c, Database = Any>,
    {
        let row = self.into_query().fetch_optional(ex).await?;
        row.as_ref().map(map).transpose()
    }
}

/// Rows passed as one JSON argument (`$1`: an array of rows, each an array
/// of values in column order) and unpacked by the database: binding
/// arguments one by one through sqlx costs far more per row. Returns the
/// select list for `columns` (name, SQL type) and the `FROM` clause.
/// (Cutting rows into inner arrays, so SQLite walks fewer elements per
/// lookup, was slower: each `->` copies the inner array out.)
pub(crate) fn json_rows(backend: Backend, columns: &[(&str, &str)]) -> (String, &'static str) {
    let values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| match backend {
            // SQLite: rows come back as JSONB, read without parsing again.
            Backend::Sqlite => format!("value ->> {i}"),
            Backend::Postgres if ty.starts_with("BIGINT") => format!("(r->>{i})::bigint"),
            Backend::Postgres => format!("r->>{i}"),
        })
        .collect();
    let from = match backend {
        Backend::Sqlite => "jsonb_each($1)",
        Backend::Postgres => "jsonb_array_elements($1::jsonb) AS r",
    };
    (values.join(", "), from)
}

/// Order of a list: by id, ascending (entities) or descending (audit log).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Oldest,
    Newest,
}

/// A paged `SELECT` with optional filters.
pub(crate) struct List {
    sql: Sql,
    conditions: Vec<String>,
}

impl List {
    /// `select` is `SELECT <columns> FROM <table>`; its id column is `id`.
    pub(crate) fn new(select: impl Into<String>) -> List {
        List {
            sql: Sql::new(select),
            conditions: Vec::new(),
        }
    }

    /// A fixed condition (no user values).
    pub(crate) fn condition(&mut self, clause: &'static str) -> &mut List {
        self.conditions.push(clause.to_owned());
        self
    }

    /// `column op $N` with a value, when there is one.
    pub(crate) fn compare(
        &mut self,
        column: &'static str,
        op: &'static str,
        value: Option<impl Into<Arg>>,
    ) -> &mut List {
        if let Some(value) = value {
            let p = self.sql.placeholder(value);
            self.conditions.push(format!("{column} {op} {p}"));
        }
        self
    }

    /// `column = $N`, when there is a value.
    pub(crate) fn eq(&mut self, column: &'static str, value: Option<&str>) -> &mut List {
        self.compare(column, "=", value)
    }

    /// Case-insensitive substring match in which `%`, `_` and `\` are literal.
    pub(crate) fn contains(&mut self, column: &'static str, needle: Option<&str>) -> &mut List {
        if let Some(needle) = needle {
            let p = self.sql.placeholder(format!("%{}%", escape_like(needle)));
            self.conditions
                .push(format!("LOWER({column}) LIKE LOWER({p}) ESCAPE '\\'"));
        }
        self
    }

    /// Runs the query for one page: rows after the cursor, in `order`, at
    /// most `limit` (clamped to 1..=500; 0 = 50) of them.
    pub(crate) async fn page<'c, E, T: HasId>(
        mut self,
        ex: E,
        order: Order,
        after: Option<&str>,
        limit: u32,
        map: RowMapper<T>,
    ) -> Result<Page<T>>
    where
        E: Executor<'c, Database = Any>,
    {
        let (op, dir) = match order {
            Order::Oldest => (">", "ASC"),
            Order::Newest => ("<", "DESC"),
        };
        self.compare("id", op, after);
        let limit = clamp_limit(limit);
        let lim = self.sql.placeholder(limit + 1);
        if !self.conditions.is_empty() {
            self.sql.text.push_str(" WHERE ");
            self.sql.text.push_str(&self.conditions.join(" AND "));
        }
        self.sql
            .text
            .push_str(&format!(" ORDER BY id {dir} LIMIT {lim}"));
        let mut items = self.sql.fetch_all(ex, map).await?;
        let more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = more
            .then(|| items.last().map(|i| i.id().to_owned()))
            .flatten();
        Ok(Page { items, next })
    }
}

/// Entities listed by id.
pub(crate) trait HasId {
    fn id(&self) -> &str;
}

/// 0 → 50; otherwise 1..=500.
pub(crate) fn clamp_limit(limit: u32) -> i64 {
    match limit {
        0 => 50,
        n => i64::from(n.min(500)),
    }
}

/// Escapes `\`, `%` and `_` for `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A unique violation becomes a [`StoreError::Conflict`] with `message`;
/// other errors pass through.
pub(crate) fn conflict_on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Db(e),
    }
}

/// An entity as the audit log records it (its secrets are `#[serde(skip)]`).
pub(crate) fn snapshot<T: Serialize>(entity: &T) -> Value {
    serde_json::to_value(entity).unwrap_or(Value::Null)
}

/// A JSON value as stored in a TEXT column.
pub(crate) fn json_text(v: Option<&Value>) -> Option<String> {
    v.map(Value::to_string)
}

/// One audited change, written by [`Store::commit_change`].
pub(crate) struct Change<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    /// The tenant of the target.
    pub tenant_id: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl<'a> Change<'a> {
    pub(crate) fn new(
        action: &'a str,
        target_type: &'a str,
        target_id: &'a str,
        tenant_id: Option<&'a str>,
    ) -> Change<'a> {
        Change {
            action,
            target_type,
            target_id,
            tenant_id,
            before: None,
            after: None,
        }
    }

    pub(crate) fn before(mut self, entity: &impl Serialize) -> Change<'a> {
        self.before = Some(snapshot(entity));
        self
    }

    pub(crate) fn after(mut self, entity: &impl Serialize) -> Change<'a> {
        self.after = Some(snapshot(entity));
        self
    }
}

impl Store {
    /// Begins a read-write transaction. SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`) so a transaction never fails half-way upgrading a
    /// read lock; Postgres serializes writers on the `meta` row.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Begins a read transaction that sees one consistent snapshot.
    pub(crate) async fn begin_read(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// Appended to the `SELECT` of a row about to be changed: Postgres locks
    /// it; SQLite's write transaction already holds the database lock.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Ends a mutation: appends its audit entry, bumps the revision and
    /// commits, all in the mutation's transaction.
    pub(crate) async fn commit_change(
        &self,
        mut tx: Tx,
        by: &Actor,
        change: Change<'_>,
    ) -> Result<()> {
        append_audit(&mut tx, by, &change).await?;
        Sql::new("UPDATE meta SET revision = revision + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Inserts one audit entry; returns its id and time.
pub(crate) async fn append_audit(tx: &mut Tx, by: &Actor, c: &Change<'_>) -> Result<(String, i64)> {
    let id = new_id("aud");
    let at = now_ms();
    Sql::new(
        "INSERT INTO audit_log (id, at, actor, actor_role, tenant_id, action, target_type, \
         target_id, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(at)
    .bind(&by.id)
    .bind(by.role.as_str())
    .bind(c.tenant_id)
    .bind(c.action)
    .bind(c.target_type)
    .bind(c.target_id)
    .bind(json_text(c.before.as_ref()))
    .bind(json_text(c.after.as_ref()))
    .execute(&mut **tx)
    .await?;
    Ok((id, at))
}

/// The revision counter.
pub(crate) async fn read_revision<'c, E>(ex: E) -> Result<i64>
where
    E: Executor<'c, Database = Any>,
{
    let rev: i64 = sqlx::query_scalar("SELECT revision FROM meta WHERE id = 1")
        .fetch_one(ex)
        .await?;
    Ok(rev)
}
