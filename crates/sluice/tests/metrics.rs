//! `/metrics` label cardinality over real sockets: 10,000 distinct end
//! users (each with its own `per: user` rate-limit state, request id and
//! client-supplied tag) add no series and no label value; cost and tokens
//! are counted by tenant and model.

mod common;

use std::collections::BTreeSet;

use common::{TestGateway, ADMIN_KEY, KEY};
use futures::StreamExt;
use serde_json::json;
use sluice_testkit::{MockUpstream, Script};

/// The series (lines that are not comments) of the exposition.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_owned())
        .collect()
}

async fn chat(gw: &TestGateway, user: &str) {
    let r = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("x-request-id", format!("req-{user}"))
        .header("x-end-user", user)
        .json(&json!({"model": "smart", "user": user,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_end_users_add_no_series() {
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("ok").with_usage(5, 7));
    let gw = TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
server: {{ end_user_header: x-end-user }}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-up }}
models:
  smart: {{ price: {{ input: 1, output: 2 }}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
tenants:
  acme: {{}}
keys:
  - {{ name: ci, key: {KEY}, tenant: acme, policy: {{ rate_limit: {{ requests_per_minute: 1000, per: user }} }} }}
"#,
        mock.url()
    ))
    .await;
    for i in 0..20 {
        chat(&gw, &format!("warm-user-{i}")).await;
    }
    let before = series(&gw.metrics().await);
    let gw = &gw;
    futures::stream::iter(0..10_000)
        .for_each_concurrent(32, |i| async move {
            chat(gw, &format!("end-user-{i:05}")).await
        })
        .await;
    let text = gw.metrics().await;
    let after = series(&text);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "new series: {new:?}");
    assert!(
        !text.contains("end-user-"),
        "an end user became a label value"
    );
    // Cost and tokens by tenant and model: 10,020 × (5 × 1 + 7 × 2) µUSD.
    let cost = text
        .lines()
        .find(|l| l.starts_with("sluice_cost_usd_total{") && l.contains("tenant=\"acme\""))
        .unwrap_or_else(|| panic!("no cost series:\n{text}"));
    let usd: f64 = cost.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((usd - 10_020.0 * 19e-6).abs() < 1e-6, "{cost}");
    assert!(text.contains(
        "sluice_tenant_tokens_total{tenant=\"acme\",model=\"smart\",direction=\"output\"} 70140"
    ), "{text}");
}
