//! The HTTP edge: the public router (OpenAI- and Anthropic-compatible
//! endpoints, health), the public listener's server (`serve`, which sends
//! the LLM endpoints straight to their handlers) and the admin listener's
//! router (the admin API, metrics).

pub mod admin;
pub mod auth;
pub mod chat;
pub mod embeddings;
pub mod health;
pub mod json;
pub mod messages;
pub mod models;
pub mod peer;
pub mod request_id;
pub mod serve;
pub mod sse;

use axum::routing::{get, post};
use axum::Router;
use sluice_types::ApiFormat;

use crate::error::{ErrorKind, GatewayError};
use crate::state::App;

/// The public API (the `listen` address).
pub fn public_router(app: App) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/chat/completions", post(chat::handle))
        .route("/v1/embeddings", post(embeddings::handle))
        .route("/embeddings", post(embeddings::handle))
        .route("/v1/models", get(models::handle))
        .route("/models", get(models::handle))
        .route("/v1/messages", post(messages::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found(uri: http::Uri) -> axum::response::Response {
    let format = if uri.path().starts_with("/v1/messages") {
        ApiFormat::Anthropic
    } else {
        ApiFormat::OpenAi
    };
    GatewayError::new(ErrorKind::NotFound, format!("no endpoint at `{}`; see /v1/chat/completions, /v1/messages, /v1/embeddings, /v1/models", uri.path())).into_response(format)
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> axum::response::Response {
    let mut e = GatewayError::new(
        ErrorKind::NotFound,
        format!("method {method} is not allowed on `{}`", uri.path()),
    );
    e.kind = ErrorKind::InvalidRequest;
    let mut resp = e.into_response(ApiFormat::OpenAi);
    *resp.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}
