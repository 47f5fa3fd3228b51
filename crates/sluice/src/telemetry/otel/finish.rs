//! The spans of a completed request, with their attributes: the OTel
//! GenAI semantic conventions (`gen_ai.*`), `server.address`,
//! `http.response.status_code`, `error.type`, and sluice's own
//! (`sluice.*`). Never the client's key or a provider credential: keys
//! appear by name only.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sluice_types::TokenUsage;

use super::context::SpanId;
use super::request::{unix_ns, RequestTrace};
use super::span::{Kind, Span, Value};
use crate::config::raw::ProviderKind;
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::snapshot::{Deployment, Model};

/// Exports the spans of a completed request (nothing when it is not
/// recorded): its attempts' and its own. Called once, from completion.
pub fn finish(ctx: &RequestCtx, trace: RequestTrace, usage: TokenUsage) {
    if !trace.sampled {
        return;
    }
    let end_ns = unix_ns(SystemTime::now());
    let mut spans = Vec::with_capacity(trace.attempts.len() + 1);
    spans.push(server_span(ctx, &trace, usage, end_ns));
    let reasons = finish_reasons(&trace);
    for a in trace.attempts {
        let mut span = a.span;
        if !a.ended {
            span.end_ns = end_ns;
            span.error = Some(ctx.error.unwrap_or("cancelled").to_owned());
            span.set("error.type", ctx.error.unwrap_or("cancelled"));
        } else if a.answered {
            answered(ctx, &mut span, usage, end_ns);
            if let Some(r) = &reasons {
                span.set("gen_ai.response.finish_reasons", r.clone());
            }
        }
        spans.push(span);
    }
    ctx.app.tracer.export(spans);
}

/// `gen_ai.response.finish_reasons`, when the answer gave any.
fn finish_reasons(t: &RequestTrace) -> Option<Value> {
    (!t.finish_reasons.is_empty())
        .then(|| Value::StrArray(t.finish_reasons.iter().map(|r| Arc::from(*r)).collect()))
}

/// The attempt that answered: its usage; a stream ends (and may break)
/// with the request.
fn answered(ctx: &RequestCtx, span: &mut Span, usage: TokenUsage, end_ns: u64) {
    if ctx.stream {
        span.end_ns = end_ns;
        if ctx.error_source == Some("upstream") {
            let code = ctx.error.unwrap_or("upstream_error");
            span.error = Some(code.to_owned());
            span.set("error.type", code);
        }
    }
    if let Some(Value::Str(m)) = span.get("gen_ai.request.model").cloned() {
        span.set("gen_ai.response.model", m);
    }
    span.set("gen_ai.usage.input_tokens", usage.input);
    span.set("gen_ai.usage.output_tokens", usage.output);
    if !ctx.stream {
        span.set("http.response.status_code", 200i64);
    }
}

/// The request's SERVER span, `{operation} {model asked for}`.
fn server_span(ctx: &RequestCtx, t: &RequestTrace, usage: TokenUsage, end_ns: u64) -> Span {
    let name = match &ctx.requested_model {
        Some(m) => format!("{} {m}", t.operation),
        None => t.operation.to_owned(),
    };
    let mut s = t.span(t.span_id, Kind::Server, name, t.start_ns());
    s.end_ns = end_ns;
    s.set("gen_ai.operation.name", t.operation);
    s.set_opt("gen_ai.request.model", ctx.requested_model.as_deref());
    if let Some((m, i)) = &ctx.attempts.served {
        let d = &m.deployments[*i];
        provider(&mut s, d);
        if ctx.error.is_none() {
            s.set("gen_ai.response.model", d.target.model.as_str());
        }
    }
    s.set_opt("gen_ai.request.max_tokens", t.max_tokens.map(u64::from));
    if ctx.attempts.count > 0 {
        s.set("gen_ai.usage.input_tokens", usage.input);
        s.set("gen_ai.usage.output_tokens", usage.output);
    }
    if let Some(r) = finish_reasons(t) {
        s.set("gen_ai.response.finish_reasons", r);
    }
    s.set("http.response.status_code", i64::from(ctx.status));
    if let Some(code) = ctx.error {
        s.set("error.type", code);
        // A server span is an error when sluice or the upstream failed
        // (5xx); a refused or cancelled request is the client's doing.
        if ctx.status >= 500 {
            s.error = Some(code.to_owned());
        }
    }
    sluice_attrs(ctx, &mut s);
    s
}

/// `sluice.*`: who called, what served, what it cost.
fn sluice_attrs(ctx: &RequestCtx, s: &mut Span) {
    s.set("sluice.request_id", ctx.id.as_str());
    s.set("sluice.endpoint", ctx.endpoint);
    if let Some(k) = &ctx.key {
        s.set("sluice.key", &k.name);
        s.set_opt("sluice.tenant", k.tenant.as_ref());
    }
    s.set_opt("sluice.model", ctx.attempts.model.as_ref());
    s.set_opt("sluice.provider", ctx.attempts.provider.as_ref());
    s.set_opt("sluice.route", ctx.route.as_ref());
    s.set_opt("sluice.downgraded_from", ctx.downgraded_from.as_ref());
    s.set_opt(
        "sluice.cost_usd",
        ctx.cost_micro_usd.map(|c| c as f64 / 1e6),
    );
    s.set("sluice.attempts", u64::from(ctx.attempts.count));
    s.set("sluice.stream", ctx.stream);
}

/// The CLIENT span of attempt `n`, `{operation} {upstream model}`, opened.
pub(super) fn attempt_span(
    t: &RequestTrace,
    id: SpanId,
    model: &Model,
    dep: &Deployment,
    n: u32,
    at: Instant,
) -> Span {
    let name = format!("{} {}", t.operation, dep.target.model);
    let mut s = t.span(id, Kind::Client, name, t.ns(at));
    s.set("gen_ai.operation.name", t.operation);
    s.set("gen_ai.request.model", dep.target.model.as_str());
    provider(&mut s, dep);
    s.set_opt("gen_ai.request.max_tokens", t.max_tokens.map(u64::from));
    if let Some(u) = (dep.provider.kind != ProviderKind::Mock)
        .then(|| reqwest::Url::parse(&dep.target.base_url).ok())
        .flatten()
    {
        s.set_opt("server.address", u.host_str());
        s.set_opt("server.port", u.port_or_known_default().map(i64::from));
    }
    s.set("sluice.attempt", u64::from(n));
    s.set("sluice.model", &model.name);
    s.set("sluice.provider", &dep.provider.name);
    s.set("sluice.deployment", &dep.key);
    s
}

/// A failed attempt: status ERROR, `error.type`, the upstream's status.
pub(super) fn failed(s: &mut Span, e: &GatewayError) {
    s.set("error.type", e.code());
    if let Some(status) = e.upstream_status {
        s.set("http.response.status_code", i64::from(status));
    }
    s.error = Some(e.message.clone());
}

/// `gen_ai.provider.name` (and the older `gen_ai.system`) of a deployment.
fn provider(s: &mut Span, d: &Deployment) {
    let name: Arc<str> = Arc::from(match d.provider.kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Azure => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Mock => "sluice.mock",
    });
    s.set("gen_ai.provider.name", name.clone());
    s.set("gen_ai.system", name);
}
