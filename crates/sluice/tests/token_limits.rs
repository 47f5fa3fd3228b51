//! Token limits over real sockets, in front of an OpenAI-compatible mock
//! upstream serving `gpt-4o-mini` (so prompts are counted with tiktoken's
//! `o200k_base`): the reservation (prompt + maximum output) shows in the
//! `x-ratelimit-*-tokens` headers, settles to the usage the upstream
//! reports (streamed too), is released when the upstream fails, and a
//! request over the limit gets a 429 naming it.

mod common;

use common::log::{access_log, log_line};
use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// A gateway whose test key may use `tokens_per_day` tokens (a day, so the
/// refill — under 0.2 tokens a second here — stays below one token while a
/// test runs).
async fn gateway(mock: &MockUpstream, tokens_per_day: u32) -> TestGateway {
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
  mini: {{ deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
keys:
  - {{ name: ci, key: {KEY}, policy: {{ rate_limit: {{ tokens_per_day: {tokens_per_day} }} }} }}
"#,
        mock.url()
    ))
    .await
}

/// "hello world" as one user message: 3 to prime the answer, 3 for the
/// message, 2 for the text in `o200k_base`.
const PROMPT_TOKENS: u64 = 8;

fn chat(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "mini",
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello world"}],
    })
}

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

/// Tokens remaining after a request reserving `max_tokens` of output.
async fn remaining_after(gw: &TestGateway, max_tokens: u32) -> u64 {
    let r = gw
        .post("/v1/chat/completions", chat(max_tokens, false))
        .await;
    assert_eq!(r.status(), 200);
    header(&r, "x-ratelimit-remaining-tokens")
}

/// Whether `got` is `want` give or take the refill since (under a token).
fn about(got: u64, want: u64) -> bool {
    got == want || got == want + 1
}

#[tokio::test]
async fn the_reservation_shows_in_the_headers_and_settles_to_real_usage() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, 10_000).await;
    mock.push(Script::text("hi there").with_usage(PROMPT_TOKENS, 20));
    let r = gw.post("/v1/chat/completions", chat(500, false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), 10_000);
    let reserved = PROMPT_TOKENS + 500;
    let left = header(&r, "x-ratelimit-remaining-tokens");
    assert!(about(left, 10_000 - reserved), "{left}");
    assert!(r.headers().contains_key("x-ratelimit-reset-tokens"));
    // The first request settled to its 28 tokens; the second holds 508.
    mock.push(Script::text("hi").with_usage(PROMPT_TOKENS, 1));
    let left = remaining_after(&gw, 500).await;
    assert!(about(left, 10_000 - 28 - reserved), "{left}");
}

#[tokio::test]
async fn a_streamed_answer_settles_to_its_reported_usage() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, 10_000).await;
    mock.push(Script::text("a streamed answer").with_usage(PROMPT_TOKENS, 100));
    let r = gw.post("/v1/chat/completions", chat(1000, true)).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    log_line(&id).await;
    mock.push(Script::text("hi").with_usage(PROMPT_TOKENS, 1));
    let left = remaining_after(&gw, 10).await;
    assert!(about(left, 10_000 - 108 - (PROMPT_TOKENS + 10)), "{left}");
}

#[tokio::test]
async fn a_failed_request_releases_its_reservation() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, 10_000).await;
    mock.push(Script::status(500));
    let r = gw.post("/v1/chat/completions", chat(4000, false)).await;
    assert_eq!(r.status(), 502);
    mock.push(Script::text("hi").with_usage(PROMPT_TOKENS, 1));
    let left = remaining_after(&gw, 10).await;
    assert!(about(left, 10_000 - (PROMPT_TOKENS + 10)), "{left}");
}

#[tokio::test]
async fn over_the_limit_is_429_naming_it_and_too_large_says_so() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, 1000).await;
    mock.push(Script::text("long").with_usage(PROMPT_TOKENS, 900));
    assert_eq!(remaining_after(&gw, 900).await, 1000 - 908);
    // 908 used; a request reserving 108 does not fit in the 92 left.
    let r = gw.post("/v1/chat/completions", chat(100, false)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(header(&r, "x-ratelimit-remaining-tokens"), 0);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("token rate limit of key `ci`: 1000 tokens per day")
            && msg.contains("reserves about 108 tokens"),
        "{msg}"
    );
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    // More than the whole quota can never pass.
    let r = gw.post("/v1/chat/completions", chat(5000, false)).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("needs about 5008 tokens"), "{msg}");
    assert_eq!(mock.hits(), 1, "refused requests never reach the upstream");
}

#[tokio::test]
async fn anthropic_requests_reserve_their_max_tokens_too() {
    let mock = MockUpstream::start().await;
    let gw = gateway(&mock, 10_000).await;
    mock.push(Script::text("hi").with_usage(PROMPT_TOKENS, 1));
    let r = gw
        .post_anthropic(json!({
            "model": "mini",
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "hello world"}],
        }))
        .await;
    assert_eq!(r.status(), 200);
    let left = header(&r, "x-ratelimit-remaining-tokens");
    assert!(about(left, 10_000 - PROMPT_TOKENS - 300), "{left}");
}
