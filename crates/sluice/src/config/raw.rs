//! The config file as written (serde + JSON Schema). Every struct rejects
//! unknown keys so a typo cannot silently disable a limit. Validation and the
//! runtime snapshot are built from this in `validate.rs` / `runtime.rs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_types::Secret;

use super::units::{ByteSize, Dur};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Public API address (OpenAI/Anthropic compatible). Default 127.0.0.1:4000.
    #[serde(default)]
    pub listen: Option<String>,
    /// Admin API address (reload, status, metrics). Omit to disable.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Bootstrap admin credential for the admin API.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub admin_key: Option<Secret>,
    /// Control-plane store for tenants, apps, keys, users, subscriptions and
    /// the audit log: `sqlite://file.db` (relative to the config file) or
    /// `postgres://user@host:5432/db`. Omit to run from the config alone.
    #[serde(default)]
    pub store: Option<String>,
    /// Shared state for several instances, `redis://host:port`: key
    /// revocations and other store changes reach every instance at once
    /// (pub/sub) instead of by polling.
    #[serde(default)]
    pub shared_state: Option<String>,
    /// What rate limits do when `shared_state` errs or is slow: `local`
    /// (default: this instance's own counters), `fail_open`, `fail_closed`.
    #[serde(default)]
    pub on_shared_state_failure: Option<SharedStateFailure>,
    /// The longest a request waits for `shared_state`. Default 50ms.
    #[serde(default)]
    pub shared_state_timeout: Option<Dur>,
    /// Accept JWTs from an identity provider as an alternative to API keys
    /// (needs `store:`: claims name a tenant and an app kept there).
    #[serde(default)]
    pub jwt: Option<crate::jwt::JwtConfig>,
    /// Per-API settings by name (`chat`, `messages`, `embeddings`, `models`).
    #[serde(default)]
    pub apis: BTreeMap<String, ApiConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Server tuning: drain timeout, body size, upstream timeouts.
    #[serde(default)]
    pub server: ServerConfig,
    /// Upstream providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The model names clients put in `model`, by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Ordered routing rules (not yet supported).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Reusable policies by name.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Policy applied to every request.
    #[serde(default)]
    pub global_policy: Option<PolicyRef>,
    /// Seed tenants.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Static API keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Where alert events (budget thresholds crossed, budgets exceeded) go
    /// besides the log and the metrics: a signed webhook.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
    /// The request log: one record per request in the store (on by default
    /// when `store:` is set).
    #[serde(default)]
    pub request_log: Option<RequestLogConfig>,
    /// OpenTelemetry tracing: a span per request and per upstream attempt,
    /// exported as OTLP/HTTP JSON, and W3C `traceparent` sent upstream.
    /// Omit to turn tracing off (nothing exported, no header added).
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// The response cache (exact match): memory, default time to live,
    /// largest answer kept. Only models with their own `cache:` are cached;
    /// this block may be omitted (its defaults apply).
    #[serde(default)]
    pub cache: Option<CacheConfig>,
}

/// The response cache (`cache:`), shared by every model that opts in with
/// `models.<name>.cache`. Entries live in this instance's memory.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory for cached answers, all entries together (the least useful
    /// are evicted beyond it). Default 256MiB. A reload that changes it
    /// starts an empty cache.
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: ByteSize,
    /// How long an answer is kept, for models that set no `ttl` of their
    /// own. Default 10m.
    #[serde(default = "default_cache_ttl")]
    pub ttl: Dur,
    /// Answers larger than this (as JSON) are not kept. Default 1MiB.
    #[serde(default = "default_cache_entry")]
    pub max_entry_bytes: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: default_cache_bytes(),
            ttl: default_cache_ttl(),
            max_entry_bytes: default_cache_entry(),
        }
    }
}

fn default_cache_bytes() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_cache_ttl() -> Dur {
    Dur(std::time::Duration::from_secs(600))
}
fn default_cache_entry() -> ByteSize {
    ByteSize(1 << 20)
}

/// A model's opt-in to the response cache (`models.<name>.cache`).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// How long this model's answers are kept. Default: `cache.ttl`.
    #[serde(default)]
    pub ttl: Option<Dur>,
}

/// The request log (`request_log:`). Settings apply at start; a reload
/// does not change them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestLogConfig {
    /// Record every request in the store. Default true (needs `store:`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Records held in memory for the writer. Default 100000.
    #[serde(default = "default_log_buffer")]
    pub buffer: usize,
    /// Records per store write. Default 1000.
    #[serde(default = "default_log_batch")]
    pub batch: usize,
    /// Longest a record waits before its batch is written. Default 1s.
    #[serde(default = "d1s")]
    pub flush_every: Dur,
    /// A write slower than this spills the batch to disk. Default 5s.
    #[serde(default = "d5s")]
    pub write_timeout: Dur,
    /// Where records wait while the store is down (relative to the config
    /// file). Default `sluice-spill` next to the config file.
    #[serde(default)]
    pub spill_dir: Option<String>,
    /// Day tables older than this are dropped (whole days). Default 30d;
    /// `null` keeps everything.
    #[serde(default = "d30d")]
    pub retention: Option<Dur>,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        RequestLogConfig {
            enabled: true,
            buffer: default_log_buffer(),
            batch: default_log_batch(),
            flush_every: d1s(),
            write_timeout: d5s(),
            spill_dir: None,
            retention: d30d(),
        }
    }
}

fn default_log_buffer() -> usize {
    100_000
}
fn default_log_batch() -> usize {
    1000
}
fn d1s() -> Dur {
    secs(1)
}
fn d30d() -> Option<Dur> {
    Some(secs(30 * 86_400))
}

/// OpenTelemetry tracing (`tracing:`; see `docs/operations.md`, "Tracing").
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`: spans are POSTed
    /// as JSON to `{otlp_endpoint}/v1/traces` (a URL already ending in
    /// `/v1/traces` is used as it is).
    pub otlp_endpoint: String,
    /// `service.name` of the exported resource. Default `sluice`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces recorded, 0 to 1 (default 1). Parent-based: a
    /// request whose inbound `traceparent` is sampled is always recorded,
    /// one whose parent is not sampled never is.
    #[serde(default = "one")]
    pub sample_ratio: f64,
    /// Headers sent to the collector with every export (e.g.
    /// `authorization`). Values are never logged.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Secret>,
    /// Time allowed for one export attempt. Default 5s, at most 60s.
    #[serde(default = "d5s")]
    pub timeout: Dur,
}

fn default_service_name() -> String {
    "sluice".to_owned()
}

fn one() -> f64 {
    1.0
}

/// Alert delivery (`alerts:`). Every event is also logged at WARN and
/// counted in `sluice_alerts_total`, with or without this section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// POST each event as JSON, signed with HMAC-SHA256, to this receiver.
    pub webhook: WebhookConfig,
    /// How often the rules are evaluated. Default 10s.
    #[serde(default)]
    pub evaluate_every: Option<Dur>,
    /// Alert rules (error rate, p99 latency, breaker open, spend anomaly),
    /// evaluated off the request path; see `docs/configuration.md`.
    #[serde(default)]
    pub rules: Vec<AlertRule>,
}

impl AlertsConfig {
    /// `evaluate_every`, or its default (10s).
    pub fn evaluate_every(&self) -> std::time::Duration {
        self.evaluate_every
            .map_or(std::time::Duration::from_secs(10), |d| d.0)
    }
}

/// One alert rule (`alerts.rules[]`), by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertRule {
    /// The share of 5xx answers of a model over `window` is above `above`.
    ErrorRate {
        /// Unique among the rules; names the rule in events and metrics.
        name: String,
        /// Only this model; every model (each on its own) when omitted.
        #[serde(default)]
        model: Option<String>,
        /// A fraction in (0, 1): 0.05 fires above 5% errors.
        above: f64,
        /// The sliding window the rate is taken over (at least 1s).
        window: Dur,
        /// No verdict below this many requests in the window. Default 20.
        #[serde(default = "d20")]
        min_requests: u32,
        /// Send the firing event again this often while it fires (off
        /// by default).
        #[serde(default)]
        repeat_every: Option<Dur>,
    },
    /// The p99 of whole-request latency of a model over `window` is above
    /// `above`.
    LatencyP99 {
        name: String,
        #[serde(default)]
        model: Option<String>,
        /// A duration, e.g. `2s`.
        above: Dur,
        window: Dur,
        #[serde(default = "d20")]
        min_requests: u32,
        #[serde(default)]
        repeat_every: Option<Dur>,
    },
    /// A deployment's circuit breaker opened; resolves when it closes.
    BreakerOpen {
        name: String,
        /// Only this model's deployments; every deployment when omitted.
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        repeat_every: Option<Dur>,
    },
    /// The spend of one `window` interval is `z` standard deviations above
    /// its EWMA mean, per `scope`.
    SpendAnomaly {
        name: String,
        /// `global` (default), `tenant` or `model`.
        #[serde(default)]
        scope: SpendScope,
        /// The z-score above which an interval is anomalous (e.g. 3).
        z: f64,
        /// The interval spend is summed over (at least 1s).
        window: Dur,
        /// Intervals seen before any verdict. Default 6, at least 2.
        #[serde(default = "d6")]
        warmup: u32,
        /// EWMA smoothing factor in (0, 1]. Default 0.3.
        #[serde(default)]
        alpha: Option<f64>,
        #[serde(default)]
        repeat_every: Option<Dur>,
    },
}

impl AlertRule {
    pub fn name(&self) -> &str {
        match self {
            AlertRule::ErrorRate { name, .. }
            | AlertRule::LatencyP99 { name, .. }
            | AlertRule::BreakerOpen { name, .. }
            | AlertRule::SpendAnomaly { name, .. } => name,
        }
    }

    /// The reminder interval while firing, if any.
    pub fn repeat_every(&self) -> Option<std::time::Duration> {
        match self {
            AlertRule::ErrorRate { repeat_every, .. }
            | AlertRule::LatencyP99 { repeat_every, .. }
            | AlertRule::BreakerOpen { repeat_every, .. }
            | AlertRule::SpendAnomaly { repeat_every, .. } => repeat_every.map(|d| d.0),
        }
    }

    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            AlertRule::ErrorRate { .. } => "error_rate",
            AlertRule::LatencyP99 { .. } => "latency_p99",
            AlertRule::BreakerOpen { .. } => "breaker_open",
            AlertRule::SpendAnomaly { .. } => "spend_anomaly",
        }
    }
}

/// What a `spend_anomaly` rule keeps one series for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpendScope {
    /// All spend together.
    #[default]
    Global,
    /// One series per tenant (requests without a tenant are left out).
    Tenant,
    /// One series per model.
    Model,
}

fn d20() -> u32 {
    20
}

fn d6() -> u32 {
    6
}

/// A webhook receiving alert events (see `docs/configuration.md`, "alerts",
/// for the body and how to verify the signature).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Signs each body (`x-sluice-signature`, HMAC-SHA256); at least 16
    /// characters. Never logged or printed.
    #[schemars(with = "String")]
    pub secret: Secret,
    /// Time allowed for one delivery attempt (connect, send, answer).
    /// Default 5s.
    #[serde(default = "d5s")]
    pub timeout: Dur,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `sluice=debug`. `RUST_LOG` overrides it.
    #[serde(default = "default_level")]
    pub level: String,
    /// One access-log line per request (default true).
    #[serde(default = "yes")]
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_level(),
            access_log: true,
        }
    }
}

fn default_level() -> String {
    "info".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Server and upstream transport tuning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long in-flight requests and streams may run after SIGTERM. Default 30s.
    #[serde(default = "d30s")]
    pub drain_timeout: Dur,
    /// Largest accepted request body. Default 4MiB.
    #[serde(default = "mib4")]
    pub max_body_bytes: ByteSize,
    /// Upstream connect timeout. Default 5s.
    #[serde(default = "d5s")]
    pub connect_timeout: Dur,
    /// Upstream time to response headers (first byte). Default 60s.
    #[serde(default = "d60s")]
    pub first_byte_timeout: Dur,
    /// Whole non-streamed upstream call. Default 600s.
    #[serde(default = "d600s")]
    pub total_timeout: Dur,
    /// Longest silence between two stream chunks. Default 60s.
    #[serde(default = "d60s")]
    pub stream_idle_timeout: Dur,
    /// Upstream connections kept idle per host (per worker). Default 256.
    #[serde(default = "pool256")]
    pub pool_max_idle_per_host: usize,
    /// Event-loop threads, each a single-threaded runtime accepting on the
    /// public address (`SO_REUSEPORT`). 0 (default) = one per CPU.
    #[serde(default)]
    pub workers: usize,
    /// A request header naming the end user (e.g. `x-end-user`), used by
    /// `per: user` rate limits when neither a JWT nor the body names one.
    /// Default: none.
    #[serde(default)]
    pub end_user_header: Option<String>,
    /// A request header whose left-most address is the client IP (e.g.
    /// `x-forwarded-for`), for `per: ip` rate limits behind a trusted proxy.
    /// Default: none (the TCP peer address). Clients can forge it unless the
    /// proxy in front overwrites it.
    #[serde(default)]
    pub client_ip_header: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            drain_timeout: d30s(),
            max_body_bytes: mib4(),
            connect_timeout: d5s(),
            first_byte_timeout: d60s(),
            total_timeout: d600s(),
            stream_idle_timeout: d60s(),
            pool_max_idle_per_host: pool256(),
            workers: 0,
            end_user_header: None,
            client_ip_header: None,
        }
    }
}

fn secs(s: u64) -> Dur {
    Dur(std::time::Duration::from_secs(s))
}
fn d5s() -> Dur {
    secs(5)
}
fn d30s() -> Dur {
    secs(30)
}
fn d60s() -> Dur {
    secs(60)
}
fn d600s() -> Dur {
    secs(600)
}
fn mib4() -> ByteSize {
    ByteSize(4 << 20)
}
fn pool256() -> usize {
    256
}

/// The kind of upstream API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Built in, offline, deterministic.
    Mock,
    /// Any OpenAI-compatible API.
    Openai,
    /// Azure OpenAI.
    Azure,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini API.
    Gemini,
}

/// One upstream provider.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// API root, e.g. `https://api.openai.com/v1`. Defaults per kind (not for azure).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub api_key: Option<Secret>,
    /// Azure `api-version`, or Anthropic `anthropic-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Extra headers sent on every call (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Settings of the `mock` kind.
    #[serde(default)]
    pub mock: Option<MockConfig>,
    /// Active health checks: a cheap call (the model list) on an interval
    /// whose failure takes the provider's deployments out of the rotation
    /// before a request finds out. Default: none.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

/// `health_check` of a provider (`routing/probe.rs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between probes. Default 30s.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// The longest a probe waits for its answer's headers. Default 5s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// The path after `base_url` to GET. Default: the provider's model
    /// list (`/models`, Anthropic `/v1/models`, Gemini `/v1beta/models`,
    /// Azure `/openai/models`).
    #[serde(default)]
    pub path: Option<String>,
}

/// Behaviour of the built-in `mock` provider.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Fixed answer text. Default: echoes the last user message.
    #[serde(default)]
    pub reply: Option<String>,
    /// Delay before the first byte. Default 0.
    #[serde(default)]
    pub latency: Option<Dur>,
    /// Streaming pace; 0 or absent = as fast as possible.
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
    /// Tokens (words) per streamed chunk. Default 1.
    #[serde(default)]
    pub chunk_tokens: Option<u32>,
    /// When the request offers tools, call the first one (default true).
    #[serde(default)]
    pub call_tools: Option<bool>,
    /// Injected faults, checked in order for each request.
    #[serde(default)]
    pub faults: Vec<MockFault>,
}

/// One injected fault of the mock provider.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockFault {
    /// Fire on every Nth request (deterministic).
    #[serde(default)]
    pub every: Option<u64>,
    /// Fire with this probability (0..1).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Answer with this HTTP status (e.g. 500, 429, 529).
    #[serde(default)]
    pub status: Option<u16>,
    /// With status 429/503: the `retry-after` to send.
    #[serde(default)]
    pub retry_after: Option<Dur>,
    /// Extra delay before answering.
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Cut a stream after this many chunks (no clean end).
    #[serde(default)]
    pub truncate_after: Option<u32>,
}

/// A model name clients may use.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// USD per million tokens.
    #[serde(default)]
    pub price: Option<Price>,
    /// Balancing strategy across deployments. Default round_robin.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Where the model is served; at least one.
    pub deployments: Vec<DeploymentConfig>,
    /// Other models tried in order when every deployment failed: a name
    /// (on the retryable errors), or `{ model, on: [error classes] }`.
    #[serde(default)]
    pub fallbacks: Vec<FallbackConfig>,
    /// Another round over the deployments (and fallbacks) after all failed,
    /// with backoff, under a retry budget. Default: no extra round.
    #[serde(default)]
    pub retries: Option<RetryConfig>,
    /// Policy attached to this model.
    #[serde(default)]
    pub policy: Option<PolicyRef>,
    /// Apps need an approved subscription (`model:<name>`) to call it.
    #[serde(default)]
    pub requires_approval: bool,
    /// How prompts are counted before the upstream reports usage. Default:
    /// from the first deployment (OpenAI-style model names get their BPE
    /// encoding, everything else the estimate).
    #[serde(default)]
    pub tokenizer: Option<Tokenizer>,
    /// Each deployment's circuit breaker. Default: on, with the defaults
    /// of [`BreakerConfig`].
    #[serde(default)]
    pub circuit_breaker: Option<BreakerConfig>,
    /// Cache this model's complete answers (exact match on the request,
    /// per tenant): `cache: {}` or `cache: { ttl: 1h }`. Default: never.
    #[serde(default)]
    pub cache: Option<ModelCacheConfig>,
}

/// One rule of `routes`: when a request matches, it is served by `to`, or
/// by one model of `split` (`routing/routes.rs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The rule's name in metrics and the access log. Default `routes[i]`.
    #[serde(default)]
    pub name: Option<String>,
    /// Every condition given must hold; none given matches every request.
    #[serde(rename = "match", default)]
    pub matches: RouteMatch,
    /// The model that serves a matching request.
    #[serde(default)]
    pub to: Option<String>,
    /// Models sharing matching requests by weight (a canary, blue/green).
    #[serde(default)]
    pub split: Option<BTreeMap<String, u32>>,
    /// What keeps a caller on one side of a `split`: its key (default), its
    /// end user, or nothing (each request drawn anew).
    #[serde(default)]
    pub sticky: Option<Sticky>,
}

/// The conditions of a route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The model the client asked for (one name or a list).
    #[serde(default)]
    pub model: Option<Names>,
    #[serde(default)]
    pub tenant: Option<Names>,
    #[serde(default)]
    pub tenant_tier: Option<Names>,
    /// The app (store-managed keys and JWT callers).
    #[serde(default)]
    pub app: Option<Names>,
    /// Request headers `x-sluice-tag-<name>: <value>` that must be sent.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The prompt's estimated tokens exceed this.
    #[serde(default)]
    pub input_tokens_over: Option<u64>,
    /// The prompt's estimated tokens are at most this.
    #[serde(default)]
    pub input_tokens_under: Option<u64>,
    /// The request offers tools (true) or none (false).
    #[serde(default)]
    pub tools: Option<bool>,
    /// The request carries images (true) or none (false).
    #[serde(default)]
    pub images: Option<bool>,
    /// The request asks for a stream (true) or not (false).
    #[serde(default)]
    pub stream: Option<bool>,
}

/// One name or a list of names.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let s: &[String] = match self {
            Names::One(n) => std::slice::from_ref(n),
            Names::Many(v) => v,
        };
        s.iter().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Names::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let d = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::<String>::deserialize(d).map(Names::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// What keeps a caller on one side of a route's `split`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    #[default]
    Key,
    User,
    None,
}

/// One entry of a model's `fallbacks`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum FallbackConfig {
    /// A model tried on the retryable errors (rate limited, overloaded,
    /// timeout, connection, server error).
    Name(String),
    /// A model tried on the error classes listed.
    Rule(FallbackRule),
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackRule {
    pub model: String,
    /// The failures that move the request to `model`.
    pub on: Vec<FailureClass>,
}

/// A name, or a `{ model, on }` map whose own errors (an unknown class, an
/// unknown field) are reported as they are, not as "no variant matched".
impl<'de> Deserialize<'de> for FallbackConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FallbackConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a model name or `{ model: NAME, on: [failure classes] }`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FallbackConfig::Name(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                FallbackRule::deserialize(d).map(FallbackConfig::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

impl FallbackConfig {
    pub fn model(&self) -> &str {
        match self {
            FallbackConfig::Name(m) => m,
            FallbackConfig::Rule(r) => &r.model,
        }
    }
}

/// A class of upstream failure, as `fallbacks[].on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    RateLimited,
    Overloaded,
    Timeout,
    Connection,
    ServerError,
    ContextLengthExceeded,
    ContentFiltered,
    Auth,
}

/// `retries` of a model (`dispatch/retry.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Extra rounds over the candidates after every one failed with a
    /// retryable error. Default 0.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The first backoff's ceiling; it doubles each round (full jitter:
    /// a random wait up to it). Default 200ms.
    #[serde(default)]
    pub backoff: Option<Dur>,
    /// The ceiling of any backoff, and the longest `retry-after` honoured
    /// (a longer one ends the retries). Default 5s.
    #[serde(default)]
    pub max_backoff: Option<Dur>,
    /// Extra attempts (failover to another deployment or model, and
    /// retries) may be at most this share of the model's requests, over
    /// 10 s. Default 0.2.
    #[serde(default)]
    pub budget: Option<f64>,
    /// … plus this many a second whatever the traffic. Default 10.
    #[serde(default)]
    pub min_per_second: Option<u32>,
}

/// `circuit_breaker` of a model: when a deployment leaves the rotation
/// and how it comes back (`routing/breaker.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Default true; false keeps every deployment in the rotation.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Consecutive failures that open it. Default 5.
    #[serde(default)]
    pub failures: Option<u32>,
    /// Failed share of the requests in `window` that opens it (0–1).
    /// Default 0.5.
    #[serde(default)]
    pub failure_rate: Option<f64>,
    /// The window of `failure_rate`. Default 30s.
    #[serde(default)]
    pub window: Option<Dur>,
    /// Requests in the window before `failure_rate` applies. Default 20.
    #[serde(default)]
    pub min_requests: Option<u32>,
    /// How long it stays open before a trial. Default 30s.
    #[serde(default)]
    pub cooldown: Option<Dur>,
    /// Trial requests let through half-open. Default 1.
    #[serde(default)]
    pub half_open_requests: Option<u32>,
    /// An answer slower than this to start (a stream's headers, a whole
    /// answer otherwise) counts as a failure. Default: none.
    #[serde(default)]
    pub slow_call: Option<Dur>,
}

/// A tokenizer family (see `tokens.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// OpenAI's `o200k_base` (GPT-4o, 4.1, 5, o-series).
    O200k,
    /// OpenAI's `cl100k_base` (GPT-4, GPT-3.5, embeddings v3).
    Cl100k,
    /// One token per four bytes, at least one per word.
    Estimate,
}

/// Settings of one public API.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Apps need an approved subscription (`api:<name>`) to call it.
    #[serde(default)]
    pub requires_approval: bool,
}

/// Price in USD per million tokens. A config price replaces the built-in
/// one whole (`sluice prices` lists those).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: f64,
    /// Completion tokens (reasoning tokens included, unless `reasoning`
    /// prices them).
    pub output: f64,
    /// Prompt tokens read from the provider's cache. Default: `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Prompt tokens written to the provider's cache. Default: `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Reasoning (thinking) tokens, for a provider that prices them apart
    /// from output: they are part of the output tokens, so the rest of the
    /// output is charged at `output`. Default: `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    RoundRobin,
    Weighted,
    LeastBusy,
    LeastLatency,
    LowestCost,
    UsageAware,
}

/// One deployment of a model on a provider.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A `providers:` name.
    pub provider: String,
    /// The provider's model (or Azure deployment) name.
    pub model: String,
    /// Relative weight for `weighted`. Default 1.
    #[serde(default)]
    pub weight: Option<u32>,
    /// This deployment's price, when it differs from the model's (USD per
    /// million tokens): `lowest_cost` compares them, and what it serves is
    /// charged at it.
    #[serde(default)]
    pub price: Option<Price>,
    /// Requests a minute it may take (from this instance); beyond, it is
    /// skipped.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens (input + output) a minute it may take (from this instance).
    #[serde(default)]
    pub tpm: Option<u64>,
}

/// A policy reference: a name, an inline policy, or a list merged left to right.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PolicyRef {
    Name(String),
    Inline(Box<PolicyConfig>),
    List(Vec<PolicyItem>),
}

/// One item of a policy list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PolicyItem {
    Name(String),
    Inline(Box<PolicyConfig>),
}

/// A resource policy. Fields merge left to right when policies are combined.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `enforce` (default) or `shadow`: a shadow policy's rate limits are
    /// evaluated and recorded (`would_block`) but never refuse a request.
    #[serde(default)]
    pub mode: Option<PolicyMode>,
    /// Percentage (0–100, default 100) of callers the policy's rate limits
    /// apply to, chosen by a stable hash of the caller's key (or app) id.
    #[serde(default)]
    pub rollout: Option<f64>,
    /// Request rate limits (GCRA), counted per level the policy is attached to.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Requests in flight at once per level, and the admission queue for
    /// the excess.
    #[serde(default)]
    pub concurrency: Option<ConcurrencyConfig>,
    /// The class a caller's requests wait in when a concurrency queue
    /// holds them: `critical` > `high` > `normal` (default) > `low` >
    /// `batch`. The most specific level that sets it wins.
    #[serde(default)]
    pub priority: Option<crate::policy::queue::Priority>,
    /// USD budgets of the level the policy is attached to.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// Guards on each request.
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// Allow-list of model names; omitted = all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Keep the request and response bodies in the request log (redacted
    /// and cut to size). The most specific level that sets it wins.
    #[serde(default)]
    pub log_bodies: Option<LogBodiesConfig>,
}

/// Request and response bodies in the request log (`log_bodies:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogBodiesConfig {
    /// Longest body kept, in bytes; longer ones are cut (and marked).
    /// Default 4KiB, at most 1MiB.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// JSON keys (any depth, case-insensitive) whose values are replaced
    /// by `"[REDACTED]"`, besides the built-in `api_key`, `apikey`,
    /// `authorization`, `password`, `secret`.
    #[serde(default)]
    pub redact: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    Enforce,
    Shadow,
}

/// Request rate limits. Every interval set is enforced; merged field by
/// field when policies are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second.
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    /// Requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Requests per hour.
    #[serde(default)]
    pub requests_per_hour: Option<u32>,
    /// Requests per day.
    #[serde(default)]
    pub requests_per_day: Option<u32>,
    /// Input + output tokens per minute: each request reserves its prompt
    /// tokens plus its maximum output at admission and settles to the real
    /// usage when it ends.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Input + output tokens per day (reserved and settled the same way).
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Requests that may arrive at once, on the shortest interval set.
    /// Default: that interval's full count. Longer intervals always allow
    /// their full count at once.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Count separately for each end user (`user`) or client IP (`ip`)
    /// within the level the limit is attached to. Default: one counter.
    #[serde(default)]
    pub per: Option<RatePer>,
}

/// `concurrency` of a policy: slots per level, and the queue for the excess.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Requests of the level holding a slot at once (until their answer,
    /// stream included, ends). Required.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Requests that may wait for a slot; the next is refused (429).
    /// Default 0: the excess is refused at once.
    #[serde(default)]
    pub queue: Option<u32>,
    /// The longest a request waits for a slot before a 503. Default 30s.
    #[serde(default)]
    pub queue_timeout: Option<Dur>,
}

/// `budget` of a policy: USD per UTC calendar period, spent at the models'
/// prices.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// USD per UTC day.
    #[serde(default)]
    pub usd_per_day: Option<f64>,
    /// USD per ISO week (from Monday 00:00 UTC).
    #[serde(default)]
    pub usd_per_week: Option<f64>,
    /// USD per calendar month (from the 1st, 00:00 UTC).
    #[serde(default)]
    pub usd_per_month: Option<f64>,
    /// Fractions of a budget (0 < f ≤ 1) whose crossing emits an alert.
    #[serde(default)]
    pub alert_at: Option<Vec<f64>>,
    /// What happens when a request would exceed the budget: `block`
    /// (default), `alert_only`, or `downgrade:<model>`.
    #[serde(default)]
    pub on_exceed: Option<OnExceed>,
}

/// What a budget does when a request would exceed it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum OnExceed {
    /// Refuse the request (402).
    Block,
    /// Let it through, spend is still counted; alert.
    AlertOnly,
    /// Serve it with this (cheaper) model instead.
    Downgrade(String),
}

impl TryFrom<String> for OnExceed {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "block" => Ok(OnExceed::Block),
            "alert_only" => Ok(OnExceed::AlertOnly),
            _ => match s.strip_prefix("downgrade:").map(str::trim) {
                Some(m) if !m.is_empty() => Ok(OnExceed::Downgrade(m.to_owned())),
                _ => Err(format!(
                    "`{s}` is not one of `block`, `alert_only`, `downgrade:<model>`"
                )),
            },
        }
    }
}

/// What shared limits do when the shared state cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharedStateFailure {
    /// Count on this instance alone until the shared state is back.
    #[default]
    Local,
    /// Admit the request.
    FailOpen,
    /// Refuse it (503).
    FailClosed,
}

impl SharedStateFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            SharedStateFailure::Local => "local",
            SharedStateFailure::FailOpen => "fail_open",
            SharedStateFailure::FailClosed => "fail_closed",
        }
    }
}

/// What a partitioned rate limit counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RatePer {
    /// The end user: the JWT's user claim, the body's `user`
    /// (`metadata.user_id`), or `server.end_user_header`.
    User,
    /// The client IP: the TCP peer, or `server.client_ip_header`.
    Ip,
}

/// Per-request guards.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body.
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
    /// Largest prompt, in estimated tokens.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Cap on requested output tokens (by default clamped; absent → set
    /// to the cap).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// What a request asking for more than `max_output_tokens` gets:
    /// `clamp` (default: its `max_tokens` is lowered to the cap) or
    /// `reject` (400). A request that sets no `max_tokens` is clamped.
    #[serde(default)]
    pub on_max_output: Option<OverMaxOutput>,
    /// Whole-request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// What `max_output_tokens` does to a request asking for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverMaxOutput {
    /// Lower the request's `max_tokens` to the cap.
    Clamp,
    /// Refuse the request (400).
    Reject,
}

/// A seed tenant.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub policy: Option<PolicyRef>,
}

/// A static API key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Shown in logs and metrics instead of the secret.
    pub name: String,
    /// The secret the client sends (stored hashed in memory).
    #[schemars(with = "String")]
    pub key: Secret,
    /// A `tenants:` name.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub policy: Option<PolicyRef>,
}
