//! Request rate limits over real sockets, served by the built-in mock
//! provider: 429 with `Retry-After` in both API shapes, the `x-ratelimit-*`
//! headers, every level enforced with its own counter (a tenant's shared by
//! its keys, static and store-managed), `per: user` and `per: ip`, shadow
//! mode, rollout, and counters across config reloads.

mod common;

use std::time::{Duration, Instant};

use common::db::{Backend, FreshStore};
use common::log::{access_log, log_line};
use common::{TestGateway, ADMIN_KEY};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sluice_store as st;

const MODELS: &str = r#"
providers:
  mock: { kind: mock }
  broken: { kind: mock, mock: { faults: [ { every: 1, status: 500 } ] } }
models:
  m: { deployments: [ { provider: mock, model: x } ] }
  small: { deployments: [ { provider: mock, model: y } ], policy: { rate_limit: { requests_per_minute: 2 } } }
  down: { deployments: [ { provider: broken, model: z } ] }
"#;

fn config(rest: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nadmin_key: {ADMIN_KEY}\n{MODELS}{rest}"
    )
}

/// One answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn message(&self) -> &str {
        let e = &self.body["error"];
        e["message"].as_str().unwrap_or_default()
    }
}

/// A request to `path` with `key`, extra headers and a JSON body.
async fn send(
    gw: &TestGateway,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Answer {
    let mut req = TestGateway::client()
        .post(format!("{}{path}", gw.url))
        .header("x-api-key", key)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat(gw: &TestGateway, key: &str, model: &str) -> Answer {
    send(gw, "/v1/chat/completions", key, &[], chat_body(model)).await
}

/// Statuses of `n` chat calls with `key`.
async fn statuses(gw: &TestGateway, key: &str, model: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(chat(gw, key, model).await.status);
    }
    out
}

fn keys(names: &[(&str, &str)]) -> String {
    let mut out = String::from("keys:\n");
    for (name, rest) in names {
        out.push_str(&format!(
            "  - {{ name: {name}, key: sk-{name}-secret-1{rest} }}\n"
        ));
    }
    out
}

fn secret(name: &str) -> String {
    format!("sk-{name}-secret-1")
}

#[tokio::test]
async fn a_refusal_is_429_with_retry_after_naming_the_limit_in_both_shapes() {
    let gw = TestGateway::start(&config(&format!(
        "policies: {{ standard: {{ rate_limit: {{ requests_per_minute: 2 }} }} }}\n{}",
        keys(&[("ci", ", policy: standard")])
    )))
    .await;
    assert_eq!(statuses(&gw, &secret("ci"), "m", 2).await, [200, 200]);
    let a = send(
        &gw,
        "/v1/messages",
        &secret("ci"),
        &[("anthropic-version", "2023-06-01")],
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["type"], "error");
    assert_eq!(a.body["error"]["type"], "rate_limit_error");
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let want = "rate limit of key `ci` (policy `standard`): 2 requests per minute; retry in ";
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(want),
        "{}",
        a.body
    );

    let o = chat(&gw, &secret("ci"), "m").await;
    assert_eq!(o.status, 429);
    assert_eq!(o.body["error"]["type"], "rate_limit_error");
    assert_eq!(o.body["error"]["code"], "rate_limited");
    assert!(o.message().starts_with(want), "{}", o.body);
    assert!(o.header("retry-after").is_some());
    assert_eq!(o.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(o.header("x-ratelimit-remaining-requests"), Some("0"));
    let e = send(
        &gw,
        "/v1/embeddings",
        &secret("ci"),
        &[],
        json!({"model": "m", "input": "x"}),
    )
    .await;
    assert_eq!(e.status, 429, "embeddings count too: {}", e.body);
}

#[tokio::test]
async fn ratelimit_headers_on_success_streams_and_errors() {
    let gw = TestGateway::start(&config(&keys(&[(
        "h",
        ", policy: { rate_limit: { requests_per_minute: 10 } }",
    )])))
    .await;
    let ok = chat(&gw, &secret("h"), "m").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-ratelimit-limit-requests"), Some("10"));
    assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some("9"));
    assert_eq!(ok.header("x-ratelimit-reset-requests"), Some("6s"));
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let stream = send(&gw, "/v1/chat/completions", &secret("h"), &[], body).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("x-ratelimit-remaining-requests"), Some("8"));
    let failed = chat(&gw, &secret("h"), "down").await;
    assert!(failed.status >= 500, "{}", failed.body);
    assert_eq!(failed.header("x-ratelimit-remaining-requests"), Some("7"));
    assert_eq!(failed.header("x-ratelimit-reset-requests"), Some("18s"));
    // Refused before the stage (unknown model): nothing counted, no headers.
    let unknown = chat(&gw, &secret("h"), "nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-ratelimit-remaining-requests"), None);
    let next = chat(&gw, &secret("h"), "m").await;
    assert_eq!(next.header("x-ratelimit-remaining-requests"), Some("6"));
}

#[tokio::test]
async fn key_tenant_and_model_limits_each_hold_with_their_own_counters() {
    let gw = TestGateway::start(&config(&format!(
        "tenants: {{ acme: {{ policy: {{ rate_limit: {{ requests_per_minute: 3 }} }} }} }}\n{}",
        keys(&[
            ("a", ", tenant: acme"),
            ("b", ", tenant: acme"),
            ("solo", ", policy: { rate_limit: { requests_per_hour: 1 } }"),
            ("free1", ""),
            ("free2", ""),
        ])
    )))
    .await;
    // The tenant's counter is shared by its keys.
    assert_eq!(statuses(&gw, &secret("a"), "m", 2).await, [200, 200]);
    assert_eq!(statuses(&gw, &secret("b"), "m", 2).await, [200, 429]);
    let refused = chat(&gw, &secret("a"), "m").await;
    assert!(
        refused
            .message()
            .starts_with("rate limit of tenant `acme`: 3 requests per minute"),
        "{}",
        refused.body
    );
    // A key's own limit.
    assert_eq!(statuses(&gw, &secret("solo"), "m", 2).await, [200, 429]);
    assert!(chat(&gw, &secret("solo"), "m")
        .await
        .message()
        .contains("key `solo`"));
    // The model's counter is shared by every caller of the model.
    assert_eq!(statuses(&gw, &secret("free1"), "small", 1).await, [200]);
    assert_eq!(
        statuses(&gw, &secret("free2"), "small", 2).await,
        [200, 429]
    );
    let m = chat(&gw, &secret("free1"), "small").await;
    assert!(
        m.message()
            .starts_with("rate limit of model `small`: 2 requests per minute"),
        "{}",
        m.body
    );
    assert_eq!(
        statuses(&gw, &secret("free1"), "m", 1).await,
        [200],
        "other models are not affected"
    );
}

#[tokio::test]
async fn the_global_limit_counts_every_request() {
    let gw = TestGateway::start(&config(&format!(
        "global_policy: {{ rate_limit: {{ requests_per_minute: 3 }} }}\n{}",
        keys(&[("x", ""), ("y", "")])
    )))
    .await;
    assert_eq!(statuses(&gw, &secret("x"), "m", 2).await, [200, 200]);
    assert_eq!(statuses(&gw, &secret("y"), "m", 2).await, [200, 429]);
    let r = chat(&gw, &secret("x"), "m").await;
    assert!(
        r.message()
            .starts_with("the gateway-wide rate limit: 3 requests per minute"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn per_user_and_per_ip_partitions_count_apart() {
    let gw = TestGateway::start(&config(&format!(
        "server: {{ end_user_header: x-end-user, client_ip_header: x-forwarded-for }}\n{}",
        keys(&[
            (
                "users",
                ", policy: { rate_limit: { requests_per_minute: 1, per: user } }"
            ),
            (
                "ips",
                ", policy: { rate_limit: { requests_per_minute: 1, per: ip } }"
            ),
        ])
    )))
    .await;
    let users = secret("users");
    let as_user = |u: &str| {
        let mut b = chat_body("m");
        b["user"] = json!(u);
        b
    };
    let path = "/v1/chat/completions";
    assert_eq!(
        send(&gw, path, &users, &[], as_user("alice")).await.status,
        200
    );
    assert_eq!(
        send(&gw, path, &users, &[], as_user("bob")).await.status,
        200
    );
    let again = send(&gw, path, &users, &[], as_user("alice")).await;
    assert_eq!(again.status, 429);
    assert!(again.message().contains("per end user") && !again.message().contains("alice"));
    let anthropic = json!({"model": "m", "max_tokens": 5, "metadata": {"user_id": "carol"}, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        send(&gw, "/v1/messages", &users, &[], anthropic)
            .await
            .status,
        200
    );
    let dave = [("x-end-user", "dave")];
    assert_eq!(
        send(&gw, path, &users, &dave, chat_body("m")).await.status,
        200
    );
    assert_eq!(
        send(&gw, path, &users, &dave, chat_body("m")).await.status,
        429
    );
    // No end user at all: one shared bucket.
    assert_eq!(statuses(&gw, &users, "m", 2).await, [200, 429]);

    let ips = secret("ips");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(
        send(
            &gw,
            path,
            &ips,
            &from("203.0.113.7, 10.0.0.1"),
            chat_body("m")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send(&gw, path, &ips, &from("198.51.100.2"), chat_body("m"))
            .await
            .status,
        200
    );
    let again = send(&gw, path, &ips, &from("203.0.113.7"), chat_body("m")).await;
    assert_eq!(again.status, 429);
    assert!(again.message().contains("per client IP") && !again.message().contains("203.0.113.7"));
    // Without the header: the TCP peer (127.0.0.1).
    assert_eq!(statuses(&gw, &ips, "m", 2).await, [200, 429]);
}

#[tokio::test]
async fn shadow_limits_never_refuse_but_are_logged_and_counted() {
    access_log();
    let gw = TestGateway::start(&config(&keys(&[
        (
            "shy",
            ", policy: { mode: shadow, rate_limit: { requests_per_minute: 1 } }",
        ),
        (
            "strict",
            ", policy: { rate_limit: { requests_per_minute: 1 } }",
        ),
    ])))
    .await;
    let call = |key: String, id: &'static str| {
        let gw = &gw;
        async move {
            send(
                gw,
                "/v1/chat/completions",
                &key,
                &[("x-request-id", id)],
                chat_body("m"),
            )
            .await
        }
    };
    let first = call(secret("shy"), "rl-shadow-1").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("x-ratelimit-limit-requests"),
        None,
        "shadow limits are not advertised"
    );
    for id in ["rl-shadow-2", "rl-shadow-3"] {
        assert_eq!(call(secret("shy"), id).await.status, 200);
        assert!(log_line(id).await.contains("would_block=\"key `shy`\""));
    }
    assert!(!log_line("rl-shadow-1").await.contains("would_block"));
    assert_eq!(call(secret("strict"), "rl-enforce-1").await.status, 200);
    assert_eq!(call(secret("strict"), "rl-enforce-2").await.status, 429);
    let line = log_line("rl-enforce-2").await;
    assert!(
        line.contains("rate_limited=\"key `strict`\"") && line.contains("status=429"),
        "{line}"
    );
    let m = gw.metrics().await;
    assert!(
        m.contains(
            r#"sluice_rate_limited_total{scope="key",per="none",limit="requests",mode="shadow"} 2"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"sluice_rate_limited_total{scope="key",per="none",limit="requests",mode="enforce"} 1"#
        ),
        "{m}"
    );
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_rule_and_resets_a_changed_one() {
    let yaml = |extra: &str, rpm: u32| {
        config(&format!(
            "{extra}{}",
            keys(&[(
                "r",
                &format!(", policy: {{ rate_limit: {{ requests_per_minute: {rpm} }} }}")
            )])
        ))
    };
    let gw = TestGateway::start(&yaml("", 3)).await;
    let reload = |text: String| {
        std::fs::write(&gw.config_path, text).unwrap();
        sluice::reload::reload(&gw.app, "test").unwrap();
    };
    assert_eq!(statuses(&gw, &secret("r"), "m", 2).await, [200, 200]);
    // Something else changes; the rule does not: its counter goes on.
    reload(yaml("log: { access_log: false }\n", 3));
    let r = chat(&gw, &secret("r"), "m").await;
    assert_eq!(
        (r.status, r.header("x-ratelimit-remaining-requests")),
        (200, Some("0"))
    );
    assert_eq!(chat(&gw, &secret("r"), "m").await.status, 429);
    // The rule changes: a fresh counter.
    reload(yaml("", 4));
    let r = chat(&gw, &secret("r"), "m").await;
    assert_eq!(
        (r.status, r.header("x-ratelimit-remaining-requests")),
        (200, Some("3"))
    );
}

#[tokio::test]
async fn rollout_zero_limits_nobody_and_hundred_everybody() {
    let gw = TestGateway::start(&config(&keys(&[
        (
            "none",
            ", policy: { rollout: 0, rate_limit: { requests_per_minute: 1 } }",
        ),
        (
            "all",
            ", policy: { rollout: 100, rate_limit: { requests_per_minute: 1 } }",
        ),
    ])))
    .await;
    assert_eq!(
        statuses(&gw, &secret("none"), "m", 3).await,
        [200, 200, 200]
    );
    assert_eq!(statuses(&gw, &secret("all"), "m", 2).await, [200, 429]);
}

#[tokio::test]
async fn store_managed_keys_are_limited_and_share_a_seeded_tenant_with_static_keys() {
    let db = FreshStore::new(Backend::Sqlite).await;
    let url = &db.url;
    let gw = TestGateway::start(&config(&format!(
        "store: \"{url}\"\ntenants: {{ acme: {{ policy: {{ rate_limit: {{ requests_per_minute: 3 }} }} }} }}\n{}",
        keys(&[("static", ", tenant: acme")])
    )))
    .await;
    let store = gw.app.store.clone().unwrap();
    let root = st::Actor {
        id: "test:root".into(),
        role: st::Role::Admin,
        tenant_id: None,
    };
    let acme = store.tenant_by_name("acme").await.unwrap().expect("seeded");
    let app = store
        .create_app(
            &root,
            st::NewApp {
                tenant_id: acme.id,
                name: "web".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let new_key = st::NewKey {
        app_id: app.id,
        name: "managed".into(),
        policy: Some(json!({"rate_limit": {"requests_per_minute": 1}})),
        ..Default::default()
    };
    let (_, managed) = store.create_key(&root, new_key).await.unwrap();
    sluice::directory::notify_changed(&gw.app);
    let start = Instant::now();
    while chat(&gw, &managed, "m").await.status == 401 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the store key never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let own = chat(&gw, &managed, "m").await;
    assert_eq!(own.status, 429, "{}", own.body);
    assert!(
        own.message()
            .starts_with("rate limit of key `managed`: 1 request per minute"),
        "{}",
        own.body
    );
    // The tenant counted the store key's admitted request too.
    assert_eq!(
        statuses(&gw, &secret("static"), "m", 3).await,
        [200, 200, 429]
    );
}
