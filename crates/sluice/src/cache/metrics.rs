//! The response cache's metrics: lookups by model and result
//! (`sluice_cache_requests_total{model, result="hit|miss"}`), answers
//! stored or skipped as too large (`sluice_cache_stores_total{result}`),
//! and the entries and bytes held (gauges, read at scrape time).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::telemetry::metrics::Label;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub model: Label,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub result: &'static str,
}

pub struct CacheMetrics {
    pub requests: Family<LookupLabels, Counter>,
    pub stores: Family<StoreLabels, Counter>,
    pub entries: Gauge,
    pub bytes: Gauge,
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics {
            requests: Family::default(),
            stores: Family::default(),
            entries: Gauge::default(),
            bytes: Gauge::default(),
        };
        registry.register(
            "cache_requests",
            "Response cache lookups by serving model and result (hit, miss)",
            m.requests.clone(),
        );
        registry.register(
            "cache_stores",
            "Answers offered to the response cache: stored, or skipped as too_large",
            m.stores.clone(),
        );
        registry.register(
            "cache_entries",
            "Answers held in the response cache",
            m.entries.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes of the answers held in the response cache (JSON size plus overhead)",
            m.bytes.clone(),
        );
        m
    }

    /// The series counting `model`'s hits or misses (kept on the model,
    /// `Model::cache_lookups`).
    pub fn lookup_counter(&self, model: &std::sync::Arc<str>, hit: bool) -> Counter {
        let result = if hit { "hit" } else { "miss" };
        self.requests
            .get_or_create(&LookupLabels {
                model: Label(model.clone()),
                result,
            })
            .clone()
    }

    pub fn stored(&self, result: &'static str) {
        self.stores.get_or_create(&StoreLabels { result }).inc();
    }

    /// The gauges, from `(entries, bytes)`.
    pub fn set_size(&self, (entries, bytes): (u64, u64)) {
        self.entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
