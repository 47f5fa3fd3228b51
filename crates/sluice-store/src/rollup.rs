//! Rollups of the request log, in five tables: `usage_hourly_models` (one
//! row per hour, model and provider), `usage_hourly` and `usage_daily` (per
//! hour or UTC day, tenant, model and provider), `usage_daily_keys` (per
//! UTC day, tenant, app, key, model and provider) and
//! `usage_daily_key_totals` (per UTC day, tenant, app and key), each with
//! counts, cache hits, tokens, cost, summed latencies and a latency
//! histogram. Apps and keys
//! are kept by day only: an hour × key table would hold nearly a row per
//! request at scale. A query reads the smallest table that answers it.
//! The writer sums each batch per table in Rust (`sum_batch`) and adds
//! the sums with one upsert per table (`upsert_json`) in the
//! transaction that stores the rows, so rollups and rows never disagree
//! and instances sharing a store add up.
//!
//! The histogram has [`BUCKETS`] buckets: `lat_i` counts requests whose
//! latency is below `LATENCY_EDGES_MS[i]` (and at or above the previous
//! edge); the last counts the rest. Bucket counts merge exactly across
//! hours and instances; a percentile read from them is exact to the bucket
//! (edges grow by ~1.6×) and interpolated within it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::db::json_rows;
use crate::request_log::DAY_MS;
use crate::{Backend, LogRecord, Result};

pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Upper edges (exclusive) of the latency buckets, in milliseconds.
pub const LATENCY_EDGES_MS: [i64; 24] = [
    1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 500, 800, 1_300, 2_000, 3_000, 5_000, 8_000,
    13_000, 20_000, 30_000, 60_000,
];
/// Buckets: one per edge and one past the last.
pub const BUCKETS: usize = LATENCY_EDGES_MS.len() + 1;

/// The bucket of a latency.
pub fn bucket_of(latency_us: i64) -> usize {
    LATENCY_EDGES_MS
        .iter()
        .position(|edge| latency_us < edge * 1000)
        .unwrap_or(BUCKETS - 1)
}

/// The `q`-quantile (0..=1) in milliseconds of a histogram, interpolated
/// linearly within its bucket; `None` when it is empty. The last bucket
/// (above 60 s) reports its lower edge.
pub fn quantile_ms(hist: &[i64; BUCKETS], q: f64) -> Option<f64> {
    let total: i64 = hist.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0.0;
    for (i, n) in hist.iter().enumerate() {
        let n = *n as f64;
        if n > 0.0 && seen + n >= rank {
            let lo = if i == 0 { 0 } else { LATENCY_EDGES_MS[i - 1] } as f64;
            let Some(hi) = LATENCY_EDGES_MS.get(i) else {
                return Some(lo);
            };
            return Some(lo + (*hi as f64 - lo) * ((rank - seen) / n));
        }
        seen += n;
    }
    None
}

/// What a rollup row sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: i64,
    pub errors_4xx: i64,
    pub errors_5xx: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub cost_micro: i64,
    pub latency_us: i64,
    pub upstream_us: i64,
    /// Requests answered from the response cache.
    pub cache_hits: i64,
    pub latency: [i64; BUCKETS],
}

/// The summed columns, in [`Sums::values_mut`] order.
pub(crate) const SUM_COLUMNS: [&str; 12] = [
    "requests",
    "errors_4xx",
    "errors_5xx",
    "tokens_in",
    "tokens_out",
    "cache_read",
    "cache_write",
    "reasoning",
    "cost_micro",
    "latency_us",
    "upstream_us",
    "cache_hits",
];

impl Sums {
    /// The summed values, in [`SUM_COLUMNS`] order.
    fn values_mut(&mut self) -> [&mut i64; 12] {
        [
            &mut self.requests,
            &mut self.errors_4xx,
            &mut self.errors_5xx,
            &mut self.tokens_in,
            &mut self.tokens_out,
            &mut self.cache_read,
            &mut self.cache_write,
            &mut self.reasoning,
            &mut self.cost_micro,
            &mut self.latency_us,
            &mut self.upstream_us,
            &mut self.cache_hits,
        ]
    }

    /// Reads the summed columns (`SUM(x) AS x`) of a query row.
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Sums> {
        use sqlx::Row;
        let mut s = Sums::default();
        for (slot, col) in s.values_mut().into_iter().zip(SUM_COLUMNS) {
            *slot = r.try_get::<i64, _>(col)?;
        }
        for (i, slot) in s.latency.iter_mut().enumerate() {
            *slot = r.try_get::<i64, _>(lat_column(i).as_str())?;
        }
        Ok(s)
    }
}

/// The column of latency bucket `i`.
pub(crate) fn lat_column(i: usize) -> String {
    format!("lat_{i:02}")
}

/// How finely a rollup table splits its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// By model and provider.
    Models,
    /// By tenant, model and provider.
    Tenants,
    /// By tenant, app, key, model and provider.
    Keys,
    /// By tenant, app and key.
    KeyTotals,
}

/// A rollup table: its name, its period and its split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    pub name: &'static str,
    pub bucket_ms: i64,
    pub split: Split,
}

/// Hourly, by model and provider (hourly charts over weeks stay small).
pub(crate) const HOURLY_MODELS: Table = Table {
    name: "usage_hourly_models",
    bucket_ms: HOUR_MS,
    split: Split::Models,
};
/// Hourly, by tenant, model and provider.
pub(crate) const HOURLY: Table = Table {
    name: "usage_hourly",
    bucket_ms: HOUR_MS,
    split: Split::Tenants,
};
/// Daily, by tenant, model and provider.
pub(crate) const DAILY: Table = Table {
    name: "usage_daily",
    bucket_ms: DAY_MS,
    split: Split::Tenants,
};
/// Daily, by tenant, app, key, model and provider.
pub(crate) const DAILY_KEYS: Table = Table {
    name: "usage_daily_keys",
    bucket_ms: DAY_MS,
    split: Split::Keys,
};
/// Daily, by tenant, app and key (all models): what queries by app or key
/// read unless they group or filter by model or provider.
pub(crate) const DAILY_KEY_TOTALS: Table = Table {
    name: "usage_daily_key_totals",
    bucket_ms: DAY_MS,
    split: Split::KeyTotals,
};
/// Every rollup, as the writer maintains them.
pub(crate) const TABLES: [Table; 5] = [HOURLY_MODELS, HOURLY, DAILY, DAILY_KEYS, DAILY_KEY_TOTALS];

impl Table {
    /// The key columns.
    fn dims(self) -> &'static [&'static str] {
        match self.split {
            Split::Models => &["bucket", "model", "provider"],
            Split::Tenants => &["bucket", "tenant", "model", "provider"],
            Split::Keys => &["bucket", "tenant", "app", "key_id", "model", "provider"],
            Split::KeyTotals => &["bucket", "tenant", "app", "key_id"],
        }
    }

    /// Every column, in order.
    fn columns(self) -> Vec<String> {
        let mut cols: Vec<String> = self.dims().iter().map(|c| c.to_string()).collect();
        cols.extend(SUM_COLUMNS.iter().map(|c| c.to_string()));
        cols.extend((0..BUCKETS).map(lat_column));
        cols
    }
}

/// `ON CONFLICT … DO UPDATE SET` adding every sum.
fn add_on_conflict(t: Table) -> String {
    let adds: Vec<String> = t.columns()[t.dims().len()..]
        .iter()
        .map(|c| format!("{c} = {}.{c} + excluded.{c}", t.name))
        .collect();
    format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        t.dims().join(", "),
        adds.join(", ")
    )
}

/// A rollup row's key: its bucket and the tenant, app, key, model and
/// provider (`""` for none, and for what the table does not split by).
type Key<'a> = (i64, [&'a str; 5]);

/// A batch summed for rollup `t`, in key order (so concurrent writers
/// lock rows in the same order). Summing in Rust costs far less than a
/// `GROUP BY` with 25 bucket expressions in the database, and leaves one
/// small row per key to upsert.
pub(crate) fn sum_batch<'a>(
    t: Table,
    records: impl Iterator<Item = &'a LogRecord>,
) -> BTreeMap<Key<'a>, Sums> {
    let mut out: BTreeMap<Key<'a>, Sums> = BTreeMap::new();
    for r in records {
        out.entry(key(t, r)).or_default().add(r);
    }
    out
}

fn key(t: Table, r: &LogRecord) -> Key<'_> {
    fn s(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
    let model = r.model.as_deref().or(r.model_requested.as_deref());
    let (tenant, app, key) = match t.split {
        Split::Models => ("", "", ""),
        Split::Tenants => (s(&r.tenant), "", ""),
        Split::Keys | Split::KeyTotals => (s(&r.tenant), s(&r.app), s(&r.key_id)),
    };
    let (model, provider) = match t.split {
        Split::KeyTotals => ("", ""),
        _ => (model.unwrap_or(""), s(&r.provider)),
    };
    (
        r.ts - r.ts.rem_euclid(t.bucket_ms),
        [tenant, app, key, model, provider],
    )
}

impl Sums {
    /// Counts one record.
    fn add(&mut self, r: &LogRecord) {
        self.requests += 1;
        self.errors_4xx += i64::from((400..500).contains(&r.status));
        self.errors_5xx += i64::from(r.status >= 500);
        self.tokens_in += r.tokens_in;
        self.tokens_out += r.tokens_out;
        self.cache_read += r.cache_read;
        self.cache_write += r.cache_write;
        self.reasoning += r.reasoning;
        self.cost_micro += r.cost_micro.unwrap_or(0);
        self.latency_us += r.latency_us;
        self.upstream_us += r.upstream_us;
        self.cache_hits += i64::from(r.cache_hit);
        self.latency[bucket_of(r.latency_us)] += 1;
    }
}

/// The statement adding summed rows to rollup `t`: its rows come as one
/// JSON argument (see [`sums_json`]).
pub(crate) fn upsert_json(backend: Backend, t: Table) -> String {
    let cols = t.columns();
    let typed: Vec<(&str, &str)> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let text = i > 0 && i < t.dims().len();
            (c.as_str(), if text { "TEXT" } else { "BIGINT" })
        })
        .collect();
    let (values, from) = json_rows(backend, &typed);
    let order: Vec<String> = (1..=t.dims().len()).map(|i| i.to_string()).collect();
    format!(
        "INSERT INTO {} ({}) SELECT {values} FROM {from} WHERE 1 = 1 ORDER BY {} {}",
        t.name,
        cols.join(", "),
        order.join(", "),
        add_on_conflict(t)
    )
}

/// The rows of [`upsert_json`]: each key's columns, then its sums.
pub(crate) fn sums_json(t: Table, sums: &BTreeMap<Key<'_>, Sums>) -> String {
    let rows: Vec<Value> = sums
        .iter()
        .map(|((bucket, dims), s)| {
            let mut row = vec![Value::from(*bucket)];
            let used: &[usize] = match t.split {
                Split::Models => &[3, 4],
                Split::Tenants => &[0, 3, 4],
                Split::Keys => &[0, 1, 2, 3, 4],
                Split::KeyTotals => &[0, 1, 2],
            };
            row.extend(used.iter().map(|i| Value::from(dims[*i])));
            let mut s = s.clone();
            row.extend(s.values_mut().into_iter().map(|v| Value::from(*v)));
            row.extend(s.latency.iter().map(|v| Value::from(*v)));
            Value::from(row)
        })
        .collect();
    Value::from(rows).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(999), 0);
        assert_eq!(bucket_of(1_000), 1);
        assert_eq!(bucket_of(59_999_999), 23);
        assert_eq!(bucket_of(60_000_000), 24);
        let mut h = [0; BUCKETS];
        assert_eq!(quantile_ms(&h, 0.5), None);
        // 100 requests between 50 and 80 ms: the median interpolates to 65.
        h[bucket_of(60_000)] = 100;
        assert_eq!(quantile_ms(&h, 0.5), Some(65.0));
        assert_eq!(quantile_ms(&h, 1.0), Some(80.0));
        // One slow outlier above 60 s is the p100, reported as 60 s.
        h[24] = 1;
        assert_eq!(quantile_ms(&h, 1.0), Some(60_000.0));
        let p99 = quantile_ms(&h, 0.99).unwrap();
        assert!((79.9..80.0).contains(&p99), "{p99}");
    }
}
