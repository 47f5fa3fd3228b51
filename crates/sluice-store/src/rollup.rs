//! Rollups of the request log, in four tables: `usage_hourly_models` (one
//! row per hour, model and provider), `usage_hourly` and `usage_daily` (per
//! hour or UTC day, tenant, model and provider) and `usage_daily_keys` (per
//! UTC day, tenant, app, key, model and provider), each with counts,
//! tokens, cost, summed latencies and a latency histogram. Apps and keys
//! are kept by day only: an hour × key table would hold nearly a row per
//! request at scale. A query reads the smallest table that answers it. [`upsert_from`] is the one statement per table that sums a
//! batch (the writer's staging table) and adds it, in the writer's
//! transaction, so rollups and rows never disagree and instances sharing
//! a store add up.
//!
//! The histogram has [`BUCKETS`] buckets: `lat_i` counts requests whose
//! latency is below `LATENCY_EDGES_MS[i]` (and at or above the previous
//! edge); the last counts the rest. Bucket counts merge exactly across
//! hours and instances; a percentile read from them is exact to the bucket
//! (edges grow by ~1.6×) and interpolated within it.

use crate::request_log::DAY_MS;
use crate::Result;

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
    pub latency: [i64; BUCKETS],
}

/// The summed columns, in [`Sums::values`] order.
pub(crate) const SUM_COLUMNS: [&str; 11] = [
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
];

impl Sums {
    fn values_mut(&mut self) -> [&mut i64; 11] {
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
/// Every rollup, as the writer maintains them.
pub(crate) const TABLES: [Table; 4] = [HOURLY_MODELS, HOURLY, DAILY, DAILY_KEYS];

impl Table {
    /// The key columns.
    fn dims(self) -> &'static [&'static str] {
        match self.split {
            Split::Models => &["bucket", "model", "provider"],
            Split::Tenants => &["bucket", "tenant", "model", "provider"],
            Split::Keys => &["bucket", "tenant", "app", "key_id", "model", "provider"],
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

/// The statement adding the records of `source` (request-log columns)
/// to rollup `t`. The latency buckets are computed from the same edges as
/// [`bucket_of`].
pub(crate) fn upsert_from(source: &str, t: Table) -> String {
    let mut dims = vec![format!("ts - ts % {}", t.bucket_ms)];
    if t.split != Split::Models {
        dims.push("COALESCE(tenant, '')".into());
    }
    if t.split == Split::Keys {
        dims.push("COALESCE(app, '')".into());
        dims.push("COALESCE(key_id, '')".into());
    }
    dims.push("COALESCE(model, model_requested, '')".into());
    dims.push("COALESCE(provider, '')".into());
    let mut sums: Vec<String> = vec![
        "COUNT(*)".into(),
        "SUM(CASE WHEN status >= 400 AND status < 500 THEN 1 ELSE 0 END)".into(),
        "SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END)".into(),
        "SUM(tokens_in)".into(),
        "SUM(tokens_out)".into(),
        "SUM(cache_read)".into(),
        "SUM(cache_write)".into(),
        "SUM(reasoning)".into(),
        "SUM(COALESCE(cost_micro, 0))".into(),
        "SUM(latency_us)".into(),
        "SUM(upstream_us)".into(),
    ];
    for i in 0..BUCKETS {
        let lo = (i > 0).then(|| LATENCY_EDGES_MS[i - 1] * 1000);
        let hi = LATENCY_EDGES_MS.get(i).map(|e| e * 1000);
        let cond = match (lo, hi) {
            (None, Some(hi)) => format!("latency_us < {hi}"),
            (Some(lo), Some(hi)) => format!("latency_us >= {lo} AND latency_us < {hi}"),
            (Some(lo), None) => format!("latency_us >= {lo}"),
            (None, None) => "1 = 1".into(),
        };
        sums.push(format!("SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"));
    }
    // Groups in key order: concurrent writers lock rows in the same order.
    format!(
        "INSERT INTO {} ({}) SELECT {}, {} FROM {source} WHERE 1 = 1 GROUP BY {} ORDER BY {} {}",
        t.name,
        t.columns().join(", "),
        dims.join(", "),
        sums.join(", "),
        dims.join(", "),
        dims.join(", "),
        add_on_conflict(t)
    )
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
