//! Streams canonical chunks to the client as SSE in the client's format,
//! chunk by chunk with no buffering. Runs stage 7 (`on_chunk`) for each chunk
//! and owns the request context, so completion runs when the stream ends or
//! the client goes away. An upstream failure mid-stream becomes an error event,
//! never a clean finish.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::HeaderValue;
use sluice_providers::anthropic::inbound::StreamEncoder;
use sluice_providers::sse::write_data;

use crate::dispatch::ChunkStream;
use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::RequestCtx;

/// How chunks are written for one client format.
enum Encoder {
    OpenAi { include_usage: bool },
    Anthropic(Box<StreamEncoder>),
}

struct State {
    ctx: RequestCtx,
    upstream: ChunkStream,
    enc: Encoder,
    deadline: Option<Instant>,
    done: bool,
}

/// SSE answer in OpenAI's format; the usage chunk only if the client asked.
pub fn openai(ctx: RequestCtx, upstream: ChunkStream, include_usage: bool) -> Response {
    respond(ctx, upstream, Encoder::OpenAi { include_usage })
}

/// SSE answer in Anthropic's event sequence.
pub fn anthropic(ctx: RequestCtx, upstream: ChunkStream, model: &str) -> Response {
    let id = format!("msg_{}", ctx.id.trim_start_matches("req_"));
    respond(
        ctx,
        upstream,
        Encoder::Anthropic(Box::new(StreamEncoder::new(model, &id))),
    )
}

fn respond(mut ctx: RequestCtx, upstream: ChunkStream, enc: Encoder) -> Response {
    ctx.answer_starts(200);
    let deadline = ctx.deadline();
    let mut headers = http::HeaderMap::new();
    ctx.decorate(&mut headers);
    let state = State {
        ctx,
        upstream,
        enc,
        deadline,
        done: false,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            let mut out = Vec::with_capacity(256);
            let next = match s.deadline {
                None => s.upstream.next().await,
                Some(at) => tokio::time::timeout_at(at.into(), s.upstream.next())
                    .await
                    .unwrap_or_else(|_| {
                        Some(Err(GatewayError::new(
                            ErrorKind::Timeout,
                            "the request exceeded its policy timeout",
                        )))
                    }),
            };
            match next {
                Some(Ok(chunk)) => {
                    s.ctx.on_chunk(&chunk);
                    encode_chunk(&mut s.enc, &chunk, &mut out);
                }
                Some(Err(e)) => {
                    s.done = true;
                    s.ctx.record_error(&e);
                    s.ctx.finished = true;
                    encode_error(&mut s.enc, &e, &mut out);
                }
                None => {
                    s.done = true;
                    s.ctx.finished = true;
                    s.ctx.cache_stream_ended();
                    encode_end(&mut s.enc, &s.ctx, &mut out);
                }
            }
            if !out.is_empty() {
                return Some((Ok::<Bytes, Infallible>(Bytes::from(out)), s));
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.extend(headers);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn encode_chunk(enc: &mut Encoder, chunk: &sluice_types::ChatChunk, out: &mut Vec<u8>) {
    match enc {
        Encoder::OpenAi { include_usage } => {
            let usage_only = chunk.choices.is_empty() && chunk.usage.is_some();
            if usage_only && !*include_usage {
                return;
            }
            // Serialized straight into the frame: no per-chunk copy.
            let start = out.len();
            out.extend_from_slice(b"data: ");
            if serde_json::to_writer(&mut *out, chunk).is_ok() {
                out.extend_from_slice(b"\n\n");
            } else {
                out.truncate(start);
            }
        }
        Encoder::Anthropic(e) => e.encode(chunk, out),
    }
}

fn encode_error(enc: &mut Encoder, e: &GatewayError, out: &mut Vec<u8>) {
    match enc {
        Encoder::OpenAi { .. } => {
            let body = e.body(sluice_types::ApiFormat::OpenAi);
            write_data(out, &body);
        }
        Encoder::Anthropic(a) => a.error(e.anthropic_type(), &e.message, out),
    }
}

fn encode_end(enc: &mut Encoder, ctx: &RequestCtx, out: &mut Vec<u8>) {
    match enc {
        Encoder::OpenAi { .. } => out.extend_from_slice(b"data: [DONE]\n\n"),
        Encoder::Anthropic(a) => a.finish(ctx.usage_reported.then_some(ctx.usage), out),
    }
}
