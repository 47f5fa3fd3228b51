//! The request log over real sockets and real stores: a streamed OpenAI-
//! format and a streamed Anthropic-format request each leave exactly one
//! record with their true tokens and cost; a graceful shutdown flushes
//! every record; a store outage of 30 s under load loses none (they are
//! spilled to disk and replayed — counted one by one); a shutdown during an
//! outage leaves them on disk for the next start; records that cannot be
//! kept anywhere are counted, never silently lost.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::db::{Backend, FreshStore};
use common::tcp_cut::TcpCut;
use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::json;
use sluice_store::{LogQuery, LogRecord, Store, UsageQuery};
use sluice_testkit::{MockUpstream, Script};

/// A key whose policy keeps bodies, with message content redacted.
const BODIES_KEY: &str = "sk-test-bodies-0001";
/// A key whose policy keeps bodies as they are, cut at 120 bytes.
const VERBATIM_KEY: &str = "sk-test-verbatim-0001";

fn config(mock: &MockUpstream, store: &str, request_log: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
store: "{store}"
request_log: {request_log}
providers:
  oa: {{ kind: openai, base_url: "{url}/v1", api_key: sk-upstream-secret }}
  an: {{ kind: anthropic, base_url: "{url}", api_key: sk-ant-secret }}
models:
  smart: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: oa, model: gpt-4o-mini }} ] }}
  claude: {{ price: {{ input: 3, output: 15, cache_read: 0.3 }}, deployments: [ {{ provider: an, model: claude-haiku-4-5 }} ] }}
tenants:
  acme: {{}}
keys:
  - {{ name: ci, key: {KEY}, tenant: acme }}
  - {{ name: audited, key: {BODIES_KEY}, tenant: acme, policy: {{ log_bodies: {{ max_bytes: 2KiB, redact: [content] }} }} }}
  - {{ name: verbatim, key: {VERBATIM_KEY}, tenant: acme, policy: {{ log_bodies: {{ max_bytes: 120 }} }} }}
"#,
        url = mock.url()
    )
}

/// Every record in the store, newest first (paged).
async fn all_records(store: &Store) -> Vec<LogRecord> {
    let mut out: Vec<LogRecord> = Vec::new();
    loop {
        let q = LogQuery {
            from: 0,
            to: i64::MAX / 2,
            limit: 1000,
            before: out.last().map(|r| (r.ts, r.id.clone())),
            ..LogQuery::default()
        };
        let page = store.logs(&q).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Waits (up to `within`) until the store holds at least `n` records.
async fn wait_for_records(store: &Store, n: usize, within: Duration) -> Vec<LogRecord> {
    let end = tokio::time::Instant::now() + within;
    loop {
        let all = all_records(store).await;
        if all.len() >= n || tokio::time::Instant::now() > end {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn one<'a>(records: &'a [LogRecord], request_id: &str) -> &'a LogRecord {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r.request_id == request_id)
        .collect();
    assert_eq!(found.len(), 1, "records of {request_id}: {found:#?}");
    found[0]
}

async fn chat(gw: &TestGateway, id: &str, body: serde_json::Value) -> reqwest::Response {
    TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn streamed_requests_each_leave_one_record(backend: Backend) {
    let db = FreshStore::new(backend).await;
    let mock = MockUpstream::start().await;
    let gw = TestGateway::start(&config(&mock, &db.url, "{ flush_every: 50ms }")).await;
    // An OpenAI-format stream to an OpenAI upstream: 8 in, 50 out at $10/M.
    mock.push(Script::text("streamed answer").with_usage(8, 50));
    let r = chat(
        &gw,
        "log-oa-stream",
        json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
               "user": "end-user-7", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    // An Anthropic-format stream to an Anthropic upstream: 20 in (5 read
    // from the cache), 30 out.
    mock.push(
        Script::text("claude streamed")
            .with_usage(20, 30)
            .with_cached(5),
    );
    let r = TestGateway::client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("x-request-id", "log-an-stream")
        .json(
            &json!({"model": "claude", "max_tokens": 100, "stream": true,
                      "metadata": {"user_id": "end-user-9"},
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("message_stop"), "{body}");
    // A refused one is recorded too.
    let body = json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    let r = chat(&gw, "log-unknown-model", body).await;
    assert_eq!(r.status(), 404);

    let store = Store::connect(&db.url).await.unwrap();
    let records = wait_for_records(&store, 3, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    let oa = one(&records, "log-oa-stream");
    assert_eq!(
        (oa.tokens_in, oa.tokens_out, oa.cache_read),
        (8, 50, 0),
        "{oa:#?}"
    );
    assert_eq!(oa.cost_micro, Some(580));
    assert!(oa.stream && !oa.usage_estimated);
    assert_eq!(oa.format, "openai");
    assert_eq!(oa.status, 200);
    assert_eq!(oa.tenant.as_deref(), Some("acme"));
    assert_eq!(oa.key_id.as_deref(), Some("static:ci"));
    assert_eq!(oa.key_name.as_deref(), Some("ci"));
    assert_eq!(oa.end_user.as_deref(), Some("end-user-7"));
    assert_eq!(oa.model.as_deref(), Some("smart"));
    assert_eq!(oa.provider.as_deref(), Some("oa"));
    assert_eq!(oa.deployment.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(oa.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(oa.ttft_us.is_some() && oa.latency_us >= oa.ttft_us.unwrap());
    let an = one(&records, "log-an-stream");
    assert_eq!(
        (an.tokens_in, an.tokens_out, an.cache_read),
        (20, 30, 5),
        "{an:#?}"
    );
    // 15 × 3 + 5 × 0.3 + 30 × 15 = 496.5 micro-USD, rounded up.
    assert_eq!(an.cost_micro, Some(497));
    assert_eq!(an.format, "anthropic");
    assert_eq!(an.end_user.as_deref(), Some("end-user-9"));
    assert_eq!(an.provider.as_deref(), Some("an"));
    let bad = one(&records, "log-unknown-model");
    assert_eq!(
        (bad.status, bad.error.as_deref()),
        (404, Some("model_not_found"))
    );
    assert_eq!(bad.cost_micro, None);
    // The rollups count the same three requests.
    let now = sluice_store::ids::now_ms();
    let usage = store
        .usage(&UsageQuery {
            from: now - 86_400_000,
            to: now + 3_600_000,
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(usage[0].sums.requests, 3);
    assert_eq!(usage[0].sums.errors_4xx, 1);
    assert_eq!(usage[0].sums.cost_micro, 580 + 497);
    assert_eq!(usage[0].sums.tokens_out, 80);
    store.close().await;
}

async fn graceful_shutdown_flushes_everything(backend: Backend) {
    let db = FreshStore::new(backend).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("ok").with_usage(3, 4));
    // Batches would wait a minute: only the shutdown writes them.
    let mut gw = TestGateway::start(&config(
        &mock,
        &db.url,
        "{ flush_every: 60s, batch: 10000 }",
    ))
    .await;
    let sent = 120;
    for i in 0..sent {
        let r = chat(
            &gw,
            &format!("flush-{i}"),
            json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let store = Store::connect(&db.url).await.unwrap();
    assert!(all_records(&store).await.is_empty(), "nothing written yet");
    gw.shutdown().await.unwrap().unwrap();
    let records = all_records(&store).await;
    let ids: HashSet<_> = records.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(records.len(), sent);
    assert_eq!(ids.len(), sent);
    store.close().await;
}

both_backends!(
    streamed_requests_each_leave_one_record,
    graceful_shutdown_flushes_everything,
    bodies_are_kept_per_policy_redacted_and_cut
);

async fn chat_as(gw: &TestGateway, key: &str, id: &str, body: serde_json::Value) {
    let r = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
}

async fn bodies_are_kept_per_policy_redacted_and_cut(backend: Backend) {
    let db = FreshStore::new(backend).await;
    let mock = MockUpstream::start().await;
    mock.set_default(Script::text("the secret answer").with_usage(5, 3));
    let gw = TestGateway::start(&config(&mock, &db.url, "{ flush_every: 50ms }")).await;
    let ask = |stream: bool| {
        json!({"model": "smart", "stream": stream, "user": "u1",
               "metadata": {"password": "hunter2"},
               "messages": [{"role": "user", "content": "my secret prompt"}]})
    };
    chat_as(&gw, BODIES_KEY, "bodies-plain", ask(false)).await;
    chat_as(&gw, BODIES_KEY, "bodies-stream", ask(true)).await;
    chat_as(&gw, VERBATIM_KEY, "bodies-verbatim", ask(true)).await;
    chat_as(&gw, KEY, "bodies-none", ask(false)).await;
    let store = Store::connect(&db.url).await.unwrap();
    let records = wait_for_records(&store, 4, Duration::from_secs(30)).await;
    let text = format!("{records:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let plain = one(&records, "bodies-plain");
    let stream = one(&records, "bodies-stream");
    let audited = format!("{plain:?}{stream:?}");
    assert!(
        !audited.contains("secret prompt") && !audited.contains("secret answer"),
        "{audited}"
    );
    let req: serde_json::Value =
        serde_json::from_str(plain.request_body.as_ref().unwrap()).unwrap();
    assert_eq!(req["messages"][0]["content"], "[REDACTED]");
    assert_eq!(req["messages"][0]["role"], "user");
    assert_eq!(req["model"], "smart");
    let resp: serde_json::Value =
        serde_json::from_str(plain.response_body.as_ref().unwrap()).unwrap();
    assert_eq!(resp["choices"][0]["message"]["content"], "[REDACTED]");
    assert_eq!(resp["usage"]["completion_tokens"], 3);
    assert_eq!(stream.response_body.as_deref(), Some("[REDACTED]"));
    // Kept verbatim (the built-in keys still redacted), cut at 120 bytes.
    let verbatim = one(&records, "bodies-verbatim");
    assert_eq!(verbatim.response_body.as_deref(), Some("the secret answer"));
    let req = verbatim.request_body.as_deref().unwrap();
    assert!(
        req.contains("[REDACTED]") && !req.contains("hunter2"),
        "{req}"
    );
    assert!(req.contains("…[cut ") && req.len() < 150, "{req}");
    let none = one(&records, "bodies-none");
    assert_eq!((&none.request_body, &none.response_body), (&None, &None));
    store.close().await;
}

/// A Postgres store reached through a proxy that can be cut.
async fn postgres_behind_cut() -> (FreshStore, TcpCut, String) {
    let db = FreshStore::new(Backend::Postgres).await;
    let target = db
        .url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let cut = TcpCut::start(&target).await;
    let via = db.url.replacen(&target, &cut.addr, 1);
    (db, cut, via)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30s_store_outage_under_load_loses_no_record() {
    common::db::cleanup_after(async {
        let (db, cut, via) = postgres_behind_cut().await;
        let mock = MockUpstream::start().await;
        mock.set_default(Script::text("ok").with_usage(3, 4));
        let spill = common::temp_dir();
        let rl = format!(
            "{{ flush_every: 200ms, write_timeout: 1s, spill_dir: \"{}\" }}",
            spill.display()
        );
        let gw = Arc::new(TestGateway::start(&config(&mock, &via, &rl)).await);
        let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (gw, stop, sent) = (gw.clone(), stop.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("outage-{c}-{i}");
                        let body = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
                        let r = chat(&gw, &id, body).await;
                        assert_eq!(r.status(), 200, "{id}");
                        sent.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        cut.cut();
        let at_cut = sent.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let during = sent.load(Ordering::Relaxed) - at_cut;
        cut.restore();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        let total = sent.load(Ordering::Relaxed);
        assert!(during > 500, "only {during} requests during the outage");
        let store = Store::connect(&db.url).await.unwrap();
        let records = wait_for_records(&store, total, Duration::from_secs(60)).await;
        let ids: HashSet<_> = records.iter().map(|r| r.request_id.clone()).collect();
        assert_eq!(ids.len(), total, "distinct requests recorded");
        assert_eq!(records.len(), total, "records (none twice)");
        let m = gw.metrics().await;
        let spilled = metric(&m, "sluice_request_log_spilled_total");
        assert!(spilled >= during as u64, "spilled {spilled} of {during}\n{m}");
        assert_eq!(metric(&m, "sluice_request_log_replayed_total"), spilled);
        assert_eq!(
            metric(&m, "sluice_request_log_written_total") + spilled,
            total as u64
        );
        assert!(!m.contains("sluice_request_log_dropped_total{"), "{m}");
        assert_eq!(metric(&m, "sluice_request_log_spill_pending"), 0);
        store.close().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spilled_at_shutdown_are_replayed_by_the_next_start() {
    common::db::cleanup_after(async {
        let (db, cut, via) = postgres_behind_cut().await;
        let mock = MockUpstream::start().await;
        mock.set_default(Script::text("ok").with_usage(3, 4));
        let spill = common::temp_dir();
        let rl = format!(
            "{{ flush_every: 100ms, write_timeout: 500ms, spill_dir: \"{}\" }}",
            spill.display()
        );
        let mut gw = TestGateway::start(&config(&mock, &via, &rl)).await;
        cut.cut();
        for i in 0..40 {
            let body = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
            assert_eq!(chat(&gw, &format!("kept-{i}"), body).await.status(), 200);
        }
        gw.shutdown().await.unwrap().unwrap();
        assert!(jsonl_lines(&spill) >= 40, "spilled to disk");
        cut.restore();
        // The next start (same spill directory) replays them.
        let _gw = TestGateway::start(&config(&mock, &via, &rl)).await;
        let store = Store::connect(&db.url).await.unwrap();
        let records = wait_for_records(&store, 40, Duration::from_secs(30)).await;
        assert_eq!(records.len(), 40);
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while jsonl_lines(&spill) > 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(jsonl_lines(&spill), 0, "replayed segments are deleted");
        store.close().await;
    })
    .await
}

fn jsonl_lines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_cannot_be_kept_are_counted() {
    common::db::cleanup_after(async {
        let (_db, cut, via) = postgres_behind_cut().await;
        let mock = MockUpstream::start().await;
        mock.set_default(Script::text("ok").with_usage(3, 4));
        let spill = common::temp_dir();
        let rl = format!(
            "{{ flush_every: 50ms, write_timeout: 300ms, spill_dir: \"{}\" }}",
            spill.display()
        );
        let gw = TestGateway::start(&config(&mock, &via, &rl)).await;
        // Store down and the spill directory gone (a file in its place).
        cut.cut();
        std::fs::remove_dir_all(&spill).unwrap();
        std::fs::write(&spill, b"not a directory").unwrap();
        for i in 0..5 {
            let body = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
            assert_eq!(chat(&gw, &format!("lost-{i}"), body).await.status(), 200);
        }
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut m = gw.metrics().await;
        while !m.contains("sluice_request_log_dropped_total{reason=\"spill_failed\"} 5")
            && tokio::time::Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m = gw.metrics().await;
        }
        assert!(
            m.contains("sluice_request_log_dropped_total{reason=\"spill_failed\"} 5"),
            "{m}"
        );
        let _ = std::fs::remove_file(&spill);
    })
    .await
}
