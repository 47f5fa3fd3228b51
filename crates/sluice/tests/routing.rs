//! Routing over real sockets: circuit breakers take a failing deployment
//! out of the rotation and bring it back through a half-open trial (the
//! client sees every request succeed while a healthy deployment exists),
//! never fail a request that could have been tried, and the balancing
//! strategies follow load, latency and price.

mod common;

use std::time::{Duration, Instant};

use common::{TestGateway, ADMIN_KEY, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

/// A gateway with one model `m` over the given upstreams (`up0`, `up1`…),
/// `model_extra` added to the model and `dep_extra[i]` to deployment i.
async fn gateway(ups: &[&MockUpstream], model_extra: &str, dep_extra: &[&str]) -> TestGateway {
    let mut providers = String::new();
    let mut deployments = String::new();
    for (i, u) in ups.iter().enumerate() {
        providers.push_str(&format!(
            "  up{i}: {{ kind: openai, base_url: \"{}/v1\", api_key: sk-upstream-secret }}\n",
            u.url()
        ));
        let extra = dep_extra.get(i).copied().unwrap_or("");
        deployments.push_str(&format!(
            "      - {{ provider: up{i}, model: model-{i} {extra} }}\n"
        ));
    }
    TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
providers:
{providers}models:
  m:
{model_extra}
    deployments:
{deployments}keys:
  - {{ name: test, key: {KEY} }}
"#
    ))
    .await
}

/// Two upstreams: one answering `bad`, one answering "fine".
async fn bad_and_good(bad: Script) -> (MockUpstream, MockUpstream) {
    let (b, g) = (MockUpstream::start().await, MockUpstream::start().await);
    b.set_default(bad);
    g.set_default(Script::text("fine"));
    (b, g)
}

async fn call(gw: &TestGateway) -> reqwest::Response {
    gw.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
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

/// The breaker phase of deployment `i` in `/admin/status`.
async fn breaker(gw: &TestGateway, i: usize) -> String {
    let s = status(gw).await;
    s["deployments"][i]["breaker"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_failing_deployment_leaves_the_rotation_and_returns_after_a_trial() {
    let (bad, good) = bad_and_good(Script::status(500)).await;
    let breaker_cfg = "    circuit_breaker: { failures: 3, cooldown: 500ms }";
    let gw = gateway(&[&bad, &good], breaker_cfg, &[]).await;
    // Round robin sends every other request to `bad` first; each falls
    // back to `good`, so the client sees no failure.
    for i in 0..20 {
        let r = call(&gw).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(bad.hits(), 3, "three failures opened its breaker");
    assert_eq!(good.hits(), 20);
    assert_eq!(breaker(&gw, 0).await, "open");
    assert_eq!(breaker(&gw, 1).await, "closed");
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains(r#"sluice_breaker_state{model="m",provider="up0",deployment="model-0"} 1"#),
        "{metrics}"
    );
    // The deployment recovers; after the cooldown one trial goes to it and
    // closes the breaker, and round robin includes it again.
    bad.set_default(Script::text("recovered"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(breaker(&gw, 0).await, "half_open");
    for _ in 0..4 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!(breaker(&gw, 0).await, "closed");
    assert_eq!(bad.hits(), 3 + 2, "the trial, then its round-robin turns");
}

#[tokio::test]
async fn a_failed_trial_keeps_it_out_for_another_cooldown() {
    let (bad, good) = bad_and_good(Script::status(503)).await;
    let breaker_cfg = "    circuit_breaker: { failures: 2, cooldown: 300ms }";
    let gw = gateway(&[&bad, &good], breaker_cfg, &[]).await;
    for _ in 0..6 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!(bad.hits(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..6 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!(bad.hits(), 3, "one trial, which failed");
    assert_eq!(breaker(&gw, 0).await, "open");
}

#[tokio::test]
async fn client_errors_do_not_open_a_breaker() {
    let up = MockUpstream::start().await;
    up.set_default(Script::context_length_exceeded());
    let gw = gateway(&[&up], "    circuit_breaker: { failures: 2 }", &[]).await;
    for _ in 0..5 {
        assert_eq!(call(&gw).await.status(), 400);
    }
    assert_eq!(breaker(&gw, 0).await, "closed");
}

#[tokio::test]
async fn with_every_breaker_open_requests_are_still_tried() {
    let up = MockUpstream::start().await;
    up.set_default(Script::status(500));
    let gw = gateway(
        &[&up],
        "    circuit_breaker: { failures: 2, cooldown: 1h }",
        &[],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(call(&gw).await.status(), 502);
    }
    assert_eq!(breaker(&gw, 0).await, "open");
    assert_eq!(up.hits(), 3, "the only deployment is still tried");
    // When it answers again, so does the model — not an hour later.
    up.set_default(Script::text("back"));
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-attempts"], "1");
}

#[tokio::test]
async fn a_disabled_breaker_keeps_a_failing_deployment_in_the_rotation() {
    let (bad, good) = bad_and_good(Script::status(500)).await;
    let cfg = "    circuit_breaker: { enabled: false }";
    let gw = gateway(&[&bad, &good], cfg, &[]).await;
    for _ in 0..10 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!(bad.hits(), 5);
    assert_eq!(breaker(&gw, 0).await, "disabled");
}

#[tokio::test]
async fn least_busy_sends_requests_away_from_a_deployment_with_one_in_flight() {
    let (slow, fast) = (MockUpstream::start().await, MockUpstream::start().await);
    slow.set_default(Script::text("slow").with_delay(Duration::from_millis(800)));
    fast.set_default(Script::text("fast"));
    let gw = gateway(&[&slow, &fast], "    strategy: least_busy", &[]).await;
    // The first request goes to the first deployment and stays there.
    let held = tokio::spawn({
        let url = gw.url.clone();
        async move {
            TestGateway::client()
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    assert!(slow.wait_for_hits(1, Duration::from_secs(5)).await);
    assert_eq!(status(&gw).await["deployments"][0]["in_flight"], 1);
    for _ in 0..10 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!((slow.hits(), fast.hits()), (1, 10));
    assert_eq!(held.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_latency_moves_traffic_off_a_deployment_made_ten_times_slower() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    a.set_default(Script::text("a").with_delay(Duration::from_millis(10)));
    b.set_default(Script::text("b").with_delay(Duration::from_millis(10)));
    let gw = gateway(&[&a, &b], "    strategy: least_latency", &[]).await;
    for _ in 0..20 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert!(a.hits() > 0 && b.hits() > 0, "both measured");
    // `a` turns 10× slower; two concurrent clients keep calling for 2 s.
    // (The cost is latency × (in flight + 1): with many more clients than
    // the latency ratio, spilling onto the slow one is the right choice.)
    a.set_default(Script::text("a").with_delay(Duration::from_millis(100)));
    let (a0, b0) = (a.hits(), b.hits());
    let until = Instant::now() + Duration::from_secs(2);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = gw.url.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = TestGateway::client()
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(KEY)
                        .json(
                            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let (to_a, to_b) = (a.hits() - a0, b.hits() - b0);
    let share_b = to_b as f64 / (to_a + to_b) as f64;
    assert!(
        share_b >= 0.9,
        "{to_a} requests to the slow deployment, {to_b} to the fast one"
    );
}

#[tokio::test]
async fn lowest_cost_serves_from_the_cheapest_and_falls_back_to_dearer() {
    let (dear, cheap) = (MockUpstream::start().await, MockUpstream::start().await);
    dear.set_default(Script::text("dear"));
    cheap.set_default(Script::text("cheap"));
    let prices = [
        ", price: { input: 3, output: 15 }",
        ", price: { input: 0.15, output: 0.6 }",
    ];
    let gw = gateway(&[&dear, &cheap], "    strategy: lowest_cost", &prices).await;
    for _ in 0..6 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!((dear.hits(), cheap.hits()), (0, 6));
    cheap.set_default(Script::status(500));
    assert_eq!(call(&gw).await.status(), 200);
    assert_eq!((dear.hits(), cheap.hits()), (1, 7));
}

/// Models `m` (two deployments on `small`), `big` (on `large`) and `cheap`
/// (on `spare`): `m` falls back to `big` on context length only, and to
/// `cheap` (by name alone) on the retryable failures.
async fn fallbacks_gateway(
    small: &MockUpstream,
    large: &MockUpstream,
    spare: &MockUpstream,
) -> TestGateway {
    TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
providers:
  small: {{ kind: openai, base_url: "{}/v1", api_key: k }}
  large: {{ kind: openai, base_url: "{}/v1", api_key: k }}
  spare: {{ kind: openai, base_url: "{}/v1", api_key: k }}
models:
  m:
    deployments: [ {{ provider: small, model: s1 }}, {{ provider: small, model: s2 }} ]
    fallbacks: [ {{ model: big, on: [context_length_exceeded] }}, cheap ]
  big: {{ deployments: [ {{ provider: large, model: l }} ] }}
  cheap: {{ deployments: [ {{ provider: spare, model: c }} ] }}
keys:
  - {{ name: test, key: {KEY} }}
"#,
        small.url(),
        large.url(),
        spare.url()
    ))
    .await
}

#[tokio::test]
async fn each_fallback_is_tried_on_its_own_failure_classes() {
    let (small, large, spare) = (
        MockUpstream::start().await,
        MockUpstream::start().await,
        MockUpstream::start().await,
    );
    large.set_default(Script::text("large"));
    spare.set_default(Script::text("spare"));
    let gw = fallbacks_gateway(&small, &large, &spare).await;
    // Too long for `m`: its other deployment would say the same, so the
    // request goes straight to `big`, not to `cheap`.
    small.set_default(Script::context_length_exceeded());
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-model"], "big");
    assert_eq!(r.headers()["x-sluice-attempts"], "2");
    assert_eq!((small.hits(), large.hits(), spare.hits()), (1, 1, 0));
    // A server error: the other deployment of `m`, then `cheap` (a name
    // alone), never `big` (context length only).
    small.set_default(Script::status(500));
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-model"], "cheap");
    assert_eq!(r.headers()["x-sluice-attempts"], "3");
    assert_eq!((small.hits(), large.hits(), spare.hits()), (3, 1, 1));
    // A failure no fallback is for is answered at once.
    small.set_default(Script::error(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    ));
    let r = call(&gw).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-sluice-attempts"], "1");
}

#[tokio::test]
async fn retry_rounds_back_off_until_the_upstream_answers() {
    let up = MockUpstream::start().await;
    up.set_default(Script::text("finally"));
    let retries =
        "    retries: { attempts: 2, backoff: 20ms }\n    circuit_breaker: { enabled: false }";
    let gw = gateway(&[&up], retries, &[]).await;
    up.push_all([Script::status(500), Script::status(503)]);
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-attempts"], "3");
    // Three failures are one more than two retries can cover.
    up.push_all([
        Script::status(500),
        Script::status(500),
        Script::status(500),
    ]);
    let r = call(&gw).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-sluice-attempts"], "3");
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("all 3 attempts failed"), "{msg}");
}

#[tokio::test]
async fn a_retry_waits_for_retry_after_and_a_longer_one_ends_the_retries() {
    let up = MockUpstream::start().await;
    up.set_default(Script::text("after the wait"));
    let retries = "    retries: { attempts: 1, backoff: 10ms, max_backoff: 2s }";
    let gw = gateway(&[&up], retries, &[]).await;
    up.push(Script::rate_limited(1));
    let started = Instant::now();
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 honoured"
    );
    // Asked to wait longer than max_backoff: the 429 is the answer.
    up.push(Script::rate_limited(3));
    let r = call(&gw).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-sluice-attempts"], "1");
}

#[tokio::test]
async fn the_retry_budget_caps_the_extra_upstream_load() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    a.set_default(Script::status(500));
    b.set_default(Script::status(500));
    let cfg =
        "    retries: { budget: 0.2, min_per_second: 1 }\n    circuit_breaker: { enabled: false }";
    let gw = gateway(&[&a, &b], cfg, &[]).await;
    for _ in 0..50 {
        assert_eq!(call(&gw).await.status(), 502);
    }
    // Each request wanted one failover; the budget allowed 20 % of 50
    // requests plus 1/s over its 10 s window: 20.
    assert_eq!(a.hits() + b.hits(), 70);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"sluice_retries_total{model="m",outcome="sent"} 20"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_retries_total{model="m",outcome="refused"} 30"#),
        "{metrics}"
    );
}

/// `examples/cost-tiers.yaml`, served on free ports.
async fn cost_tiers() -> TestGateway {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/cost-tiers.yaml"
    );
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("127.0.0.1:4000", "127.0.0.1:0")
        .replace("127.0.0.1:4001", "127.0.0.1:0")
        .replace("latency: 300ms", "latency: 1ms")
        .replace("latency: 30ms", "latency: 1ms");
    TestGateway::start(&yaml).await
}

async fn ask(gw: &TestGateway, key: &str, body: Value) -> reqwest::Response {
    TestGateway::client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cost_tiers_send_each_request_to_the_model_its_tier_and_size_call_for() {
    let gw = cost_tiers().await;
    let say = |words: usize| json!({"model": "smart", "messages": [{"role": "user", "content": "word ".repeat(words)}]});
    let served = |r: &reqwest::Response| r.headers()["x-sluice-model"].to_str().unwrap().to_owned();
    // The free tier gets the cheap model, however long the prompt.
    for words in [5, 1_000] {
        let r = ask(&gw, "sk-free-tier", say(words)).await;
        assert_eq!((r.status().as_u16(), served(&r)), (200, "cheap".into()));
    }
    // Premium: short prompts cheap, longer ones the frontier model, the
    // longest the long-context one.
    let r = ask(&gw, "sk-premium-tier", say(5)).await;
    assert_eq!(served(&r), "cheap");
    let r = ask(&gw, "sk-premium-tier", say(1_000)).await;
    assert_eq!(served(&r), "smart");
    let r = ask(&gw, "sk-premium-tier", say(60_000)).await;
    assert_eq!(
        (r.status().as_u16(), served(&r)),
        (200, "long-context".into())
    );
    // A short prompt offering tools is not "short" for this rule.
    let tools = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    let r = ask(&gw, "sk-premium-tier", tools).await;
    assert_eq!(served(&r), "smart");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"sluice_routed_total{route="free-tier",model="cheap"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_routed_total{route="long-prompts",model="long-context"} 1"#),
        "{metrics}"
    );
}

fn canary_config(smart: u32, next: u32) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
providers:
  mock: {{ kind: mock, mock: {{ latency: 1ms }} }}
  slow: {{ kind: mock, mock: {{ latency: 700ms }} }}
models:
  smart: {{ deployments: [ {{ provider: mock, model: s }} ] }}
  smart-next: {{ deployments: [ {{ provider: mock, model: n }} ] }}
  slow: {{ deployments: [ {{ provider: slow, model: w }} ] }}
routes:
  - name: canary
    match: {{ model: smart }}
    split: {{ smart: {smart}, smart-next: {next} }}
keys:
{keys}"#,
        keys = (0..40)
            .map(|i| format!("  - {{ name: k{i}, key: sk-canary-{i:04} }}\n"))
            .collect::<String>()
    )
}

#[tokio::test]
async fn a_canary_split_is_sticky_per_key_and_a_reload_moves_it_without_dropping_requests() {
    let gw = canary_gateway().await;
    let hi = || json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
    let mut sides = Vec::new();
    for i in 0..40 {
        let key = format!("sk-canary-{i:04}");
        let first = ask(&gw, &key, hi()).await.headers()["x-sluice-model"].clone();
        for _ in 0..3 {
            let r = ask(&gw, &key, hi()).await;
            assert_eq!(
                r.headers()["x-sluice-model"],
                first,
                "key {i} stays on its side"
            );
        }
        sides.push(first == "smart-next");
    }
    let on_canary = sides.iter().filter(|s| **s).count();
    assert!(
        (4..=36).contains(&on_canary),
        "{on_canary} of 40 keys on a 50 % canary"
    );
    // A request in flight through a reload that sends everybody to the
    // new model finishes as it began.
    let url = gw.url.clone();
    let held = tokio::spawn(async move {
        TestGateway::client()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth("sk-canary-0000")
            .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&gw.config_path, canary_config(0, 100)).unwrap();
    let reload = TestGateway::client()
        .post(format!("{}/admin/reload", gw.admin_url.as_ref().unwrap()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    assert_eq!(held.await.unwrap(), 200);
    for i in 0..40 {
        let r = ask(&gw, &format!("sk-canary-{i:04}"), hi()).await;
        assert_eq!(r.headers()["x-sluice-model"], "smart-next");
    }
}

async fn canary_gateway() -> TestGateway {
    TestGateway::start(&canary_config(50, 50)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_succeeds_while_a_healthy_deployment_remains() {
    let faults: [(&str, Script); 5] = [
        ("500", Script::status(500)),
        ("429 with retry-after", Script::rate_limited(30)),
        ("529 overloaded", Script::status(529)),
        (
            "slow first byte",
            Script::text("late").with_delay(Duration::from_secs(3)),
        ),
        ("reset before answering", Script::text("never").reset()),
    ];
    for (what, fault) in faults {
        let (bad, good) = (MockUpstream::start().await, MockUpstream::start().await);
        bad.set_default(fault);
        good.set_default(Script::text("fine"));
        let gw = TestGateway::start(&format!(
            r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
server: {{ first_byte_timeout: 1500ms }}
providers:
  bad: {{ kind: openai, base_url: "{}/v1", api_key: k }}
  good: {{ kind: openai, base_url: "{}/v1", api_key: k }}
models:
  m:
    circuit_breaker: {{ failures: 3, cooldown: 1h }}
    deployments: [ {{ provider: bad, model: b }}, {{ provider: good, model: g }} ]
keys:
  - {{ name: test, key: {KEY} }}
"#,
            bad.url(),
            good.url()
        ))
        .await;
        let calls: Vec<_> = (0..30)
            .map(|_| {
                let url = gw.url.clone();
                tokio::spawn(async move {
                    let r = TestGateway::client()
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(KEY)
                        .json(
                            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                        )
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    (status, r.text().await.unwrap())
                })
            })
            .collect();
        for c in calls {
            let (status, body) = c.await.unwrap();
            assert_eq!(status, 200, "{what}: {body}");
        }
        // The breaker took the bad deployment out after its failures (the
        // concurrent ones already under way when it opened still count).
        assert!(
            bad.hits() < 30,
            "{what}: {} attempts on the bad deployment",
            bad.hits()
        );
        assert_eq!(breaker(&gw, 0).await, "open", "{what}");
    }
}

#[tokio::test]
async fn a_deployment_at_its_rpm_cap_is_skipped_and_all_capped_answers_429() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    a.set_default(Script::text("a"));
    b.set_default(Script::text("b"));
    let gw = gateway(&[&a, &b], "", &[", rpm: 3", ", rpm: 5"]).await;
    for i in 0..8 {
        assert_eq!(call(&gw).await.status(), 200, "request {i}");
    }
    assert_eq!((a.hits(), b.hits()), (3, 5), "each within its cap");
    let r = call(&gw).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("every deployment of `m` is at its rate limit"),
        "{msg}"
    );
    assert_eq!(
        a.hits() + b.hits(),
        8,
        "nothing sent to be refused upstream"
    );
}

#[tokio::test]
async fn usage_aware_never_sends_past_a_limit_the_provider_reported() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    // `a` says its requests are used up for the next minute.
    a.set_default(
        Script::text("a")
            .with_header("x-ratelimit-limit-requests", "10")
            .with_header("x-ratelimit-remaining-requests", "0")
            .with_header("x-ratelimit-reset-requests", "1m0s"),
    );
    b.set_default(
        Script::text("b")
            .with_header("x-ratelimit-limit-requests", "1000")
            .with_header("x-ratelimit-remaining-requests", "900"),
    );
    let gw = gateway(&[&a, &b], "    strategy: usage_aware", &[]).await;
    for _ in 0..12 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!(a.hits(), 1, "only the answer that said it was used up");
    assert_eq!(b.hits(), 11);
}

#[tokio::test]
async fn usage_aware_keeps_away_from_a_deployment_that_answered_429() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    a.push(Script::rate_limited(30));
    a.set_default(Script::text("a"));
    b.set_default(Script::text("b"));
    let gw = gateway(&[&a, &b], "    strategy: usage_aware", &[]).await;
    let r = call(&gw).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-sluice-attempts"],
        "2",
        "the 429, then the other"
    );
    for _ in 0..10 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    assert_eq!((a.hits(), b.hits()), (1, 11), "not before its retry-after");
}

#[tokio::test]
async fn slow_answers_open_a_breaker_with_slow_call() {
    let (slow, fast) = (MockUpstream::start().await, MockUpstream::start().await);
    slow.set_default(Script::text("slow").with_delay(Duration::from_millis(300)));
    fast.set_default(Script::text("fast"));
    let cfg = "    circuit_breaker: { failures: 2, slow_call: 100ms, cooldown: 1h }";
    let gw = gateway(&[&slow, &fast], cfg, &[]).await;
    for _ in 0..10 {
        assert_eq!(call(&gw).await.status(), 200, "slow answers still answer");
    }
    assert_eq!(slow.hits(), 2, "two slow answers opened it");
    assert_eq!(breaker(&gw, 0).await, "open");
}

#[tokio::test]
async fn streams_that_break_midway_open_the_breaker_and_failed_attempts_are_logged() {
    let log = common::log::access_log();
    let (bad, good) = (MockUpstream::start().await, MockUpstream::start().await);
    bad.set_default(Script::text("a long answer cut short by the upstream").truncated_after(3));
    good.set_default(Script::text("a whole answer"));
    let cfg = "    circuit_breaker: { failures: 2, cooldown: 1h }";
    let gw = gateway(&[&bad, &good], cfg, &[]).await;
    let stream =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut broken = 0;
    for _ in 0..8 {
        let r = gw.post("/v1/chat/completions", stream.clone()).await;
        assert_eq!(r.status(), 200, "a stream is committed once it begins");
        let body = r.text().await.unwrap();
        broken += usize::from(!body.contains("[DONE]"));
    }
    // Round robin sent every other stream to `bad` until two broke; a
    // stream that began is never retried, so those two clients saw the
    // error event, and nobody after them.
    assert_eq!((broken, bad.hits()), (2, 2));
    assert_eq!(breaker(&gw, 0).await, "open");
    // An attempt that failed before answering is in the access log.
    let (bad2, good2) = (MockUpstream::start().await, MockUpstream::start().await);
    bad2.set_default(Script::status(500));
    good2.set_default(Script::text("fine"));
    let gw2 = gateway(&[&bad2, &good2], "", &[]).await;
    for i in 0..2 {
        let r = TestGateway::client()
            .post(format!("{}/v1/chat/completions", gw2.url))
            .bearer_auth(KEY)
            .header("x-request-id", format!("failover-{i}"))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let lines = [
        common::log::log_line("failover-0").await,
        common::log::log_line("failover-1").await,
    ];
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains("attempts=2")).collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert!(
        failed[0].contains(r#"failed_attempts="up0: server_error""#),
        "{}",
        failed[0]
    );
    drop(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_provider_out_before_any_request_and_bring_it_back() {
    let port = common::free_port();
    let good = MockUpstream::start().await;
    good.set_default(Script::text("fine"));
    let gw = TestGateway::start(&format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
providers:
  dead:
    kind: openai
    base_url: "http://127.0.0.1:{port}/v1"
    api_key: k
    health_check: {{ interval: 1s, timeout: 500ms }}
  good: {{ kind: openai, base_url: "{}/v1", api_key: k, health_check: {{ interval: 1s }} }}
models:
  m:
    deployments: [ {{ provider: dead, model: d }}, {{ provider: good, model: g }} ]
keys:
  - {{ name: test, key: {KEY} }}
"#,
        good.url()
    ))
    .await;
    // Nothing answers on `dead`: its first probe opens its breaker.
    let started = Instant::now();
    while breaker(&gw, 0).await != "open" {
        assert!(started.elapsed() < Duration::from_secs(5), "never probed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(breaker(&gw, 1).await, "closed");
    for _ in 0..6 {
        let r = call(&gw).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-sluice-attempts"],
            "1",
            "no request tried the dead one"
        );
    }
    // It comes up: the next probe closes its breaker, and it serves again.
    let revived = MockUpstream::start_on(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    revived.set_default(Script::text("back"));
    let started = Instant::now();
    while breaker(&gw, 0).await != "closed" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..4 {
        assert_eq!(call(&gw).await.status(), 200);
    }
    let seen = revived.requests();
    let chats = seen.iter().filter(|r| r.method == "POST").count();
    assert_eq!(chats, 2, "round robin includes it again");
    // The probes: GETs of the model list, with the provider's credential.
    let probe = seen.iter().find(|r| r.method == "GET").expect("probed");
    assert_eq!(probe.path, "/v1/models");
    assert_eq!(probe.headers["authorization"], "Bearer k");
}

#[tokio::test]
async fn least_latency_judges_streams_by_time_to_first_token() {
    let (slow, fast) = (MockUpstream::start().await, MockUpstream::start().await);
    // Both answer at once; `slow`'s tokens start 150 ms after its headers.
    slow.set_default(Script::text("one two three").with_chunk_delay(Duration::from_millis(150)));
    fast.set_default(Script::text("one two three"));
    let gw = gateway(&[&slow, &fast], "    strategy: least_latency", &[]).await;
    let stream =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..12 {
        let r = gw.post("/v1/chat/completions", stream.clone()).await;
        assert!(r.text().await.unwrap().contains("[DONE]"));
    }
    // The first request measures each; after that `fast` serves.
    assert!(
        slow.hits() <= 2,
        "{} streams to the one slow to its first token",
        slow.hits()
    );
}
