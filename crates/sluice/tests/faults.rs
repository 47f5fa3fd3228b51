//! Upstream failures reach the client honestly: a reset mid-stream is an
//! error event (never a clean finish), upstream errors keep their class and
//! name the provider, retryable failures move on to the next deployment, a
//! client disconnect cancels the upstream call, and timeouts fire.

mod common;

use std::time::Duration;

use common::{one_provider, sse_events, TestGateway, KEY};
use futures::StreamExt;
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn reset_mid_stream_is_an_error_event_not_done() {
    for kind in ["openai", "anthropic", "gemini"] {
        let mock = MockUpstream::start().await;
        let base = if kind == "openai" {
            format!("{}/v1", mock.url())
        } else {
            mock.url()
        };
        let gw = TestGateway::start(&one_provider(kind, &base, "")).await;
        mock.push(
            Script::text("a fairly long answer that will be cut short")
                .with_chunk_delay(Duration::from_millis(5))
                .truncated_after(4),
        );
        let resp = gw.post("/v1/chat/completions", chat(true)).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{kind}: {body}");
        let events = sse_events(&body);
        let last = &events.last().unwrap().1;
        assert!(
            !body.contains("[DONE]"),
            "{kind}: a cut stream must not end with [DONE]: {body}"
        );
        assert!(
            !body.contains("\"finish_reason\":\"stop\""),
            "{kind}: no clean stop: {body}"
        );
        let err: Value = serde_json::from_str(last).unwrap();
        assert!(
            err["error"]["message"].as_str().unwrap().contains("`up`"),
            "{kind}: {last}"
        );

        mock.push(
            Script::text("a fairly long answer that will be cut short")
                .with_chunk_delay(Duration::from_millis(5))
                .truncated_after(4),
        );
        let resp = gw.post_anthropic(json!({"model": "m", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "Hi"}]})).await;
        let body = resp.text().await.unwrap();
        let names: Vec<String> = sse_events(&body).into_iter().filter_map(|e| e.0).collect();
        assert_eq!(
            names.last().map(String::as_str),
            Some("error"),
            "{kind}: {body}"
        );
        assert!(!names.iter().any(|n| n == "message_stop"), "{kind}: {body}");
    }
}

#[tokio::test]
async fn upstream_429_keeps_class_retry_after_and_names_provider() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&one_provider("anthropic", &mock.url(), "")).await;
    mock.push(Script::rate_limited(7));
    let resp = gw.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-sluice-provider"], "up");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("provider `up`"));
    mock.push(Script::context_length_exceeded());
    let resp = gw
        .post_anthropic(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

const TWO_DEPLOYMENTS: &str = r#"
listen: 127.0.0.1:0
providers:
  a: { kind: openai, base_url: "BASE_A/v1" }
  b: { kind: openai, base_url: "BASE_B/v1" }
models:
  m:
    deployments:
      - { provider: a, model: x }
      - { provider: b, model: x }
keys:
  - { name: test, key: sk-test-key-0001 }
"#;

#[tokio::test]
async fn retryable_failures_move_to_the_next_deployment_but_client_errors_do_not() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = TestGateway::start(
        &TWO_DEPLOYMENTS
            .replace("BASE_A", &a.url())
            .replace("BASE_B", &b.url()),
    )
    .await;
    a.set_default(Script::status(500));
    // Round robin starts at a, then at b: both requests are served by b,
    // the first after a failed attempt on a.
    let mut served = Vec::new();
    for _ in 0..2 {
        let resp = gw.post("/v1/chat/completions", chat(false)).await;
        assert_eq!(resp.status(), 200);
        served.push((
            resp.headers()["x-sluice-provider"]
                .to_str()
                .unwrap()
                .to_owned(),
            resp.headers()["x-sluice-attempts"]
                .to_str()
                .unwrap()
                .to_owned(),
        ));
    }
    served.sort();
    assert_eq!(
        served,
        [
            ("b".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(a.hits(), 1);
    // Both failing: the answer lists every attempt.
    b.set_default(Script::status(500));
    let resp = gw.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-sluice-attempts"], "2");
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("all 2 attempts failed")
            && msg.contains("a: server_error")
            && msg.contains("b: server_error"),
        "{msg}"
    );
    // A client error (400) is not retried elsewhere.
    let hits = a.hits() + b.hits();
    a.push(Script::status(400));
    b.push(Script::status(400));
    let resp = gw.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(a.hits() + b.hits(), hits + 1);
}

#[tokio::test]
async fn connection_reset_and_refused_are_502_naming_the_provider() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&one_provider("openai", &format!("{}/v1", mock.url()), "")).await;
    mock.push(Script::text("x").reset());
    let resp = gw.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 502);
    let gw2 = TestGateway::start(&one_provider("openai", "http://127.0.0.1:9/v1", "")).await;
    let resp = gw2.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "connection");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&one_provider("openai", &format!("{}/v1", mock.url()), "")).await;
    mock.push(Script::text("word ".repeat(200)).with_chunk_delay(Duration::from_millis(20)));
    let resp = gw.post("/v1/chat/completions", chat(true)).await;
    let mut body = resp.bytes_stream();
    // The first chunk arrives while the upstream is still sending: no buffering.
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    assert!(
        mock.wait_for_disconnects(1, Duration::from_secs(1)).await,
        "upstream not cancelled within 1 s"
    );
}

#[tokio::test]
async fn first_byte_and_idle_timeouts_fire() {
    let mock = MockUpstream::start().await;
    let cfg = one_provider("openai", &format!("{}/v1", mock.url()), "").replacen(
        "listen: 127.0.0.1:0\n",
        "listen: 127.0.0.1:0\nserver: { first_byte_timeout: 300ms, stream_idle_timeout: 300ms }\n",
        1,
    );
    let gw = TestGateway::start(&cfg).await;
    mock.push(Script::text("slow").with_delay(Duration::from_secs(3)));
    let resp = gw.post("/v1/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 504);
    mock.push(Script::text("slow chunks here").with_chunk_delay(Duration::from_secs(3)));
    let body = gw
        .post("/v1/chat/completions", chat(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains("[DONE]"));
    assert!(body.contains("idle"), "{body}");
}

#[tokio::test]
async fn mock_provider_faults_are_injected() {
    let cfg = r#"
listen: 127.0.0.1:0
providers:
  flaky:
    kind: mock
    mock:
      faults:
        - { every: 2, status: 429, retry_after: 3s }
models:
  m: { deployments: [ { provider: flaky, model: m } ] }
keys:
  - { name: test, key: sk-test-key-0001 }
"#;
    let gw = TestGateway::start(cfg).await;
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| async {
        gw.post("/v1/chat/completions", chat(false))
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    let _ = KEY;
}

#[tokio::test]
async fn an_unreadable_upstream_answer_is_502_naming_the_provider() {
    for kind in ["openai", "anthropic", "gemini"] {
        let mock = MockUpstream::start().await;
        let base = if kind == "openai" {
            format!("{}/v1", mock.url())
        } else {
            mock.url()
        };
        let gw = TestGateway::start(&one_provider(kind, &base, "")).await;
        // A 200 whose body is JSON but not the provider's answer shape.
        mock.push(Script::error(200, json!(["not", "an", "answer"])));
        let resp = gw.post("/v1/chat/completions", chat(false)).await;
        assert_eq!(resp.status(), 502, "{kind}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "bad_upstream_response", "{kind}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("`up`"),
            "{kind}: {v}"
        );
    }
}
