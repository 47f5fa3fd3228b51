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
pub mod probe;
pub mod retry;
pub mod routes;
pub mod usage;
pub mod window;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use breaker::Breaker;
use latency::PeakEwma;
use retry::RetryBudget;

use crate::config::raw::FailureClass;
use crate::error::{ErrorKind, GatewayError};

/// One deployment's live state.
#[derive(Debug, Default)]
pub struct Upstream {
    in_flight: AtomicU32,
    pub latency: PeakEwma,
    pub breaker: Breaker,
    /// Room left under its caps and the provider's limits.
    pub usage: usage::Usage,
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

/// Every deployment's live state, by stable identity, and every model's
/// retry budget, by name.
#[derive(Debug, Default)]
pub struct Upstreams {
    map: DashMap<Arc<str>, Arc<Upstream>>,
    budgets: DashMap<Arc<str>, Arc<RetryBudget>>,
}

impl Upstreams {
    /// The state of deployment `key`, created on first use.
    pub fn get(&self, key: &Arc<str>) -> Arc<Upstream> {
        if let Some(u) = self.map.get(key) {
            return u.clone();
        }
        self.map.entry(key.clone()).or_default().clone()
    }

    /// The retry budget of model `name`, created on first use.
    pub fn budget(&self, name: &Arc<str>) -> Arc<RetryBudget> {
        if let Some(b) = self.budgets.get(name) {
            return b.clone();
        }
        self.budgets.entry(name.clone()).or_default().clone()
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

/// A set of failure classes (`fallbacks[].on`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSet(u16);

impl ClassSet {
    /// What a fallback given by name alone is tried on: the failures a
    /// retry elsewhere may cure.
    pub const RETRYABLE: ClassSet = ClassSet(
        1 << FailureClass::RateLimited as u16
            | 1 << FailureClass::Overloaded as u16
            | 1 << FailureClass::Timeout as u16
            | 1 << FailureClass::Connection as u16
            | 1 << FailureClass::ServerError as u16,
    );

    pub fn of(classes: &[FailureClass]) -> ClassSet {
        ClassSet(classes.iter().fold(0, |m, c| m | 1 << *c as u16))
    }

    pub fn contains(self, c: FailureClass) -> bool {
        self.0 & (1 << c as u16) != 0
    }
}

/// The failure class of an error, if it is an upstream's failure.
pub fn failure_class(e: &GatewayError) -> Option<FailureClass> {
    use sluice_providers::ErrorClass as E;
    match e.kind {
        ErrorKind::Upstream(c) => Some(match c {
            E::RateLimited => FailureClass::RateLimited,
            E::Overloaded => FailureClass::Overloaded,
            E::Timeout => FailureClass::Timeout,
            E::Connection => FailureClass::Connection,
            E::ServerError => FailureClass::ServerError,
            E::ContextLength => FailureClass::ContextLengthExceeded,
            E::ContentFiltered => FailureClass::ContentFiltered,
            E::Auth => FailureClass::Auth,
            E::BadRequest => return None,
        }),
        ErrorKind::BadUpstreamResponse => Some(FailureClass::ServerError),
        ErrorKind::Timeout => Some(FailureClass::Timeout),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_is_what_a_name_alone_falls_back_on() {
        let r = ClassSet::RETRYABLE;
        assert!(r.contains(FailureClass::RateLimited) && r.contains(FailureClass::ServerError));
        assert!(
            !r.contains(FailureClass::ContextLengthExceeded) && !r.contains(FailureClass::Auth)
        );
        let s = ClassSet::of(&[FailureClass::ContextLengthExceeded]);
        assert!(s.contains(FailureClass::ContextLengthExceeded));
        assert!(!s.contains(FailureClass::Timeout));
    }
}
