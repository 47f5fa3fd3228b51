//! Reload and shutdown: the file watcher and `POST /admin/reload` swap the
//! config atomically; a bad file keeps the old one and reports why; an
//! in-flight stream survives a reload and a graceful shutdown; `/metrics`
//! counts what happened.

mod common;

use std::time::Duration;

use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};

fn config(models: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
server: {{ drain_timeout: 10s }}
providers:
  mock: {{ kind: mock, mock: {{ tokens_per_second: 40 }} }}
models:
{models}
keys:
  - {{ name: test, key: {KEY} }}
"#
    )
}

const ONE: &str = "  m1: { deployments: [ { provider: mock, model: m1 } ] }";
const TWO: &str = "  m1: { deployments: [ { provider: mock, model: m1 } ] }\n  m2: { deployments: [ { provider: mock, model: m2 } ] }";

async fn model_ids(gw: &TestGateway) -> Vec<String> {
    let v: Value = TestGateway::client()
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn status(gw: &TestGateway) -> Value {
    TestGateway::client()
        .get(format!("{}/admin/status", gw.admin_url.as_ref().unwrap()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `f` every 50 ms for up to 5 s.
async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn file_change_reloads_and_bad_file_keeps_the_old_config() {
    let gw = TestGateway::start(&config(ONE)).await;
    assert_eq!(model_ids(&gw).await, ["m1"]);
    // Editors that write a temp file and rename it over the config.
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, config(TWO)).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
    assert!(
        eventually(|| async { model_ids(&gw).await == ["m1", "m2"] }).await,
        "rename-over not picked up"
    );
    // A broken file changes nothing and is reported.
    std::fs::write(
        &gw.config_path,
        config(ONE).replace("deployments", "deploymints"),
    )
    .unwrap();
    assert!(
        eventually(|| async { status(&gw).await["last_reload"]["ok"] == json!(false) }).await,
        "failed reload not reported"
    );
    let s = status(&gw).await;
    assert!(
        s["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("deploymints"),
        "{s}"
    );
    assert_eq!(model_ids(&gw).await, ["m1", "m2"]);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("sluice_config_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn admin_reload_needs_the_admin_key() {
    let gw = TestGateway::start(&config(ONE)).await;
    let admin = gw.admin_url.clone().unwrap();
    let resp = TestGateway::client()
        .post(format!("{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = TestGateway::client()
        .post(format!("{admin}/admin/reload"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a public key is not an admin key");
    let resp = TestGateway::client()
        .post(format!("{admin}/admin/reload"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ok"], true);
    // The admin API is not on the public listener.
    let resp = TestGateway::client()
        .post(format!("{}/admin/reload", gw.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn in_flight_stream_survives_reload_and_graceful_shutdown() {
    let mut gw = TestGateway::start(&config(TWO)).await;
    let body = json!({"model": "m2", "stream": true, "messages": [{"role": "user", "content": "tell me a long story please"}]});
    let resp = gw.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    // Remove m2 while its stream is running, then shut down.
    std::fs::write(&gw.config_path, config(ONE)).unwrap();
    let admin = gw.admin_url.clone().unwrap();
    let r = TestGateway::client()
        .post(format!("{admin}/admin/reload"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(model_ids(&gw).await, ["m1"]);
    let server = gw.shutdown();
    let text = reader.await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "stream cut by reload or shutdown: {text}"
    );
    server.await.unwrap().unwrap();
    assert!(
        TestGateway::client()
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_latency() {
    let gw = TestGateway::start(&config(ONE)).await;
    for _ in 0..3 {
        let r = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "zzz", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let m = gw.metrics().await;
    assert!(m.contains(r#"sluice_requests_total{endpoint="chat",model="m1",provider="mock",status="2xx",code="ok"} 3"#), "{m}");
    assert!(m.contains(r#"code="model_not_found"} 1"#), "{m}");
    assert!(
        m.contains(r#"sluice_gateway_overhead_seconds_count{model="m1",provider="mock"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sluice_tokens_total{model="m1",direction="output"}"#),
        "{m}"
    );
    assert!(!m.contains(KEY));
}
