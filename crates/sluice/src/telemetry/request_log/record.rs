//! The request-log record of a finished request, built from its
//! [`RequestCtx`] when the request completes. Identities are the tenant's
//! name, the app's and key's ids (a static key is `static:<name>`), never
//! a secret. The record's `id` is left empty: the writer assigns it, off
//! the request path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_store::LogRecord;
use sluice_types::TokenUsage;

use crate::pipeline::RequestCtx;

/// The record of `ctx`, which took `total` and used `usage`.
pub fn of(ctx: &RequestCtx, usage: TokenUsage, total: Duration) -> LogRecord {
    let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let s = |v: Option<&str>| v.map(str::to_owned);
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let key = ctx.key.as_deref();
    let managed = key.and_then(|k| k.managed.as_ref());
    let key_id = match (key, managed) {
        (_, Some(m)) => m.key_id.as_deref().map(str::to_owned),
        (Some(k), None) => Some(format!("static:{}", k.name)),
        (None, None) => None,
    };
    let started = SystemTime::now().checked_sub(total).unwrap_or(UNIX_EPOCH);
    let ts = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let deployment =
        (ctx.attempts.served.as_ref()).map(|(m, i)| m.deployments[*i].target.model.clone());
    LogRecord {
        id: String::new(),
        ts,
        request_id: ctx.id.clone(),
        tenant: s(key.and_then(|k| k.tenant.as_deref())),
        app: managed.map(|m| m.app_id.to_string()),
        key_id,
        key_name: s(key.map(|k| &*k.name)),
        end_user: ctx.end_user_of_record(),
        client_ip: ctx.client_ip.map(|ip| ip.to_string()),
        endpoint: ctx.endpoint.to_owned(),
        format: ctx.format.as_str().to_owned(),
        model_requested: ctx.requested_model.clone(),
        model: s(ctx.attempts.model.as_deref()),
        provider: s(ctx.attempts.provider.as_deref()),
        deployment,
        route: s(ctx.route.as_deref()),
        stream: ctx.stream,
        status: i64::from(ctx.status),
        error: s(ctx.error),
        error_source: s(ctx.error_source),
        latency_us: us(total),
        upstream_us: us(ctx.attempts.upstream),
        ttft_us: ctx.ttft.map(us),
        tokens_in: n(usage.input),
        tokens_out: n(usage.output),
        cache_read: n(usage.cache_read),
        cache_write: n(usage.cache_write),
        reasoning: n(usage.reasoning),
        usage_estimated: !ctx.usage_reported && usage.total() > 0,
        cost_micro: ctx.cost_micro_usd.map(n),
        attempts: i64::from(ctx.attempts.count),
        failed_attempts: super::super::access_log::failed_attempts(ctx),
        rate_limited: s(ctx.rate.limited.as_ref().map(|h| &*h.label)),
        would_block: s(ctx.rate.would_block.as_ref().map(|h| &*h.label)),
        budget_over: s(ctx.budget.over.as_ref().map(|(label, _)| &**label)),
        downgraded_from: s(ctx.downgraded_from.as_deref()),
        queue_wait_us: ctx.held.widest.map(|_| us(ctx.held.waited)),
        cache_hit: ctx.cache.hit.is_some(),
        request_body: ctx.bodies.as_ref().and_then(|b| b.request.clone()),
        response_body: ctx.bodies.as_ref().and_then(|b| b.response_body()),
    }
}
