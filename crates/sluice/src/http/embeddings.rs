//! `POST /v1/embeddings` (OpenAI format).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use sluice_types::{ApiFormat, EmbeddingsRequest};

use crate::error::GatewayError;
use crate::http::peer::Peer;
use crate::http::{chat, json};
use crate::pipeline::RequestCtx;
use crate::state::App;

pub async fn handle(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut ctx = RequestCtx::start(&app, &headers, peer, ApiFormat::OpenAi, "embeddings");
    match serve(&mut ctx, &headers, body).await {
        Ok(bytes) => chat::json_response(ctx, bytes, headers),
        Err(e) => ctx.fail(e),
    }
}

async fn serve(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, GatewayError> {
    ctx.authenticate(headers)?;
    let bytes = ctx.read_body(headers, body).await?;
    let req: EmbeddingsRequest = json::parse(&bytes)?;
    let model = ctx.resolve_model(&req.model)?;
    let model = ctx.route_embeddings(model, &req.input);
    ctx.count_embeddings(&model, &req.input);
    let user = req.extra.get("user").and_then(serde_json::Value::as_str);
    if let Some(to) = ctx.admit(&model, false, user, true).await? {
        // Embeddings are not moved to another model: over budget is over.
        return Err(crate::error::GatewayError::new(
            crate::error::ErrorKind::BudgetExceeded,
            format!("the budget for `{}` is exhausted (its downgrade to `{to}` applies to chat requests only)", model.name),
        ));
    }
    let app = ctx.app.clone();
    let snap = ctx.snap.clone();
    let (body, usage) = app
        .dispatcher
        .embeddings(&snap, &model, &req, &mut ctx.attempts)
        .await?;
    ctx.usage = usage;
    ctx.usage_reported = usage.total() > 0;
    Ok(body)
}
