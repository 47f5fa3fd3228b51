//! The access log and per-request metrics, written once per request at
//! completion (`RequestCtx`'s drop). The log line goes to a non-blocking
//! writer; it never carries a secret (keys appear by name only).

use sluice_types::TokenUsage;

use crate::config::raw::LogFormat;
use crate::pipeline::RequestCtx;
use crate::policy::rate::Hit;
use crate::telemetry::metrics::{
    ok_index, Label, Metrics, ModelLabels, QueueRefusalLabels, RateLabels, RequestLabels,
    SeriesHandles,
};
use crate::telemetry::sink::LogSink;

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
    let labels = || RequestLabels {
        endpoint: ctx.endpoint,
        model: model.clone(),
        provider: provider.clone(),
        status: status_class(ctx.status),
        code: ctx.error.unwrap_or("ok"),
    };
    let ml = ModelLabels {
        model: model.clone(),
        provider: provider.clone(),
    };
    let series = ctx.attempts.served.as_ref().map(|(served, i)| {
        served.deployments[*i]
            .series
            .get_or_init(|| SeriesHandles::new(m, &ml))
    });
    // The common answer (2xx, no error, a deployment served it) counts
    // through the deployment's cached handle; others look their labels up.
    let ok = (status_class(ctx.status) == "2xx" && ctx.error.is_none())
        .then(|| ok_index(ctx.endpoint))
        .flatten();
    match (series, ok) {
        (Some(s), Some(i)) => s
            .requests_ok
            .get(i, || m.requests.get_or_create(&labels()).clone())
            .inc(),
        _ => m.requests.get_or_create(&labels()).inc(),
    };
    let secs = |d: std::time::Duration| d.as_secs_f64();
    match series {
        Some(s) => s.duration.observe(secs(total)),
        None => Metrics::observe(&m.duration, &ml, total),
    }
    if let (true, Some(s)) = (ctx.attempts.count > 0, series) {
        s.upstream.observe(secs(ctx.attempts.upstream));
        if let Some(started) = ctx.answer_started {
            s.overhead
                .observe(secs(started.saturating_sub(ctx.attempts.upstream)));
        }
        let failed = ctx.attempts.failures.len() as u64;
        if failed > 0 {
            m.attempts_failed.get_or_create(&ml).inc_by(failed);
        }
        if let Some(t) = ctx.ttft {
            s.ttft.observe(secs(t));
        }
        if usage.input > 0 {
            s.tokens_in.inc_by(usage.input);
        }
        if usage.output > 0 {
            s.tokens_out.inc_by(usage.output);
        }
        let tenant = ctx.key.as_ref().and_then(|k| k.tenant.as_ref());
        m.usage.record(tenant, &model, &usage, ctx.cost_micro_usd);
    }
    rate_metrics(m, ctx);
    queue_metrics(m, ctx);
    crate::alerts::rules::observe(ctx, total);
    if let Some(log) = &ctx.app.request_log {
        log.record(ctx, usage, total);
    }
    if !ctx.snap.access_log {
        return;
    }
    if let Some(sink) = LogSink::global() {
        sink.write(&line(ctx, usage, total));
    }
}

/// Counts a rate-limit refusal (`enforce`) or a shadow rule's would-be one.
fn rate_metrics(m: &Metrics, ctx: &RequestCtx) {
    let count = |hit: &Option<Hit>, mode| {
        if let Some(h) = hit {
            m.rate_limited
                .get_or_create(&RateLabels {
                    scope: h.kind.as_str(),
                    per: h.per_label(),
                    limit: h.limit_label(),
                    mode,
                })
                .inc();
        }
    };
    count(&ctx.rate.limited, "enforce");
    count(&ctx.rate.would_block, "shadow");
}

/// The wait of a request admitted through concurrency limits, or its
/// refusal. The wait is labelled with the widest level it queued at.
fn queue_metrics(m: &Metrics, ctx: &RequestCtx) {
    let priority = ctx.key.as_ref().map_or("normal", |k| k.priority.as_str());
    if let Some((scope, reason)) = ctx.queue_refused {
        m.queue_refused
            .get_or_create(&QueueRefusalLabels {
                scope: scope.as_str(),
                priority,
                reason,
            })
            .inc();
    }
    if let Some(widest) = ctx.held.widest {
        let class = ctx.key.as_ref().map(|k| k.priority).unwrap_or_default();
        m.queue_wait_of(widest, class)
            .observe(ctx.held.waited.as_secs_f64());
    }
}

/// One access-log line, JSON or text per `log.format`, ending in `\n`.
fn line(ctx: &RequestCtx, usage: TokenUsage, total: std::time::Duration) -> Vec<u8> {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let rec = Record {
        timestamp: super::rfc3339(std::time::SystemTime::now()),
        level: "INFO",
        message: "request",
        request_id: &ctx.id,
        endpoint: ctx.endpoint,
        format: ctx.format.as_str(),
        key: ctx.key.as_ref().map(|k| &*k.name),
        tenant: ctx.key.as_ref().and_then(|k| k.tenant.as_deref()),
        model_requested: ctx.requested_model.as_deref(),
        model: ctx.attempts.model.as_deref(),
        provider: ctx.attempts.provider.as_deref(),
        stream: ctx.stream,
        status: ctx.status,
        error: ctx.error,
        error_source: ctx.error_source,
        attempts: ctx.attempts.count,
        latency_ms: ms(total),
        upstream_ms: ms(ctx.attempts.upstream),
        ttft_ms: ctx.ttft.map(ms),
        tokens_in: usage.input,
        tokens_out: usage.output,
        usage_estimated: !ctx.usage_reported && usage.total() > 0,
        rate_limited: ctx.rate.limited.as_ref().map(|h| &*h.label),
        would_block: ctx.rate.would_block.as_ref().map(|h| &*h.label),
        queue_wait_ms: ctx.held.widest.map(|_| ms(ctx.held.waited)),
        cost_usd: ctx.cost_micro_usd.map(|c| c as f64 / 1e6),
        budget_over: ctx.budget.over.as_ref().map(|(label, _)| &**label),
        downgraded_from: ctx.downgraded_from.as_deref(),
        route: ctx.route.as_deref(),
        cache: ctx.cache.result(),
        failed_attempts: failed_attempts(ctx),
        target: "sluice::access",
    };
    // A line is ~620 bytes (more with long names or errors): room for it
    // at once, still a small allocation (no regrowth and copy).
    let mut out = Vec::with_capacity(1024);
    match super::format() {
        LogFormat::Json => json(&rec, &mut out),
        LogFormat::Text => text(&rec, &mut out),
    }
    out.push(b'\n');
    out
}

/// The failed attempts, `provider: error` in order (no allocation when
/// none failed).
pub(crate) fn failed_attempts(ctx: &RequestCtx) -> Option<String> {
    let f = &ctx.attempts.failures;
    (!f.is_empty()).then(|| {
        let parts: Vec<String> = f.iter().map(|(p, c)| format!("{p}: {c}")).collect();
        parts.join(", ")
    })
}

/// The record as one JSON object, written field by field (what serde
/// would write; the test `json_lines_equal_serdes` holds them together).
fn json(r: &Record, out: &mut Vec<u8>) {
    let mut o = super::json_line::Obj::new(out);
    o.str("timestamp", &r.timestamp);
    o.str("level", r.level);
    o.str("message", r.message);
    o.str("request_id", r.request_id);
    o.str("endpoint", r.endpoint);
    o.str("format", r.format);
    o.opt_str("key", r.key);
    o.opt_str("tenant", r.tenant);
    o.opt_str("model_requested", r.model_requested);
    o.opt_str("model", r.model);
    o.opt_str("provider", r.provider);
    o.bool("stream", r.stream);
    o.uint("status", u64::from(r.status));
    o.opt_str("error", r.error);
    o.opt_str("error_source", r.error_source);
    o.uint("attempts", u64::from(r.attempts));
    o.float("latency_ms", r.latency_ms);
    o.float("upstream_ms", r.upstream_ms);
    o.opt_float("ttft_ms", r.ttft_ms);
    o.uint("tokens_in", r.tokens_in);
    o.uint("tokens_out", r.tokens_out);
    o.bool("usage_estimated", r.usage_estimated);
    o.opt_str("rate_limited", r.rate_limited);
    o.opt_str("would_block", r.would_block);
    o.opt_float("queue_wait_ms", r.queue_wait_ms);
    o.opt_float("cost_usd", r.cost_usd);
    o.opt_str("budget_over", r.budget_over);
    o.opt_str("downgraded_from", r.downgraded_from);
    o.opt_str("route", r.route);
    o.opt_str("cache", r.cache);
    o.opt_str("failed_attempts", r.failed_attempts.as_deref());
    o.str("target", r.target);
    o.end();
}

/// The access-log record; field names are the documented log fields.
#[derive(serde::Serialize)]
struct Record<'a> {
    timestamp: String,
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    endpoint: &'static str,
    format: &'static str,
    key: Option<&'a str>,
    tenant: Option<&'a str>,
    model_requested: Option<&'a str>,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    stream: bool,
    status: u16,
    error: Option<&'static str>,
    error_source: Option<&'static str>,
    attempts: u32,
    latency_ms: f64,
    upstream_ms: f64,
    ttft_ms: Option<f64>,
    tokens_in: u64,
    tokens_out: u64,
    usage_estimated: bool,
    /// The rate limit that refused the request.
    rate_limited: Option<&'a str>,
    /// The shadow rate limit that would have refused it.
    would_block: Option<&'a str>,
    /// Time spent waiting for concurrency slots (requests under a limit).
    queue_wait_ms: Option<f64>,
    /// What the answer cost at the serving model's price.
    cost_usd: Option<f64>,
    /// The `alert_only` budget this request went over.
    budget_over: Option<&'a str>,
    /// The model asked for, when a budget moved the request to another.
    downgraded_from: Option<&'a str>,
    /// The route that picked the serving model.
    route: Option<&'a str>,
    /// `hit` or `miss` when the response cache applied.
    cache: Option<&'static str>,
    /// Each failed attempt, `provider: error` in order, when there was one.
    failed_attempts: Option<String>,
    target: &'static str,
}

/// `timestamp  INFO sluice::access: request key=value …` (values JSON-quoted).
fn text(rec: &Record, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{}  INFO sluice::access: request", rec.timestamp);
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(rec) {
        for (k, v) in fields {
            if matches!(k.as_str(), "timestamp" | "level" | "message" | "target") || v.is_null() {
                continue;
            }
            let _ = write!(out, " {k}={v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(some: bool) -> Record<'a> {
        let pick = |s: &'a str| some.then_some(s);
        Record {
            timestamp: "2026-11-21T08:03:06.712824Z".into(),
            level: "INFO",
            message: "request",
            request_id: "req_\"quoted\"",
            endpoint: "chat",
            format: "openai",
            key: pick("ci"),
            tenant: pick("acme"),
            model_requested: pick("smart"),
            model: pick("cheap"),
            provider: pick("mock"),
            stream: some,
            status: 200,
            error: some.then_some("rate_limited"),
            error_source: some.then_some("policy"),
            attempts: 2,
            latency_ms: 12.5,
            upstream_ms: 0.0,
            ttft_ms: some.then_some(3.25),
            tokens_in: 8,
            tokens_out: 100,
            usage_estimated: !some,
            rate_limited: pick("key `ci`"),
            would_block: pick("tenant `t`\n"),
            queue_wait_ms: some.then_some(0.001),
            cost_usd: some.then_some(0.00058),
            budget_over: pick("app `web`"),
            downgraded_from: pick("smart"),
            route: pick("free-tier"),
            cache: some.then_some("hit"),
            failed_attempts: some.then(|| "up0: server_error, up1: timeout".to_owned()),
            target: "sluice::access",
        }
    }

    #[test]
    fn json_lines_equal_serdes() {
        for some in [true, false] {
            let rec = record(some);
            let mut ours = Vec::new();
            json(&rec, &mut ours);
            let ours: serde_json::Value = serde_json::from_slice(&ours).unwrap();
            let theirs = serde_json::to_value(&rec).unwrap();
            assert_eq!(ours, theirs);
        }
    }
}
