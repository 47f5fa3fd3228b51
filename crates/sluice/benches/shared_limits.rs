//! A limit held by several instances together, at load: three gateways in
//! this process share one Redis (`shared_state`, default
//! `redis://127.0.0.1:6379`, or `SLUICE_TEST_REDIS_URL`); 200 concurrent
//! clients spread over them call one key limited to 50 requests a second
//! for 10 s. GCRA bounds what may pass at `burst + rate·t` = 50 + 50·10 =
//! 550; the report gives what passed, the difference, and the instances'
//! request rate.
//!
//! Run: `cargo bench -p sluice --bench shared_limits`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

#[tokio::main]
async fn main() {
    let redis =
        std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let name = format!("bench-{:08x}", fastrand::u32(..));
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{ workers: 1 }}\nshared_state: {redis}\nproviders: {{ mock: {{ kind: mock, mock: {{ reply: ok }} }} }}\nmodels: {{ m: {{ deployments: [ {{ provider: mock, model: m }} ] }} }}\nkeys:\n  - {{ name: {name}, key: sk-{name}-secret, policy: {{ rate_limit: {{ requests_per_second: 50 }} }} }}\n"
    );
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(gateway(&yaml).await);
    }
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let run = Duration::from_secs(10);
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..200 {
        let url = gws[c % 3].0.clone();
        let (ok, refused, key) = (ok.clone(), refused.clone(), format!("sk-{name}-secret"));
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while start.elapsed() < run {
                let r = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected answer {other:?}"),
                };
            }
        }));
    }
    for c in clients {
        let _ = c.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, refused) = (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    let bound = 50.0 + 50.0 * run.as_secs_f64();
    println!(
        "3 instances, 200 clients, {elapsed:.2} s, limit 50/s: {ok} admitted (bound {bound:.0}: {:+.2} %), {refused} refused, {:.0} req/s answered",
        100.0 * (ok as f64 - bound) / bound,
        (ok + refused) as f64 / elapsed
    );
    for (_, tx) in gws {
        let _ = tx.send(());
    }
}
