//! The admin listener: `GET /admin/status`, `POST /admin/reload`, and
//! `GET /metrics`. Admin routes need the `admin_key`; `/metrics` is open on
//! this listener (keep the admin listener private).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use sluice_types::ApiFormat;
use subtle::ConstantTimeEq;

use crate::error::{ErrorKind, GatewayError};
use crate::snapshot::hash_secret;
use crate::state::App;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/reload", post(reload))
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::http::health::healthz))
        .with_state(app)
}

fn check_admin(app: &App, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let deny = |m: &str| {
        Box::new(GatewayError::new(ErrorKind::Unauthorized, m).into_response(ApiFormat::OpenAi))
    };
    let Some(expected) = app.snapshot.load().admin_key_hash else {
        return Err(deny(
            "the admin API is disabled: set `admin_key` in the config",
        ));
    };
    let presented =
        crate::http::auth::presented_key(headers).ok_or_else(|| deny("missing admin key"))?;
    if bool::from(hash_secret(presented).ct_eq(&expected)) {
        Ok(())
    } else {
        Err(deny("invalid admin key"))
    }
}

/// `/metrics` alone, served on the public listener when there is no admin listener.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn status(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(r) = check_admin(&app, &headers) {
        return *r;
    }
    let snap = app.snapshot.load();
    let last = app
        .last_reload
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    Json(serde_json::json!({
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
    }))
    .into_response()
}

async fn reload(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(r) = check_admin(&app, &headers) {
        return *r;
    }
    match crate::reload::reload(&app, "admin_api") {
        Ok(v) => Json(serde_json::json!({"ok": true, "config_version": v})).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"ok": false, "error": e})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let mut resp = app.metrics.render().into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
