//! The response cache over real sockets: a second identical request is
//! answered from the cache (the upstream saw one call), streamed or not,
//! OpenAI or Anthropic inbound, tool calls included; tenants never share
//! an entry; `Cache-Control: no-cache` / `no-store`; entries expire;
//! errors and cut streams are not kept; a model without `cache:` is never
//! cached; hits count against rate limits but cost no tokens and no money;
//! the request log marks hits.

mod common;

use std::time::Duration;

use common::db::{Backend, FreshStore};
use common::{sse_events, TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// Same tenant as `KEY`.
const SAME_TENANT: &str = "sk-test-same-tenant-01";
/// Another tenant.
const OTHER_TENANT: &str = "sk-test-other-tenant-1";
/// No tenant: shares with nobody.
const LONE: &str = "sk-test-lone-key-0001";
/// Limited: 4 requests and 1000 tokens a minute, $1 a day.
const LIMITED: &str = "sk-test-limited-key-01";

fn config(mock: &MockUpstream, extra: &str) -> String {
    let url = mock.url();
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
{extra}
providers:
  oa: {{ kind: openai, base_url: "{url}/v1", api_key: sk-upstream-secret }}
  an: {{ kind: anthropic, base_url: "{url}", api_key: sk-ant-secret }}
models:
  cached: {{ price: {{ input: 10, output: 10 }}, cache: {{}}, deployments: [ {{ provider: oa, model: gpt-4o-mini }} ] }}
  cached-an: {{ cache: {{ ttl: 1h }}, deployments: [ {{ provider: an, model: claude-haiku-4-5 }} ] }}
  brief: {{ cache: {{ ttl: 1s }}, deployments: [ {{ provider: oa, model: gpt-4o-mini }} ] }}
  plain: {{ deployments: [ {{ provider: oa, model: gpt-4o-mini }} ] }}
tenants:
  acme: {{}}
  other: {{}}
keys:
  - {{ name: ci, key: {KEY}, tenant: acme }}
  - {{ name: ci2, key: {SAME_TENANT}, tenant: acme }}
  - {{ name: rival, key: {OTHER_TENANT}, tenant: other }}
  - {{ name: lone, key: {LONE} }}
  - name: limited
    key: {LIMITED}
    policy:
      rate_limit: {{ requests_per_minute: 4, tokens_per_minute: 1000 }}
      budget: {{ usd_per_day: 1 }}
"#
    )
}

async fn start(extra: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&mock, extra)).await;
    (mock, gw)
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}]})
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

async fn send(
    gw: &TestGateway,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Sends and returns (status, `x-sluice-cache`, body text).
async fn call(
    gw: &TestGateway,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let r = send(gw, key, body, headers).await;
    let cache = header(&r, "x-sluice-cache").map(str::to_owned);
    (r.status().as_u16(), cache, r.text().await.unwrap())
}

/// The text of an OpenAI stream's content deltas, and whether it ended.
fn stream_text(body: &str) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for (_, data) in sse_events(body) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    (text, done)
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let (mock, gw) = start("").await;
    mock.push(Script::text("The answer is 42.").with_usage(9, 6));
    let body = ask("cached", "what is the answer?");
    let first = send(&gw, KEY, &body, &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-sluice-cache"), Some("miss"));
    assert_eq!(header(&first, "x-sluice-attempts"), Some("1"));
    let first: Value = first.json().await.unwrap();

    let second = send(&gw, KEY, &body, &[]).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-sluice-cache"), Some("hit"));
    assert_eq!(header(&second, "x-sluice-attempts"), Some("0"));
    assert_eq!(header(&second, "x-sluice-model"), Some("cached"));
    assert_eq!(header(&second, "x-sluice-provider"), Some("oa"));
    assert!(header(&second, "x-request-id").is_some());
    let second: Value = second.json().await.unwrap();
    // An OpenAI upstream's answer to an OpenAI client: the same bytes.
    assert_eq!(second, first);
    assert_eq!(mock.hits(), 1, "the hit called no upstream");

    // The same request streamed is a hit too, its usage chunk included.
    let (status, cache, text) = call(&gw, KEY, &streamed(body.clone()), &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(stream_text(&text), ("The answer is 42.".to_owned(), true));
    assert!(text.contains(r#""prompt_tokens":9"#), "{text}");
    assert_eq!(mock.hits(), 1);

    let metrics = gw.metrics().await;
    for line in [
        r#"sluice_cache_requests_total{model="cached",result="hit"} 2"#,
        r#"sluice_cache_requests_total{model="cached",result="miss"} 1"#,
        r#"sluice_cache_stores_total{result="stored"} 1"#,
        "sluice_cache_entries 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn a_streamed_answer_is_kept_and_served_plain_or_streamed() {
    let (mock, gw) = start("").await;
    mock.push(Script::text("Streamed once, served thrice.").with_usage(5, 7));
    let body = ask("cached", "stream it");
    let (status, cache, text) = call(&gw, KEY, &streamed(body.clone()), &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    assert_eq!(stream_text(&text).0, "Streamed once, served thrice.");

    // Streamed again without asking for usage: no usage chunk.
    let mut quiet = body.clone();
    quiet["stream"] = json!(true);
    let (status, cache, text) = call(&gw, KEY, &quiet, &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(
        stream_text(&text),
        ("Streamed once, served thrice.".to_owned(), true)
    );
    assert!(!text.contains("prompt_tokens"), "{text}");

    let (status, cache, text) = call(&gw, KEY, &body, &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Streamed once, served thrice."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn tool_calls_survive_a_hit() {
    let (mock, gw) = start("").await;
    mock.push(Script::tool_call("get_weather", json!({"city": "Paris"})).with_usage(20, 10));
    let mut body = ask("cached", "weather in Paris?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (_, cache, first) = call(&gw, KEY, &streamed(body.clone()), &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    assert!(first.contains("get_weather"), "{first}");

    let (status, cache, text) = call(&gw, KEY, &body, &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    let v: Value = serde_json::from_str(&text).unwrap();
    let call0 = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call0["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call0["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert!(call0["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    // Streamed: the call arrives whole in one delta.
    let (_, cache, text) = call(&gw, KEY, &streamed(body), &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    let calls: Vec<Value> = sse_events(&text)
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .cloned()
                .map(Value::Object)
        })
        .collect();
    assert_eq!(calls.len(), 1, "{text}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(text.contains(r#""finish_reason":"tool_calls""#), "{text}");
    assert_eq!(mock.hits(), 1);
}

async fn messages(gw: &TestGateway, body: &Value) -> (u16, Option<String>, String) {
    let r = gw.post_anthropic(body.clone()).await;
    let cache = header(&r, "x-sluice-cache").map(str::to_owned);
    (r.status().as_u16(), cache, r.text().await.unwrap())
}

#[tokio::test]
async fn anthropic_clients_get_hits_in_their_format() {
    let (mock, gw) = start("").await;
    mock.push(Script::text("Bonjour!").with_usage(12, 3));
    mock.push(Script::tool_call("lookup", json!({"q": "x"})).with_usage(12, 3));
    let body = json!({"model": "cached-an", "max_tokens": 100,
        "messages": [{"role": "user", "content": "say hi in French"}]});
    let (status, cache, _) = messages(&gw, &body).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    let (status, cache, text) = messages(&gw, &body).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Bonjour!");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 3);

    let mut s = body.clone();
    s["stream"] = json!(true);
    let (status, cache, text) = messages(&gw, &s).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().filter_map(|(e, _)| e.as_deref()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(text.contains("Bonjour!"), "{text}");
    assert!(
        text.contains(r#""input_tokens":12"#),
        "message_start reports the input: {text}"
    );

    // A tool call, first streamed (assembled), then served plain.
    let tool = json!({"model": "cached-an", "max_tokens": 100, "stream": true,
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "look x up"}]});
    let (_, cache, _) = messages(&gw, &tool).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let mut plain = tool.clone();
    plain["stream"] = json!(false);
    let (_, cache, text) = messages(&gw, &plain).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let block = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .cloned()
        .unwrap();
    assert_eq!(
        (block["name"].clone(), block["input"].clone()),
        (json!("lookup"), json!({"q": "x"}))
    );
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(mock.hits(), 2);

    // The OpenAI endpoint has entries of its own.
    mock.push(Script::text("Bonjour!"));
    let (_, cache, _) = call(
        &gw,
        KEY,
        &json!({"model": "cached-an", "max_tokens": 100,
        "messages": [{"role": "user", "content": "say hi in French"}]}),
        &[],
    )
    .await;
    assert_eq!(cache.as_deref(), Some("miss"));
}

#[tokio::test]
async fn tenants_never_share_an_entry() {
    let (mock, gw) = start("").await;
    mock.set_default(Script::text("per tenant"));
    let body = ask("cached", "shared question");
    let seen = |c: (u16, Option<String>, String)| c.1;
    assert_eq!(
        seen(call(&gw, KEY, &body, &[]).await).as_deref(),
        Some("miss")
    );
    assert_eq!(
        seen(call(&gw, SAME_TENANT, &body, &[]).await).as_deref(),
        Some("hit")
    );
    assert_eq!(
        seen(call(&gw, OTHER_TENANT, &body, &[]).await).as_deref(),
        Some("miss")
    );
    assert_eq!(
        seen(call(&gw, LONE, &body, &[]).await).as_deref(),
        Some("miss")
    );
    assert_eq!(
        seen(call(&gw, OTHER_TENANT, &body, &[]).await).as_deref(),
        Some("hit")
    );
    assert_eq!(mock.hits(), 3);
}

#[tokio::test]
async fn cache_control_skips_the_lookup_or_the_cache() {
    let (mock, gw) = start("").await;
    mock.set_default(Script::text("fresh"));
    let body = ask("cached", "control");
    // no-store: neither looked up nor stored, and no header.
    let (_, cache, _) = call(&gw, KEY, &body, &[("cache-control", "no-store")]).await;
    assert_eq!(cache, None);
    let (_, cache, _) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"), "no-store kept nothing");
    assert_eq!(mock.hits(), 2);
    // no-cache: the upstream is asked although an entry exists.
    let (_, cache, _) = call(&gw, KEY, &body, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(mock.hits(), 3);
    let (_, cache, _) = call(&gw, KEY, &body, &[("cache-control", "no-store")]).await;
    assert_eq!(cache, None);
    assert_eq!(mock.hits(), 4);
    let (_, cache, _) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(mock.hits(), 4);
}

#[tokio::test]
async fn no_cache_stores_the_fresh_answer() {
    let (mock, gw) = start("").await;
    mock.push(Script::text("old"));
    mock.push(Script::text("new"));
    let body = ask("cached", "refresh me");
    call(&gw, KEY, &body, &[]).await;
    let (_, _, text) = call(&gw, KEY, &body, &[("cache-control", "no-cache")]).await;
    assert!(text.contains("new"), "{text}");
    let (_, cache, text) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert!(
        text.contains("new"),
        "the fresh answer replaced the old: {text}"
    );
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (mock, gw) = start("").await;
    mock.set_default(Script::text("short-lived"));
    let body = ask("brief", "expire me");
    let (_, cache, _) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    // Hits until the 1s ttl ends, then a miss; polled, not timed.
    let mut hits = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, cache, _) = call(&gw, KEY, &body, &[]).await;
        match cache.as_deref() {
            Some("hit") => hits += 1,
            Some("miss") => break,
            other => panic!("unexpected x-sluice-cache {other:?}"),
        }
        assert!(tokio::time::Instant::now() < end, "the entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hits > 0, "the entry was never served");
    assert_eq!(mock.hits(), 2);
}

#[tokio::test]
async fn errors_and_cut_streams_are_not_kept() {
    let (mock, gw) = start("").await;
    let body = ask("cached", "flaky");
    mock.push(Script::status(400));
    let (status, cache, _) = call(&gw, KEY, &body, &[]).await;
    assert_eq!((status, cache.as_deref()), (400, Some("miss")));
    mock.push(Script::text("a cut stream").truncated_after(2));
    let (status, _, text) = call(&gw, KEY, &streamed(body.clone()), &[]).await;
    assert_eq!(status, 200);
    assert!(
        !stream_text(&text).1,
        "a cut stream does not end cleanly: {text}"
    );
    mock.push(Script::text("cut by the length").with_length_finish());
    let (_, cache, _) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"), "nothing was kept before");
    assert_eq!(mock.hits(), 3);
    // A `length` finish is a complete answer (to that max_tokens).
    let (_, cache, text) = call(&gw, KEY, &body, &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert!(text.contains(r#""finish_reason":"length""#), "{text}");
    assert_eq!(mock.hits(), 3);
}

#[tokio::test]
async fn a_model_without_cache_is_never_cached() {
    let (mock, gw) = start("").await;
    mock.set_default(Script::text("uncached"));
    let body = ask("plain", "again and again");
    for _ in 0..2 {
        let (status, cache, _) = call(&gw, KEY, &body, &[]).await;
        assert_eq!((status, cache), (200, None));
    }
    assert_eq!(mock.hits(), 2);
    let metrics = gw.metrics().await;
    assert!(
        !metrics.contains(r#"sluice_cache_requests_total{model="plain""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn hits_count_as_requests_but_cost_no_tokens_or_money() {
    let (mock, gw) = start("").await;
    // 100 in + 100 out: 200 of the key's 1000 tokens a minute, $0.002.
    mock.set_default(Script::text("limited answer").with_usage(100, 100));
    let body = ask("cached", "count me");
    let (status, cache, _) = call(&gw, LIMITED, &body, &[]).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    // Three hits: if each cost its 200 tokens, the key would have spent
    // 800 of its 1000 and the next miss (reserving ~210) would be refused.
    for _ in 0..2 {
        let (status, cache, _) = call(&gw, LIMITED, &body, &[]).await;
        assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    }
    let r = send(&gw, LIMITED, &body, &[]).await;
    assert_eq!(header(&r, "x-sluice-cache"), Some("hit"));
    // Left: 1000 - 200 (the miss) - this request's own reservation (~208);
    // had the two earlier hits cost 200 each, 400 fewer.
    let remaining: u64 = header(&r, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining >= 500, "hits used no tokens: {remaining} left");
    // But each hit counted against the 4 requests a minute.
    let (status, _, _) = call(&gw, LIMITED, &ask("cached", "one more"), &[]).await;
    assert_eq!(status, 429);
    assert_eq!(mock.hits(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"sluice_budget_spend_microdollars_total{scope="key"} 2000"#),
        "only the miss was charged:\n{metrics}"
    );
}

async fn request_log_marks_hits(backend: Backend) {
    let db = FreshStore::new(backend).await;
    let (mock, gw) = start(&format!(
        "store: \"{}\"\nrequest_log: {{ flush_every: 50ms }}",
        db.url
    ))
    .await;
    mock.set_default(Script::text("logged").with_usage(8, 4));
    let body = ask("cached", "log me");
    for id in ["cache-miss-1", "cache-hit-1"] {
        let r = send(&gw, KEY, &body, &[("x-request-id", id)]).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    let store = gw.app.store.clone().unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let records = loop {
        let q = sluice_store::LogQuery {
            from: 0,
            to: i64::MAX / 2,
            limit: 100,
            ..Default::default()
        };
        let page = store.logs(&q).await.unwrap();
        if page.len() >= 2 || tokio::time::Instant::now() > end {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |id: &str| {
        records
            .iter()
            .find(|r| r.request_id == id)
            .unwrap_or_else(|| panic!("{id}: {records:#?}"))
    };
    let (miss, hit) = (find("cache-miss-1"), find("cache-hit-1"));
    assert!(!miss.cache_hit);
    assert_eq!(
        (miss.attempts, miss.cost_micro.is_some_and(|c| c > 0)),
        (1, true)
    );
    assert!(hit.cache_hit);
    assert_eq!((hit.attempts, hit.cost_micro), (0, Some(0)));
    assert_eq!(
        (hit.tokens_in, hit.tokens_out),
        (8, 4),
        "the tokens of the answer the client got"
    );
    assert_eq!(hit.provider.as_deref(), Some("oa"));
    assert_eq!(hit.model.as_deref(), Some("cached"));
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn request_log_marks_hits_sqlite() {
    request_log_marks_hits(Backend::Sqlite).await;
}
