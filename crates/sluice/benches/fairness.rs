//! Fair queueing across tenants, measured over real sockets: one gateway
//! whose global policy allows 4 requests in flight (queue 1,000, 5 s), in
//! front of the built-in mock provider answering in 50 ms — 80 requests a
//! second in all, a fair share of 40 each for two busy tenants. Tenant B
//! sends at its share: 40 requests a second, open loop (one every 25 ms,
//! whatever the answers). Tenant A floods at ten times its share: 20
//! clients, each sending again as soon as answered. Reports B's admitted
//! rate against what it sent, and B's p99 wait for a slot (its latency
//! minus the provider's 50 ms) against the 5 s deadline.
//!
//! With `FAIRNESS_SHARED=redis://…`, two gateways share the limit through
//! that Redis (`shared_state`): A floods through one, B sends through the
//! other, and B's requests wait in the shared line against A's.
//!
//! Run: `cargo bench -p sluice --bench fairness`
//! (`FAIRNESS_SHARED=redis://127.0.0.1:6379 cargo bench -p sluice --bench fairness`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

const CONFIG: &str = r#"
listen: 127.0.0.1:0
server: { workers: 1 }
providers:
  mock: { kind: mock, mock: { latency: 50ms, reply: "ok" } }
models:
  m: { deployments: [ { provider: mock, model: m } ] }
global_policy: { concurrency: { max_in_flight: 4, queue: 1000, queue_timeout: 5s } }
tenants: { a: {}, b: {} }
keys:
  - { name: a, key: sk-fair-tenant-a, tenant: a }
  - { name: b, key: sk-fair-tenant-b, tenant: b }
"#;

/// Runs `clients` closed-loop clients of `key` for `run`; latencies of
/// the answered requests.
async fn load(url: String, key: &'static str, clients: usize, run: Duration) -> Vec<Duration> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, out) = (url.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while start.elapsed() < run {
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(key)
                    .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 200) {
                    out.lock().await.push(t.elapsed());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let v = out.lock().await.clone();
    v
}

/// Sends one request of `key` every `every` for `run` (open loop);
/// latencies of the answered requests, and how many were sent.
async fn paced(
    url: String,
    key: &'static str,
    every: Duration,
    run: Duration,
) -> (Vec<Duration>, usize) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(every);
    let start = Instant::now();
    let mut sent = Vec::new();
    while start.elapsed() < run {
        tick.tick().await;
        let req = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        sent.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = req.send().await;
            r.is_ok_and(|r| r.status() == 200).then(|| t.elapsed())
        }));
    }
    let n = sent.len();
    let mut ok = Vec::new();
    for s in sent {
        if let Ok(Some(d)) = s.await {
            ok.push(d);
        }
    }
    (ok, n)
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() * 99 / 100).copied().unwrap_or_default()
}

/// Starts a gateway; its URL and what stops it.
async fn start(
    yaml: &str,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let cfg = sluice::config::load_str(yaml, std::path::Path::new("fairness.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = sluice::server::Server::bind(&cfg, None).await.unwrap();
    let url = format!("http://{}", server.public_addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let _ = server
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    (url, tx, serving)
}

#[tokio::main]
async fn main() {
    let shared = std::env::var("FAIRNESS_SHARED").ok();
    let yaml = match &shared {
        Some(redis) => format!("shared_state: {redis}\n{CONFIG}"),
        None => CONFIG.to_owned(),
    };
    let mut gateways = vec![start(&yaml).await];
    if shared.is_some() {
        gateways.push(start(&yaml).await);
        println!(
            "two gateways sharing the limit through {}",
            shared.as_deref().unwrap_or("")
        );
    }
    let url_a = gateways[0].0.clone();
    let url_b = gateways[gateways.len() - 1].0.clone();
    let run = Duration::from_secs(10);
    let every = Duration::from_millis(25);
    let flood = tokio::spawn(load(url_a, "sk-fair-tenant-a", 20, run));
    let (mut b, sent) = paced(url_b, "sk-fair-tenant-b", every, run).await;
    let a = flood.await.unwrap();
    let rate = |n: usize| n as f64 / run.as_secs_f64();
    let wait = p99(&mut b).saturating_sub(Duration::from_millis(50));
    println!(
        "tenant A (20 clients, 10x its share): {:.1} req/s; tenant B sent {:.1} req/s (its share: 40), admitted {:.1} req/s = {:.1} %",
        rate(a.len()),
        rate(sent),
        rate(b.len()),
        100.0 * b.len() as f64 / sent as f64
    );
    println!(
        "B's p99 wait for a slot: {:.1} ms (deadline 5000 ms)",
        wait.as_secs_f64() * 1000.0
    );
    for (_, tx, serving) in gateways {
        let _ = tx.send(());
        let _ = serving.await;
    }
}
