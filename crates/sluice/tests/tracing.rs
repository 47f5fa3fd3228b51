//! OpenTelemetry tracing over real sockets: a gateway with `tracing:`
//! exports to a small in-test OTLP/HTTP collector (an axum server that
//! records each POSTed JSON body), mock upstreams record the
//! `traceparent` they receive. Covers parent/child ids and trace
//! continuity from an inbound `traceparent`, the GenAI attributes with the
//! upstream's token counts (plain and streamed), one client span per
//! attempt on failover, parent-based sampling, no header without
//! `tracing:`, a malformed inbound header, and a dead collector (requests
//! still succeed, the drop is counted).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector recording each export (headers and JSON body).
#[derive(Clone, Default)]
struct Collector {
    got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let c = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(record))
            .with_state(c.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (c, url)
    }

    fn exports(&self) -> Vec<(HeaderMap, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Every span of every export, in order.
    fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (_, body) in self.exports() {
            for rs in body["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    out.extend(ss["spans"].as_array().unwrap().iter().cloned());
                }
            }
        }
        out
    }

    /// Waits (up to 10 s) for at least `n` spans.
    async fn wait_spans(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let s = self.spans();
            if s.len() >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} spans, got {:#?}", self.spans());
    }
}

async fn record(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> &'static str {
    let json: Value = serde_json::from_slice(&body).expect("the export is JSON");
    c.got.lock().unwrap().push((headers, json));
    "{}"
}

/// A gateway with model `m` over `ups` (`up0`, `up1`…, one deployment each
/// in that order; `m` falls back to `m1` on `up1` when there are two) and
/// `tracing` as the `tracing:` section (empty: none).
async fn gateway(ups: &[&MockUpstream], tracing: &str) -> TestGateway {
    let mut providers = String::new();
    for (i, u) in ups.iter().enumerate() {
        providers.push_str(&format!(
            "  up{i}: {{ kind: openai, base_url: \"{}/v1\", api_key: sk-upstream-secret }}\n",
            u.url()
        ));
    }
    let fallback = if ups.len() > 1 {
        "    fallbacks: [m1]\n  m1: { deployments: [ { provider: up1, model: model-1 } ] }\n"
    } else {
        ""
    };
    TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
{tracing}
providers:
{providers}models:
  m:
    deployments: [ {{ provider: up0, model: model-0 }} ]
{fallback}keys:
  - {{ name: test, key: {KEY}, tenant: acme }}
tenants:
  acme: {{}}
"#
    ))
    .await
}

fn tracing_to(url: &str) -> String {
    format!(
        "tracing:\n  otlp_endpoint: {url}\n  service_name: gw-test\n  headers: {{ authorization: Bearer collector-token }}\n"
    )
}

async fn chat(gw: &TestGateway, traceparent: Option<&str>, stream: bool) -> reqwest::Response {
    let mut body =
        json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&body);
    if let Some(tp) = traceparent {
        req = req
            .header("traceparent", tp)
            .header("tracestate", "vendor=abc");
    }
    req.send().await.unwrap()
}

/// The inner value of an attribute (`{"stringValue": …}` → its JSON).
fn attr(span: &Value, key: &str) -> Option<Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            a["value"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .clone()
        })
}

fn str_attr(span: &Value, key: &str) -> String {
    attr(span, key)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key} in {span:#}"))
}

fn of_kind(spans: &[Value], kind: u64) -> Vec<Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == kind)
        .cloned()
        .collect()
}

fn tp(trace: &str, span: &str, flags: &str) -> String {
    format!("00-{trace}-{span}-{flags}")
}

/// One server span and one client span per attempt, linked, continuing
/// the caller's trace, with the GenAI attributes and true token counts;
/// the upstream got the attempt's span as its parent.
async fn one_request_is_traced(stream: bool) {
    let (collector, url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("hello there").with_usage(11, 7));
    let gw = gateway(&[&up], &tracing_to(&url)).await;
    let r = chat(&gw, Some(&tp(TRACE, PARENT, "01")), stream).await;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    if stream {
        assert!(text.contains("[DONE]"), "{text}");
    }
    let spans = collector.wait_spans(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (server, client) = (&of_kind(&spans, 2)[0], &of_kind(&spans, 3)[0]);
    assert_eq!(server["traceId"], TRACE);
    assert_eq!(client["traceId"], TRACE);
    assert_eq!(server["parentSpanId"], PARENT);
    assert_eq!(client["parentSpanId"], server["spanId"]);
    assert_ne!(client["spanId"], server["spanId"]);
    assert_eq!(server["name"], "chat m");
    assert_eq!(client["name"], "chat model-0");
    for s in [server, client] {
        assert_eq!(str_attr(s, "gen_ai.operation.name"), "chat");
        assert_eq!(str_attr(s, "gen_ai.provider.name"), "openai");
        assert_eq!(attr(s, "gen_ai.usage.input_tokens"), Some(json!("11")));
        assert_eq!(attr(s, "gen_ai.usage.output_tokens"), Some(json!("7")));
        assert_eq!(attr(s, "gen_ai.request.max_tokens"), Some(json!("50")));
        assert_eq!(str_attr(s, "gen_ai.response.model"), "model-0");
        assert_eq!(
            attr(s, "gen_ai.response.finish_reasons"),
            Some(json!({"values": [{"stringValue": "stop"}]})),
            "{s:#}"
        );
        assert_eq!(s["status"]["code"], 0, "{s:#}");
        let (start, end) = (
            s["startTimeUnixNano"].as_str().unwrap(),
            s["endTimeUnixNano"].as_str().unwrap(),
        );
        assert!(start.parse::<u64>().unwrap() <= end.parse::<u64>().unwrap());
    }
    assert_eq!(str_attr(server, "gen_ai.request.model"), "m");
    assert_eq!(str_attr(client, "gen_ai.request.model"), "model-0");
    assert_eq!(str_attr(server, "sluice.request_id"), request_id);
    assert_eq!(str_attr(server, "sluice.key"), "test");
    assert_eq!(str_attr(server, "sluice.tenant"), "acme");
    assert_eq!(attr(server, "sluice.stream"), Some(json!(stream)));
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(json!("200"))
    );
    assert_eq!(str_attr(client, "server.address"), "127.0.0.1");
    assert_eq!(attr(client, "sluice.attempt"), Some(json!("1")));
    // The stream's client span lasts until the stream ended.
    let end = |s: &Value| {
        s["endTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(end(client) <= end(server));
    // The upstream continued the trace from the attempt's span.
    let got = up.last_request().unwrap();
    let sent = tp(TRACE, client["spanId"].as_str().unwrap(), "01");
    assert_eq!(got.header("traceparent"), Some(sent.as_str()));
    assert_eq!(got.header("tracestate"), Some("vendor=abc"));
    // The export: OTLP JSON with the resource and the collector's header;
    // no secret anywhere in it.
    let (headers, body) = &collector.exports()[0];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Bearer collector-token");
    assert_eq!(
        body["resourceSpans"][0]["resource"]["attributes"][0],
        json!({"key": "service.name", "value": {"stringValue": "gw-test"}})
    );
    let all = serde_json::to_string(&collector.exports().iter().map(|e| &e.1).collect::<Vec<_>>())
        .unwrap();
    assert!(
        !all.contains(KEY) && !all.contains("sk-upstream-secret"),
        "{all}"
    );
}

#[tokio::test]
async fn a_plain_request_exports_a_server_and_a_client_span_continuing_the_callers_trace() {
    one_request_is_traced(false).await;
}

#[tokio::test]
async fn a_streamed_request_exports_its_spans_when_the_stream_ends() {
    one_request_is_traced(true).await;
}

#[tokio::test]
async fn a_failover_gives_a_client_span_per_attempt_the_failed_one_in_error() {
    let (collector, url) = Collector::start().await;
    let (bad, good) = (MockUpstream::start().await, MockUpstream::start().await);
    bad.set_default(Script::status(500));
    good.set_default(Script::text("fine").with_usage(5, 2));
    let gw = gateway(&[&bad, &good], &tracing_to(&url)).await;
    let r = chat(&gw, None, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-attempts"], "2");
    let spans = collector.wait_spans(3).await;
    let server = &of_kind(&spans, 2)[0];
    let clients = of_kind(&spans, 3);
    assert_eq!(clients.len(), 2, "{spans:#?}");
    let attempt = |n: &str| {
        clients
            .iter()
            .find(|c| attr(c, "sluice.attempt") == Some(json!(n)))
            .unwrap()
            .clone()
    };
    let (first, second) = (attempt("1"), attempt("2"));
    for c in [&first, &second] {
        assert_eq!(c["parentSpanId"], server["spanId"]);
        assert_eq!(c["traceId"], server["traceId"]);
    }
    assert!(
        server.get("parentSpanId").is_none(),
        "a new trace has no parent"
    );
    assert_eq!(first["status"]["code"], 2, "{first:#}");
    assert_eq!(str_attr(&first, "error.type"), "server_error");
    assert_eq!(
        attr(&first, "http.response.status_code"),
        Some(json!("500"))
    );
    assert_eq!(str_attr(&first, "sluice.provider"), "up0");
    assert_eq!(second["status"]["code"], 0);
    assert_eq!(str_attr(&second, "sluice.provider"), "up1");
    assert_eq!(
        attr(&second, "gen_ai.usage.output_tokens"),
        Some(json!("2"))
    );
    assert_eq!(str_attr(server, "sluice.model"), "m1");
    assert_eq!(attr(server, "sluice.attempts"), Some(json!("2")));
    // Each upstream saw its own attempt as the parent.
    let trace = server["traceId"].as_str().unwrap();
    for (up, span) in [(&bad, &first), (&good, &second)] {
        let sent = tp(trace, span["spanId"].as_str().unwrap(), "01");
        assert_eq!(
            up.last_request().unwrap().header("traceparent"),
            Some(sent.as_str())
        );
    }
}

#[tokio::test]
async fn without_a_tracing_section_no_traceparent_is_sent_and_nothing_exported() {
    let (collector, _url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let gw = gateway(&[&up], "").await;
    let r = chat(&gw, Some(&tp(TRACE, PARENT, "01")), false).await;
    assert_eq!(r.status(), 200);
    let got = up.last_request().unwrap();
    assert_eq!(got.header("traceparent"), None);
    assert_eq!(got.header("tracestate"), None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(collector.exports().is_empty());
    assert!(gw
        .metrics()
        .await
        .contains("sluice_trace_spans_exported_total 0"));
}

#[tokio::test]
async fn an_unsampled_caller_is_not_recorded_but_its_trace_is_propagated() {
    let (collector, url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let gw = gateway(&[&up], &tracing_to(&url)).await;
    assert_eq!(
        chat(&gw, Some(&tp(TRACE, PARENT, "00")), false)
            .await
            .status(),
        200
    );
    let sent = up
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        sent.starts_with(&format!("00-{TRACE}-")) && sent.ends_with("-00"),
        "{sent}"
    );
    assert!(
        !sent.contains(PARENT),
        "the attempt is the upstream's parent: {sent}"
    );
    // A sampled request after it is exported, alone.
    assert_eq!(
        chat(&gw, Some(&tp(TRACE, PARENT, "01")), false)
            .await
            .status(),
        200
    );
    let spans = collector.wait_spans(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(collector.spans().len(), 2, "{spans:#?}");
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let (collector, url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let gw = gateway(&[&up], &tracing_to(&url)).await;
    let bad = format!("00-{}-{PARENT}-01", TRACE.to_uppercase());
    assert_eq!(chat(&gw, Some(&bad), false).await.status(), 200);
    let spans = collector.wait_spans(2).await;
    let server = &of_kind(&spans, 2)[0];
    let trace = server["traceId"].as_str().unwrap();
    assert_ne!(trace, TRACE);
    assert_eq!(trace.len(), 32);
    assert!(server.get("parentSpanId").is_none());
    let sent = up
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
    // The caller's tracestate belongs to its (rejected) trace.
    assert_eq!(up.last_request().unwrap().header("tracestate"), None);
}

#[tokio::test]
async fn a_dead_collector_never_fails_a_request_and_the_loss_is_counted() {
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let gw = gateway(&[&up], &tracing_to(&dead)).await;
    for _ in 0..3 {
        assert_eq!(chat(&gw, None, false).await.status(), 200);
    }
    let want = "sluice_trace_spans_dropped_total{reason=\"export_failed\"} 6";
    for _ in 0..150 {
        if gw.metrics().await.contains(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no `{want}` in\n{}", gw.metrics().await);
}

#[tokio::test]
async fn a_graceful_shutdown_exports_the_last_requests_spans_first() {
    let (collector, url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let mut gw = gateway(&[&up], &tracing_to(&url)).await;
    assert_eq!(chat(&gw, None, false).await.status(), 200);
    gw.shutdown().await.unwrap().unwrap();
    // No waiting here: the server's end waited for the export.
    assert_eq!(collector.spans().len(), 2, "{:#?}", collector.spans());
}

#[tokio::test]
async fn a_reload_turns_tracing_on_and_off() {
    let (collector, url) = Collector::start().await;
    let up = MockUpstream::start().await;
    up.set_default(Script::text("fine"));
    let gw = gateway(&[&up], "").await;
    let yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    let reload = |text: String| {
        std::fs::write(&gw.config_path, text).unwrap();
        let admin = gw.admin_url.clone().unwrap();
        async move {
            let r = TestGateway::client()
                .post(format!("{admin}/admin/reload"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    reload(format!("{}\n{}", yaml, tracing_to(&url))).await;
    assert_eq!(chat(&gw, None, false).await.status(), 200);
    assert!(up.last_request().unwrap().header("traceparent").is_some());
    collector.wait_spans(2).await;
    reload(yaml).await;
    assert_eq!(chat(&gw, None, false).await.status(), 200);
    assert_eq!(up.last_request().unwrap().header("traceparent"), None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(collector.spans().len(), 2);
}
