//! Persisted budget spend: one `spend` row per (scope, period, period
//! start) holding millionths of a dollar. Gateways keep the live counters in
//! memory and flush what they added since the last flush with
//! [`Store::add_spend`], an additive upsert, so instances sharing the store
//! never overwrite each other's spend; at startup they read the current
//! periods back with [`Store::spend_since`].
//!
//! Spend is accounting, not an admin change: it is neither audited nor
//! counted in the revision (directory pollers must not reload on it).

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Sql;
use crate::ids::now_ms;
use crate::{Result, Store, StoreError};

/// Spend added to one budget counter since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendDelta {
    /// What the budget is attached to: `tenant:acme`, `app:<id>`,
    /// `key:<id>`, `model:smart`, `global`.
    pub scope: String,
    /// `day`, `week` or `month`.
    pub period: String,
    /// Unix milliseconds of the UTC start of the period.
    pub period_start: i64,
    /// Millionths of a dollar (negative corrects an earlier delta).
    pub micro_usd: i64,
}

/// One stored budget counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    pub scope: String,
    pub period: String,
    pub period_start: i64,
    /// Total spend of the period, in millionths of a dollar.
    pub micro_usd: i64,
    /// Unix milliseconds of the last delta added.
    pub updated_at: i64,
}

/// The periods a `spend` row may have (the table checks it too).
const PERIODS: &[&str] = &["day", "week", "month"];

/// Rows per `INSERT` (5 arguments each, far below every bind limit).
const ROWS_PER_STATEMENT: usize = 100;

const SPEND_COLUMNS: &str = "scope, period, period_start, micro_usd, updated_at";

/// A counter's identity: the primary key.
type CounterKey<'a> = (&'a str, &'a str, i64);

impl Store {
    /// Adds every delta to its counter (creating missing ones), all in one
    /// transaction. Deltas of the same counter are summed first and
    /// counters are written in key order, so concurrent flushes on Postgres
    /// lock rows in the same order and cannot deadlock.
    pub async fn add_spend(&self, deltas: &[SpendDelta]) -> Result<()> {
        let merged = merge(deltas)?;
        if merged.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = merged.into_iter().collect();
        let at = now_ms();
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            upsert(chunk, at).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every counter whose period starts at or after `since_ms` (to load
    /// the current periods at startup), ordered by scope, period and start.
    pub async fn spend_since(&self, since_ms: i64) -> Result<Vec<SpendRow>> {
        Sql::new(format!(
            "SELECT {SPEND_COLUMNS} FROM spend WHERE period_start >= $1 \
             ORDER BY scope, period, period_start"
        ))
        .bind(since_ms)
        .fetch_all(&self.pool, spend_row)
        .await
    }

    /// One counter's total, 0 when it has none.
    pub async fn spend_of(&self, scope: &str, period: &str, period_start: i64) -> Result<i64> {
        let row = Sql::new(format!(
            "SELECT {SPEND_COLUMNS} FROM spend \
             WHERE scope = $1 AND period = $2 AND period_start = $3"
        ))
        .bind(scope)
        .bind(period)
        .bind(period_start)
        .fetch_optional(&self.pool, spend_row)
        .await?;
        Ok(row.map_or(0, |r| r.micro_usd))
    }
}

/// Sums the deltas per counter, in key order; refuses unknown periods and
/// sums beyond i64.
fn merge(deltas: &[SpendDelta]) -> Result<BTreeMap<CounterKey<'_>, i64>> {
    let mut merged: BTreeMap<CounterKey<'_>, i64> = BTreeMap::new();
    for d in deltas {
        if !PERIODS.contains(&d.period.as_str()) {
            return Err(StoreError::Invalid(format!(
                "spend period must be day, week or month, not `{}`",
                d.period
            )));
        }
        let sum = merged
            .entry((d.scope.as_str(), d.period.as_str(), d.period_start))
            .or_insert(0);
        *sum = sum
            .checked_add(d.micro_usd)
            .ok_or_else(|| StoreError::Invalid(format!("spend of `{}` overflows", d.scope)))?;
    }
    Ok(merged)
}

/// One multi-row additive upsert.
fn upsert(rows: &[(CounterKey<'_>, i64)], at: i64) -> Sql {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let n = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            )
        })
        .collect();
    let text = format!(
        "INSERT INTO spend ({SPEND_COLUMNS}) VALUES {} \
         ON CONFLICT (scope, period, period_start) DO UPDATE SET \
         micro_usd = spend.micro_usd + excluded.micro_usd, updated_at = excluded.updated_at",
        values.join(", ")
    );
    rows.iter()
        .fold(Sql::new(text), |sql, ((scope, period, start), micro)| {
            sql.bind(*scope)
                .bind(*period)
                .bind(*start)
                .bind(*micro)
                .bind(at)
        })
}

fn spend_row(row: &AnyRow) -> Result<SpendRow> {
    Ok(SpendRow {
        scope: row.try_get("scope")?,
        period: row.try_get("period")?,
        period_start: row.try_get("period_start")?,
        micro_usd: row.try_get("micro_usd")?,
        updated_at: row.try_get("updated_at")?,
    })
}
