//! Active health checks (`providers.X.health_check`): every `interval`, a
//! cheap call to the provider — its model list by default (the adapter's
//! `probe_request`), answered within `timeout` with a 2xx — tells every
//! deployment on that provider whether it is up. A failed probe opens
//! their circuit breakers at once; a good one closes them at once (the
//! probe is the half-open trial, so no request pays for it). The built-in
//! `mock` provider has no network and is always up. Runs off the request
//! path, on the current snapshot each round, so a reload applies at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_providers::Target;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::breaker::Phase;
use crate::snapshot::{Backend, HealthCheck, Provider, Snapshot};
use crate::state::App;

/// How often the task looks for probes that are due.
const TICK: Duration = Duration::from_secs(1);

/// Starts the probes; the task ends when `stop` turns true.
pub fn spawn(app: App, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut due: HashMap<Arc<str>, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let snap = app.snapshot.load_full();
            let now = Instant::now();
            for (provider, target, check) in probed(&snap) {
                let next = due.entry(provider.name.clone()).or_insert(now);
                if now < *next {
                    continue;
                }
                *next = now + check.interval;
                let (app, snap) = (app.clone(), snap.clone());
                tokio::spawn(async move {
                    let ok = probe(&app, &provider, &target, &check).await;
                    apply(&app, &snap, &provider.name, ok);
                });
            }
        }
    })
}

/// Each provider with a health check, with the target of one of its
/// deployments (the base URL and credentials are the provider's).
fn probed(snap: &Snapshot) -> Vec<(Arc<Provider>, Target, HealthCheck)> {
    let mut out: Vec<(Arc<Provider>, Target, HealthCheck)> = Vec::new();
    for model in snap.models.values() {
        for d in &model.deployments {
            let Some(check) = &d.provider.health else {
                continue;
            };
            if !out.iter().any(|(p, _, _)| p.name == d.provider.name) {
                out.push((d.provider.clone(), d.target.clone(), check.clone()));
            }
        }
    }
    out
}

/// One probe: a 2xx within the timeout.
async fn probe(app: &App, provider: &Provider, target: &Target, check: &HealthCheck) -> bool {
    let Backend::Http(adapter) = &provider.backend else {
        return true;
    };
    match adapter.probe_request(target, check.path.as_deref()) {
        Ok(up) => app.dispatcher.probe(up, check.timeout).await,
        Err(e) => {
            tracing::warn!(provider = &*provider.name, error = %e, "health check: the probe request cannot be built");
            false
        }
    }
}

/// The probe's outcome on every deployment of `provider` whose model has
/// a breaker.
fn apply(app: &App, snap: &Snapshot, provider: &str, ok: bool) {
    let now = Instant::now();
    for model in snap.models.values() {
        let Some(spec) = &model.breaker else {
            continue;
        };
        for d in model
            .deployments
            .iter()
            .filter(|d| &*d.provider.name == provider)
        {
            let live = d.live(&app.dispatcher.upstreams);
            match live.breaker.probe(spec, ok, now) {
                Some(Phase::Open) => tracing::warn!(
                    deployment = &*d.key,
                    "health check failed: the deployment leaves the rotation"
                ),
                Some(Phase::Closed) => tracing::info!(
                    deployment = &*d.key,
                    "health check passed: the deployment is back"
                ),
                _ => {}
            }
        }
    }
}
