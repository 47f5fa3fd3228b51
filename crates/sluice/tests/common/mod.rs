//! `TestGateway`: a real sluice server on random local ports, built from a
//! YAML config string with the same code as `sluice serve`, plus helpers to
//! call it over real sockets.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice::server::Server;
use sluice::state::App;
use tokio::sync::oneshot;

pub mod db;
pub mod log;
pub mod redis_proxy;
pub mod tcp_cut;
pub mod webhook;

pub const KEY: &str = "sk-test-key-0001";
pub const ADMIN_KEY: &str = "sk-test-admin-0001";

pub struct TestGateway {
    pub url: String,
    pub admin_url: Option<String>,
    pub app: App,
    pub config_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _watcher: Option<sluice::config::WatcherHandle>,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);

/// A local port nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system temp dir for one test.
pub fn temp_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "sluice-test-{}-{n}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestGateway {
    /// Starts a gateway from `yaml` (its `listen` should be `127.0.0.1:0`).
    pub async fn start(yaml: &str) -> TestGateway {
        let dir = temp_dir();
        let path = dir.join("sluice.yaml");
        std::fs::write(&path, yaml).unwrap();
        let cfg = sluice::config::load_file(&path)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let server = Server::bind(&cfg, Some(path.clone())).await.unwrap();
        let url = format!("http://{}", server.public_addr);
        let admin_url = server.admin_addr.map(|a| format!("http://{a}"));
        let app = server.app.clone();
        let watcher = sluice::server::spawn_config_watcher(&app);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestGateway {
            url,
            admin_url,
            app,
            config_path: path,
            shutdown: Some(tx),
            _watcher: watcher,
            handle: Some(handle),
        }
    }

    /// Begins graceful shutdown; returns the server task to await.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().expect("shut down once")
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder().build().unwrap()
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        let admin = self
            .admin_url
            .as_ref()
            .expect("the test config has admin_listen");
        let r = Self::client()
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    /// POSTs JSON with the test key (Bearer).
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        Self::client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs JSON with the test key as `x-api-key` (Anthropic style).
    pub async fn post_anthropic(&self, body: serde_json::Value) -> reqwest::Response {
        Self::client()
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// A config with one provider `up` of `kind` at `base_url` and model `m`.
pub fn one_provider(kind: &str, base_url: &str, extra_provider: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
log: {{ access_log: true }}
providers:
  up:
    kind: {kind}
    base_url: {base_url}
    api_key: sk-upstream-secret
{extra_provider}
models:
  m:
    deployments:
      - {{ provider: up, model: upstream-model }}
keys:
  - {{ name: test, key: {KEY} }}
"#
    )
}

/// Parses an SSE body into (event name, data JSON or raw) pairs.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d);
            }
        }
        if !data.is_empty() {
            out.push((event, data.join("\n")));
        }
    }
    out
}
