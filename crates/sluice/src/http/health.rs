//! `GET /healthz` (the process is alive) and `GET /readyz` (config loaded,
//! not draining, and the store reachable when one is configured). An
//! unreachable `shared_state` does not make an instance unready: revisions
//! are then polled from the store.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use http::StatusCode;

use crate::state::App;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(app): State<App>) -> (StatusCode, Json<serde_json::Value>) {
    if app.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "draining"})),
        );
    }
    if app.store.is_some() && !app.store_ok.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "store_unreachable"})),
        );
    }
    let v = app.snapshot.load().version;
    (
        StatusCode::OK,
        Json(serde_json::json!({"status": "ready", "config_version": v})),
    )
}
