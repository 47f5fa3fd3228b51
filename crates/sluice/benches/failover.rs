//! Resilience at load: 30 % of upstream calls failing. One gateway in this
//! process, the built-in mock provider answering in 20 ms; 20 concurrent
//! clients call each model for 10 s:
//!
//! - `steady`: two deployments that never fail (the baseline);
//! - `flaky`: two deployments each failing 30 % of calls at random (500),
//!   with the default retry budget (extra attempts ≤ 20 % of requests +
//!   10/s) and one retry round;
//! - `flaky-unbudgeted`: the same with a budget of 100 %.
//!
//! The report gives, per model, the success rate, p50/p99 latency and the
//! p99 added over `steady`, and the upstream calls per request (from
//! `x-sluice-attempts`): what the retry budget trades between success and
//! extra load on a browning-out provider.
//!
//! Run: `cargo bench -p sluice --bench failover`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;
const RUN: Duration = Duration::from_secs(10);

const YAML: &str = r#"
listen: 127.0.0.1:0
server: { workers: 1 }
providers:
  ok-a: { kind: mock, mock: { latency: 20ms, reply: ok } }
  ok-b: { kind: mock, mock: { latency: 20ms, reply: ok } }
  bad-a: { kind: mock, mock: { latency: 20ms, reply: ok, faults: [ { rate: 0.3, status: 500 } ] } }
  bad-b: { kind: mock, mock: { latency: 20ms, reply: ok, faults: [ { rate: 0.3, status: 500 } ] } }
models:
  steady:
    deployments: [ { provider: ok-a, model: s }, { provider: ok-b, model: s } ]
  flaky:
    retries: { attempts: 1, backoff: 10ms }
    deployments: [ { provider: bad-a, model: f }, { provider: bad-b, model: f } ]
  flaky-unbudgeted:
    retries: { attempts: 1, backoff: 10ms, budget: 1.0 }
    deployments: [ { provider: bad-a, model: f }, { provider: bad-b, model: f } ]
keys:
  - { name: bench, key: sk-bench-failover }
"#;

/// One finished request: ok, latency, upstream attempts.
type Sample = (bool, Duration, u32);

async fn run(url: &str, model: &str) -> Vec<Sample> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, out) = (url.to_owned(), out.clone());
            let body =
                format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while start.elapsed() < RUN {
                    let t = Instant::now();
                    let r = client
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth("sk-bench-failover")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the gateway answers");
                    let attempts = r
                        .headers()
                        .get("x-sluice-attempts")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(0);
                    let ok = r.status() == 200;
                    let _ = r.bytes().await;
                    out.lock().unwrap().push((ok, t.elapsed(), attempts));
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("a client ran");
    }
    Arc::try_unwrap(out)
        .expect("clients done")
        .into_inner()
        .unwrap()
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let cfg = sluice::config::load_str(YAML, std::path::Path::new("failover.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = sluice::server::Server::bind(&cfg, None).await.unwrap();
    let url = format!("http://{}", server.public_addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let mut steady_p99 = 0.0;
    for model in ["steady", "flaky", "flaky-unbudgeted"] {
        let samples = run(&url, model).await;
        let n = samples.len();
        let ok = samples.iter().filter(|s| s.0).count();
        let calls: u64 = samples.iter().map(|s| u64::from(s.2)).sum();
        let mut lat: Vec<Duration> = samples.iter().map(|s| s.1).collect();
        lat.sort_unstable();
        let p99 = p(&lat, 0.99);
        if model == "steady" {
            steady_p99 = p99;
        }
        println!(
            "{model:>17}: {n} requests, {:.2} % succeeded, p50 {:.1} ms, p99 {p99:.1} ms (added {:+.1} ms), {:.2} upstream calls a request",
            100.0 * ok as f64 / n.max(1) as f64,
            p(&lat, 0.5),
            p99 - steady_p99,
            calls as f64 / n.max(1) as f64,
        );
    }
    let _ = tx.send(());
}
