//! Built-in prices over real sockets, in front of an OpenAI mock upstream:
//! a model with no `price` whose deployment serves `gpt-4o-mini` is
//! charged the built-in $0.15 / $0.60 per million tokens ($0.075 for
//! cached prompt tokens) — answers and streams alike — and budgets reserve
//! at it; a config `price` replaces it; `GET /admin/prices` shows each
//! deployment's price and where it comes from.

mod common;

use common::log::{access_log, log_line};
use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// Models `plain` (no price, `gpt-4o-mini` upstream) and `priced`, plus
/// `more` models, and keys `ci` and `tight` (the latter with `tight_policy`).
fn config_with(mock: &MockUpstream, more: &str, tight_policy: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
log: {{ access_log: true }}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-upstream-secret }}
models:
  plain: {{ deployments: [ {{ provider: up, model: gpt-4o-mini-2024-07-18 }} ] }}
  priced: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
{more}keys:
  - {{ name: ci, key: {KEY} }}
  - {{ name: tight, key: sk-tight-0000, policy: {tight_policy} }}
"#,
        mock.url()
    )
}

/// With a model whose upstream has no built-in price (`local`), so no
/// budget (a budget needs every model priced).
fn config(mock: &MockUpstream) -> String {
    let local = "  local: { deployments: [ { provider: up, model: llama-local } ] }\n";
    config_with(mock, local, "{}")
}

async fn send(gw: &TestGateway, key: &str, body: Value, id: &str) -> reqwest::Response {
    TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello world"}],
    })
}

#[tokio::test]
async fn a_model_without_a_price_is_charged_the_built_in_one_streamed_or_not() {
    access_log();
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&mock)).await;
    // 1,000 prompt tokens (400 cached) and 500 completion tokens:
    // 600 × 0.15 + 400 × 0.075 + 500 × 0.6 = 90 + 30 + 300 micro-USD.
    mock.push(
        Script::text("answer")
            .with_usage(1_000, 500)
            .with_cached(400),
    );
    let r = send(&gw, KEY, chat("plain", 600), "price-plain").await;
    assert_eq!(r.status(), 200);
    let line = log_line("price-plain").await;
    assert!(line.contains("cost_usd=0.00042"), "{line}");

    // The same through a stream: 1,000 × 0.15 + 500 × 0.6 = 450.
    mock.push(Script::text("a streamed answer").with_usage(1_000, 500));
    let mut body = chat("plain", 600);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = send(&gw, KEY, body, "price-stream").await;
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let line = log_line("price-stream").await;
    assert!(line.contains("cost_usd=0.00045"), "{line}");

    // A config price replaces the built-in one: 1,500 × 10.
    mock.push(Script::text("answer").with_usage(1_000, 500));
    assert_eq!(
        send(&gw, KEY, chat("priced", 600), "price-config")
            .await
            .status(),
        200
    );
    let line = log_line("price-config").await;
    assert!(line.contains("cost_usd=0.015"), "{line}");

    // An upstream model the table does not know is not charged.
    mock.push(Script::text("answer").with_usage(1_000, 500));
    assert_eq!(
        send(&gw, KEY, chat("local", 600), "price-none")
            .await
            .status(),
        200
    );
    let line = log_line("price-none").await;
    assert!(!line.contains("cost_usd=0."), "{line}");
}

#[tokio::test]
async fn budgets_reserve_and_spend_at_the_built_in_price() {
    access_log();
    let mock = MockUpstream::start().await;
    let budget = "{ budget: { usd_per_day: 0.001 } }";
    let gw = TestGateway::start(&config_with(&mock, "", budget)).await;
    // $0.001 = 1,000 micro-USD. 2,000 output tokens may cost 2,000 × 0.6
    // = 1,200 at the built-in price: refused before reaching the upstream.
    let r = send(&gw, "sk-tight-0000", chat("plain", 2_000), "price-big").await;
    assert_eq!(r.status(), 402);
    assert_eq!(mock.hits(), 0);
    // 1,000 output tokens reserve at most 8 × 0.15 + 600 = 602: admitted,
    // and charged what it used, 100 × 0.15 + 1,000 × 0.6 = 615.
    mock.push(Script::text("answer").with_usage(100, 1_000));
    let r = send(&gw, "sk-tight-0000", chat("plain", 1_000), "price-fits").await;
    assert_eq!(r.status(), 200);
    assert!(log_line("price-fits").await.contains("cost_usd=0.000615"));
    // 615 spent: another such request (≤ 602 more) would pass 1,000.
    let r = send(&gw, "sk-tight-0000", chat("plain", 1_000), "price-over").await;
    assert_eq!(r.status(), 402);
}

#[tokio::test]
async fn the_admin_api_lists_each_deployments_price_and_its_source() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&mock)).await;
    let admin = gw.admin_url.clone().unwrap();
    let v: Value = TestGateway::client()
        .get(format!("{admin}/admin/prices"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = v["deployments"].as_array().unwrap();
    let row = |m: &str| rows.iter().find(|r| r["model"] == m).unwrap().clone();
    let plain = row("plain");
    assert_eq!(plain["source"], "builtin", "{plain}");
    assert_eq!(plain["builtin"]["model"], "gpt-4o-mini", "{plain}");
    assert_eq!(plain["builtin"]["provider"], "openai");
    assert_eq!(plain["price"]["input"], 0.15);
    assert_eq!(plain["price"]["cache_read"], 0.075);
    let priced = row("priced");
    assert_eq!(
        (&priced["source"], &priced["level"]),
        (&json!("config"), &json!("model"))
    );
    assert_eq!(priced["price"]["output"], 10.0);
    let local = row("local");
    assert!(
        local["price"].is_null() && local["source"].is_null(),
        "{local}"
    );
}
