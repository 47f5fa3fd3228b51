//! `GET /admin/status`, `GET /admin/prices` and `POST /admin/reload` (role
//! admin). A reload through the API is recorded in the audit log when a
//! store exists.

use std::sync::atomic::Ordering;

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiResult;
use super::rbac::{self, Action, Resource};

/// The gateway's version, config version, last reload and health.
#[utoipa::path(get, path = "/admin/status", tag = "system",
    responses((status = 200, description = "Status", body = Object)))]
pub async fn status(c: Caller) -> ApiResult<Json<serde_json::Value>> {
    rbac::require(&c.actor, Resource::System, Action::Read)?;
    let app = &c.app;
    let snap = app.snapshot.load();
    let last = app
        .last_reload
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config_version": snap.version,
        "config_path": app.config_path.as_ref().map(|p| p.display().to_string()),
        "last_reload": last,
        "uptime_seconds": app.started_at.elapsed().as_secs(),
        "draining": app.draining.load(Ordering::Relaxed),
        "models": snap.model_names.iter().map(|m| &**m).collect::<Vec<_>>(),
        "store": app.store.as_ref().map(|s| serde_json::json!({
            "backend": format!("{:?}", s.backend()).to_lowercase(),
            "ok": app.store_ok.load(Ordering::Relaxed),
            "revision": app.directory.load().revision,
            "keys": app.directory.load().keys.len(),
        })),
        "shared_state": app.redis.as_ref().map(|_| serde_json::json!({
            "ok": app.redis_ok.load(Ordering::Relaxed),
        })),
        "deployments": deployments(app, &snap),
    })))
}

/// Each deployment of the config with its live state: breaker phase,
/// requests in flight, peak-EWMA latency (`least_latency` models).
fn deployments(
    app: &crate::state::AppState,
    snap: &crate::snapshot::Snapshot,
) -> Vec<serde_json::Value> {
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    for name in &snap.model_names {
        let model = &snap.models[name];
        for d in &model.deployments {
            let live = d.live(&app.dispatcher.upstreams);
            let latency = live.latency.micros();
            out.push(json!({
                "model": &*model.name,
                "provider": &*d.provider.name,
                "deployment": d.target.model,
                "breaker": model.breaker.map_or("disabled", |_| live.breaker.phase(now).as_str()),
                "in_flight": live.in_flight(),
                "latency_ms": (latency > 0.0).then_some(latency / 1000.0),
            }));
        }
    }
    out
}

/// The effective price of every deployment and where it comes from:
/// `config` (the deployment's or its model's `price`), `builtin` (the
/// built-in table's entry, named) or nothing (`price: null`: not charged).
#[utoipa::path(get, path = "/admin/prices", tag = "system",
    responses((status = 200, description = "Effective prices per model and deployment (USD per million tokens)", body = Object)))]
pub async fn prices(c: Caller) -> ApiResult<Json<serde_json::Value>> {
    use crate::snapshot::PriceSource;
    rbac::require(&c.actor, Resource::System, Action::Read)?;
    let snap = c.app.snapshot.load();
    let mut out = Vec::new();
    for name in &snap.model_names {
        let model = &snap.models[name];
        for d in &model.deployments {
            let (source, level, builtin) = match d.price_source {
                PriceSource::Deployment => (Some("config"), Some("deployment"), None),
                PriceSource::Model => (Some("config"), Some("model"), None),
                PriceSource::Builtin(key) => (Some("builtin"), None, crate::pricing::lookup(key)),
                PriceSource::Unpriced => (None, None, None),
            };
            out.push(json!({
                "model": &*model.name,
                "provider": &*d.provider.name,
                "deployment": d.target.model,
                "price": d.price,
                "source": source,
                "level": level,
                "builtin": builtin.map(|b| json!({
                    "model": b.key,
                    "provider": b.provider,
                    "as_of": b.as_of,
                })),
            }));
        }
    }
    Ok(Json(
        json!({ "unit": "USD per million tokens", "deployments": out }),
    ))
}

/// Re-reads and applies the config file (422 with the reason when invalid).
#[utoipa::path(post, path = "/admin/reload", tag = "system",
    responses((status = 200, description = "Reloaded", body = Object),
              (status = 422, description = "The config is invalid; the old one stays", body = Object)))]
pub async fn reload(c: Caller) -> ApiResult<Response> {
    rbac::require(&c.actor, Resource::System, Action::Update)?;
    let result = crate::reload::reload(&c.app, "admin_api");
    let (status, body) = match &result {
        Ok(v) => (StatusCode::OK, json!({"ok": true, "config_version": v})),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "error": e}),
        ),
    };
    if let Some(store) = &c.app.store {
        let recorded = store
            .record_audit(
                &c.actor,
                "config.reload",
                "config",
                "config",
                Some(body.clone()),
            )
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "admin API: could not record the reload in the audit log");
        }
    }
    Ok((status, Json(body)).into_response())
}
