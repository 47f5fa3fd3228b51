//! Client mistakes get a clear 4xx in the endpoint's own error shape, never a
//! 500: missing/invalid key, bad JSON (line and column), wrong shape, unknown
//! model (listing the allowed ones), body too large (limit named), unknown
//! endpoint, a parameter the provider cannot honour.

mod common;

use common::{TestGateway, KEY};
use serde_json::{json, Value};

const CONFIG: &str = r#"
listen: 127.0.0.1:0
server: { max_body_bytes: 64KiB }
providers:
  mock: { kind: mock }
models:
  m1: { deployments: [ { provider: mock, model: m1 } ] }
  m2: { deployments: [ { provider: mock, model: m2 } ] }
  secret-model: { deployments: [ { provider: mock, model: s } ] }
  tiny:
    deployments: [ { provider: mock, model: t } ]
    policy: { limits: { max_input_tokens: 20, max_body_bytes: 1KiB } }
  strict:
    deployments: [ { provider: mock, model: s } ]
    policy: { limits: { max_output_tokens: 50, on_max_output: reject } }
policies:
  limited:
    models: [m1, m2, tiny, strict]
    limits: { max_body_bytes: 8KiB, max_output_tokens: 5 }
keys:
  - { name: test, key: sk-test-key-0001, policy: limited }
"#;

async fn raw(gw: &TestGateway, path: &str, body: &'static str, key: Option<&str>) -> (u16, Value) {
    let mut r = TestGateway::client()
        .post(format!("{}{path}", gw.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn missing_and_invalid_keys_are_401() {
    let gw = TestGateway::start(CONFIG).await;
    let (s, v) = raw(&gw, "/v1/chat/completions", "{}", None).await;
    assert_eq!(s, 401);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (s, v) = raw(&gw, "/v1/chat/completions", "{}", Some("sk-wrong")).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (s, v) = raw(&gw, "/v1/messages", "{}", Some("sk-wrong")).await;
    assert_eq!(s, 401);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn bad_json_names_line_and_column() {
    let gw = TestGateway::start(CONFIG).await;
    let (s, v) = raw(
        &gw,
        "/v1/chat/completions",
        "{\n  \"model\": \"m1\",\n  \"messages\": [,]\n}",
        Some(KEY),
    )
    .await;
    assert_eq!(s, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("not valid JSON") && msg.contains("line 3 column"),
        "{msg}"
    );
    let (s, v) = raw(&gw, "/v1/messages", "[1,", Some(KEY)).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn wrong_shape_and_empty_messages_are_400() {
    let gw = TestGateway::start(CONFIG).await;
    let (s, v) = raw(&gw, "/v1/chat/completions", r#"{"model":"m1"}"#, Some(KEY)).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("messages"));
    let (s, _) = raw(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"m1","messages":[]}"#,
        Some(KEY),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v) = raw(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"m1","messages":[{"role":"wizard","content":"x"}]}"#,
        Some(KEY),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = raw(&gw, "/v1/chat/completions", "", Some(KEY)).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn unknown_or_forbidden_model_lists_allowed_ones() {
    let gw = TestGateway::start(CONFIG).await;
    for model in ["nope", "secret-model"] {
        let resp = gw
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(resp.status(), 404);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("m1, m2")
                && !msg.contains("secret-model, ")
                && !msg.ends_with("secret-model"),
            "{msg}"
        );
    }
    let models: Value = TestGateway::client()
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m2", "strict", "tiny"]);
}

#[tokio::test]
async fn body_over_the_limit_is_413_naming_the_limit() {
    let gw = TestGateway::start(CONFIG).await;
    let big = "x".repeat(10 * 1024);
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m1", "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("8KiB"),
        "{v}"
    );
    // Chunked upload without content-length is cut at the limit too (the
    // limit is crossed by the last chunk, so the client has finished sending
    // when the answer comes and never races the server closing).
    let stream = futures::stream::iter((0..9).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let resp = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn max_output_tokens_is_clamped() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw.post("/v1/chat/completions", json!({"model": "m1", "max_tokens": 500, "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]})).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() <= 5,
        "{v}"
    );
}

#[tokio::test]
async fn on_max_output_reject_refuses_a_larger_max_tokens_with_the_tightest_cap() {
    let gw = TestGateway::start(CONFIG).await;
    let msgs = json!([{"role": "user", "content": "one two three"}]);
    // The key caps at 5 (clamp), the model at 50 (reject): 5, rejecting.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "strict", "max_tokens": 10, "messages": msgs}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "max_tokens", "{v}");
    assert_eq!(
        v["error"]["message"],
        "`max_tokens` is 10, over this key's limit of 5 output tokens"
    );
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "strict", "max_completion_tokens": 6, "messages": msgs}),
        )
        .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "max_completion_tokens", "{v}");
    for body in [
        json!({"model": "strict", "max_tokens": 5, "messages": msgs}),
        json!({"model": "strict", "messages": msgs}),
    ] {
        let resp = gw.post("/v1/chat/completions", body).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["usage"]["completion_tokens"].as_u64().unwrap() <= 5,
            "{v}"
        );
    }
}

#[tokio::test]
async fn unknown_endpoint_is_404_json() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = TestGateway::client()
        .get(format!("{}/v1/nothing", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing"));
}

/// The public server sends only `POST`s to the LLM paths straight to their
/// handlers (`http/serve.rs`); the paths next to them still get the
/// router's clear 404 and 405 answers.
#[tokio::test]
async fn paths_next_to_the_llm_endpoints_get_404_or_405() {
    let gw = TestGateway::start(CONFIG).await;
    let body = r#"{"model":"m1","messages":[{"role":"user","content":"hi"}]}"#;
    for path in ["/messages", "/v1/chat/completions/", "/v2/chat/completions"] {
        let (s, v) = raw(&gw, path, body, Some(KEY)).await;
        assert_eq!(s, 404, "{path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("`{path}`")), "{path}: {msg}");
    }
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"] {
        let resp = TestGateway::client()
            .get(format!("{}{path}", gw.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        let v: Value = resp.json().await.unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("method GET is not allowed"), "{path}: {msg}");
    }
    // The hot path itself still answers.
    let (s, v) = raw(&gw, "/chat/completions", body, Some(KEY)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let gw = TestGateway::start(CONFIG).await;
    let body = json!({"model": "m1", "messages": [{"role": "user", "content": "x"}]});
    let resp = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("x-request-id", "abc-123")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    assert_eq!(resp.headers()["x-sluice-model"], "m1");
    assert_eq!(resp.headers()["x-sluice-provider"], "mock");
    assert_eq!(resp.headers()["x-sluice-attempts"], "1");
    let resp = gw.post("/v1/chat/completions", body).await;
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
}

#[tokio::test]
async fn model_policy_limits_hold_together_with_the_key_ones() {
    let gw = TestGateway::start(CONFIG).await;
    let long = "word ".repeat(60);
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20 input tokens"),
        "{v}"
    );
    let big = "x".repeat(2000);
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(resp.status(), 413);
    // The same prompt is fine for a model without those limits; the key's
    // output cap (5) still holds there.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m1", "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

/// An answer's header map is the request's, emptied and reused
/// (`chat::json_response`): nothing the client sent comes back, on any
/// endpoint, over one kept-alive connection.
#[tokio::test]
async fn answers_carry_none_of_the_request_headers() {
    let gw = TestGateway::start(CONFIG).await;
    let client = TestGateway::client();
    let chat = json!({"model": "m1", "messages": [{"role": "user", "content": "x"}]});
    let messages =
        json!({"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let embeddings = json!({"model": "m1", "input": "x"});
    for (path, body) in [
        ("/v1/chat/completions", &chat),
        ("/v1/messages", &messages),
        ("/v1/embeddings", &embeddings),
        ("/v1/chat/completions", &chat),
    ] {
        let resp = client
            .post(format!("{}{path}", gw.url))
            .bearer_auth(KEY)
            .header("x-api-key", KEY)
            .header("x-client-secret", "do-not-echo")
            .header("cookie", "session=1")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        for sent in [
            "authorization",
            "x-api-key",
            "x-client-secret",
            "cookie",
            "user-agent",
        ] {
            assert!(h.get(sent).is_none(), "{path}: {sent} came back");
        }
        assert_eq!(h["content-type"], "application/json", "{path}");
        assert!(h["x-request-id"].to_str().unwrap().starts_with("req_"));
        let len: usize = h["content-length"].to_str().unwrap().parse().unwrap();
        assert_eq!(resp.bytes().await.unwrap().len(), len, "{path}");
    }
}
