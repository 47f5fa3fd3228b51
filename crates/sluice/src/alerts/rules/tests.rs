//! The rule set end to end without sockets: outcomes in, deduplicated
//! events out, with an explicit clock and a real snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::telemetry::metrics::Metrics;

fn snapshot(rules: &str) -> Snapshot {
    let text = format!(
        "providers: {{ p: {{ kind: mock }} }}\n\
         models: {{ smart: {{ deployments: [ {{ provider: p, model: m }} ] }}, cheap: {{ deployments: [ {{ provider: p, model: m }} ] }} }}\n\
         alerts:\n  webhook: {{ url: \"http://127.0.0.1:9/h\", secret: whsec-0123456789abcdef }}\n  evaluate_every: 1s\n  rules:\n{rules}"
    );
    let cfg = crate::config::load_str(&text, std::path::Path::new("t.yaml"), &|_| None).unwrap();
    Snapshot::build(&cfg, 1).unwrap()
}

fn outcome(model: &str, status: u16, ms: u64) -> Outcome {
    Outcome {
        model: Some(Arc::from(model)),
        tenant: None,
        status,
        latency: Duration::from_millis(ms),
        cost_micro_usd: 0,
    }
}

fn kinds(events: &[AlertEvent]) -> Vec<(String, &'static str, String)> {
    events
        .iter()
        .map(|e| {
            let r = e.rule.as_ref().unwrap();
            (r.rule.clone(), r.state.as_str(), e.scope_id.clone())
        })
        .collect()
}

#[test]
fn error_rate_fires_once_per_model_then_resolves() {
    let snap = snapshot(
        "    - { name: errs, kind: error_rate, above: 0.2, window: 10s, min_requests: 10 }\n",
    );
    let metrics = Metrics::new();
    let mut rules = Rules::new(metrics.alert_rules_firing.clone());
    let ups = Upstreams::default();
    let t0 = Instant::now();
    rules.sync(&snap, t0);
    for i in 0..10 {
        rules.observe(&outcome("smart", if i < 5 { 502 } else { 200 }, 10), t0);
        rules.observe(&outcome("cheap", 200, 10), t0);
    }
    let ev = rules.evaluate(&snap, &ups, t0 + Duration::from_secs(1));
    assert_eq!(kinds(&ev), [("errs".into(), "firing", "smart".into())]);
    let r = ev[0].rule.as_ref().unwrap();
    assert_eq!(
        (r.value, r.threshold, r.requests),
        (Some(0.5), Some(0.2), Some(10))
    );
    assert_eq!(ev[0].kind, AlertKind::ErrorRate);
    assert!(metrics
        .render()
        .contains(r#"sluice_alert_rules_firing{rule="errs"} 1"#));
    // Still failing: no second event.
    assert!(rules
        .evaluate(&snap, &ups, t0 + Duration::from_secs(2))
        .is_empty());
    // The window slides past the errors: resolved once.
    let ev = rules.evaluate(&snap, &ups, t0 + Duration::from_secs(11));
    assert_eq!(kinds(&ev), [("errs".into(), "resolved", "smart".into())]);
    assert!(rules
        .evaluate(&snap, &ups, t0 + Duration::from_secs(12))
        .is_empty());
    assert!(metrics
        .render()
        .contains(r#"sluice_alert_rules_firing{rule="errs"} 0"#));
}

#[test]
fn a_model_filter_and_min_requests_hold() {
    let snap = snapshot("    - { name: e, kind: error_rate, model: cheap, above: 0.1, window: 10s, min_requests: 5 }\n");
    let mut rules = Rules::new(Metrics::new().alert_rules_firing.clone());
    let t0 = Instant::now();
    rules.sync(&snap, t0);
    for _ in 0..20 {
        rules.observe(&outcome("smart", 500, 1), t0);
    }
    for _ in 0..4 {
        rules.observe(&outcome("cheap", 500, 1), t0);
    }
    let ups = Upstreams::default();
    assert!(rules
        .evaluate(&snap, &ups, t0 + Duration::from_secs(1))
        .is_empty());
    rules.observe(&outcome("cheap", 500, 1), t0 + Duration::from_secs(1));
    let ev = rules.evaluate(&snap, &ups, t0 + Duration::from_secs(2));
    assert_eq!(kinds(&ev), [("e".into(), "firing", "cheap".into())]);
}

#[test]
fn latency_p99_fires_on_slow_answers() {
    let snap = snapshot(
        "    - { name: slow, kind: latency_p99, above: 500ms, window: 10s, min_requests: 10 }\n",
    );
    let mut rules = Rules::new(Metrics::new().alert_rules_firing.clone());
    let t0 = Instant::now();
    rules.sync(&snap, t0);
    for i in 0..50 {
        rules.observe(&outcome("smart", 200, if i < 45 { 20 } else { 900 }), t0);
    }
    let ev = rules.evaluate(&snap, &Upstreams::default(), t0 + Duration::from_secs(1));
    assert_eq!(kinds(&ev), [("slow".into(), "firing", "smart".into())]);
    let r = ev[0].rule.as_ref().unwrap();
    assert!(r.value.unwrap() >= 0.9 && r.value.unwrap() < 1.0, "{r:?}");
    assert_eq!((r.threshold, r.unit), (Some(0.5), "seconds"));
}

#[test]
fn a_breaker_opening_fires_once_and_closing_resolves() {
    let snap = snapshot("    - { name: brk, kind: breaker_open, model: smart }\n");
    let mut rules = Rules::new(Metrics::new().alert_rules_firing.clone());
    let ups = Upstreams::default();
    let t0 = Instant::now();
    assert!(rules.evaluate(&snap, &ups, t0).is_empty());
    let dep = &snap.models.get("smart").unwrap().deployments[0];
    let spec = crate::routing::breaker::BreakerSpec {
        failures: 1,
        ..Default::default()
    };
    let live = dep.live(&ups);
    live.breaker.record(&spec, false, false, t0);
    let ev = rules.evaluate(&snap, &ups, t0 + Duration::from_secs(1));
    assert_eq!(kinds(&ev), [("brk".into(), "firing", "smart/p/m".into())]);
    assert_eq!(ev[0].rule.as_ref().unwrap().phase, Some("open"));
    assert!(rules
        .evaluate(&snap, &ups, t0 + Duration::from_secs(2))
        .is_empty());
    live.breaker.probe(&spec, true, t0 + Duration::from_secs(3));
    let ev = rules.evaluate(&snap, &ups, t0 + Duration::from_secs(3));
    assert_eq!(kinds(&ev), [("brk".into(), "resolved", "smart/p/m".into())]);
}

#[test]
fn spend_spike_per_tenant() {
    let snap = snapshot(
        "    - { name: spike, kind: spend_anomaly, scope: tenant, z: 3, window: 2s, warmup: 3 }\n",
    );
    let mut rules = Rules::new(Metrics::new().alert_rules_firing.clone());
    let ups = Upstreams::default();
    let t0 = Instant::now();
    rules.sync(&snap, t0);
    let spend = |rules: &mut Rules, at: Instant, tenant: &str, usd: u64| {
        let mut o = outcome("smart", 200, 1);
        o.tenant = Some(tenant.into());
        o.cost_micro_usd = usd * 1_000_000;
        rules.observe(&o, at);
    };
    let s = Duration::from_secs(2);
    for (i, usd) in [10, 11, 10, 9, 50].iter().enumerate() {
        let at = t0 + s * i as u32;
        spend(&mut rules, at, "acme", *usd);
        spend(&mut rules, at, "calm", 10);
        let ev = rules.evaluate(&snap, &ups, at);
        assert!(ev.is_empty(), "interval {i}: {ev:?}");
    }
    let ev = rules.evaluate(&snap, &ups, t0 + s * 5);
    assert_eq!(kinds(&ev), [("spike".into(), "firing", "acme".into())]);
    let r = ev[0].rule.as_ref().unwrap();
    assert_eq!(r.interval_usd, Some(50.0));
    assert!(r.value.unwrap() > 3.0);
    assert_eq!(ev[0].scope_kind, "tenant");
}

#[test]
fn a_reload_keeps_unchanged_rules_and_resets_changed_ones() {
    let a =
        snapshot("    - { name: e, kind: error_rate, above: 0.1, window: 10s, min_requests: 1 }\n");
    let mut rules = Rules::new(Metrics::new().alert_rules_firing.clone());
    let ups = Upstreams::default();
    let t0 = Instant::now();
    rules.sync(&a, t0);
    rules.observe(&outcome("smart", 500, 1), t0);
    assert_eq!(rules.evaluate(&a, &ups, t0).len(), 1);
    let same =
        snapshot("    - { name: e, kind: error_rate, above: 0.1, window: 10s, min_requests: 1 }\n");
    assert!(
        rules.evaluate(&same, &ups, t0).is_empty(),
        "still firing, no repeat"
    );
    let changed =
        snapshot("    - { name: e, kind: error_rate, above: 0.2, window: 10s, min_requests: 1 }\n");
    assert!(
        rules.evaluate(&changed, &ups, t0).is_empty(),
        "fresh state, no data"
    );
}
