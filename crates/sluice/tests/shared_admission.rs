//! With `shared_state`, a request under every kind of limit — budget, rate
//! and token limits, a concurrency slot — is admitted by one Redis round
//! trip: one admission script call before the answer, nothing else on the
//! request path (settling and releasing come after it). Seen from a proxy
//! that records every command sluice sends to Redis.

mod common;

use std::time::Duration;

use common::db::redis_url;
use common::redis_proxy::{Command, RedisProxy};
use common::TestGateway;
use serde_json::json;

const ADMISSION: &str = include_str!("../src/policy/admission.lua");

fn config(redis: &str, name: &str, latency: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
shared_state: {redis}
shared_state_timeout: 1s
providers:
  mock: {{ kind: mock, mock: {{ latency: {latency} }} }}
models:
  m: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: mock, model: m }} ] }}
keys:
  - name: {name}
    key: sk-{name}-secret
    policy:
      rate_limit: {{ requests_per_minute: 6, tokens_per_minute: 1000000 }}
      budget: {{ usd_per_day: 100 }}
      concurrency: {{ max_in_flight: 1, queue_timeout: 300ms }}
"#
    )
}

async fn call(url: &str, name: &str) -> u16 {
    TestGateway::client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(format!("sk-{name}-secret"))
        .json(&json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn is_admission(c: &Command, sha: &str) -> bool {
    c.name == "EVALSHA" && c.first.as_deref() == Some(sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_under_every_limit_kind_is_admitted_in_one_round_trip() {
    let proxy = RedisProxy::start(&redis_url()).await;
    let name = format!("one-trip-{:08x}", fastrand::u32(..));
    let gw = TestGateway::start(&config(&proxy.url, &name, "0ms")).await;
    let sha = redis::Script::new(ADMISSION).get_hash().to_owned();
    let quiet = Duration::from_millis(300);

    // The first request loads the script (EVALSHA, NOSCRIPT, SCRIPT LOAD).
    assert_eq!(call(&gw.url, &name).await, 200);
    proxy.settle(quiet).await;

    // Five more are admitted (six a minute): each by exactly one command
    // before its answer, the admission script; what follows the answer
    // settles the budget and the tokens and gives the slot back.
    for i in 2..=6 {
        let before = proxy.count();
        assert_eq!(call(&gw.url, &name).await, 200, "request {i}");
        let on_path = proxy.commands()[before..].to_vec();
        let admissions = on_path.iter().filter(|c| is_admission(c, &sha)).count();
        assert_eq!(admissions, 1, "request {i}: {on_path:?}");
        proxy.settle(quiet).await;
        let all = proxy.commands()[before..].to_vec();
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert!(is_admission(&all[0], &sha), "request {i}: {all:?}");
        // Budget settle, token settle and slot release: three other scripts.
        let rest = names[1..].to_vec();
        assert_eq!(
            rest,
            ["EVALSHA", "EVALSHA", "EVALSHA"],
            "request {i}: {all:?}"
        );
        assert!(
            all[1..].iter().all(|c| !is_admission(c, &sha)),
            "request {i}: {all:?}"
        );
    }

    // The seventh is over the rate limit: refused by that same one call,
    // which wrote nothing, so nothing is settled or released afterwards.
    let before = proxy.count();
    assert_eq!(call(&gw.url, &name).await, 429);
    proxy.settle(quiet).await;
    let all = proxy.commands()[before..].to_vec();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(is_admission(&all[0], &sha), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_taken_by_the_admission_call_is_held_for_every_instance() {
    let proxy = RedisProxy::start(&redis_url()).await;
    let name = format!("one-trip-slot-{:08x}", fastrand::u32(..));
    let a = TestGateway::start(&config(&proxy.url, &name, "1500ms")).await;
    let b = TestGateway::start(&config(&redis_url(), &name, "0ms")).await;
    let sha = redis::Script::new(ADMISSION).get_hash().to_owned();
    // Load the script through the proxy first, so the slow request below
    // is admitted by one command.
    assert_eq!(call(&a.url, &name).await, 200);
    proxy.settle(Duration::from_millis(300)).await;

    let before = proxy.count();
    let url = a.url.clone();
    let slow = tokio::spawn({
        let name = name.clone();
        async move { call(&url, &name).await }
    });
    // While it runs, instance A has sent one command, and instance B finds
    // the key's one slot taken: its request waits out its queue_timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = proxy.commands()[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(is_admission(&sent[0], &sha), "{sent:?}");
    assert_eq!(call(&b.url, &name).await, 503);
    assert_eq!(slow.await.unwrap(), 200);
    // Given back when the answer ended: B gets it now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call(&b.url, &name).await, 200);
}
