//! Routing's live state: what each deployment is doing now — requests in
//! flight, peak-EWMA latency, circuit breaker — and the balancer that
//! orders a model's deployments by it (`balance.rs`).
//!
//! Like every counter, this state lives outside the config snapshot
//! ([`Upstreams`], in the dispatcher), keyed by the deployment's stable
//! identity (model, provider, upstream model), so a reload keeps it; a
//! snapshot's `Deployment` finds its entry on first use and keeps the
//! handle (`Deployment::live`).

pub mod balance;
pub mod breaker;
pub mod latency;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use breaker::Breaker;
use latency::PeakEwma;

/// One deployment's live state.
#[derive(Debug, Default)]
pub struct Upstream {
    in_flight: AtomicU32,
    pub latency: PeakEwma,
    pub breaker: Breaker,
}

impl Upstream {
    /// Requests sent to it whose answer has not ended.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops (a stream's guard
    /// rides with the stream).
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight on a deployment.
#[derive(Debug)]
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every deployment's live state, by stable identity.
#[derive(Debug, Default)]
pub struct Upstreams {
    map: DashMap<Arc<str>, Arc<Upstream>>,
}

impl Upstreams {
    /// The state of deployment `key`, created on first use.
    pub fn get(&self, key: &Arc<str>) -> Arc<Upstream> {
        if let Some(u) = self.map.get(key) {
            return u.clone();
        }
        self.map.entry(key.clone()).or_default().clone()
    }

    /// Every deployment seen, with its state (for status and metrics).
    pub fn all(&self) -> Vec<(Arc<str>, Arc<Upstream>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A deployment's stable identity: `model/provider/upstream model`.
pub fn deployment_key(model: &str, provider: &str, upstream_model: &str) -> Arc<str> {
    format!("{model}/{provider}/{upstream_model}").into()
}
