//! Semantic checks on a deserialized [`RawConfig`]: references between
//! sections, value ranges, unique keys, and features this build does not
//! implement yet. Every problem is collected with its key path; `mod.rs` maps
//! paths to lines and columns.
//!
//! Unsupported features are errors rather than ignored, so nobody believes
//! a limit is enforced when it is not. Likewise settings that
//! would do nothing or not what they seem (`mode: shadow` or `rollout` on a
//! policy without a rate limit or with guards, a `rate_limit` that sets no
//! rate).

mod alerts;
mod cache;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::merge::{flatten, items};
use super::raw::{
    BudgetConfig, ConcurrencyConfig, MockConfig, OnExceed, PolicyConfig, PolicyItem, PolicyMode,
    PolicyRef, ProviderKind, RateLimitConfig, RawConfig, Strategy,
};
use super::yaml::join_key;

/// Shortest accepted static key secret.
pub const MIN_KEY_LEN: usize = 8;

/// Shortest accepted webhook signing secret.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Longest accepted webhook attempt timeout.
const MAX_WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One semantic problem: the key path it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathIssue {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
struct Out(Vec<PathIssue>);

impl Out {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(PathIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Runs every check; an empty result means the config is usable.
pub fn validate(cfg: &RawConfig) -> Vec<PathIssue> {
    let mut out = Out::default();
    top_level(cfg, &mut out);
    for (name, p) in &cfg.providers {
        provider(&format!("providers.{name}"), p, &mut out);
    }
    for (name, m) in &cfg.models {
        model(cfg, name, m, &mut out);
    }
    for (name, p) in &cfg.policies {
        policy_body(cfg, &format!("policies.{name}"), p, &mut out);
    }
    if let Some(r) = &cfg.global_policy {
        policy_ref(cfg, "global_policy", r, &mut out);
    }
    for (name, t) in &cfg.tenants {
        if let Some(r) = &t.policy {
            policy_ref(cfg, &format!("tenants.{name}.policy"), r, &mut out);
        }
    }
    keys(cfg, &mut out);
    if let Some(a) = &cfg.alerts {
        webhook("alerts.webhook", &a.webhook, &mut out);
        alerts::rules(cfg, a, &mut out);
    }
    request_log(cfg, &mut out);
    cache::cache(cfg, &mut out);
    if let Some(t) = &cfg.tracing {
        tracing_section(t, &mut out);
    }
    out.0
}

fn known<V>(map: &BTreeMap<String, V>, what: &str) -> String {
    if map.is_empty() {
        format!("no {what} are defined")
    } else {
        let names: Vec<&str> = map.keys().map(String::as_str).collect();
        format!("defined {what}: {}", names.join(", "))
    }
}

fn top_level(cfg: &RawConfig, out: &mut Out) {
    for (key, addr) in [("listen", &cfg.listen), ("admin_listen", &cfg.admin_listen)] {
        if let Some(a) = addr {
            if a.parse::<SocketAddr>().is_err() {
                out.push(
                    key,
                    format!("`{a}` is not a socket address; expected ip:port, e.g. 127.0.0.1:4000"),
                );
            }
        }
    }
    if cfg
        .admin_key
        .as_ref()
        .is_some_and(|k| k.expose().is_empty())
    {
        out.push("admin_key", "is empty; set a value or remove the key");
    }
    if let Some(url) = &cfg.store {
        if let Err(e) = check_store_url(url) {
            out.push("store", e);
        }
    }
    if let Some(url) = &cfg.shared_state {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) || url.len() < 9 {
            out.push(
                "shared_state",
                format!("`{url}` is not a Redis URL; expected redis://host:port"),
            );
        }
    }
    for (field, set) in [
        (
            "on_shared_state_failure",
            cfg.on_shared_state_failure.is_some(),
        ),
        ("shared_state_timeout", cfg.shared_state_timeout.is_some()),
    ] {
        if set && cfg.shared_state.is_none() {
            out.push(field, "has no effect without `shared_state`; remove it");
        }
    }
    if cfg
        .shared_state_timeout
        .is_some_and(|t| t.0.is_zero() || t.0 > std::time::Duration::from_secs(5))
    {
        out.push(
            "shared_state_timeout",
            "must be above 0 and at most 5s: it bounds every request's wait for Redis",
        );
    }
    if let Some(j) = &cfg.jwt {
        for (field, msg) in j.problems() {
            out.push(format!("jwt.{field}"), msg);
        }
        if cfg.store.is_none() {
            out.push(
                "jwt",
                "needs `store:`: token claims name a tenant and an app kept in the store",
            );
        }
    }
    for name in cfg.apis.keys() {
        if !API_NAMES.contains(&name.as_str()) {
            out.push(
                format!("apis.{name}"),
                format!("unknown API `{name}` (APIs: {})", API_NAMES.join(", ")),
            );
        }
    }
    for (i, r) in cfg.routes.iter().enumerate() {
        route(cfg, &format!("routes[{i}]"), r, out);
    }
    let mut names: Vec<&str> = cfg
        .routes
        .iter()
        .filter_map(|r| r.name.as_deref())
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        out.push(
            "routes",
            format!(
                "two routes are named `{}`; names label metrics and must differ",
                w[0]
            ),
        );
    }
    let server = &cfg.server;
    for (key, name) in [
        ("end_user_header", &server.end_user_header),
        ("client_ip_header", &server.client_ip_header),
    ] {
        if name
            .as_ref()
            .is_some_and(|n| http::HeaderName::from_bytes(n.as_bytes()).is_err())
        {
            out.push(
                format!("server.{key}"),
                format!(
                    "`{}` is not a valid HTTP header name",
                    name.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

/// The public APIs a key's scopes and `apis:` can name.
pub const API_NAMES: &[&str] = &["chat", "messages", "embeddings", "models"];

/// `sqlite://path` (or `sqlite:path`) or `postgres://…` / `postgresql://…`.
pub fn check_store_url(url: &str) -> Result<(), String> {
    let sqlite = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    match sqlite {
        Some(path) if !path.is_empty() && !path.starts_with(":memory:") => Ok(()),
        Some(_) => Err(format!(
            "`{url}` names no file; use e.g. sqlite://sluice.db (relative to the config file)"
        )),
        None if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(()),
        None => Err(format!(
            "`{url}` is not a store URL; expected sqlite://file.db or postgres://user@host:5432/db"
        )),
    }
}

/// Parses and checks a policy reference given as JSON (admin API, store
/// rows) against this config: named policies must exist, inline ones must
/// pass the same checks as in the file.
pub fn policy_value(cfg: &RawConfig, v: &serde_json::Value) -> Result<PolicyRef, String> {
    let r: PolicyRef = serde_json::from_value(v.clone())
        .map_err(|e| format!("not a policy (a name, an inline policy, or a list): {e}"))?;
    let mut out = Out::default();
    policy_ref(cfg, "policy", &r, &mut out);
    if out.0.is_empty() {
        Ok(r)
    } else {
        Err(out
            .0
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// `http://` or `https://` followed by a host, without spaces.
fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` must not contain spaces"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// `alerts.webhook`: a usable URL, a long enough secret, a sane timeout.
fn webhook(path: &str, w: &super::raw::WebhookConfig, out: &mut Out) {
    if let Err(e) = check_url(&w.url).and_then(|()| parse_url(&w.url)) {
        out.push(format!("{path}.url"), e);
    }
    let len = w.secret.expose().chars().count();
    if len < MIN_WEBHOOK_SECRET_LEN {
        out.push(
            format!("{path}.secret"),
            format!(
                "is {len} characters; use at least {MIN_WEBHOOK_SECRET_LEN} (e.g. `openssl rand -hex 32`)"
            ),
        );
    }
    let timeout = w.timeout.0;
    if timeout.is_zero() || timeout > MAX_WEBHOOK_TIMEOUT {
        out.push(
            format!("{path}.timeout"),
            format!("must be more than 0 and at most 60s (got {timeout:?})"),
        );
    }
}

/// `tracing`: a usable collector URL, a ratio in 0..1, a name, headers
/// the HTTP client accepts, a sane timeout.
fn tracing_section(t: &super::raw::TracingConfig, out: &mut Out) {
    if let Err(e) = check_url(&t.otlp_endpoint).and_then(|()| parse_url(&t.otlp_endpoint)) {
        out.push("tracing.otlp_endpoint", e);
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        out.push(
            "tracing.sample_ratio",
            format!("must be between 0 and 1 (got {})", t.sample_ratio),
        );
    }
    if t.service_name.trim().is_empty() {
        out.push("tracing.service_name", "must not be empty");
    }
    for (name, value) in &t.headers {
        let at = format!("tracing.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            out.push(at, format!("`{name}` is not a valid HTTP header name"));
        } else if http::HeaderValue::from_str(value.expose()).is_err() {
            out.push(at, "is not a valid HTTP header value (control characters?)");
        }
    }
    let timeout = t.timeout.0;
    if timeout.is_zero() || timeout > MAX_WEBHOOK_TIMEOUT {
        out.push(
            "tracing.timeout",
            format!("must be more than 0 and at most 60s (got {timeout:?})"),
        );
    }
}

/// What the HTTP client will make of the URL (catches a bad port or host).
fn parse_url(url: &str) -> Result<(), String> {
    reqwest::Url::parse(url)
        .map(drop)
        .map_err(|e| format!("`{url}` is not a valid URL: {e}"))
}

fn provider(path: &str, p: &super::raw::ProviderConfig, out: &mut Out) {
    if let Some(h) = &p.health_check {
        let at = |f: &str| format!("{path}.health_check.{f}");
        if h.interval
            .is_some_and(|d| d.0 < std::time::Duration::from_secs(1))
        {
            out.push(at("interval"), "must be at least 1s");
        }
        if h.timeout.is_some_and(|d| d.0.is_zero()) {
            out.push(at("timeout"), "must be longer than 0s");
        }
        if h.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            out.push(at("path"), "starts with `/` (it follows base_url)");
        }
    }
    match &p.base_url {
        Some(url) => {
            if let Err(e) = check_url(url) {
                out.push(format!("{path}.base_url"), e);
            }
        }
        None if p.kind == ProviderKind::Azure => {
            out.push(
                format!("{path}.base_url"),
                "is required for kind `azure` (e.g. https://myres.openai.azure.com)",
            );
        }
        None => {}
    }
    for (name, value) in &p.headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            out.push(
                format!("{path}.headers.{name}"),
                format!("`{name}` is not a valid HTTP header name"),
            );
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            out.push(
                format!("{path}.headers.{name}"),
                "header value contains control characters (e.g. a newline)",
            );
        }
    }
    if let Some(mock) = &p.mock {
        if p.kind != ProviderKind::Mock {
            out.push(
                format!("{path}.mock"),
                "is only allowed on providers with `kind: mock`",
            );
        }
        mock_block(&format!("{path}.mock"), mock, out);
    }
}

fn mock_block(path: &str, m: &MockConfig, out: &mut Out) {
    if m.tokens_per_second
        .is_some_and(|t| !t.is_finite() || t < 0.0)
    {
        out.push(
            format!("{path}.tokens_per_second"),
            "must be a non-negative number",
        );
    }
    if m.chunk_tokens == Some(0) {
        out.push(format!("{path}.chunk_tokens"), "must be at least 1");
    }
    for (i, f) in m.faults.iter().enumerate() {
        let fp = format!("{path}.faults[{i}]");
        match (f.every, f.rate) {
            (Some(_), Some(_)) => out.push(&fp, "set either `every` or `rate`, not both"),
            (None, None) => out.push(
                &fp,
                "needs `every: N` (every Nth request) or `rate: 0..1` (probability)",
            ),
            _ => {}
        }
        if f.every == Some(0) {
            out.push(format!("{fp}.every"), "must be at least 1");
        }
        if let Some(r) = f.rate {
            if !(0.0..=1.0).contains(&r) {
                out.push(
                    format!("{fp}.rate"),
                    format!("{r} is not a probability; use a value from 0 to 1"),
                );
            }
        }
        if let Some(s) = f.status {
            if !(400..=599).contains(&s) {
                out.push(
                    format!("{fp}.status"),
                    format!("{s} is not an error status; use 400..=599"),
                );
            }
        }
        if f.status.is_none() && f.delay.is_none() && f.truncate_after.is_none() {
            out.push(
                &fp,
                "has no effect; set at least one of `status`, `delay` or `truncate_after`",
            );
        }
    }
}

fn model(cfg: &RawConfig, name: &str, m: &super::raw::ModelConfig, out: &mut Out) {
    let path = format!("models.{name}");
    if m.deployments.is_empty() {
        out.push(
            format!("{path}.deployments"),
            "needs at least one deployment",
        );
    }
    for (i, d) in m.deployments.iter().enumerate() {
        if !cfg.providers.contains_key(&d.provider) {
            let msg = format!(
                "unknown provider `{}` ({})",
                d.provider,
                known(&cfg.providers, "providers")
            );
            out.push(format!("{path}.deployments[{i}].provider"), msg);
        }
    }
    if m.strategy == Some(Strategy::LowestCost) {
        for (i, d) in m.deployments.iter().enumerate() {
            if !priced(cfg, m, d) {
                out.push(
                    format!("{path}.deployments[{i}].price"),
                    "`strategy: lowest_cost` compares prices: give this deployment a `price`, or the model one (its upstream model has no built-in price, see `sluice prices`)",
                );
            }
        }
    }
    if m.strategy != Some(Strategy::Weighted) {
        for (i, d) in m.deployments.iter().enumerate() {
            if d.weight.is_some() {
                out.push(
                    format!("{path}.deployments[{i}].weight"),
                    "weights are used only with `strategy: weighted`; set it or remove the weight",
                );
            }
        }
    }
    for (i, d) in m.deployments.iter().enumerate() {
        if d.rpm == Some(0) || d.tpm == Some(0) {
            let field = if d.rpm == Some(0) { "rpm" } else { "tpm" };
            out.push(
                format!("{path}.deployments[{i}].{field}"),
                "must be at least 1 (leave it out for no cap)",
            );
        }
        if d.weight == Some(0) {
            out.push(
                format!("{path}.deployments[{i}].weight"),
                "must be at least 1",
            );
        }
    }
    for (i, f) in m.fallbacks.iter().enumerate() {
        if let crate::config::raw::FallbackConfig::Rule(r) = f {
            if r.on.is_empty() {
                out.push(
                    format!("{path}.fallbacks[{i}].on"),
                    "name at least one failure class (or give the model's name alone for the retryable ones)",
                );
            }
        }
        let f = f.model();
        if f == name {
            out.push(
                format!("{path}.fallbacks[{i}]"),
                "a model cannot fall back to itself",
            );
        } else if !cfg.models.contains_key(f) {
            out.push(
                format!("{path}.fallbacks[{i}]"),
                format!("unknown model `{f}` ({})", known(&cfg.models, "models")),
            );
        }
    }
    if let Some(p) = &m.price {
        price(&format!("{path}.price"), p, out);
    }
    for (i, d) in m.deployments.iter().enumerate() {
        if let Some(p) = &d.price {
            price(&format!("{path}.deployments[{i}].price"), p, out);
        }
    }
    if let Some(b) = &m.circuit_breaker {
        breaker(&format!("{path}.circuit_breaker"), b, out);
    }
    if let Some(r) = &m.retries {
        retries(&format!("{path}.retries"), r, out);
    }
    if let Some(r) = &m.policy {
        policy_ref(cfg, &format!("{path}.policy"), r, out);
        if flatten(cfg, Some(r)).priority.is_some() {
            out.push(format!("{path}.policy"), "`priority` is the class of a caller's requests; set it on a key, app, tenant or the global policy, not on a model");
        }
    }
}

/// A price: every figure a non-negative number.
fn price(path: &str, p: &crate::config::raw::Price, out: &mut Out) {
    let fields = [("input", Some(p.input)), ("output", Some(p.output))];
    let more = [
        ("cache_read", p.cache_read),
        ("cache_write", p.cache_write),
        ("reasoning", p.reasoning),
    ];
    for (field, v) in fields.into_iter().chain(more) {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            out.push(
                join_key(path, field),
                "must be a non-negative number (USD per million tokens)",
            );
        }
    }
}

/// One rule of `routes`.
fn route(cfg: &RawConfig, path: &str, r: &crate::config::raw::RouteConfig, out: &mut Out) {
    let model = |field: String, name: &str, out: &mut Out| {
        if !cfg.models.contains_key(name) {
            out.push(
                field,
                format!("unknown model `{name}` ({})", known(&cfg.models, "models")),
            );
        }
    };
    match (&r.to, &r.split) {
        (None, None) => out.push(
            path,
            "give `to: <model>` or `split: { <model>: <weight>, … }`",
        ),
        (Some(_), Some(_)) => out.push(path, "give `to` or `split`, not both"),
        (Some(to), None) => model(join_key(path, "to"), to, out),
        (None, Some(split)) => {
            for name in split.keys() {
                model(format!("{path}.split.{name}"), name, out);
            }
            if split.values().all(|w| *w == 0) {
                out.push(
                    join_key(path, "split"),
                    "give at least one model a weight above 0",
                );
            }
        }
    }
    if r.sticky.is_some() && r.split.is_none() {
        out.push(join_key(path, "sticky"), "`sticky` applies to a `split`");
    }
    let m = &r.matches;
    let at = |f: &str| format!("{path}.match.{f}");
    for name in m.model.iter().flat_map(|n| n.iter()) {
        model(at("model"), name, out);
    }
    for (field, names) in [
        ("model", &m.model),
        ("tenant", &m.tenant),
        ("tenant_tier", &m.tenant_tier),
        ("app", &m.app),
    ] {
        if names.as_ref().is_some_and(|n| n.iter().next().is_none()) {
            out.push(at(field), "name at least one (or leave the condition out)");
        }
    }
    for (name, value) in &m.tags {
        let header = format!("x-sluice-tag-{name}");
        let bad_name = http::HeaderName::from_bytes(header.as_bytes()).is_err()
            || name.bytes().any(|b| b.is_ascii_uppercase());
        if bad_name || name.is_empty() {
            out.push(format!("{}.{name}", at("tags")), "a tag name is lower-case letters, digits and `-` (the header is `x-sluice-tag-<name>`)");
        } else if http::HeaderValue::from_str(value).is_err() {
            out.push(format!("{}.{name}", at("tags")), "not a valid header value");
        }
    }
    if let (Some(over), Some(under)) = (m.input_tokens_over, m.input_tokens_under) {
        if over >= under {
            out.push(at("input_tokens_under"), format!("no prompt is over {over} and at most {under} tokens: this route could never match"));
        }
    }
}

/// A model's retry settings.
fn retries(path: &str, r: &crate::config::raw::RetryConfig, out: &mut Out) {
    if r.attempts.is_some_and(|a| a > 10) {
        out.push(join_key(path, "attempts"), "at most 10 extra rounds");
    }
    if r.budget
        .is_some_and(|b| !(b.is_finite() && (0.0..=1.0).contains(&b)))
    {
        out.push(
            join_key(path, "budget"),
            "must be a fraction from 0 to 1 (0.2 = extra attempts up to 20 % of requests)",
        );
    }
    for (field, v) in [("backoff", r.backoff), ("max_backoff", r.max_backoff)] {
        if v.is_some_and(|d| d.0.is_zero()) {
            out.push(join_key(path, field), "must be longer than 0s");
        }
    }
}

/// A circuit breaker's settings.
fn breaker(path: &str, b: &crate::config::raw::BreakerConfig, out: &mut Out) {
    for (field, v) in [
        ("failures", b.failures),
        ("min_requests", b.min_requests),
        ("half_open_requests", b.half_open_requests),
    ] {
        if v == Some(0) {
            out.push(join_key(path, field), "must be at least 1");
        }
    }
    if b.failure_rate.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
        out.push(
            join_key(path, "failure_rate"),
            "must be a fraction above 0 and at most 1 (0.5 = half the requests)",
        );
    }
    for (field, v) in [
        ("window", b.window),
        ("cooldown", b.cooldown),
        ("slow_call", b.slow_call),
    ] {
        if v.is_some_and(|d| d.0.is_zero()) {
            out.push(join_key(path, field), "must be longer than 0s");
        }
    }
}

/// Checks a named or inline policy.
fn policy_body(cfg: &RawConfig, path: &str, p: &PolicyConfig, out: &mut Out) {
    if let Some(r) = &p.rate_limit {
        rate_limit(&join_key(path, "rate_limit"), r, out);
    }
    if let Some(c) = &p.concurrency {
        concurrency(&join_key(path, "concurrency"), c, out);
    }
    if let Some(b) = &p.budget {
        budget(cfg, &join_key(path, "budget"), b, out);
    }
    if p.rollout.is_some_and(|r| !(0.0..=100.0).contains(&r)) {
        out.push(
            join_key(path, "rollout"),
            "must be a percentage from 0 to 100",
        );
    }
    rate_only_fields(path, p, out);
    if let Some(b) = &p.log_bodies {
        let max = crate::telemetry::request_log::bodies::MAX_MAX_BYTES;
        if b.max_bytes.is_some_and(|m| m.0 == 0 || m.0 > max) {
            out.push(
                join_key(&join_key(path, "log_bodies"), "max_bytes"),
                "must be between 1B and 1MiB",
            );
        }
        if b.redact.iter().any(|k| k.is_empty()) {
            out.push(
                join_key(&join_key(path, "log_bodies"), "redact"),
                "an empty key name",
            );
        }
    }
    for (i, m) in p.models.iter().flatten().enumerate() {
        if !cfg.models.contains_key(m) {
            let msg = format!(
                "unknown model `{m}` in allow-list ({})",
                known(&cfg.models, "models")
            );
            out.push(format!("{}[{i}]", join_key(path, "models")), msg);
        }
    }
}

/// The fields of one `rate_limit` block (whether it sets a rate at all is
/// checked on the merged level, see [`merged_level`]).
fn rate_limit(path: &str, r: &RateLimitConfig, out: &mut Out) {
    for (field, n) in [
        ("tokens_per_minute", r.tokens_per_minute),
        ("tokens_per_day", r.tokens_per_day),
    ] {
        match n {
            Some(0) => out.push(
                join_key(path, field),
                "must be at least 1 (leave it out for no token limit)",
            ),
            Some(n) if n > u64::from(u32::MAX) => out.push(
                join_key(path, field),
                format!("must be at most {}", u32::MAX),
            ),
            _ => {}
        }
    }
    let units = ["second", "minute", "hour", "day"];
    for (count, unit) in r.request_counts().into_iter().zip(units) {
        if count == Some(0) {
            out.push(
                join_key(path, &format!("requests_per_{unit}")),
                format!("must be at least 1 (leave it out for no limit per {unit})"),
            );
        }
    }
    if r.burst == Some(0) {
        out.push(
            join_key(path, "burst"),
            "must be at least 1: the number of requests that may arrive at once",
        );
    }
}

/// The fields of one `concurrency` block (whether the level sets
/// `max_in_flight` is checked on the merged level, see [`merged_level`]).
fn concurrency(path: &str, c: &ConcurrencyConfig, out: &mut Out) {
    if c.max_in_flight == Some(0) {
        out.push(
            join_key(path, "max_in_flight"),
            "must be at least 1 (leave `concurrency` out for no limit)",
        );
    }
    if c.queue_timeout.is_some_and(|t| t.0.is_zero()) {
        out.push(
            join_key(path, "queue_timeout"),
            "must be longer than 0s (set `queue: 0` to never wait)",
        );
    }
}

/// The fields of one `budget` block (whether the level sets a period is
/// checked on the merged level, see [`merged_level`]). Spend is counted at
/// the models' prices, so every model needs one.
fn budget(cfg: &RawConfig, path: &str, b: &BudgetConfig, out: &mut Out) {
    for (field, usd) in ["usd_per_day", "usd_per_week", "usd_per_month"]
        .into_iter()
        .zip(b.limits())
    {
        if usd.is_some_and(|u| !u.is_finite() || u <= 0.0) {
            out.push(join_key(path, field), "must be a positive number of USD");
        }
    }
    for (i, f) in b.alert_at.iter().flatten().enumerate() {
        if !(*f > 0.0 && *f <= 1.0) {
            out.push(
                format!("{}[{i}]", join_key(path, "alert_at")),
                "must be a fraction of the budget, above 0 and at most 1 (0.8 = 80 %)",
            );
        }
    }
    if let Some(OnExceed::Downgrade(m)) = &b.on_exceed {
        if !cfg.models.contains_key(m) {
            let msg = format!("unknown model `{m}` ({})", known(&cfg.models, "models"));
            out.push(join_key(path, "on_exceed"), msg);
        }
    }
    let unpriced: Vec<&str> = cfg
        .models
        .iter()
        .filter(|(_, m)| m.deployments.iter().any(|d| !priced(cfg, m, d)))
        .map(|(n, _)| n.as_str())
        .collect();
    if !unpriced.is_empty() {
        let msg = format!("budgets count spend at the models' prices, and these models have no `price`: {}; give each a price (0 for free models), or every deployment its own (the built-in prices, `sluice prices`, cover only the upstream models they list)", unpriced.join(", "));
        out.push(path, msg);
    }
}

/// Deployment `d` of model `m` has a price: its own, the model's, or a
/// built-in one for its upstream model (an unknown provider has none; it
/// is reported on its own).
fn priced(
    cfg: &RawConfig,
    m: &crate::config::raw::ModelConfig,
    d: &crate::config::raw::DeploymentConfig,
) -> bool {
    d.price.is_some()
        || m.price.is_some()
        || cfg
            .providers
            .get(&d.provider)
            .is_some_and(|p| crate::pricing::for_deployment(p.kind, &d.model).is_some())
}

/// `mode: shadow` and `rollout` govern the policy's own rate limit only:
/// without one they do nothing, and guards beside them would be enforced
/// for everybody — both refused rather than misunderstood.
fn rate_only_fields(path: &str, p: &PolicyConfig, out: &mut Out) {
    let shadow = p.mode == Some(PolicyMode::Shadow);
    let partial = p.rollout.is_some_and(|r| r < 100.0);
    for (set, what, field) in [
        (shadow, "`mode: shadow`", "mode"),
        (partial, "`rollout`", "rollout"),
    ] {
        if !set {
            continue;
        }
        if p.rate_limit.is_none() {
            out.push(
                join_key(path, field),
                format!("{what} applies to this policy's `rate_limit` and it sets none; remove it"),
            );
        } else if p.limits.is_some()
            || p.models.is_some()
            || p.concurrency.is_some()
            || p.priority.is_some()
            || p.budget.is_some()
        {
            out.push(join_key(path, field), format!("{what} applies to rate limits only, but this policy also sets `limits`, `models`, `concurrency`, `priority` or `budget`, which would apply to everybody; move them to a policy of their own"));
        }
    }
}

/// Checks one level's rate limits after merging: each must set a rate.
fn merged_level(cfg: &RawConfig, path: &str, r: &PolicyRef, out: &mut Out) {
    let here = match r {
        PolicyRef::Inline(_) => join_key(path, "rate_limit"),
        _ => path.to_owned(),
    };
    let no_rate = crate::policy::rate::variants(&items(cfg, Some(r)))
        .iter()
        .any(|v| {
            v.rate.request_counts().iter().all(Option::is_none)
                && v.rate.tokens_per_minute.is_none()
                && v.rate.tokens_per_day.is_none()
        });
    if no_rate {
        out.push(here, "`rate_limit` sets no rate; set requests_per_second, requests_per_minute, requests_per_hour, requests_per_day, tokens_per_minute or tokens_per_day");
    }
    let flat = flatten(cfg, Some(r));
    if flat.concurrency.is_some_and(|c| c.max_in_flight.is_none()) {
        let here = match r {
            PolicyRef::Inline(_) => join_key(path, "concurrency"),
            _ => path.to_owned(),
        };
        out.push(
            here,
            "`concurrency` sets no `max_in_flight`: a queue needs a concurrency limit",
        );
    }
    if flat
        .budget
        .is_some_and(|b| b.limits().iter().all(Option::is_none))
    {
        let here = match r {
            PolicyRef::Inline(_) => join_key(path, "budget"),
            _ => path.to_owned(),
        };
        out.push(
            here,
            "`budget` sets no period; set usd_per_day, usd_per_week or usd_per_month",
        );
    }
}

fn policy_name(cfg: &RawConfig, path: &str, name: &str, out: &mut Out) {
    if !cfg.policies.contains_key(name) {
        out.push(
            path,
            format!(
                "unknown policy `{name}` ({})",
                known(&cfg.policies, "policies")
            ),
        );
    }
}

fn policy_ref(cfg: &RawConfig, path: &str, r: &PolicyRef, out: &mut Out) {
    merged_level(cfg, path, r, out);
    match r {
        PolicyRef::Name(n) => policy_name(cfg, path, n, out),
        PolicyRef::Inline(p) => policy_body(cfg, path, p, out),
        PolicyRef::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let ip = format!("{path}[{i}]");
                match item {
                    PolicyItem::Name(n) => policy_name(cfg, &ip, n, out),
                    PolicyItem::Inline(p) => policy_body(cfg, &ip, p, out),
                }
            }
        }
    }
}

fn keys(cfg: &RawConfig, out: &mut Out) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut secrets: HashMap<&str, usize> = HashMap::new();
    for (i, k) in cfg.keys.iter().enumerate() {
        let path = format!("keys[{i}]");
        if k.name.trim().is_empty() {
            out.push(format!("{path}.name"), "must not be empty");
        } else if let Some(first) = names.insert(&k.name, i) {
            names.insert(&k.name, first);
            out.push(
                format!("{path}.name"),
                format!("duplicate key name `{}` (also keys[{first}])", k.name),
            );
        }
        let secret = k.key.expose();
        if secret.is_empty() {
            out.push(
                format!("{path}.key"),
                "must not be empty (is its environment variable set?)",
            );
        } else if secret.chars().count() < MIN_KEY_LEN {
            out.push(
                format!("{path}.key"),
                format!("is too short; use at least {MIN_KEY_LEN} characters"),
            );
        } else if let Some(first) = secrets.insert(secret, i) {
            secrets.insert(secret, first);
            out.push(
                format!("{path}.key"),
                format!("same secret as keys[{first}]; every key needs its own secret"),
            );
        }
        if let Some(t) = &k.tenant {
            if !cfg.tenants.contains_key(t) {
                out.push(
                    format!("{path}.tenant"),
                    format!("unknown tenant `{t}` ({})", known(&cfg.tenants, "tenants")),
                );
            }
        }
        if let Some(r) = &k.policy {
            policy_ref(cfg, &format!("{path}.policy"), r, out);
        }
    }
}

/// `request_log`: needs a store; sane sizes and times.
fn request_log(cfg: &RawConfig, out: &mut Out) {
    let Some(r) = &cfg.request_log else {
        return;
    };
    if r.enabled && cfg.store.is_none() {
        out.push(
            "request_log",
            "the request log is kept in the store: set `store:` or `request_log.enabled: false`",
        );
    }
    if r.buffer == 0 {
        out.push("request_log.buffer", "must be at least 1");
    }
    if r.batch == 0 || r.batch > 10_000 {
        out.push("request_log.batch", "must be between 1 and 10000");
    }
    if r.write_timeout.0.is_zero() {
        out.push("request_log.write_timeout", "must be more than 0");
    }
    if r.retention
        .is_some_and(|d| d.0 < std::time::Duration::from_secs(86_400))
    {
        out.push(
            "request_log.retention",
            "must be at least 1d (whole day tables are dropped)",
        );
    }
}
