//! `GET /v1/models`: the models this key may use, in OpenAI's list shape.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use sluice_types::ApiFormat;

use crate::http::peer::Peer;
use crate::pipeline::RequestCtx;
use crate::state::App;

pub async fn handle(State(app): State<App>, Peer(peer): Peer, headers: HeaderMap) -> Response {
    let mut ctx = RequestCtx::start(&app, &headers, peer, ApiFormat::OpenAi, "models");
    if let Err(e) = ctx.authenticate(&headers) {
        return ctx.fail(e);
    }
    let data: Vec<serde_json::Value> = ctx
        .usable_models()
        .into_iter()
        .map(
            |m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": "sluice"}),
        )
        .collect();
    ctx.answer_starts(200);
    ctx.finished = true;
    let mut resp = axum::Json(serde_json::json!({"object": "list", "data": data})).into_response();
    ctx.decorate(resp.headers_mut());
    resp
}
