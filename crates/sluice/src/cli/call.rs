//! Where the CLI's admin calls go: a running gateway's admin listener over
//! HTTP, or the admin router served in-process over the store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{Command, Request};
use crate::config::RawConfig;
use crate::state::App;

/// Which gateway or store the CLI acts on.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Admin API of a running gateway, e.g. http://127.0.0.1:4001.
    #[arg(long, env = "SLUICE_ADMIN_URL", global = true)]
    pub url: Option<String>,
    /// Admin credential for --url (the config's admin_key or a user's `sa-sluice-…`).
    #[arg(long, env = "SLUICE_ADMIN_KEY", global = true, hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Act on the store of this config file directly (no running gateway needed).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Act on this store directly: sqlite://file.db or postgres://….
    #[arg(long, global = true)]
    pub store: Option<String>,
}

/// Runs a command's calls, printing each answer's JSON; exit 1 on the first
/// failed call.
pub async fn run(cmd: &Command) -> ExitCode {
    let target = cmd.target();
    let calls = match cmd.requests() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let conn = match Conn::open(target).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut last_id: Option<String> = None;
    for mut call in calls {
        if let Some(id) = &last_id {
            call.path = call.path.replace("{id}", id);
        }
        match conn.send(&call).await {
            Ok((status, body)) if status < 300 => {
                last_id = body.get("id").and_then(|v| v.as_str()).map(str::to_owned);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            }
            Ok((status, body)) => {
                let msg = body["error"]["message"]
                    .as_str()
                    .map_or_else(|| body.to_string(), str::to_owned);
                return fail(&format!("{} {} → {status}: {msg}", call.method, call.path));
            }
            Err(e) => return fail(&e),
        }
    }
    conn.finish().await;
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("sluice: {msg}");
    ExitCode::FAILURE
}

enum Conn {
    Remote {
        url: String,
        key: String,
        client: reqwest::Client,
    },
    Local {
        app: App,
        key: String,
    },
}

impl Conn {
    async fn open(t: &Target) -> Result<Conn, String> {
        if let Some(url) = &t.url {
            let key = t
                .admin_key
                .clone()
                .ok_or("--url needs --admin-key (or SLUICE_ADMIN_KEY)")?;
            return Ok(Conn::Remote {
                url: url.trim_end_matches('/').to_owned(),
                key,
                client: reqwest::Client::new(),
            });
        }
        let (mut cfg, path) = match (&t.config, &t.store) {
            (Some(p), _) => (
                crate::config::load_file(p).map_err(|e| e.to_string())?,
                Some(p.clone()),
            ),
            (None, Some(url)) => {
                crate::config::validate::check_store_url(url)?;
                (
                    RawConfig {
                        store: Some(url.clone()),
                        ..RawConfig::default()
                    },
                    None,
                )
            }
            (None, None) => {
                return Err(
                    "say where to act: --url (a running gateway), --config FILE or --store URL"
                        .into(),
                )
            }
        };
        if cfg.store.is_none() {
            return Err("the config has no `store:`; store-managed entities need one".into());
        }
        // An ephemeral bootstrap credential for this process only.
        let key = sluice_store::ids::new_admin_secret();
        cfg.admin_key = Some(sluice_types::Secret::new(key.clone()));
        cfg.jwt = None;
        let app = crate::server::build_app(&cfg, path)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let _ = app.bootstrap_actor.set(format!("cli:{}", cli_user()));
        Ok(Conn::Local { app, key })
    }

    async fn send(&self, call: &Request) -> Result<(u16, serde_json::Value), String> {
        match self {
            Conn::Remote { url, key, client } => {
                let mut req = client
                    .request(call.method.clone(), format!("{url}{}", call.path))
                    .bearer_auth(key);
                if let Some(b) = &call.body {
                    req = req.json(b);
                }
                let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                Ok((status, parse(&text)))
            }
            Conn::Local { app, key } => {
                let body = call
                    .body
                    .as_ref()
                    .map_or_else(Vec::new, |b| b.to_string().into_bytes());
                let req = http::Request::builder()
                    .method(call.method.clone())
                    .uri(&call.path)
                    .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::from(body))
                    .map_err(|e| e.to_string())?;
                let resp = crate::http::admin::router(app.clone())
                    .oneshot(req)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok((status, parse(&String::from_utf8_lossy(&bytes))))
            }
        }
    }

    /// Tells running instances about the changes (with `shared_state`;
    /// without it they poll the store).
    async fn finish(self) {
        if let Conn::Local { app, .. } = self {
            crate::directory::publish_change(&app).await;
            if let Some(s) = &app.store {
                s.close().await;
            }
        }
    }
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// Who runs the CLI, for the audit log.
fn cli_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
