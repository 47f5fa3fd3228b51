//! Limits held by several instances together, at load: three gateways in
//! this process share one Redis (`shared_state`, default
//! `redis://127.0.0.1:6379`, or `SLUICE_TEST_REDIS_URL`), and 200
//! concurrent clients spread over them call one key for 10 s.
//!
//! 1. **requests**: the key is limited to 50 requests a second. GCRA bounds
//!    what may pass at `burst + rate·t` = 50 + 50·10 = 550.
//! 2. **tokens**: the key is limited to 6,000 tokens a minute; clients
//!    stream answers of 50 tokens. What the streams really used (their usage
//!    chunks) is bounded by `burst + rate·t` tokens, plus at most one
//!    request's reservation.
//! 3. **budget**: the key has $0.02 a day at $10 per million tokens;
//!    clients stream until refused (402). What the streams really cost may
//!    not exceed the budget by more than the reservations in flight.
//!
//! The report gives, for each, what passed against its bound.
//!
//! Run: `cargo bench -p sluice --bench shared_limits`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const RUN: Duration = Duration::from_secs(10);

async fn gateway(yaml: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let cfg = sluice::config::load_str(yaml, std::path::Path::new("shared.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = sluice::server::Server::bind(&cfg, None).await.unwrap();
    let url = format!("http://{}", server.public_addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    (url, tx)
}

/// Three instances of one config whose key (`sk-<name>-secret`) has
/// `policy`; the mock answers with a long reply, cut at `max_tokens`.
async fn instances(
    redis: &str,
    name: &str,
    policy: &str,
) -> Vec<(String, tokio::sync::oneshot::Sender<()>)> {
    let words = "word ".repeat(400);
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{ workers: 1 }}\nshared_state: {redis}\nshared_state_timeout: 1s\nproviders: {{ mock: {{ kind: mock, mock: {{ reply: \"{words}\" }} }} }}\nmodels: {{ m: {{ price: {{ input: 10, output: 10 }}, deployments: [ {{ provider: mock, model: m }} ] }} }}\nkeys:\n  - {{ name: {name}, key: sk-{name}-secret, policy: {policy} }}\n"
    );
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(gateway(&yaml).await);
    }
    gws
}

/// What the clients saw: answers by status, and the tokens the streamed
/// answers reported using.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    refused: AtomicU64,
    tokens: AtomicU64,
}

/// 200 clients over the instances for [`RUN`]; `body` is the request.
/// Refusals (`refusal`) are counted; a client stops early after `stop_after`
/// refusals in a row (a spent budget does not come back in the run).
async fn load(
    urls: &[String],
    name: &str,
    body: &str,
    refusal: u16,
    stop_after: u32,
) -> (Arc<Seen>, f64) {
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let url = urls[c % urls.len()].clone();
        let (seen, key, body) = (seen.clone(), format!("sk-{name}-secret"), body.to_owned());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut refused_in_a_row = 0;
            while start.elapsed() < RUN && refused_in_a_row < stop_after {
                let r = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the gateway answers");
                let status = r.status().as_u16();
                let text = r.text().await.expect("a whole answer");
                if status == 200 {
                    refused_in_a_row = 0;
                    seen.ok.fetch_add(1, Ordering::Relaxed);
                    seen.tokens.fetch_add(used_tokens(&text), Ordering::Relaxed);
                } else if status == refusal {
                    refused_in_a_row += 1;
                    seen.refused.fetch_add(1, Ordering::Relaxed);
                } else {
                    panic!("unexpected answer {status}: {text}");
                }
            }
        }));
    }
    for c in clients {
        c.await.expect("a client ran");
    }
    (seen, start.elapsed().as_secs_f64())
}

/// The total tokens of a streamed answer's usage chunk (0 for a plain one).
fn used_tokens(sse: &str) -> u64 {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["usage"]["total_tokens"].as_u64())
        .sum()
}

fn stop(gws: Vec<(String, tokio::sync::oneshot::Sender<()>)>) {
    for (_, tx) in gws {
        let _ = tx.send(());
    }
}

async fn requests(redis: &str) {
    let name = format!("bench-rps-{:08x}", fastrand::u32(..));
    let gws = instances(redis, &name, "{ rate_limit: { requests_per_second: 50 } }").await;
    let urls: Vec<String> = gws.iter().map(|g| g.0.clone()).collect();
    let body = r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}"#;
    let (seen, elapsed) = load(&urls, &name, body, 429, u32::MAX).await;
    let (ok, refused) = (
        seen.ok.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
    );
    let bound = 50.0 + 50.0 * RUN.as_secs_f64();
    println!(
        "requests: 3 instances, {CLIENTS} clients, {elapsed:.2} s, limit 50/s: {ok} admitted (bound {bound:.0}: {:+.2} %), {refused} refused, {:.0} req/s answered",
        100.0 * (ok as f64 - bound) / bound,
        (ok + refused) as f64 / elapsed
    );
    stop(gws);
}

/// A streamed request of "hi" for 50 output tokens, with its usage chunk.
const STREAM: &str = r#"{"model":"m","max_tokens":50,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

async fn tokens(redis: &str) {
    let name = format!("bench-tpm-{:08x}", fastrand::u32(..));
    let per_minute = 6_000.0;
    let policy = "{ rate_limit: { tokens_per_minute: 6000 } }";
    let gws = instances(redis, &name, policy).await;
    let urls: Vec<String> = gws.iter().map(|g| g.0.clone()).collect();
    let (seen, elapsed) = load(&urls, &name, STREAM, 429, u32::MAX).await;
    let (ok, refused, used) = (
        seen.ok.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
        seen.tokens.load(Ordering::Relaxed),
    );
    // The whole minute's quota at once, then the rate, over the run.
    let bound = per_minute + per_minute / 60.0 * elapsed;
    let per_request = if ok > 0 { used as f64 / ok as f64 } else { 0.0 };
    println!(
        "tokens: 3 instances, {CLIENTS} clients, {elapsed:.2} s, limit 6,000 tokens/min, streamed: {ok} admitted using {used} tokens (bound {bound:.0}: {:+.2} %, one request ≈ {per_request:.0} tokens), {refused} refused",
        100.0 * (used as f64 - bound) / bound
    );
    stop(gws);
}

async fn budget(redis: &str) {
    let name = format!("bench-usd-{:08x}", fastrand::u32(..));
    let usd = 0.02;
    let policy = "{ budget: { usd_per_day: 0.02 } }";
    let gws = instances(redis, &name, policy).await;
    let urls: Vec<String> = gws.iter().map(|g| g.0.clone()).collect();
    let (seen, elapsed) = load(&urls, &name, STREAM, 402, 3).await;
    let (ok, refused, used) = (
        seen.ok.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
        seen.tokens.load(Ordering::Relaxed),
    );
    // $10 per million tokens, input and output alike.
    let spent = used as f64 * 10.0 / 1e6;
    println!(
        "budget: 3 instances, {CLIENTS} clients, {elapsed:.2} s, ${usd} a day, streamed: {ok} answered costing ${spent:.6} ({:+.2} % of the budget; overspend allowed: the reservations in flight), {refused} refused with 402",
        100.0 * (spent - usd) / usd
    );
    stop(gws);
}

#[tokio::main]
async fn main() {
    let redis =
        std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    requests(&redis).await;
    tokens(&redis).await;
    budget(&redis).await;
}
