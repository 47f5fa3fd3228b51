//! Usage analytics and request logs:
//! - `GET /admin/usage`: requests, errors, tokens, cost and latency
//!   percentiles over a time range, grouped by tenant / app / key / model
//!   / provider and by hour or day, from the rollups (fast at any volume);
//! - `GET /admin/usage/top`: the top consumers by cost, requests or tokens;
//! - `GET /admin/logs`: request-log records, newest first, filtered.
//!
//! Each answers JSON, or CSV with `format=csv`. Who sees what: admins and
//! unscoped auditors everything; tenant admins and tenant auditors their
//! tenant's (their tenant's name is forced as the filter); developers the
//! requests of the apps they own.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_store::rollup::quantile_ms;
use sluice_store::{Dim, Interval, LogQuery, LogRecord, UsageQuery, UsageRow};
use utoipa::{IntoParams, ToSchema};

use super::auth::Ctx;
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::rbac::{Action, Resource, Scope};
use super::time::{now_ms, parse_time};

const DAY_MS: i64 = 86_400_000;

/// The time range and filters every route takes.
#[derive(Debug, Default, Clone)]
struct Filters {
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
    app: Option<String>,
    key: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    format: Option<String>,
}

/// A parameter struct with the common filters and its own fields (serde's
/// `flatten` cannot be combined with `deny_unknown_fields`).
macro_rules! with_filters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Start (Unix ms or RFC 3339). Default: 30 days before `to`.
            from: Option<String>,
            /// End, exclusive (Unix ms or RFC 3339). Default: now.
            to: Option<String>,
            /// Tenant name.
            tenant: Option<String>,
            /// App id.
            app: Option<String>,
            /// Key id (`static:<name>` for the config's keys).
            key: Option<String>,
            /// Served model (`models:` name).
            model: Option<String>,
            provider: Option<String>,
            /// `json` (default) or `csv`.
            format: Option<String>,
            $($(#[$fm])* $f: $t,)*
        }

        impl $name {
            fn filters(&self) -> Filters {
                Filters {
                    from: self.from.clone(),
                    to: self.to.clone(),
                    tenant: self.tenant.clone(),
                    app: self.app.clone(),
                    key: self.key.clone(),
                    model: self.model.clone(),
                    provider: self.provider.clone(),
                    format: self.format.clone(),
                }
            }
        }
    };
}

with_filters!(
    /// `GET /admin/usage` parameters.
    UsageParams {
        /// Comma-separated: `tenant`, `app`, `key`, `model`, `provider`.
        group_by: Option<String>,
        /// `hour` or `day`; omitted: one row per group for the whole range.
        interval: Option<String>,
    }
);

with_filters!(
    /// `GET /admin/usage/top` parameters.
    TopParams {
        /// `tenant`, `app`, `key` (default), `model` or `provider`.
        dimension: Option<String>,
        /// `cost` (default), `requests`, `input_tokens` or `output_tokens`.
        by: Option<String>,
        /// 1..=100, default 10.
        limit: Option<usize>,
    }
);

with_filters!(
    /// `GET /admin/logs` parameters.
    LogParams {
        /// End user.
        user: Option<String>,
        request_id: Option<String>,
        /// A status (`429`) or a class (`4xx`).
        status: Option<String>,
        /// 1..=1000, default 100.
        limit: Option<usize>,
        /// The previous page's `next`.
        before: Option<String>,
    }
);

/// One group of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Start of the hour or day (Unix ms), with `interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Option<String>>,
    pub requests: i64,
    pub errors_4xx: i64,
    pub errors_5xx: i64,
    /// Share of requests answered 5xx.
    pub error_rate: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: f64,
    pub latency_ms_avg: f64,
    /// Percentiles from the rollups' histogram: exact to its bucket
    /// (edges ~1.6× apart), interpolated within it.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub upstream_ms_avg: f64,
    /// Requests answered from the response cache.
    pub cache_hits: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub from: i64,
    pub to: i64,
    pub data: Vec<UsageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogsResponse {
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<LogView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A request-log record as the API shows it (cost in USD).
#[derive(Debug, Serialize)]
pub struct LogView {
    #[serde(flatten)]
    pub record: LogRecord,
    pub cost_usd: Option<f64>,
}

/// Usage over a range.
#[utoipa::path(get, path = "/admin/usage", tag = "usage", params(UsageParams),
    responses((status = 200, description = "Usage groups (JSON, or CSV with format=csv)", body = UsageResponse)))]
pub async fn usage(ctx: Ctx, Params(p): Params<UsageParams>) -> ApiResult<Response> {
    let group_by = match &p.group_by {
        Some(g) => dims(g)?,
        None => Vec::new(),
    };
    let interval = match p.interval.as_deref() {
        None => None,
        Some("hour") => Some(Interval::Hour),
        Some("day") => Some(Interval::Day),
        Some(o) => {
            return Err(ApiError::invalid(
                "interval",
                format!("`{o}` is not `hour` or `day`"),
            ))
        }
    };
    let by_key = group_by.iter().any(|d| matches!(d, Dim::App | Dim::Key))
        || p.app.is_some()
        || p.key.is_some();
    if by_key && interval == Some(Interval::Hour) {
        return Err(ApiError::invalid(
            "interval",
            "usage by app or key is kept by day: use `interval=day` (or none)",
        ));
    }
    let q = UsageQuery {
        interval,
        group_by,
        ..usage_query(&ctx, &p.filters()).await?
    };
    answer(&ctx, q, csv_wanted(&p.filters())?).await
}

/// The top consumers.
#[utoipa::path(get, path = "/admin/usage/top", tag = "usage", params(TopParams),
    responses((status = 200, description = "Groups, largest first (JSON, or CSV with format=csv)", body = UsageResponse)))]
pub async fn top(ctx: Ctx, Params(p): Params<TopParams>) -> ApiResult<Response> {
    let dim = dims(p.dimension.as_deref().unwrap_or("key"))?;
    if dim.len() != 1 {
        return Err(ApiError::invalid("dimension", "name one dimension"));
    }
    let order = match p.by.as_deref().unwrap_or("cost") {
        "cost" => "cost_micro",
        "requests" => "requests",
        "input_tokens" => "tokens_in",
        "output_tokens" => "tokens_out",
        o => {
            return Err(ApiError::invalid(
                "by",
                format!("`{o}` is not one of cost, requests, input_tokens, output_tokens"),
            ))
        }
    };
    let limit = p.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "`limit` must be between 1 and 100",
        ));
    }
    let q = UsageQuery {
        group_by: dim,
        order_by: Some(order),
        limit,
        ..usage_query(&ctx, &p.filters()).await?
    };
    answer(&ctx, q, csv_wanted(&p.filters())?).await
}

/// Request-log records, newest first.
#[utoipa::path(get, path = "/admin/logs", tag = "usage", params(LogParams),
    responses((status = 200, description = "A page of records (JSON, or CSV with format=csv)", body = LogsResponse)))]
pub async fn logs(ctx: Ctx, Params(p): Params<LogParams>) -> ApiResult<Response> {
    let csv = csv_wanted(&p.filters())?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "`limit` must be between 1 and 1000",
        ));
    }
    let (status, status_class) = match p.status.as_deref() {
        None => (None, None),
        Some(s) => status_filter(s)?,
    };
    let before = p.before.as_deref().map(cursor).transpose()?;
    let u = usage_query(&ctx, &p.filters()).await?;
    let q = LogQuery {
        from: u.from,
        to: u.to,
        tenant: u.tenant,
        apps: u.apps,
        app: u.app,
        key_id: u.key_id,
        end_user: p.user,
        model: u.model,
        provider: u.provider,
        request_id: p.request_id,
        status,
        status_class,
        before,
        limit,
    };
    let records = ctx.store.logs(&q).await?;
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| format!("{}:{}", r.ts, r.id)))
        .flatten();
    let data: Vec<LogView> = records
        .into_iter()
        .map(|record| LogView {
            cost_usd: record.cost_micro.map(|c| c as f64 / 1e6),
            record,
        })
        .collect();
    if csv {
        return Ok(csv_response(log_csv(&data)));
    }
    Ok(Json(LogsResponse { data, next }).into_response())
}

/// The range, the filters and the caller's reach as a store query.
async fn usage_query(ctx: &Ctx, f: &Filters) -> ApiResult<UsageQuery> {
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| ApiError::invalid(name, e))
    };
    let to = time("to", &f.to)?.unwrap_or_else(|| now_ms() + 1);
    let from = time("from", &f.from)?.unwrap_or(to - 30 * DAY_MS);
    if to <= from {
        return Err(ApiError::invalid("to", "`to` must be after `from`"));
    }
    if to - from > 400 * DAY_MS {
        return Err(ApiError::invalid(
            "from",
            "a range may span at most 400 days",
        ));
    }
    let mut q = UsageQuery {
        from,
        to,
        tenant: f.tenant.clone(),
        app: f.app.clone(),
        key_id: f.key.clone(),
        model: f.model.clone(),
        provider: f.provider.clone(),
        ..UsageQuery::default()
    };
    restrict(ctx, &mut q).await?;
    Ok(q)
}

/// Narrows `q` to what the caller may see.
async fn restrict(ctx: &Ctx, q: &mut UsageQuery) -> ApiResult<()> {
    let scope = ctx.require(Resource::Usage, Action::List)?;
    if scope == Scope::Everything {
        return Ok(());
    }
    let tenant = match &ctx.actor.tenant_id {
        Some(id) => ctx.store.get_tenant(id).await?.map(|t| t.name),
        None => None,
    };
    // A caller without a (live) tenant, or filtering on another tenant,
    // sees nothing (an empty app list matches no row).
    match (tenant, &q.tenant) {
        (Some(own), Some(asked)) if &own != asked => {
            q.apps = Some(Vec::new());
            return Ok(());
        }
        (Some(own), _) => q.tenant = Some(own),
        (None, _) => {
            q.apps = Some(Vec::new());
            return Ok(());
        }
    }
    if scope == Scope::Own {
        let apps = super::access::owned_apps(ctx).await?;
        q.apps = Some(apps.into_iter().collect());
    }
    Ok(())
}

async fn answer(ctx: &Ctx, q: UsageQuery, csv: bool) -> ApiResult<Response> {
    let rows = ctx.store.usage(&q).await?;
    let data: Vec<UsageView> = rows.iter().map(|r| view(&q.group_by, r)).collect();
    if csv {
        return Ok(csv_response(usage_csv(
            &q.group_by,
            q.interval.is_some(),
            &data,
        )));
    }
    Ok(Json(UsageResponse {
        from: q.from,
        to: q.to,
        data,
    })
    .into_response())
}

fn view(group_by: &[Dim], r: &UsageRow) -> UsageView {
    let s = &r.sums;
    let dim = |d: Dim| {
        group_by
            .iter()
            .position(|g| *g == d)
            .map(|i| r.dims.get(i).cloned().flatten())
    };
    let per = |v: i64| {
        if s.requests > 0 {
            v as f64 / s.requests as f64
        } else {
            0.0
        }
    };
    UsageView {
        period: r.period,
        tenant: dim(Dim::Tenant),
        app: dim(Dim::App),
        key: dim(Dim::Key),
        model: dim(Dim::Model),
        provider: dim(Dim::Provider),
        requests: s.requests,
        errors_4xx: s.errors_4xx,
        errors_5xx: s.errors_5xx,
        error_rate: per(s.errors_5xx),
        input_tokens: s.tokens_in,
        output_tokens: s.tokens_out,
        cache_read_tokens: s.cache_read,
        cache_write_tokens: s.cache_write,
        reasoning_tokens: s.reasoning,
        cost_usd: s.cost_micro as f64 / 1e6,
        latency_ms_avg: per(s.latency_us) / 1000.0,
        latency_ms_p50: quantile_ms(&s.latency, 0.50),
        latency_ms_p95: quantile_ms(&s.latency, 0.95),
        latency_ms_p99: quantile_ms(&s.latency, 0.99),
        upstream_ms_avg: per(s.upstream_us) / 1000.0,
        cache_hits: s.cache_hits,
    }
}

fn dims(list: &str) -> ApiResult<Vec<Dim>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let d = Dim::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "group_by",
                format!("`{name}` is not one of tenant, app, key, model, provider"),
            )
        })?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn csv_wanted(f: &Filters) -> ApiResult<bool> {
    match f.format.as_deref() {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(o) => Err(ApiError::invalid(
            "format",
            format!("`{o}` is not `json` or `csv`"),
        )),
    }
}

fn status_filter(s: &str) -> ApiResult<(Option<i64>, Option<i64>)> {
    let bad = || {
        ApiError::invalid(
            "status",
            format!("`{s}` is not a status (`429`) or a class (`4xx`)"),
        )
    };
    if let Some(class) = s.strip_suffix("xx") {
        let c: i64 = class.parse().map_err(|_| bad())?;
        return (1..=5)
            .contains(&c)
            .then_some((None, Some(c)))
            .ok_or_else(bad);
    }
    let code: i64 = s.parse().map_err(|_| bad())?;
    (100..=599)
        .contains(&code)
        .then_some((Some(code), None))
        .ok_or_else(bad)
}

/// `ts:id` of the previous page's last record.
fn cursor(s: &str) -> ApiResult<(i64, String)> {
    s.split_once(':')
        .and_then(|(ts, id)| Some((ts.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| ApiError::invalid("before", "not a cursor from `next`"))
}

fn csv_response(body: String) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        body,
    )
        .into_response()
}

/// One CSV field, quoted when it must be (RFC 4180); a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so spreadsheets do not run it.
fn field(v: &str) -> String {
    let v = match v.chars().next() {
        Some('=' | '+' | '-' | '@') if v.parse::<f64>().is_err() => format!("'{v}"),
        _ => v.to_owned(),
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn usage_csv(group_by: &[Dim], with_period: bool, rows: &[UsageView]) -> String {
    let mut head: Vec<&str> = Vec::new();
    if with_period {
        head.push("period");
    }
    head.extend(group_by.iter().map(|d| d.as_str()));
    head.extend([
        "requests",
        "errors_4xx",
        "errors_5xx",
        "error_rate",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "latency_ms_avg",
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "upstream_ms_avg",
    ]);
    let mut out = head.join(",") + "\n";
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let mut cells: Vec<String> = Vec::new();
        if with_period {
            cells.push(r.period.map(|p| p.to_string()).unwrap_or_default());
        }
        for d in group_by {
            let v = match d {
                Dim::Tenant => &r.tenant,
                Dim::App => &r.app,
                Dim::Key => &r.key,
                Dim::Model => &r.model,
                Dim::Provider => &r.provider,
            };
            cells.push(field(v.clone().flatten().as_deref().unwrap_or("")));
        }
        cells.extend([
            r.requests.to_string(),
            r.errors_4xx.to_string(),
            r.errors_5xx.to_string(),
            r.error_rate.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_read_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.reasoning_tokens.to_string(),
            r.cost_usd.to_string(),
            r.latency_ms_avg.to_string(),
            opt(r.latency_ms_p50),
            opt(r.latency_ms_p95),
            opt(r.latency_ms_p99),
            r.upstream_ms_avg.to_string(),
        ]);
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Records as CSV: a header (the record's fields in column order, then
/// `cost_usd`) and a line each.
fn log_csv(rows: &[LogView]) -> String {
    let names: Vec<&str> = sluice_store::request_log::column_names()
        .chain(["cost_usd"])
        .collect();
    let mut out = names.join(",") + "\n";
    for r in rows {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(r) else {
            continue;
        };
        let cells: Vec<String> = names
            .iter()
            .map(|n| match map.get(*n) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => field(s),
                Some(other) => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("-1.5"), "-1.5");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn statuses_and_cursors_parse_or_explain() {
        assert_eq!(status_filter("429").unwrap(), (Some(429), None));
        assert_eq!(status_filter("5xx").unwrap(), (None, Some(5)));
        assert!(status_filter("9xx").is_err());
        assert!(status_filter("abc").is_err());
        assert_eq!(cursor("17:log_x").unwrap(), (17, "log_x".to_owned()));
        assert!(cursor("x:log").is_err());
        assert!(cursor("17:").is_err());
    }
}
