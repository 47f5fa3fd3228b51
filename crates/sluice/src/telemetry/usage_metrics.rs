//! Cost and tokens by tenant and model (`sluice_cost_usd_total`,
//! `sluice_tenant_tokens_total`). Tenants are operator-made (config or
//! admin API), never client input, and still bounded: the first
//! [`MAX_TENANT_LABELS`] tenants seen get their own label value, any
//! beyond share `_other` (the request log has them all). End users, keys
//! and request ids are never label values.

use std::collections::HashSet;
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
}

impl UsageMetrics {
    pub fn register(registry: &mut Registry) -> UsageMetrics {
        let m = UsageMetrics {
            cost: Family::default(),
            tokens: Family::default(),
            tenants: RwLock::new(HashSet::new()),
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
        let tenant = self.tenant_label(tenant);
        if cost > 0 {
            let labels = TenantModelLabels {
                tenant: tenant.clone(),
                model: model.clone(),
            };
            self.cost.get_or_create(&labels).inc_by(cost as f64 / 1e6);
        }
        for (direction, n) in [("input", usage.input), ("output", usage.output)] {
            if n > 0 {
                let labels = TenantTokenLabels {
                    tenant: tenant.clone(),
                    model: model.clone(),
                    direction,
                };
                self.tokens.get_or_create(&labels).inc_by(n);
            }
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
