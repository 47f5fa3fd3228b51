//! Cost and tokens by tenant and model (`sluice_cost_usd_total`,
//! `sluice_tenant_tokens_total`). Tenants are operator-made (config or
//! admin API), never client input, and still bounded: the first
//! [`MAX_TENANT_LABELS`] tenants seen get their own label value, any
//! beyond share `_other` (the request log has them all). End users, keys
//! and request ids are never label values.
//!
//! Each thread keeps the series handles of the (tenant, model) pairs it
//! has counted, keyed by the addresses of the two names' `Arc`s (the entry
//! holds clones, so an address cannot be reused while it is there): a
//! request then costs no label hashing and no lock.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sluice_types::TokenUsage;

use super::metrics::Label;

/// Distinct tenant label values, at most.
pub const MAX_TENANT_LABELS: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantModelLabels {
    pub tenant: Label,
    pub model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantTokenLabels {
    pub tenant: Label,
    pub model: Label,
    pub direction: &'static str,
}

pub struct UsageMetrics {
    cost: Family<TenantModelLabels, Counter<f64, AtomicU64>>,
    tokens: Family<TenantTokenLabels, Counter>,
    tenants: RwLock<HashSet<Arc<str>>>,
    /// Tells the per-thread caches apart (tests build several registries).
    id: usize,
}

/// A (tenant, model) pair's series.
struct Handles {
    _names: (Option<Arc<str>>, Arc<str>),
    cost: Counter<f64, AtomicU64>,
    input: Counter,
    output: Counter,
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Cached pairs per thread, at most; past it the cache starts afresh.
const CACHED_PAIRS: usize = 4096;

type PairKey = (usize, usize, usize);

thread_local! {
    static CACHE: RefCell<HashMap<PairKey, Handles, BuildHasherDefault<AddrHasher>>> =
        RefCell::new(HashMap::default());
}

/// Hashes the addresses of a [`PairKey`] (already unique: a multiply mixes
/// them enough).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl UsageMetrics {
    pub fn register(registry: &mut Registry) -> UsageMetrics {
        let m = UsageMetrics {
            cost: Family::default(),
            tokens: Family::default(),
            tenants: RwLock::new(HashSet::new()),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        registry.register(
            "cost_usd",
            "USD charged at the serving model's price, by tenant (`none` for keys without one, `_other` past the label limit) and served model",
            m.cost.clone(),
        );
        registry.register(
            "tenant_tokens",
            "Tokens by tenant, served model and direction (input, output)",
            m.tokens.clone(),
        );
        m
    }

    /// Counts one answered request's cost and tokens.
    pub fn record(
        &self,
        tenant: Option<&Arc<str>>,
        model: &Label,
        usage: &TokenUsage,
        cost_micro: Option<u64>,
    ) {
        let cost = cost_micro.unwrap_or(0);
        if cost == 0 && usage.input == 0 && usage.output == 0 {
            return;
        }
        let key = (
            self.id,
            tenant.map_or(0, |t| Arc::as_ptr(t) as *const u8 as usize),
            Arc::as_ptr(&model.0) as *const u8 as usize,
        );
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if !cache.contains_key(&key) {
                if cache.len() >= CACHED_PAIRS {
                    cache.clear();
                }
                cache.insert(key, self.handles(tenant, model));
            }
            if let Some(h) = cache.get(&key) {
                if cost > 0 {
                    h.cost.inc_by(cost as f64 / 1e6);
                }
                if usage.input > 0 {
                    h.input.inc_by(usage.input);
                }
                if usage.output > 0 {
                    h.output.inc_by(usage.output);
                }
            }
        });
    }

    /// A pair's series, looked up in the families.
    fn handles(&self, tenant: Option<&Arc<str>>, model: &Label) -> Handles {
        let t = self.tenant_label(tenant);
        let tokens = |direction| {
            let labels = TenantTokenLabels {
                tenant: t.clone(),
                model: model.clone(),
                direction,
            };
            self.tokens.get_or_create(&labels).clone()
        };
        let labels = TenantModelLabels {
            tenant: t.clone(),
            model: model.clone(),
        };
        Handles {
            _names: (tenant.cloned(), model.0.clone()),
            cost: self.cost.get_or_create(&labels).clone(),
            input: tokens("input"),
            output: tokens("output"),
        }
    }

    /// The tenant's label value (bounded, see the module docs).
    pub fn tenant_label(&self, tenant: Option<&Arc<str>>) -> Label {
        let Some(t) = tenant else {
            return Label::from("none");
        };
        if self.known().contains(t) {
            return Label(t.clone());
        }
        let mut set = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        if set.contains(t) || set.len() < MAX_TENANT_LABELS {
            set.insert(t.clone());
            Label(t.clone())
        } else {
            Label::from("_other")
        }
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, HashSet<Arc<str>>> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_labels_are_bounded() {
        let m = UsageMetrics::register(&mut Registry::default());
        let names: Vec<Arc<str>> = (0..MAX_TENANT_LABELS + 50)
            .map(|i| Arc::from(format!("t{i}")))
            .collect();
        let labels: HashSet<String> = names
            .iter()
            .map(|n| m.tenant_label(Some(n)).0.to_string())
            .collect();
        assert_eq!(labels.len(), MAX_TENANT_LABELS + 1);
        assert!(labels.contains("_other"));
        // Those seen first keep their own label.
        assert_eq!(&*m.tenant_label(Some(&names[3])).0, "t3");
        assert_eq!(&*m.tenant_label(None).0, "none");
    }
}
