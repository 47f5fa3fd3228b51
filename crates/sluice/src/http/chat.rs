//! `POST /v1/chat/completions` (OpenAI format in and out) and the shared chat
//! flow used by `/v1/messages` too: guards, dispatch under the deadline.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use sluice_types::{ApiFormat, ChatRequest};

use sluice_providers::openai::{Flavor, OpenAiAdapter};
use sluice_providers::Adapter;

use crate::cache::replay;
use crate::dispatch::{ChatAnswer, FullBody};
use crate::error::{ErrorKind, GatewayError};
use crate::http::peer::Peer;
use crate::http::{json, sse};
use crate::pipeline::RequestCtx;
use crate::state::App;

pub async fn handle(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut ctx = RequestCtx::start(&app, &headers, peer, ApiFormat::OpenAi, "chat");
    let req = match parse(&mut ctx, &headers, body).await {
        Ok(r) => r,
        Err(e) => return ctx.fail(e),
    };
    let include_usage = req.include_usage();
    match run(&mut ctx, req, true).await {
        Err(e) => ctx.fail(e),
        Ok(ChatAnswer::Stream(s)) => sse::openai(ctx, s, include_usage),
        Ok(ChatAnswer::Cached(entry)) if ctx.stream => {
            sse::openai(ctx, replay::stream(&entry, false), include_usage)
        }
        Ok(ChatAnswer::Cached(entry)) => {
            ctx.trace_finish(&entry.response);
            match (&entry.raw, serde_json::to_vec(&entry.response)) {
                (Some(raw), _) => json_response(ctx, raw.clone(), headers),
                (None, Ok(v)) => json_response(ctx, v.into(), headers),
                (None, Err(e)) => ctx.fail(GatewayError::new(ErrorKind::Internal, e.to_string())),
            }
        }
        Ok(ChatAnswer::Full { body, usage }) => {
            ctx.usage = usage;
            ctx.usage_reported = usage.total() > 0;
            let bytes = match body {
                FullBody::Raw(b) => {
                    if let Some(t) = ctx.attempts.trace.as_mut() {
                        t.finished_raw(&b);
                    }
                    if ctx.cache_wants() {
                        // Relayed verbatim; parsed only to be kept.
                        if let Ok(r) = OpenAiAdapter::new(Flavor::OpenAi).chat_response(&b) {
                            ctx.cache_keep(r, Some(b.clone()));
                        }
                    }
                    b
                }
                FullBody::Parsed(r) => match serde_json::to_vec(&r) {
                    Ok(v) => {
                        ctx.trace_finish(&r);
                        ctx.cache_keep(*r, None);
                        v.into()
                    }
                    Err(e) => {
                        return ctx.fail(GatewayError::new(ErrorKind::Internal, e.to_string()))
                    }
                },
            };
            json_response(ctx, bytes, headers)
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
    let req: ChatRequest = json::parse(&bytes)?;
    if req.messages.is_empty() {
        return Err(
            GatewayError::invalid("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    Ok(req)
}

/// Stages 4–6 for any inbound format: model, guards, budgets (which may
/// move the request to a cheaper model), rate limits, the response cache
/// (a hit answers here, without a slot), concurrency slots, dispatch
/// under the deadline.
pub async fn run(
    ctx: &mut RequestCtx,
    mut req: ChatRequest,
    want_raw: bool,
) -> Result<ChatAnswer, GatewayError> {
    let model = ctx.resolve_model(&req.model)?;
    let mut model = ctx.route_chat(model, &req);
    ctx.apply_guards(&model, &mut req)?;
    let mut cached = ctx.cache_lookup(&model, &mut req);
    let user = req.user.as_deref();
    if let Some(to) = ctx.admit(&model, false, user, cached.is_none()).await? {
        model = ctx.downgrade(&model, &to)?;
        ctx.apply_guards(&model, &mut req)?;
        cached = ctx.cache_lookup(&model, &mut req);
        let user = req.user.as_deref();
        ctx.admit(&model, true, user, cached.is_none()).await?;
    }
    if let Some(entry) = ctx.cache_decide(&model, cached) {
        return Ok(ChatAnswer::Cached(entry));
    }
    let app = ctx.app.clone();
    let snap = ctx.snap.clone();
    let deadline = ctx.deadline();
    let fut = app
        .dispatcher
        .chat(&snap, &model, &req, want_raw, &mut ctx.attempts);
    match deadline {
        None => fut.await,
        Some(at) => match tokio::time::timeout_at(at.into(), fut).await {
            Ok(r) => r,
            Err(_) => Err(GatewayError::new(
                ErrorKind::Timeout,
                "the request exceeded its policy timeout",
            )),
        },
    }
}

/// A complete JSON answer with sluice's headers. `reuse` is the request's
/// header map, emptied and reused for the answer's headers: hyper keeps an
/// answer's map to parse the connection's next request into, so the map
/// stays sized for both and no request allocates or regrows one (measured:
/// ~1.2k instructions per request either way).
pub fn json_response(mut ctx: RequestCtx, bytes: bytes::Bytes, reuse: HeaderMap) -> Response {
    if let Some(kept) = ctx.body_spec().map(|s| s.keep(&bytes)) {
        if let Some(b) = &mut ctx.bodies {
            b.response = Some(kept);
        }
    }
    ctx.answer_starts(200);
    ctx.finished = true;
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::OK;
    // Room for every header at once: a map that regrows costs ~3k
    // instructions (measured).
    let mut headers = reuse;
    headers.clear();
    headers.reserve(1 + ctx.header_room());
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ctx.decorate(&mut headers);
    *resp.headers_mut() = headers;
    resp
}
