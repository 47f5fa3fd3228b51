//! Concurrency limits over real sockets, in front of a scripted OpenAI
//! mock upstream whose first answer is held back (so a slot is
//! demonstrably busy): the excess is refused (429, queue full) or waits;
//! a wait that runs out is a 503; both carry `Retry-After`; queued
//! requests go by priority class; a stream holds its slot until it ends; a
//! client that goes away while queued or in flight frees everything; the
//! metrics and the access log show the waits.

mod common;

use std::time::Duration;

use common::log::{access_log, log_line};
use common::{TestGateway, ADMIN_KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// A gateway with keys `a` (tenant `t`, priority batch) and `b` (tenant
/// `t`, priority critical) under the tenant policy `concurrency`.
async fn gateway(mock: &MockUpstream, concurrency: &str) -> TestGateway {
    access_log();
    TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
log: {{ access_log: true }}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-upstream-secret }}
models:
  m: {{ deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
tenants:
  t: {{ policy: {{ concurrency: {concurrency} }} }}
keys:
  - {{ name: a, key: sk-key-a-000001, tenant: t, policy: {{ priority: batch }} }}
  - {{ name: b, key: sk-key-b-000001, tenant: t, policy: {{ priority: critical }} }}
"#,
        mock.url()
    ))
    .await
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// Sends a chat request as key `who` (`a` or `b`) with request id `id`.
fn send(
    gw: &TestGateway,
    who: &str,
    id: &str,
    body: Value,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let req = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(format!("sk-key-{who}-000001"))
        .header("x-request-id", id)
        .json(&body);
    tokio::spawn(async move { req.send().await.unwrap() })
}

/// Waits until the upstream has seen `n` requests.
async fn upstream_saw(mock: &MockUpstream, n: usize) {
    assert!(
        mock.wait_for_hits(n, Duration::from_secs(5)).await,
        "the upstream saw {} requests, not {n}",
        mock.hits()
    );
}

/// A held-back first answer (the slot stays busy), quick answers after.
fn hold_first(mock: &MockUpstream, hold: Duration) {
    mock.set_default(Script::text("quick"));
    mock.push(Script::text("slow").with_delay(hold));
}

/// Waits until `n` requests wait in the tenant's queue.
async fn queued(gw: &TestGateway, n: u64) {
    let want = format!("sluice_queue_waiting{{scope=\"tenant\"}} {n}\n");
    for _ in 0..250 {
        if gw.metrics().await.contains(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {n} waiting: {}", gw.metrics().await);
}

async fn error_of(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap())
}

#[tokio::test]
async fn beyond_max_in_flight_with_no_queue_is_429_queue_full() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ max_in_flight: 1 }").await;
    hold_first(&mock, Duration::from_secs(2));
    let first = send(&gw, "a", "cc-full-1", chat("one", false));
    upstream_saw(&mock, 1).await;
    let (status, retry, body) = error_of(
        send(&gw, "b", "cc-full-2", chat("two", false))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    assert_eq!(body["error"]["code"], "queue_full", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the concurrency queue of tenant `t` is full"),
        "{msg}"
    );
    assert_eq!(first.await.unwrap().status(), 200);
    // The slot is free again.
    assert_eq!(
        send(&gw, "b", "cc-full-3", chat("three", false))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        mock.hits(),
        2,
        "the refused request never reached the upstream"
    );
}

#[tokio::test]
async fn a_wait_that_runs_out_is_503_queue_timeout() {
    let mock = MockUpstream::start().await;
    let gw = gateway(
        &mock,
        "{ max_in_flight: 1, queue: 4, queue_timeout: 300ms }",
    )
    .await;
    hold_first(&mock, Duration::from_secs(3));
    let _first = send(&gw, "a", "cc-timeout-1", chat("one", false));
    upstream_saw(&mock, 1).await;
    let (status, retry, body) = error_of(
        send(&gw, "b", "cc-timeout-2", chat("two", false))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some());
    assert_eq!(body["error"]["code"], "queue_timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no concurrency slot of tenant `t` came free within 0.3 s"),
        "{body}"
    );
    let line = log_line("cc-timeout-2").await;
    assert!(
        line.contains("error=\"queue_timeout\"") && line.contains("status=503"),
        "{line}"
    );
}

#[tokio::test]
async fn queued_requests_wait_then_go_highest_priority_first() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ max_in_flight: 1, queue: 10, queue_timeout: 10s }").await;
    hold_first(&mock, Duration::from_millis(800));
    let first = send(&gw, "a", "cc-prio-0", chat("first", false));
    upstream_saw(&mock, 1).await;
    // Three batch requests queue first, then one critical.
    let mut batch = Vec::new();
    for i in 1..=3 {
        batch.push(send(
            &gw,
            "a",
            &format!("cc-prio-{i}"),
            chat(&format!("batch {i}"), false),
        ));
        queued(&gw, i).await;
    }
    let critical = send(&gw, "b", "cc-prio-9", chat("critical", false));
    for h in batch {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    assert_eq!(critical.await.unwrap().status(), 200);
    assert_eq!(first.await.unwrap().status(), 200);
    let order: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        order,
        ["first", "critical", "batch 1", "batch 2", "batch 3"]
    );
    let line = log_line("cc-prio-9").await;
    assert!(line.contains("queue_wait_ms="), "{line}");
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains(r#"sluice_queue_wait_seconds_count{scope="tenant",priority="critical"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_queue_in_flight{scope="tenant"} 0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ max_in_flight: 1 }").await;
    mock.set_default(Script::text("quick"));
    mock.push(Script::text("a b c d e f").with_chunk_delay(Duration::from_millis(150)));
    let r = send(&gw, "a", "cc-stream-1", chat("stream", true))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Headers are out, the body is still streaming: the slot is taken.
    let (status, _, body) = error_of(
        send(&gw, "b", "cc-stream-2", chat("two", false))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let text = r.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    log_line("cc-stream-1").await;
    assert_eq!(
        send(&gw, "b", "cc-stream-3", chat("three", false))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn clients_that_go_away_free_their_slot_and_their_place() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, "{ max_in_flight: 1, queue: 1, queue_timeout: 10s }").await;
    hold_first(&mock, Duration::from_secs(10));
    let first = send(&gw, "a", "cc-gone-1", chat("one", false));
    upstream_saw(&mock, 1).await;
    let waiting = send(&gw, "a", "cc-gone-2", chat("two", false));
    queued(&gw, 1).await;
    // The queue (1 place) is taken: the next is refused.
    let r = send(&gw, "b", "cc-gone-probe", chat("probe", false))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Both clients go away: the queued one and the one holding the slot.
    waiting.abort();
    first.abort();
    log_line("cc-gone-2").await;
    log_line("cc-gone-1").await;
    queued(&gw, 0).await;
    let r = send(&gw, "b", "cc-gone-3", chat("three", false))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
