//! USD budgets over real sockets, in front of an OpenAI mock upstream
//! serving `gpt-4o-mini` at $10 per million tokens in and out (10
//! micro-USD a token): a request reserves its maximum cost and settles to
//! the real one (streams too, nothing when it failed); a `block` budget
//! answers 402 naming itself, concurrent requests cannot overspend it,
//! `alert_only` lets requests through and says so, `downgrade:<model>`
//! serves them with the cheaper model and says so; spend is written to the
//! store on shutdown and a restarted gateway holds to it (both backends).

mod common;

use std::time::Duration;

use common::db::{Backend, FreshStore};
use common::log::{access_log, log_line};
use common::webhook::Receiver;
use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// "hello world": 8 prompt tokens in `o200k_base` (3 + 3 framing + 2).
const PROMPT: u64 = 8;

fn config(mock: &MockUpstream, budget: &str, store: Option<&str>) -> String {
    let store = store.map(|s| format!("store: {s}\n")).unwrap_or_default();
    config_with(mock, budget, &store)
}

/// The top of every config here: listeners, the access log, upstream `up`.
fn head(mock: &MockUpstream) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
log: {{ access_log: true }}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-upstream-secret }}
"#,
        mock.url()
    )
}

/// The config with `rest` added at the top level.
fn config_with(mock: &MockUpstream, budget: &str, rest: &str) -> String {
    format!(
        r#"{}{rest}models:
  smart: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
  cheap: {{ price: {{ input: 1, output: 1 }}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
keys:
  - {{ name: ci, key: {KEY}, policy: {{ budget: {budget} }} }}
"#,
        head(mock)
    )
}

async fn gateway(mock: &MockUpstream, budget: &str) -> TestGateway {
    access_log();
    TestGateway::start(&config(mock, budget, None)).await
}

fn chat(model: &str, max_tokens: u32, id: &str) -> reqwest::RequestBuilder {
    TestGateway::client()
        .post("http://placeholder")
        .bearer_auth(KEY)
        .header("x-request-id", id)
        .json(&json!({
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "hello world"}],
        }))
}

async fn send(gw: &TestGateway, model: &str, max_tokens: u32, id: &str) -> reqwest::Response {
    let (client, req) = chat(model, max_tokens, id).build_split();
    let mut req = req.unwrap();
    *req.url_mut() = format!("{}/v1/chat/completions", gw.url).parse().unwrap();
    client.execute(req).await.unwrap()
}

#[tokio::test]
async fn a_block_budget_refuses_with_402_once_spend_plus_the_reservation_would_exceed_it() {
    let mock = MockUpstream::start().await;
    // $0.01 = 10,000 micro-USD. Each request reserves (8 + 100) × 10 = 1080
    // and costs (8 + 50) × 10 = 580.
    let gw = gateway(&mock, "{ usd_per_day: 0.01 }").await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 50));
    for i in 0..16 {
        let r = send(&gw, "smart", 100, &format!("bud-block-{i}")).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    // 16 × 580 = 9280 spent; 9280 + 1080 > 10000.
    let r = send(&gw, "smart", 100, "bud-block-16").await;
    assert_eq!(r.status(), 402);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "insufficient_quota", "{v}");
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("budget of key `ci` exceeded: $0.0093 of $0.01 per day spent")
            && msg.contains("may cost up to $0.0011")
            && msg.contains("resets at"),
        "{msg}"
    );
    assert_eq!(
        mock.hits(),
        16,
        "the refused request never reached the upstream"
    );
    // A smaller request still fits: 9280 + (8 + 50) × 10 = 9860.
    assert_eq!(send(&gw, "smart", 50, "bud-block-17").await.status(), 200);
    let line = log_line("bud-block-0").await;
    assert!(line.contains("cost_usd=0.00058"), "{line}");
}

#[tokio::test]
async fn concurrent_requests_cannot_overspend() {
    let mock = MockUpstream::start().await;
    // Room for exactly 5 reservations of 1080 (5400 ≤ 6000 < 6480).
    let gw = gateway(&mock, "{ usd_per_day: 0.006 }").await;
    // Every answer uses its whole reservation, slowly, so all 20 overlap.
    mock.set_default(
        Script::text("answer")
            .with_usage(PROMPT, 100)
            .with_delay(Duration::from_millis(300)),
    );
    let calls = (0..20).map(|i| {
        let (url, id) = (gw.url.clone(), format!("bud-race-{i}"));
        tokio::spawn(async move {
            let (client, req) = chat("smart", 100, &id).build_split();
            let mut req = req.unwrap();
            *req.url_mut() = format!("{url}/v1/chat/completions").parse().unwrap();
            client.execute(req).await.unwrap().status().as_u16()
        })
    });
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 15);
    // 5 × 1080 = 5400 spent: within $0.006, and nothing more fits.
    assert_eq!(
        send(&gw, "smart", 100, "bud-race-after").await.status(),
        402
    );
}

#[tokio::test]
async fn streamed_answers_are_charged_and_failed_ones_are_not() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ usd_per_day: 0.01 }").await;
    mock.push(Script::status(500));
    let r = send(&gw, "smart", 100, "bud-fail").await;
    assert_eq!(r.status(), 502);
    assert!(log_line("bud-fail").await.contains("cost_usd=0.0"));
    mock.push(Script::text("a streamed answer").with_usage(PROMPT, 492));
    let r = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("x-request-id", "bud-stream")
        .json(&json!({"model": "smart", "max_tokens": 500, "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hello world"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("[DONE]"));
    assert!(log_line("bud-stream").await.contains("cost_usd=0.005"));
    // 5000 spent: a request reserving 5080 no longer fits, 4980 does.
    assert_eq!(send(&gw, "smart", 500, "bud-after-1").await.status(), 402);
    mock.set_default(Script::text("x").with_usage(PROMPT, 1));
    assert_eq!(send(&gw, "smart", 490, "bud-after-2").await.status(), 200);
}

#[tokio::test]
async fn alert_only_lets_requests_through_and_says_so() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ usd_per_day: 0.001, on_exceed: alert_only }").await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 100));
    for i in 0..3 {
        let r = send(&gw, "smart", 100, &format!("bud-alert-{i}")).await;
        assert_eq!(r.status(), 200);
    }
    // The first reserved 1080 > 1000 already.
    assert!(log_line("bud-alert-0")
        .await
        .contains("budget_over=\"key `ci`\""));
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"sluice_budget_exceeded_total{scope="key",action="alert_only"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_budget_spend_microdollars_total{scope="key"} 3240"#),
        "{m}"
    );
}

#[tokio::test]
async fn downgrade_serves_the_cheaper_model_and_says_so() {
    let mock = MockUpstream::start().await;
    let gw = gateway(
        &mock,
        "{ usd_per_day: 0.002, on_exceed: \"downgrade:cheap\" }",
    )
    .await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 100));
    let r = send(&gw, "smart", 100, "bud-down-0").await;
    assert_eq!(r.headers()["x-sluice-model"], "smart");
    assert!(r.headers().get("x-sluice-downgraded-from").is_none());
    // 1080 spent; another 1080 does not fit.
    let r = send(&gw, "smart", 100, "bud-down-1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-model"], "cheap");
    assert_eq!(r.headers()["x-sluice-downgraded-from"], "smart");
    let line = log_line("bud-down-1").await;
    assert!(
        line.contains("downgraded_from=\"smart\"") && line.contains("cost_usd=0.000108"),
        "{line}"
    );
}

async fn spend_survives_a_restart(backend: Backend) {
    let db = FreshStore::new(backend).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 50));
    access_log();
    let budget = "{ usd_per_day: 0.002 }";
    let mut gw = TestGateway::start(&config(&mock, budget, Some(&db.url))).await;
    // 580 + 580 spent; a third (reserving 1080) would exceed 2000.
    for i in 0..2 {
        assert_eq!(
            send(&gw, "smart", 100, &format!("bud-persist-{i}"))
                .await
                .status(),
            200
        );
    }
    gw.shutdown().await.unwrap().unwrap();
    let gw = TestGateway::start(&config(&mock, budget, Some(&db.url))).await;
    assert_eq!(send(&gw, "smart", 100, "bud-persist-2").await.status(), 402);
    assert_eq!(send(&gw, "smart", 10, "bud-persist-3").await.status(), 200);
}

both_backends!(spend_survives_a_restart);

#[tokio::test]
async fn crossing_alert_at_posts_one_signed_event_per_fraction() {
    let (receiver, url) = Receiver::start(&[]).await;
    let secret = "whsec-budget-test-0123456789";
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 50));
    access_log();
    let alerts = format!("alerts: {{ webhook: {{ url: \"{url}\", secret: {secret} }} }}\n");
    let gw = TestGateway::start(&config_with(
        &mock,
        "{ usd_per_day: 0.004, alert_at: [0.125, 0.25] }",
        &alerts,
    ))
    .await;
    // Of 4000: 580 spent crosses 0.125, 1160 crosses 0.25, 1740 nothing new.
    for i in 0..3 {
        assert_eq!(
            send(&gw, "smart", 100, &format!("bud-hook-{i}"))
                .await
                .status(),
            200
        );
    }
    for _ in 0..250 {
        if receiver.hits().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every settlement (and so every emit) happened before its log line.
    log_line("bud-hook-2").await;
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"sluice_alerts_total{kind="budget_threshold",scope="key"} 2"#),
        "{m}"
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2, "one event per fraction");
    let events: Vec<Value> = hits
        .iter()
        .map(|h| serde_json::from_slice(&h.body).unwrap())
        .collect();
    assert_eq!(events[0]["kind"], "budget_threshold");
    assert_eq!(events[0]["scope"], "key `ci`");
    assert_eq!(events[0]["period"], "day");
    assert_eq!(events[0]["fraction"], 0.125);
    assert_eq!(events[0]["spent_usd"], 0.00058);
    assert_eq!(events[0]["limit_usd"], 0.004);
    assert_eq!(events[1]["fraction"], 0.25);
    assert_eq!(events[1]["spent_usd"], 0.00116);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for h in &hits {
        let sig = h.headers[sluice::alerts::SIGNATURE_HEADER]
            .to_str()
            .unwrap();
        assert!(sluice::alerts::verify(
            secret.as_bytes(),
            sig,
            &h.body,
            now,
            300
        ));
    }
}

/// A model's own budget and token limit hold the request's money and
/// tokens until it ends and settle them to what it really used — the
/// request keeps the model's rules for that, as it keeps the key's.
#[tokio::test]
async fn a_model_level_budget_and_token_limit_settle_to_real_usage() {
    let mock = MockUpstream::start().await;
    access_log();
    let gw = TestGateway::start(&format!(
        r#"{}models:
  smart:
    price: {{ input: 10, output: 10 }}
    deployments: [ {{ provider: up, model: gpt-4o-mini }} ]
    policy: {{ budget: {{ usd_per_day: 0.002 }}, rate_limit: {{ tokens_per_day: 10000 }} }}
keys:
  - {{ name: ci, key: {KEY} }}
"#,
        head(&mock)
    ))
    .await;
    mock.set_default(Script::text("answer").with_usage(PROMPT, 50));
    // Reserves (8 + 100) × 10 = 1080 micro-USD and 108 tokens; costs 580
    // and 58 tokens.
    let r = send(&gw, "smart", 100, "bud-model-0").await;
    assert_eq!(r.status(), 200);
    let left = |r: &reqwest::Response| -> u64 {
        r.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = left(&r);
    assert!(first == 10_000 - 108 || first == 10_000 - 107, "{first}");
    // Settled to 58 tokens: this one leaves 10,000 - 58 - 108.
    let r = send(&gw, "smart", 100, "bud-model-1").await;
    assert_eq!(r.status(), 200);
    let second = left(&r);
    assert!((9834..=9836).contains(&second), "{second}");
    // 2 × 580 spent (not 0, not the 1080 reserved): 1160 + 1080 > 2000.
    let r = send(&gw, "smart", 100, "bud-model-2").await;
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("budget of model `smart` exceeded: $0.0012 of $0.0020 per day spent"),
        "{msg}"
    );
}
