//! The access log and per-request metrics, written once per request at
//! completion (`RequestCtx`'s drop). The log line goes to a non-blocking
//! writer; it never carries a secret (keys appear by name only).

use sluice_types::TokenUsage;

use crate::pipeline::RequestCtx;
use crate::telemetry::metrics::{Label, Metrics, ModelLabels, RequestLabels, TokenLabels};

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=498 => "4xx",
        499 => "499",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Records the finished request: metrics always, the log line when enabled.
pub fn complete(ctx: &RequestCtx, usage: TokenUsage) {
    let total = ctx.started.elapsed();
    let m = &ctx.app.metrics;
    let model = Label(ctx.attempts.model.clone().unwrap_or_else(|| "none".into()));
    let provider = Label(
        ctx.attempts
            .provider
            .clone()
            .unwrap_or_else(|| "none".into()),
    );
    m.requests
        .get_or_create(&RequestLabels {
            endpoint: ctx.endpoint,
            model: model.clone(),
            provider: provider.clone(),
            status: status_class(ctx.status),
            code: ctx.error.unwrap_or("ok"),
        })
        .inc();
    let ml = ModelLabels {
        model: model.clone(),
        provider,
    };
    Metrics::observe(&m.duration, &ml, total);
    if ctx.attempts.count > 0 {
        Metrics::observe(&m.upstream, &ml, ctx.attempts.upstream);
        if let Some(started) = ctx.answer_started {
            Metrics::observe(
                &m.overhead,
                &ml,
                started.saturating_sub(ctx.attempts.upstream),
            );
        }
        let failed = ctx.attempts.failures.len() as u64;
        if failed > 0 {
            m.attempts_failed.get_or_create(&ml).inc_by(failed);
        }
    }
    if let Some(t) = ctx.ttft {
        Metrics::observe(&m.ttft, &ml, t);
    }
    if usage.input > 0 {
        m.tokens
            .get_or_create(&TokenLabels {
                model: model.clone(),
                direction: "input",
            })
            .inc_by(usage.input);
    }
    if usage.output > 0 {
        m.tokens
            .get_or_create(&TokenLabels {
                model,
                direction: "output",
            })
            .inc_by(usage.output);
    }
    if !ctx.snap.access_log {
        return;
    }
    tracing::info!(
        target: "sluice::access",
        request_id = %ctx.id,
        endpoint = ctx.endpoint,
        format = ctx.format.as_str(),
        key = ctx.key.as_ref().map(|k| &*k.name),
        tenant = ctx.key.as_ref().and_then(|k| k.tenant.as_deref()),
        model_requested = ctx.requested_model.as_deref(),
        model = ctx.attempts.model.as_deref(),
        provider = ctx.attempts.provider.as_deref(),
        stream = ctx.stream,
        status = ctx.status,
        error = ctx.error,
        attempts = ctx.attempts.count,
        latency_ms = total.as_secs_f64() * 1000.0,
        upstream_ms = ctx.attempts.upstream.as_secs_f64() * 1000.0,
        ttft_ms = ctx.ttft.map(|t| t.as_secs_f64() * 1000.0),
        tokens_in = usage.input,
        tokens_out = usage.output,
        usage_estimated = !ctx.usage_reported && usage.total() > 0,
        "request"
    );
}
