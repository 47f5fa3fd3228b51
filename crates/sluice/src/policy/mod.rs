//! Resource policies enforced on the request path, one per file: `rate.rs`
//! (request and token rate limits), `budget.rs` (USD budgets: cost,
//! periods, the spend ledger and its persistence), `queue.rs` (the
//! admission queue of a `concurrency` policy: slots, priority classes, fair
//! queueing by flow), `concurrency.rs` (the queues of a request's levels).
//! This module holds what they share: the scope a rule
//! is attached to, the stable rollout hash, and the decision a policy
//! returns for one request.
//!
//! Rules are resolved from the config when the snapshot (static keys,
//! models) or the directory (store keys) is built; their live state
//! (counters) lives outside both, keyed by scope and rule, so a reload that
//! keeps a rule keeps its state. Each rule keeps a direct [`handle::Handle`]
//! on its state, so a request under it needs no map lookup.

pub mod admission;
pub mod budget;
pub mod concurrency;
pub mod few;
pub mod handle;
pub mod queue;
pub mod rate;
pub mod shared_state;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::GatewayError;

/// The level a rule is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Global,
    Tenant,
    App,
    Key,
    Model,
}

impl ScopeKind {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Global => "global",
            ScopeKind::Tenant => "tenant",
            ScopeKind::App => "app",
            ScopeKind::Key => "key",
            ScopeKind::Model => "model",
        }
    }
}

/// Where a rule is attached: its level, a stable id within the level, and
/// how messages name it.
#[derive(Clone, Debug)]
pub struct Scope {
    pub kind: ScopeKind,
    /// Tenant name, app id, key id (`cfg:<name>` for static keys), model
    /// name; empty for the global level. Everything under one scope id
    /// shares its counters.
    pub id: Arc<str>,
    /// For messages and logs: "key `ci`", "the gateway-wide limit".
    pub label: Arc<str>,
}

impl Scope {
    pub fn global() -> Scope {
        Scope::new(ScopeKind::Global, "", "the gateway-wide limit".into())
    }

    /// Keyed by name: config keys naming `tenant: acme` and store keys of
    /// the store tenant `acme` share its counters.
    pub fn tenant(name: &str) -> Scope {
        Scope::new(ScopeKind::Tenant, name, format!("tenant `{name}`"))
    }

    pub fn app(id: &str, name: &str) -> Scope {
        Scope::new(ScopeKind::App, id, format!("app `{name}`"))
    }

    /// `id` is the store key id, or `cfg:<name>` for a static key.
    pub fn key(id: &str, name: &str) -> Scope {
        Scope::new(ScopeKind::Key, id, format!("key `{name}`"))
    }

    pub fn model(name: &str) -> Scope {
        Scope::new(ScopeKind::Model, name, format!("model `{name}`"))
    }

    fn new(kind: ScopeKind, id: &str, label: String) -> Scope {
        Scope {
            kind,
            id: id.into(),
            label: label.into(),
        }
    }
}

/// Rollout buckets: a caller is in `0..ROLLOUT_BUCKETS` (hundredths of a
/// percent), so `rollout: 12.5` covers buckets `0..1250`.
pub const ROLLOUT_BUCKETS: u16 = 10_000;

/// The caller's rollout bucket: a stable hash (SHA-256, the same on every
/// instance and across restarts) of its key id, or app id for app callers.
pub fn rollout_bucket(id: &str) -> u16 {
    let digest = Sha256::digest(id.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    (head % u64::from(ROLLOUT_BUCKETS)) as u16
}

/// A policy's `rollout` percentage as the first bucket it does not cover.
pub fn rollout_cut(percent: Option<f64>) -> u16 {
    let p = percent.unwrap_or(100.0).clamp(0.0, 100.0);
    (p * f64::from(ROLLOUT_BUCKETS) / 100.0).round() as u16
}

/// What a policy decided for one request: what it records either way (log
/// fields, response headers), and the refusal, if it refused.
#[derive(Debug)]
pub struct Decision<N> {
    pub note: N,
    pub refusal: Option<GatewayError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_buckets_are_stable_and_spread() {
        assert_eq!(rollout_bucket("key_1"), rollout_bucket("key_1"));
        let under = (0..10_000)
            .filter(|i| rollout_bucket(&format!("key_{i}")) < rollout_cut(Some(25.0)))
            .count();
        assert!(
            (2_200..2_800).contains(&under),
            "{under} of 10000 under 25%"
        );
        assert_eq!(rollout_cut(None), ROLLOUT_BUCKETS);
        assert_eq!(rollout_cut(Some(0.0)), 0);
        assert_eq!(rollout_cut(Some(12.5)), 1250);
    }
}
