//! Scripting, recording and fault injection of `MockUpstream`.

mod common;

use std::time::{Duration, Instant};

use common::{next_frame, open, post, send};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn content_of(resp: &common::Resp) -> Value {
    resp.json()["choices"][0]["message"]["content"].clone()
}

#[tokio::test]
async fn scripts_are_consumed_in_order_then_default() {
    let up = MockUpstream::start().await;
    up.push_all([
        Script::text("one"),
        Script::status(503),
        Script::text("three"),
    ]);
    up.set_default(Script::text("default"));
    let addr = up.addr();
    assert_eq!(
        content_of(&post(addr, "/v1/chat/completions", &chat(false)).await),
        "one"
    );
    assert_eq!(post(addr, "/v1/messages", &chat(false)).await.status, 503);
    assert_eq!(
        content_of(&post(addr, "/v1/chat/completions", &chat(false)).await),
        "three"
    );
    assert_eq!(up.pending(), 0);
    assert_eq!(
        content_of(&post(addr, "/v1/chat/completions", &chat(false)).await),
        "default"
    );
    assert_eq!(
        content_of(&post(addr, "/v1/chat/completions", &chat(false)).await),
        "default"
    );
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let up = MockUpstream::start().await;
    let addr = up.addr();
    post(addr, "/v1/chat/completions", &json!({"model": "first"})).await;
    post(addr, "/v1/messages", &json!({"model": "second"})).await;
    let resp = send(
        addr,
        "POST",
        "/nowhere?x=1",
        &[("authorization", "Bearer k")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(up.hits(), 3);
    let recs = up.requests();
    assert_eq!(recs[0].body["model"], "first");
    assert_eq!(recs[0].method, "POST");
    assert_eq!(recs[1].path, "/v1/messages");
    assert_eq!(recs[2].wire, None);
    assert_eq!(recs[2].query.as_deref(), Some("x=1"));
    assert_eq!(recs[2].header("authorization"), Some("Bearer k"));
    assert_eq!(recs[2].body, Value::Null);
    up.clear_requests();
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn extra_headers_are_sent() {
    let up = MockUpstream::start().await;
    up.push(Script::text("x").with_header("x-request-id", "abc"));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert_eq!(resp.header("x-request-id"), Some("abc"));
}

#[tokio::test]
async fn first_byte_delay_and_chunk_delay() {
    let up = MockUpstream::start().await;
    up.push(Script::text("x").with_delay(Duration::from_millis(150)));
    let started = Instant::now();
    post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));

    // "abcdef" streams as 2 pieces: role, 2 contents, finish, [DONE] = 5
    // events, so 4 gaps.
    up.push(Script::text("abcdef").with_chunk_delay(Duration::from_millis(40)));
    let started = Instant::now();
    let resp = post(up.addr(), "/v1/chat/completions", &chat(true)).await;
    assert!(started.elapsed() >= Duration::from_millis(160));
    assert_eq!(resp.events().len(), 5);
}

#[tokio::test]
async fn truncated_stream_ends_without_end_marker() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello, world!").truncated_after(3));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(true)).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "the body must break, not end cleanly");
    let events = resp.events();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.data != "[DONE]"));

    up.push(Script::text("Hello").truncated_after(4));
    let body = json!({"model": "c", "stream": true, "max_tokens": 5, "messages": []});
    let resp = post(up.addr(), "/v1/messages", &body).await;
    assert!(!resp.complete);
    assert!(resp
        .events()
        .iter()
        .all(|e| e.event.as_deref() != Some("message_stop")));
    assert_eq!(
        up.disconnects(),
        0,
        "our own truncation is not a client disconnect"
    );
}

#[tokio::test]
async fn truncated_non_stream_body_is_incomplete() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello").truncated_after(20));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.complete);
    assert_eq!(resp.body.len(), 20);
    assert!(serde_json::from_slice::<Value>(&resp.body).is_err());
}

#[tokio::test]
async fn reset_closes_without_answer_but_is_recorded() {
    let up = MockUpstream::start().await;
    up.push(Script::text("never").reset());
    let result = send(
        up.addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&chat(false)),
    )
    .await;
    assert!(result.is_err(), "expected no response, got {result:?}");
    assert_eq!(up.hits(), 1);
    // The next request is answered normally.
    assert_eq!(
        post(up.addr(), "/v1/chat/completions", &chat(false))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_counted() {
    let up = MockUpstream::start().await;
    let long = "x".repeat(300);
    up.push(Script::text(long).with_chunk_delay(Duration::from_millis(10)));
    let (parts, mut body, driver) = open(
        up.addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&chat(true)),
    )
    .await
    .unwrap();
    assert_eq!(parts.status, 200);
    assert!(next_frame(&mut body).await.unwrap().is_ok());
    drop(body);
    driver.abort();
    assert!(
        up.wait_for_disconnects(1, Duration::from_secs(5)).await,
        "the mock should notice the client went away"
    );
    assert_eq!(up.disconnects(), 1);

    // A stream read to its end is not a disconnect.
    up.push(Script::text("short"));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(true)).await;
    assert!(resp.complete);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(up.disconnects(), 1);
}

#[tokio::test]
async fn exact_error_body_is_passed_through() {
    let up = MockUpstream::start().await;
    up.push(Script::error(418, json!({"teapot": true})).with_header("x-why", "tea"));
    let resp = post(up.addr(), "/v1/messages", &chat(false)).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.json(), json!({"teapot": true}));
    assert_eq!(resp.header("x-why"), Some("tea"));
}

#[tokio::test]
async fn wait_for_hits_sees_concurrent_requests() {
    let up = MockUpstream::start().await;
    let addr = up.addr();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move {
                post(addr, "/v1/chat/completions", &chat(false))
                    .await
                    .status
            })
        })
        .collect();
    assert!(up.wait_for_hits(5, Duration::from_secs(5)).await);
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
}
