//! Usage analytics over the rollups: [`Store::usage`] sums `usage_daily`
//! (whole UTC days), `usage_hourly` (anything else) or, when apps or keys
//! are involved, `usage_daily_key_totals` — `usage_daily_keys` when the
//! query also groups or filters by model or provider — (ranges widened to
//! whole UTC days; no hourly buckets) over a time range,
//! grouped by any of tenant / app / key / model / provider and optionally
//! by hour or day, filtered, and optionally ordered by a summed column
//! (top consumers). Scanning rollups, not log rows, keeps a 30-day query
//! independent of how many requests the days held.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Sql;
use crate::request_log::DAY_MS;
use crate::rollup::{
    lat_column, Sums, Table, BUCKETS, DAILY, DAILY_KEYS, DAILY_KEY_TOTALS, HOURLY, HOURLY_MODELS,
    SUM_COLUMNS,
};
use crate::{Result, Store, StoreError};

/// A dimension usage can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Tenant,
    App,
    Key,
    Model,
    Provider,
}

impl Dim {
    pub fn parse(s: &str) -> Option<Dim> {
        Some(match s {
            "tenant" => Dim::Tenant,
            "app" => Dim::App,
            "key" => Dim::Key,
            "model" => Dim::Model,
            "provider" => Dim::Provider,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Tenant => "tenant",
            Dim::App => "app",
            Dim::Key => "key",
            Dim::Model => "model",
            Dim::Provider => "provider",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Dim::Key => "key_id",
            d => d.as_str(),
        }
    }
}

/// Time buckets of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

/// What [`Store::usage`] sums.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Unix ms; rounded down to the hour (the day for apps and keys).
    pub from: i64,
    /// Unix ms, exclusive; rounded up to the hour (the day for apps and keys).
    pub to: i64,
    pub interval: Option<Interval>,
    pub group_by: Vec<Dim>,
    pub tenant: Option<String>,
    /// Only these apps (a developer's own), when set.
    pub apps: Option<Vec<String>>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// A summed column (`cost_micro`, `requests`, `tokens_in`, …) to order
    /// by, largest first; else by period then dimensions.
    pub order_by: Option<&'static str>,
    /// At most this many rows (0 = all).
    pub limit: usize,
}

/// One group of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the hour or day (Unix ms), with an interval.
    pub period: Option<i64>,
    /// The grouped dimensions in `group_by` order; `None` = not set (e.g.
    /// a static key has no app).
    pub dims: Vec<Option<String>>,
    pub sums: Sums,
}

/// The longest range a query may span.
const MAX_RANGE_MS: i64 = 400 * DAY_MS;

impl Store {
    /// Sums the rollups per `q` (see the module docs).
    pub async fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageRow>> {
        let table = pick(q)?;
        let step = table.bucket_ms;
        let from = q.from - q.from.rem_euclid(step);
        let to = q.to + (step - q.to.rem_euclid(step)) % step;
        if to <= from {
            return Err(StoreError::Invalid("`to` must be after `from`".into()));
        }
        if to - from > MAX_RANGE_MS {
            return Err(StoreError::Invalid(
                "a usage query may span at most 400 days".into(),
            ));
        }
        let (sql, with_period) = usage_sql(table.name, from, to, q);
        sql.fetch_all(&self.pool, if with_period { row_p } else { row })
            .await
    }
}

/// The rollup a query reads: by app or key (grouped, filtered, or a
/// developer's apps) only the daily key rollup has them; else the daily
/// rollup for whole UTC days, the hourly one otherwise.
fn pick(q: &UsageQuery) -> Result<Table> {
    let keys = q.app.is_some()
        || q.key_id.is_some()
        || q.apps.is_some()
        || q.group_by.iter().any(|d| matches!(d, Dim::App | Dim::Key));
    let by_model = q.model.is_some()
        || q.provider.is_some()
        || q.group_by
            .iter()
            .any(|d| matches!(d, Dim::Model | Dim::Provider));
    let tenants = q.tenant.is_some() || q.group_by.contains(&Dim::Tenant);
    let whole_days = q.from.rem_euclid(DAY_MS) == 0 && q.to.rem_euclid(DAY_MS) == 0;
    let hourly = q.interval == Some(Interval::Hour) || !whole_days;
    match (keys, hourly, tenants) {
        (true, _, _) if q.interval == Some(Interval::Hour) => Err(StoreError::Invalid(
            "usage by app or key is kept by day: use `interval=day` (or none)".into(),
        )),
        (true, _, _) if by_model => Ok(DAILY_KEYS),
        (true, _, _) => Ok(DAILY_KEY_TOTALS),
        (false, false, _) => Ok(DAILY),
        (false, true, true) => Ok(HOURLY),
        (false, true, false) => Ok(HOURLY_MODELS),
    }
}

fn usage_sql(table: &str, from: i64, to: i64, q: &UsageQuery) -> (Sql, bool) {
    let mut sql = Sql::new(String::new());
    let mut conds = vec![
        format!("bucket >= {}", sql.push_arg(from)),
        format!("bucket < {}", sql.push_arg(to)),
    ];
    for (col, v) in [
        ("tenant", &q.tenant),
        ("app", &q.app),
        ("key_id", &q.key_id),
        ("model", &q.model),
        ("provider", &q.provider),
    ] {
        if let Some(v) = v {
            conds.push(format!("{col} = {}", sql.push_arg(v.as_str())));
        }
    }
    if let Some(apps) = &q.apps {
        let ps: Vec<String> = apps.iter().map(|a| sql.push_arg(a.as_str())).collect();
        conds.push(match ps.is_empty() {
            true => "1 = 0".to_owned(),
            false => format!("app IN ({})", ps.join(", ")),
        });
    }
    let period = match q.interval {
        Some(Interval::Hour) => Some("bucket".to_owned()),
        Some(Interval::Day) => Some(format!("(bucket / {DAY_MS}) * {DAY_MS}")),
        None => None,
    };
    let mut select = Vec::new();
    let mut group = Vec::new();
    if let Some(p) = &period {
        select.push(format!("{p} AS period"));
        group.push(p.clone());
    }
    for (i, d) in q.group_by.iter().enumerate() {
        select.push(format!("{} AS d{i}", d.column()));
        group.push(d.column().to_owned());
    }
    let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT) AS {c}");
    select.extend(SUM_COLUMNS.iter().map(|c| sum(c)));
    select.extend((0..BUCKETS).map(|i| sum(&lat_column(i))));
    let mut text = format!(
        "SELECT {} FROM {table} WHERE {}",
        select.join(", "),
        conds.join(" AND ")
    );
    if !group.is_empty() {
        text.push_str(&format!(" GROUP BY {}", group.join(", ")));
    }
    match q.order_by {
        Some(c) if SUM_COLUMNS.contains(&c) => {
            // Ties in group order, so a page is stable.
            let then: String = group.iter().map(|g| format!(", {g}")).collect();
            text.push_str(&format!(" ORDER BY {c} DESC{then}"));
        }
        _ if !group.is_empty() => text.push_str(&format!(" ORDER BY {}", group.join(", "))),
        _ => {}
    }
    if q.limit > 0 {
        text.push_str(&format!(" LIMIT {}", q.limit));
    }
    // Without a GROUP BY, an empty range still yields one row of NULL sums.
    if group.is_empty() {
        text = format!("SELECT * FROM ({text}) AS t WHERE requests IS NOT NULL");
    }
    sql.set_text(text);
    (sql, period.is_some())
}

/// A row without a period (up to five dimensions `d0..d4`).
fn row(r: &AnyRow) -> Result<UsageRow> {
    read(r, None)
}

fn row_p(r: &AnyRow) -> Result<UsageRow> {
    read(r, Some(r.try_get::<i64, _>("period")?))
}

fn read(r: &AnyRow, period: Option<i64>) -> Result<UsageRow> {
    let mut dims = Vec::new();
    for i in 0..5 {
        match r.try_get::<String, _>(format!("d{i}").as_str()) {
            Ok(v) => dims.push((!v.is_empty()).then_some(v)),
            Err(sqlx::Error::ColumnNotFound(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(UsageRow {
        period,
        dims,
        sums: Sums::from_row(r)?,
    })
}
