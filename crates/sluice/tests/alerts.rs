//! Alert delivery over real sockets: a small axum receiver on 127.0.0.1:0
//! records what arrives and answers from a script. Covers the signed JSON
//! POST, retries (5xx/429 retried, 4xx not), a dead receiver that never
//! blocks `emit` (overflow counted and logged, never silent), the
//! shutdown flush and its deadline, switching the webhook on reload, and
//! the secret staying out of `Debug` output and logs.
//!
//! Alert rules end to end: a gateway in front of a scripted mock upstream
//! with `evaluate_every: 200ms` — errors fire one signed `error_rate`
//! event then a `resolved` one, slow answers fire `latency_p99`, a breaker
//! opening fires `breaker_open` once, and nothing fires below
//! `min_requests`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice::alerts::{verify, AlertEvent, AlertKind, Alerts, Tuning, SIGNATURE_HEADER};
use sluice::config::raw::WebhookConfig;
use sluice::config::Dur;
use sluice::policy::budget::Period;
use sluice::policy::Scope;
use sluice::telemetry::metrics::{Metrics, ReasonLabels, ResultLabels};
use sluice_types::Secret;
use tokio::sync::watch;

mod common;

use common::webhook::{Hit, Receiver};

const SECRET: &str = "whsec-canary-0123456789";

/// A URL where nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!(
        "http://{}/hooks/tok-path-canary",
        listener.local_addr().unwrap()
    )
}

fn hook(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        secret: Secret::new(SECRET),
        timeout: Dur(Duration::from_secs(5)),
    }
}

/// Retries in milliseconds rather than seconds.
fn fast() -> Tuning {
    Tuning {
        backoff: vec![Duration::from_millis(20), Duration::from_millis(50)],
        ..Tuning::default()
    }
}

fn event() -> AlertEvent {
    AlertEvent::budget(
        AlertKind::BudgetThreshold,
        &Scope::tenant("acme"),
        Period::Month,
        1_748_736_000_000,
    )
    .with_spend(0.8, 400_000_000, 500_000_000)
    .with_policy("standard")
}

fn deliveries(m: &Metrics, result: &'static str) -> u64 {
    m.alert_deliveries
        .get_or_create(&ResultLabels { result })
        .get()
}

fn dropped(m: &Metrics, reason: &'static str) -> u64 {
    m.alerts_dropped
        .get_or_create(&ReasonLabels { reason })
        .get()
}

/// Polls `done` every 10 ms for up to 10 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A worker with `tuning` delivering to `url`; stop it with the sender.
fn start(
    url: &str,
    metrics: &Metrics,
    tuning: Tuning,
) -> (Alerts, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (alerts, worker) = Alerts::with_tuning(Some(hook(url)), metrics, tuning).unwrap();
    let (stop, rx) = watch::channel(false);
    (alerts, stop, worker.spawn(rx))
}

/// Log output of this thread (tests run on a current-thread runtime, so
/// the worker's and its deliveries' logs too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture(level: tracing::Level) -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, message).as_ref())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn delivers_a_signed_json_post_a_receiver_can_verify() {
    let (rx, url) = Receiver::start(&[]).await;
    let metrics = Metrics::new();
    let (alerts, _stop, _task) = start(&url, &metrics, fast());
    let ev = event();
    alerts.emit(ev.clone());
    until("one success", || deliveries(&metrics, "ok") == 1).await;

    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    let Hit { headers, body } = &hits[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-sluice-event"), "budget_threshold");
    assert_eq!(header("x-sluice-event-id"), ev.id);
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json, serde_json::to_value(&ev).unwrap());
    assert_eq!(json["kind"], "budget_threshold");
    assert_eq!(json["scope_id"], "acme");
    assert_eq!(json["period_start"], "2025-06-01T00:00:00.000000Z");
    assert_eq!(json["spent_usd"], 400.0);

    // The receiver's check, done independently: HMAC-SHA256(secret, "<t>.<body>").
    let signature = header(SIGNATURE_HEADER);
    let (t, v1) = signature.split_once(",v1=").unwrap();
    let t: u64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert!(t.abs_diff(unix_now()) <= 5, "t={t} is not now");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, hmac_hex(SECRET, &signed));
    assert_ne!(v1, hmac_hex("whsec-some-other-secret", &signed));
    // And with the helper sluice exports.
    assert!(verify(SECRET.as_bytes(), &signature, body, unix_now(), 300));
    assert!(!verify(
        b"whsec-some-other-secret",
        &signature,
        body,
        unix_now(),
        300
    ));
    assert!(!verify(
        SECRET.as_bytes(),
        &signature,
        &body[1..],
        unix_now(),
        300
    ));

    let text = metrics.render();
    for line in [
        r#"sluice_alerts_total{kind="budget_threshold",scope="tenant"} 1"#,
        r#"sluice_alert_deliveries_total{result="ok"} 1"#,
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
}

#[tokio::test]
async fn a_5xx_is_retried_until_it_succeeds() {
    let (rx, url) = Receiver::start(&[500, 500, 200]).await;
    let metrics = Metrics::new();
    let (alerts, _stop, _task) = start(&url, &metrics, fast());
    alerts.emit(event());
    until("one success", || deliveries(&metrics, "ok") == 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3, "exactly three attempts");
    let ids: Vec<_> = hits
        .iter()
        .map(|h| h.headers["x-sluice-event-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one event id across retries"
    );
    assert_eq!(deliveries(&metrics, "failed"), 0);
}

#[tokio::test]
async fn gives_up_after_three_attempts_on_429_and_5xx() {
    let (rx, url) = Receiver::start(&[429, 503, 500, 200]).await;
    let metrics = Metrics::new();
    let (alerts, _stop, _task) = start(&url, &metrics, fast());
    alerts.emit(event());
    until("a final failure", || deliveries(&metrics, "failed") == 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.hits().len(), 3);
    assert_eq!(deliveries(&metrics, "ok"), 0);
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let (rx, url) = Receiver::start(&[400]).await;
    let metrics = Metrics::new();
    let (alerts, _stop, _task) = start(&url, &metrics, fast());
    alerts.emit(event());
    until("a final failure", || deliveries(&metrics, "failed") == 1).await;
    // Longer than every backoff together: no second attempt comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 1);
    assert_eq!(deliveries(&metrics, "ok"), 0);
}

/// `emit` is synchronous and this runtime has one thread: the worker
/// cannot run between the emits, so they cannot have waited for it. The
/// queue takes 1024; the other 976 are counted and logged, one ERROR each.
#[tokio::test]
async fn a_dead_receiver_never_blocks_emit_and_overflow_is_counted() {
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    let url = dead_url().await;
    let metrics = Metrics::new();
    let tuning = Tuning {
        backoff: vec![Duration::from_millis(1)],
        shutdown_flush: Duration::from_secs(5),
        ..Tuning::default()
    };
    let (alerts, stop, task) = start(&url, &metrics, tuning);
    for _ in 0..2000 {
        alerts.emit(event());
    }
    let total = metrics
        .alerts
        .get_or_create(&sluice::telemetry::metrics::AlertLabels {
            kind: "budget_threshold",
            scope: "tenant",
        })
        .get();
    assert_eq!(total, 2000);
    assert_eq!(dropped(&metrics, "queue_full"), 976);
    let text = logs.text();
    let overflow = text
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("reason=\"queue_full\""))
        .count();
    assert_eq!(overflow, 976, "one ERROR line per event not queued");

    // Every queued event ends accounted for: failed (connection refused,
    // retried once) or, past the flush bound, dropped at shutdown.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let failed = deliveries(&metrics, "failed");
    let late = dropped(&metrics, "shutdown_timeout");
    assert_eq!(
        failed + late,
        1024,
        "failed {failed}, dropped at shutdown {late}"
    );
    assert_eq!(deliveries(&metrics, "ok"), 0);
    assert!(logs.text().contains("alert webhook delivery failed"));
}

#[tokio::test]
async fn shutdown_delivers_what_is_queued_then_refuses_more() {
    let (rx, url) = Receiver::start(&[]).await;
    let metrics = Metrics::new();
    let (alerts, stop, task) = start(&url, &metrics, fast());
    let ids: Vec<String> = (0..20)
        .map(|_| {
            let ev = event();
            let id = ev.id.clone();
            alerts.emit(ev);
            id
        })
        .collect();
    // Signalled before the worker ever ran: all 20 are still queued.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let mut got: Vec<String> = rx
        .hits()
        .iter()
        .map(|h| h.headers["x-sluice-event-id"].to_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(deliveries(&metrics, "ok"), 20);
    // After the worker is gone an event is not silently lost.
    alerts.emit(event());
    assert_eq!(dropped(&metrics, "closed"), 1);
}

#[tokio::test]
async fn the_shutdown_flush_is_bounded_and_counts_what_is_left() {
    let (rx, url) = Receiver::serve(Receiver {
        hang: true,
        ..Receiver::default()
    })
    .await;
    let metrics = Metrics::new();
    let tuning = Tuning {
        in_flight: 2,
        shutdown_flush: Duration::from_millis(300),
        ..fast()
    };
    let (alerts, stop, task) = start(&url, &metrics, tuning);
    for _ in 0..5 {
        alerts.emit(event());
    }
    until("two deliveries in flight", || rx.hits().len() == 2).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("the flush outlived its bound")
        .unwrap();
    assert_eq!(dropped(&metrics, "shutdown_timeout"), 5);
    assert_eq!(
        deliveries(&metrics, "ok") + deliveries(&metrics, "failed"),
        0
    );
}

#[tokio::test]
async fn set_webhook_redirects_events_without_a_restart() {
    let (a, url_a) = Receiver::start(&[]).await;
    let (b, url_b) = Receiver::start(&[]).await;
    let metrics = Metrics::new();
    let (alerts, _stop, _task) = start(&url_a, &metrics, fast());
    alerts.emit(event());
    until("delivery to A", || a.hits().len() == 1).await;

    alerts.set_webhook(Some(hook(&url_b)));
    alerts.emit(event());
    until("delivery to B", || b.hits().len() == 1).await;
    assert_eq!(a.hits().len(), 1);

    alerts.set_webhook(None);
    assert!(!alerts.has_webhook());
    alerts.emit(event());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((a.hits().len(), b.hits().len()), (1, 1));
    assert_eq!(deliveries(&metrics, "ok"), 2);
    let all_dropped: u64 = ["queue_full", "closed", "shutdown_timeout", "unconfigured"]
        .into_iter()
        .map(|r| dropped(&metrics, r))
        .sum();
    assert_eq!(
        all_dropped, 0,
        "without a webhook, an event is only logged and counted"
    );
}

#[tokio::test]
async fn the_secret_never_shows_in_debug_output_or_logs() {
    let (logs, _guard) = Logs::capture(tracing::Level::TRACE);
    let (_rx, url) = Receiver::start(&[500, 500, 500]).await;
    let metrics = Metrics::new();
    let tuning = Tuning { queue: 1, ..fast() };
    let (alerts, _stop, _task) = start(&url, &metrics, tuning);
    // The first is queued (and fails three times); the second overflows.
    alerts.emit(event());
    alerts.emit(event());
    until("a final failure", || deliveries(&metrics, "failed") == 1).await;
    assert_eq!(dropped(&metrics, "queue_full"), 1);

    let yaml = format!("alerts:\n  webhook:\n    url: {url}\n    secret: {SECRET}\n");
    let cfg = sluice::config::load_str(&yaml, Path::new("sluice.yaml"), &|_| None).unwrap();
    let debug = format!("{cfg:?} {:?} {alerts:?}", hook(&url));
    assert!(!debug.contains("canary-0123"), "{debug}");

    let text = logs.text();
    for expected in [
        "alert: tenant `acme` reached 80% of its month budget",
        "alert webhook attempt failed; retrying",
        "alert webhook delivery failed",
        "alert not queued for the webhook",
    ] {
        assert!(
            text.contains(expected),
            "no `{expected}` in the log:\n{text}"
        );
    }
    assert!(
        !text.contains("canary-0123"),
        "the secret is in the log:\n{text}"
    );
    assert!(
        !text.contains("tok-path-canary"),
        "the webhook URL's path is in the log:\n{text}"
    );
}

// ---- alert rules through a running gateway ----

use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// A gateway in front of `mock` (model `smart`, `breaker` for its
/// circuit breaker) with these alert rules, delivering to `url`.
async fn rules_gateway(
    mock: &MockUpstream,
    url: &str,
    breaker: &str,
    rules: &[&str],
) -> TestGateway {
    let rules: String = rules.iter().map(|r| format!("    - {r}\n")).collect();
    TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-upstream-secret }}
models:
  smart: {{ circuit_breaker: {breaker}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
keys:
  - {{ name: ci, key: {KEY} }}
alerts:
  webhook: {{ url: "{url}", secret: {SECRET} }}
  evaluate_every: 200ms
  rules:
{rules}"#,
        mock.url()
    ))
    .await
}

async fn ask(gw: &TestGateway) -> u16 {
    gw.post(
        "/v1/chat/completions",
        json!({ "model": "smart", "messages": [{ "role": "user", "content": "hi" }] }),
    )
    .await
    .status()
    .as_u16()
}

/// The rule events received, checked against their signature, in order.
fn rule_events(r: &Receiver) -> Vec<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    r.hits()
        .iter()
        .map(|h| {
            let sig = h.headers[SIGNATURE_HEADER].to_str().unwrap();
            assert!(
                verify(SECRET.as_bytes(), sig, &h.body, now, 300),
                "bad signature"
            );
            let v: Value = serde_json::from_slice(&h.body).unwrap();
            assert_eq!(h.headers["x-sluice-event"], v["kind"].as_str().unwrap());
            v
        })
        .filter(|v| v.get("rule").is_some())
        .collect()
}

fn states(r: &Receiver, rule: &str) -> Vec<String> {
    rule_events(r)
        .iter()
        .filter(|v| v["rule"] == rule)
        .map(|v| v["state"].as_str().unwrap().to_string())
        .collect()
}

/// Keeps sending requests (`ask` at a time) until `done`, for up to 15 s.
async fn drive_until(gw: &TestGateway, what: &str, done: impl Fn() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        ask(gw).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn errors_fire_one_error_rate_event_then_resolve() {
    let (receiver, url) = Receiver::start(&[]).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::status(500));
    let gw = rules_gateway(
        &mock,
        &url,
        "{ enabled: false }",
        &["{ name: chat-errors, kind: error_rate, model: smart, above: 0.5, window: 1s, min_requests: 5 }"],
    )
    .await;
    drive_until(&gw, "the error_rate event", || {
        !states(&receiver, "chat-errors").is_empty()
    })
    .await;
    // Errors go on for several more evaluations: no second event.
    for _ in 0..20 {
        assert!(ask(&gw).await >= 500);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(states(&receiver, "chat-errors"), ["firing"]);
    let ev = &rule_events(&receiver)[0];
    assert_eq!(ev["kind"], "error_rate");
    assert_eq!(ev["scope_kind"], "model");
    assert_eq!(ev["scope_id"], "smart");
    assert_eq!(ev["threshold"], 0.5);
    assert_eq!(ev["window_secs"], 1.0);
    assert!(ev["value"].as_f64().unwrap() > 0.5, "{ev}");
    assert!(ev["requests"].as_u64().unwrap() >= 5, "{ev}");
    assert!(ev.get("period").is_none() && ev.get("fraction").is_none());
    // The upstream recovers: one resolved event.
    mock.set_default(Script::text("fine"));
    drive_until(&gw, "the resolved event", || {
        states(&receiver, "chat-errors").len() >= 2
    })
    .await;
    assert_eq!(states(&receiver, "chat-errors"), ["firing", "resolved"]);
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"sluice_alerts_total{kind="error_rate",scope="model"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_alert_rules_firing{rule="chat-errors"} 0"#),
        "{m}"
    );
}

#[tokio::test]
async fn slow_answers_fire_latency_p99() {
    let (receiver, url) = Receiver::start(&[]).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("slow").with_delay(Duration::from_millis(300)));
    let gw = rules_gateway(
        &mock,
        &url,
        "{ enabled: false }",
        &["{ name: slow, kind: latency_p99, above: 150ms, window: 2s, min_requests: 3 }"],
    )
    .await;
    drive_until(&gw, "the latency_p99 event", || {
        !states(&receiver, "slow").is_empty()
    })
    .await;
    let ev = &rule_events(&receiver)[0];
    assert_eq!(
        (ev["kind"].as_str(), ev["state"].as_str()),
        (Some("latency_p99"), Some("firing"))
    );
    assert_eq!(ev["unit"], "seconds");
    assert_eq!(ev["threshold"], 0.15);
    assert!(ev["value"].as_f64().unwrap() >= 0.3, "{ev}");
}

#[tokio::test]
async fn a_breaker_opening_fires_breaker_open_once() {
    let (receiver, url) = Receiver::start(&[]).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::status(500));
    let gw = rules_gateway(
        &mock,
        &url,
        "{ failures: 2, cooldown: 1s }",
        &["{ name: breaker, kind: breaker_open }"],
    )
    .await;
    drive_until(&gw, "the breaker_open event", || {
        !states(&receiver, "breaker").is_empty()
    })
    .await;
    let ev = &rule_events(&receiver)[0];
    assert_eq!(ev["kind"], "breaker_open");
    assert_eq!(ev["scope_kind"], "deployment");
    assert_eq!(ev["scope_id"], "smart/up/gpt-4o-mini");
    assert_eq!(ev["phase"], "open");
    // It stays open while requests are refused, then a good trial closes it.
    mock.set_default(Script::text("fine"));
    drive_until(&gw, "the resolved event", || {
        states(&receiver, "breaker").len() >= 2
    })
    .await;
    assert_eq!(states(&receiver, "breaker"), ["firing", "resolved"]);
}

#[tokio::test]
async fn nothing_fires_below_min_requests() {
    let (receiver, url) = Receiver::start(&[]).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::status(500));
    // `control` sees the same requests in the same evaluation: once it
    // fired, `quiet` was judged on them too.
    let gw = rules_gateway(
        &mock,
        &url,
        "{ enabled: false }",
        &[
            "{ name: quiet, kind: error_rate, above: 0.1, window: 5s, min_requests: 10 }",
            "{ name: control, kind: error_rate, above: 0.1, window: 5s, min_requests: 3 }",
        ],
    )
    .await;
    for _ in 0..5 {
        assert!(ask(&gw).await >= 500);
    }
    until("the control rule", || {
        !states(&receiver, "control").is_empty()
    })
    .await;
    assert!(
        states(&receiver, "quiet").is_empty(),
        "{:?}",
        rule_events(&receiver)
    );
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"sluice_alert_rules_firing{rule="quiet"} 0"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_alert_rules_firing{rule="control"} 1"#),
        "{m}"
    );
}
