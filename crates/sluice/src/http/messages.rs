//! `POST /v1/messages`: the Anthropic Messages API inbound. The request is
//! translated to the canonical form, served by any provider through the same
//! pipeline, and the answer translated back (streams as Anthropic's events).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use sluice_providers::anthropic::inbound;
use sluice_providers::openai::{Flavor, OpenAiAdapter};
use sluice_providers::Adapter;
use sluice_types::anthropic::MessagesRequest;
use sluice_types::{ApiFormat, ChatRequest};

use crate::cache::replay;
use crate::dispatch::{ChatAnswer, FullBody};
use crate::error::{ErrorKind, GatewayError};
use crate::http::peer::Peer;
use crate::http::{chat, json, sse};
use crate::pipeline::RequestCtx;
use crate::state::App;

pub async fn handle(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut ctx = RequestCtx::start(&app, &headers, peer, ApiFormat::Anthropic, "messages");
    let req = match parse(&mut ctx, &headers, body).await {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    let model = req.model.clone();
    match chat::run(&mut ctx, req, false).await {
        Err(e) => ctx.fail(e),
        Ok(ChatAnswer::Stream(s)) => sse::anthropic(ctx, s, &model),
        Ok(ChatAnswer::Cached(entry)) if ctx.stream => {
            sse::anthropic(ctx, replay::stream(&entry, true), &model)
        }
        Ok(ChatAnswer::Cached(entry)) => {
            ctx.trace_finish(&entry.response);
            let out = inbound::from_chat_response(&entry.response, &model);
            match serde_json::to_vec(&out) {
                Ok(v) => chat::json_response(ctx, v.into(), headers),
                Err(e) => ctx.fail(GatewayError::new(ErrorKind::Internal, e.to_string())),
            }
        }
        Ok(ChatAnswer::Full { body, usage }) => {
            ctx.usage = usage;
            ctx.usage_reported = usage.total() > 0;
            let parsed = match body {
                FullBody::Parsed(r) => r,
                FullBody::Raw(b) => match OpenAiAdapter::new(Flavor::OpenAi).chat_response(&b) {
                    Ok(r) => Box::new(r),
                    Err(e) => {
                        return ctx.fail(GatewayError::adapter(
                            ctx.attempts.provider.as_deref().unwrap_or("upstream"),
                            e,
                        ))
                    }
                },
            };
            let out = inbound::from_chat_response(&parsed, &model);
            ctx.trace_finish(&parsed);
            ctx.cache_keep(*parsed, None);
            match serde_json::to_vec(&out) {
                Ok(v) => chat::json_response(ctx, v.into(), headers),
                Err(e) => ctx.fail(GatewayError::new(ErrorKind::Internal, e.to_string())),
            }
        }
    }
}

async fn parse(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    body: Body,
) -> Result<ChatRequest, GatewayError> {
    ctx.authenticate(headers)?;
    let bytes = ctx.read_body(headers, body).await?;
    let req: MessagesRequest = json::parse(&bytes)?;
    if req.messages.is_empty() {
        return Err(
            GatewayError::invalid("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    inbound::to_chat_request(req).map_err(|e| GatewayError::adapter("sluice", e))
}
