//! Rate limits shared by several gateway instances through one Redis
//! (`shared_state`): three instances hold one limit together (within 2 %
//! of `burst + rate·t`), token reservations made on one instance show on
//! another, and when Redis is unreachable or stops mid-run each
//! `on_shared_state_failure` mode does what it says without a request
//! waiting longer than `shared_state_timeout`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::db::redis_url;
use common::{free_port, TestGateway, ADMIN_KEY};
use serde_json::json;

/// A config for one instance; `name` makes the key (and so the Redis
/// counters) unique to the test run.
fn config(redis: &str, name: &str, policy: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
shared_state: {redis}
{extra}
providers:
  mock: {{ kind: mock }}
models:
  m: {{ deployments: [ {{ provider: mock, model: m }} ] }}
keys:
  - {{ name: {name}, key: sk-{name}-secret, policy: {policy} }}
"#
    )
}

/// For tests of sharing (not of failures): a slow moment of a busy machine
/// must not look like an unreachable Redis, and if Redis did fail the test
/// says so (503) instead of counting per instance.
const SHARING: &str = "shared_state_timeout: 1s\non_shared_state_failure: fail_closed";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

async fn call(gw_url: &str, name: &str) -> reqwest::Response {
    TestGateway::client()
        .post(format!("{gw_url}/v1/chat/completions"))
        .bearer_auth(format!("sk-{name}-secret"))
        .json(&json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_hold_one_limit_together() {
    let name = unique("shared");
    let policy = "{ rate_limit: { requests_per_second: 50 } }";
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(TestGateway::start(&config(&redis_url(), &name, policy, SHARING)).await);
    }
    let urls: Vec<String> = gws.iter().map(|g| g.url.clone()).collect();
    let started = Instant::now();
    let run = Duration::from_secs(2);
    let mut clients = Vec::new();
    for c in 0..30 {
        let (url, name) = (urls[c % 3].clone(), name.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0u32, 0u32);
            while started.elapsed() < run {
                match call(&url, &name).await.status().as_u16() {
                    200 => ok += 1,
                    429 => refused += 1,
                    s => panic!("unexpected {s}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0u32, 0u32);
    for c in clients {
        let (o, r) = c.await.unwrap();
        ok += o;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // GCRA: at most burst (50) + 50/s · t. The clients offer more than
    // twice that (how much more depends on the machine's speed), so the
    // lower bound below measures the limit, not the clients.
    let bound = 50.0 + 50.0 * elapsed;
    println!("3 instances, 30 clients, {elapsed:.2} s: {ok} admitted (bound {bound:.1}), {refused} refused");
    assert!(
        refused > ok,
        "not saturated: {ok} admitted, {refused} refused"
    );
    assert!(
        f64::from(ok) <= bound + 1.0,
        "{ok} admitted, bound {bound:.1}"
    );
    assert!(
        f64::from(ok) >= 0.98 * (50.0 + 50.0 * run.as_secs_f64()),
        "{ok} admitted in {elapsed:.2} s, expected about {:.0}",
        50.0 + 50.0 * run.as_secs_f64()
    );
}

#[tokio::test]
async fn a_token_reservation_on_one_instance_shows_on_another() {
    let name = unique("tokens");
    let policy = "{ rate_limit: { tokens_per_day: 100000 } }";
    let a = TestGateway::start(&config(&redis_url(), &name, policy, SHARING)).await;
    let b = TestGateway::start(&config(&redis_url(), &name, policy, SHARING)).await;
    let r = call(&a.url, &name).await;
    let first: u64 = r.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The mock counts "hi" as 4 prompt tokens and answers in 11: after a's
    // request settles, b's reservation (prompt + 10) comes off what is left.
    let mut seen = 0;
    for _ in 0..100 {
        let r = call(&b.url, &name).await;
        seen = r.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if seen < first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen < first,
        "b's remaining {seen} never went under a's {first}"
    );
}

/// A private Redis on a free port, stopped when dropped.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (scripts/test-services.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Statuses of `n` calls, and the slowest call.
async fn statuses(url: &str, name: &str, n: usize) -> (Vec<u16>, Duration) {
    let (mut out, mut slowest) = (Vec::new(), Duration::ZERO);
    for _ in 0..n {
        let t = Instant::now();
        out.push(call(url, name).await.status().as_u16());
        slowest = slowest.max(t.elapsed());
    }
    (out, slowest)
}

#[tokio::test]
async fn each_failure_mode_does_what_it_says_when_redis_is_unreachable() {
    let policy = "{ rate_limit: { requests_per_minute: 2 } }";
    let dead = format!("redis://127.0.0.1:{}", free_port());
    for (mode, want) in [
        ("local", vec![200, 200, 429, 429]),
        ("fail_open", vec![200, 200, 200, 200]),
        ("fail_closed", vec![503, 503, 503, 503]),
    ] {
        let name = unique("down");
        let extra = format!("on_shared_state_failure: {mode}\nshared_state_timeout: 100ms");
        let gw = TestGateway::start(&config(&dead, &name, policy, &extra)).await;
        let (got, slowest) = statuses(&gw.url, &name, 4).await;
        assert_eq!(got, want, "{mode}");
        assert!(
            slowest < Duration::from_secs(1),
            "{mode}: a call took {slowest:?}"
        );
        let m = gw.metrics().await;
        assert!(
            m.contains("sluice_shared_state_failures_total 4"),
            "{mode}: {m}"
        );
    }
}

#[tokio::test]
async fn redis_stopping_mid_run_falls_back_and_its_return_shares_again() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let name = unique("outage");
    let policy = "{ rate_limit: { requests_per_minute: 3 } }";
    let extra = "on_shared_state_failure: local\nshared_state_timeout: 100ms";
    let a = TestGateway::start(&config(&redis.url(), &name, policy, extra)).await;
    let b = TestGateway::start(&config(&redis.url(), &name, policy, extra)).await;
    // Shared: 3 a minute across both instances.
    assert_eq!(statuses(&a.url, &name, 2).await.0, [200, 200]);
    assert_eq!(statuses(&b.url, &name, 2).await.0, [200, 429]);
    drop(redis);
    // Redis gone: each instance counts alone (3 a minute each), promptly.
    let (got, slowest) = statuses(&b.url, &name, 4).await;
    assert_eq!(got, [200, 200, 200, 429]);
    assert!(slowest < Duration::from_secs(1), "a call took {slowest:?}");
    // Redis back (empty): once the connection is re-made, counts go to it
    // again.
    let redis = PrivateRedis::start(port);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let started = Instant::now();
    loop {
        call(&a.url, &name).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("sluice:rl:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never shared again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A config whose key `name` has a day budget of `usd` on a model priced
/// $10 per million tokens, served by `upstream` (an OpenAI mock).
fn budget_config(redis: &str, name: &str, usd: &str, upstream: &str, listen: &str) -> String {
    format!(
        r#"
listen: {listen}
shared_state: {redis}
{SHARING}
server: {{ total_timeout: 1s }}
providers:
  up: {{ kind: openai, base_url: "{upstream}/v1", api_key: sk-upstream-secret }}
models:
  m: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
keys:
  - {{ name: {name}, key: sk-{name}-secret, policy: {{ budget: {{ usd_per_day: {usd} }} }} }}
"#
    )
}

/// "hi" with max_tokens 100 reserves (8 + 100) × 10 = 1080 micro-USD.
async fn budget_call(gw_url: &str, name: &str) -> u16 {
    TestGateway::client()
        .post(format!("{gw_url}/v1/chat/completions"))
        .bearer_auth(format!("sk-{name}-secret"))
        .json(&json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hello world"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_budget_cannot_overspend_it_together() {
    use sluice_testkit::{MockUpstream, Script};
    let upstream = MockUpstream::start().await;
    upstream.set_default(
        Script::text("answer")
            .with_usage(8, 100)
            .with_delay(Duration::from_millis(300)),
    );
    let name = unique("budget");
    // Room for exactly 5 reservations of 1080.
    let cfg = budget_config(&redis_url(), &name, "0.006", &upstream.url(), "127.0.0.1:0");
    let a = TestGateway::start(&cfg).await;
    let b = TestGateway::start(&cfg).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let (url, name) = (
                if i % 2 == 0 { &a.url } else { &b.url }.clone(),
                name.clone(),
            );
            tokio::spawn(async move { budget_call(&url, &name).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(upstream.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_of_a_killed_instance_is_released_when_its_lease_ends() {
    use sluice_testkit::{MockUpstream, Script};
    let upstream = MockUpstream::start().await;
    upstream.push(Script::text("never sent").with_delay(Duration::from_secs(30)));
    upstream.set_default(Script::text("answer").with_usage(8, 100));
    let name = unique("killed");
    // Room for one reservation of 1080, not two.
    let port = free_port();
    let dir = common::temp_dir();
    let path = dir.join("killed.yaml");
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(
        &path,
        budget_config(&redis_url(), &name, "0.0015", &upstream.url(), &listen),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sluice did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://{listen}");
    let held = TestGateway::client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(format!("sk-{name}-secret"))
        .json(&json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hello world"}]}));
    // Its connection dies with the process: the outcome is not looked at.
    let _held = tokio::spawn(async move { drop(held.send().await) });
    assert!(upstream.wait_for_hits(1, Duration::from_secs(5)).await);
    // SIGKILL: the request never settles; its hold stays in Redis.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let cfg = budget_config(
        &redis_url(),
        &name,
        "0.0015",
        &upstream.url(),
        "127.0.0.1:0",
    );
    let other = TestGateway::start(&cfg).await;
    assert_eq!(
        budget_call(&other.url, &name).await,
        402,
        "the hold still counts"
    );
    // Lease: the request's longest life (total_timeout 1s) + 5 s margin.
    loop {
        if budget_call(&other.url, &name).await == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the hold was never released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let released = killed.elapsed();
    println!(
        "a killed instance's budget hold was released {:.1} s after the kill",
        released.as_secs_f64()
    );
    assert!(
        released >= Duration::from_secs(4),
        "released too early: {released:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_slot_taken_on_one_instance_is_taken_for_all() {
    use sluice_testkit::{MockUpstream, Script};
    let upstream = MockUpstream::start().await;
    upstream.set_default(Script::text("answer"));
    upstream.push(Script::text("slow").with_delay(Duration::from_millis(1500)));
    let name = unique("slots");
    let cfg = format!(
        r#"
listen: 127.0.0.1:0
shared_state: {}
providers:
  up: {{ kind: openai, base_url: "{}/v1", api_key: sk-upstream-secret }}
models:
  m: {{ deployments: [ {{ provider: up, model: gpt-4o-mini }} ] }}
keys:
  - {{ name: {name}, key: sk-{name}-secret, policy: {{ concurrency: {{ max_in_flight: 1, queue: 5, queue_timeout: 300ms }} }} }}
"#,
        redis_url(),
        upstream.url()
    );
    let a = TestGateway::start(&cfg).await;
    let b = TestGateway::start(&cfg).await;
    let (url, n) = (a.url.clone(), name.clone());
    let first = tokio::spawn(async move { call(&url, &n).await.status().as_u16() });
    assert!(upstream.wait_for_hits(1, Duration::from_secs(5)).await);
    // b's own queue is empty, but the one slot is a's: b waits, then 503.
    let r = call(&b.url, &name).await;
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "queue_timeout", "{v}");
    assert_eq!(first.await.unwrap(), 200);
    // Released: b gets it.
    assert_eq!(call(&b.url, &name).await.status(), 200);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn concurrency_limits_say_when_the_shared_state_is_unreachable() {
    let policy = "{ concurrency: { max_in_flight: 1 } }";
    let dead = format!("redis://127.0.0.1:{}", free_port());
    for (mode, want) in [("local", 200), ("fail_open", 200), ("fail_closed", 503)] {
        let name = unique("slots-down");
        let extra = format!("on_shared_state_failure: {mode}\nshared_state_timeout: 100ms");
        let gw = TestGateway::start(&config(&dead, &name, policy, &extra)).await;
        let r = call(&gw.url, &name).await;
        assert_eq!(r.status(), want, "{mode}");
        if want == 503 {
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(
                v["error"]["message"],
                "concurrency limits cannot be checked: the shared state is unreachable (on_shared_state_failure: fail_closed)"
            );
        }
        assert!(gw
            .metrics()
            .await
            .contains("sluice_shared_state_failures_total 1\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_counters_redis_lost_are_seeded_again_from_the_store() {
    use sluice_testkit::{MockUpstream, Script};
    let upstream = MockUpstream::start().await;
    upstream.set_default(Script::text("answer").with_usage(8, 100));
    let name = unique("reseed");
    let store = format!("sqlite://{}/s.db", common::temp_dir().display());
    let cfg = budget_config(&redis_url(), &name, "0.006", &upstream.url(), "127.0.0.1:0").replacen(
        "listen:",
        &format!("store: {store}\nlisten:"),
        1,
    );
    let gw = TestGateway::start(&cfg).await;
    // Five calls of 1080 micro-USD fit $0.006; the sixth does not.
    for _ in 0..5 {
        assert_eq!(budget_call(&gw.url, &name).await, 200);
    }
    assert_eq!(budget_call(&gw.url, &name).await, 402);
    // The spend reaches the store (flushed every second).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // Redis loses the counters (as after a restart without persistence).
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("sluice:bud:*{name}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let counter = keys
        .iter()
        .find(|k| {
            ![":holds", ":amounts", ":fired"]
                .iter()
                .any(|s| k.ends_with(s))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no budget counter among {keys:?}"));
    let mut del = redis::cmd("DEL");
    del.arg(&keys).arg("sluice:bud:seeded");
    let _: i64 = del.query_async(&mut conn).await.unwrap();
    // Within the re-seed interval the counter is back at the store's spend.
    let started = Instant::now();
    loop {
        let spent: Option<i64> = redis::cmd("HGET")
            .arg(&counter)
            .arg("spent")
            .query_async(&mut conn)
            .await
            .unwrap();
        if spent == Some(5_400) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "counter {counter} not re-seeded: {spent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(budget_call(&gw.url, &name).await, 402);
}
