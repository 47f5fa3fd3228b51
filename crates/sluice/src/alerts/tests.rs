//! Unit tests of the pure parts: signatures (against an independent HMAC),
//! the event's JSON contract, answer classification, log-safe origins and
//! the default tuning. Delivery over real sockets is in
//! `crates/sluice/tests/alerts.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;

use super::deliver::{classify, origin};
use super::*;
use crate::policy::budget::Period;
use crate::policy::Scope;

const SECRET: &[u8] = b"whsec-0123456789abcdef";
const T: u64 = 1_750_000_000;

/// 2025-06-01T00:00:00Z.
const JUNE_MS: i64 = 1_748_736_000_000;

fn independent_hmac(secret: &[u8], message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, message).as_ref())
}

#[test]
fn signature_is_hmac_sha256_of_time_dot_body() {
    let body = br#"{"id":"evt_1"}"#;
    let expected = independent_hmac(
        SECRET,
        format!("{T}.{}", std::str::from_utf8(body).unwrap()).as_bytes(),
    );
    assert_eq!(sign(SECRET, T, body), format!("t={T},v1={expected}"));
}

#[test]
fn verify_accepts_only_the_right_secret_body_and_time() {
    let body = b"{\"kind\":\"budget_threshold\"}";
    let header = sign(SECRET, T, body);
    assert!(verify(SECRET, &header, body, T, 300));
    assert!(
        verify(SECRET, &header, body, T + 300, 300),
        "at the tolerance edge"
    );
    assert!(
        !verify(b"whsec-another-secret-000", &header, body, T, 300),
        "other secret"
    );
    assert!(
        !verify(SECRET, &header, b"{\"kind\":\"budget_exceeded\"}", T, 300),
        "tampered body"
    );
    assert!(
        !verify(SECRET, &header, body, T + 301, 300),
        "replayed later"
    );
    let moved = header.replace(&format!("t={T}"), &format!("t={}", T + 1));
    assert!(!verify(SECRET, &moved, body, T, 300), "time changed");
    for garbage in [
        "",
        "t=1",
        "v1=00",
        "t=x,v1=zz",
        &header.replace("v1=", "v0="),
    ] {
        assert!(
            !verify(SECRET, garbage, body, T, 300),
            "accepted `{garbage}`"
        );
    }
    // During a secret rotation a receiver may see several v1 values.
    let two = format!("{header},v1={}", "ab".repeat(32));
    assert!(verify(SECRET, &two, body, T, 300));
}

fn event() -> AlertEvent {
    AlertEvent::budget(
        AlertKind::BudgetThreshold,
        &Scope::tenant("acme"),
        Period::Month,
        JUNE_MS,
    )
    .with_spend(0.8, 400_120_000, 500_000_000)
    .with_policy("standard")
}

#[test]
fn event_json_keeps_the_documented_field_names() {
    let ev = event();
    let v = serde_json::to_value(&ev).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let documented: BTreeSet<&str> = [
        "id",
        "kind",
        "scope",
        "scope_kind",
        "scope_id",
        "period",
        "period_start",
        "fraction",
        "spent_usd",
        "limit_usd",
        "policy",
        "at",
    ]
    .into();
    assert_eq!(keys, documented);
    assert_eq!(v["kind"], "budget_threshold");
    assert_eq!(v["scope"], "tenant `acme`");
    assert_eq!(v["scope_kind"], "tenant");
    assert_eq!(v["scope_id"], "acme");
    assert_eq!(v["period"], "month");
    assert_eq!(v["period_start"], "2025-06-01T00:00:00.000000Z");
    assert_eq!(v["fraction"], 0.8);
    assert_eq!(v["spent_usd"], 400.12);
    assert_eq!(v["limit_usd"], 500.0);
    assert_eq!(v["policy"], "standard");
    assert!(v["at"].as_str().unwrap().ends_with('Z'));
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
    assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(event().id, ev.id, "ids are unique");
    let global = AlertEvent::budget(AlertKind::BudgetExceeded, &Scope::global(), Period::Day, 0);
    let v = serde_json::to_value(&global).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["scope_id"].as_str()),
        (Some("budget_exceeded"), Some(""))
    );
    assert!(v["policy"].is_null());
}

#[test]
fn rule_events_carry_rule_fields_and_no_budget_fields() {
    let fields = RuleFields {
        rule: "chat-errors".into(),
        state: RuleState::Firing,
        value: Some(0.25),
        threshold: Some(0.05),
        unit: "ratio",
        window_secs: Some(300.0),
        requests: Some(40),
        interval_usd: None,
        mean_usd: None,
        phase: None,
    };
    let ev = AlertEvent::rule(
        AlertKind::ErrorRate,
        &Subject::Model("smart".into()),
        fields,
    );
    let v = serde_json::to_value(&ev).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let documented: BTreeSet<&str> = [
        "id",
        "kind",
        "scope",
        "scope_kind",
        "scope_id",
        "rule",
        "state",
        "value",
        "threshold",
        "unit",
        "window_secs",
        "requests",
        "at",
    ]
    .into();
    assert_eq!(keys, documented);
    assert_eq!(v["kind"], "error_rate");
    assert_eq!(v["state"], "firing");
    assert_eq!(v["scope"], "model `smart`");
    assert_eq!(v["scope_kind"], "model");
    assert_eq!(v["value"], 0.25);
    assert_eq!(
        ev.summary(),
        "rule `chat-errors` firing: model `smart` error_rate 0.2500 above 0.05 ratio"
    );
    let global = AlertEvent::rule(
        AlertKind::SpendAnomaly,
        &Subject::Global,
        RuleFields {
            state: RuleState::Resolved,
            ..ev.rule.clone().unwrap()
        },
    );
    let v = serde_json::to_value(&global).unwrap();
    assert_eq!(
        (v["scope_kind"].as_str(), v["scope_id"].as_str()),
        (Some("global"), Some(""))
    );
    assert_eq!(v["state"], "resolved");
}

#[test]
fn summary_reads_as_a_sentence() {
    assert_eq!(
        event().summary(),
        "tenant `acme` reached 80% of its month budget ($400.12 of $500.00)"
    );
    let ev = AlertEvent::budget(
        AlertKind::BudgetExceeded,
        &Scope::key("k1", "ci"),
        Period::Day,
        0,
    )
    .with_spend(1.02, 10_200_000, 10_000_000);
    assert_eq!(
        ev.summary(),
        "key `ci` exceeded its day budget ($10.20 of $10.00)"
    );
}

#[test]
fn only_5xx_and_429_are_retried() {
    for ok in [200, 201, 202, 204] {
        assert!(classify(StatusCode::from_u16(ok).unwrap()).is_ok(), "{ok}");
    }
    for (status, retry) in [
        (500, true),
        (502, true),
        (503, true),
        (429, true),
        (400, false),
        (401, false),
        (404, false),
        (410, false),
        (301, false),
    ] {
        let failure = classify(StatusCode::from_u16(status).unwrap()).unwrap_err();
        assert_eq!(failure.retry, retry, "{status}");
        assert!(failure.reason.contains(&status.to_string()));
    }
}

#[test]
fn logs_name_the_receiver_by_origin_only() {
    assert_eq!(
        origin("https://hooks.example.com/services/T0/B0/tok3n?sig=x"),
        "https://hooks.example.com"
    );
    assert_eq!(origin("http://10.0.0.9:8080/h"), "http://10.0.0.9:8080");
    assert_eq!(origin("not a url"), "(invalid URL)");
}

#[test]
fn default_tuning_is_three_attempts_and_a_bounded_queue() {
    let t = Tuning::default();
    assert_eq!(t.queue, QUEUE_CAPACITY);
    assert_eq!(QUEUE_CAPACITY, 1024);
    assert_eq!(
        t.backoff,
        [Duration::from_millis(500), Duration::from_secs(2)]
    );
    assert!(t.shutdown_flush <= Duration::from_secs(10));
}

#[test]
fn emit_without_a_webhook_logs_and_counts_only() {
    let metrics = crate::telemetry::metrics::Metrics::new();
    let (alerts, _worker) = Alerts::new(None, &metrics).unwrap();
    assert!(!alerts.has_webhook());
    alerts.emit(event());
    let text = metrics.render();
    assert!(
        text.contains(r#"sluice_alerts_total{kind="budget_threshold",scope="tenant"} 1"#),
        "{text}"
    );
    assert!(!text.contains("sluice_alerts_dropped_total{"), "{text}");
    assert!(format!("{alerts:?}").contains("webhook: false"));
}

#[test]
fn handles_can_be_shared_across_worker_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Alerts>();
    shareable::<AlertEvent>();
}
