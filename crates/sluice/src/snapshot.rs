//! The runtime snapshot: the validated config turned into lookup-ready form
//! (hashed keys, resolved deployments, built adapters). Requests load it once
//! from an `ArcSwap` and keep it; a reload builds a new one aside with the same
//! code and swaps it. Counters and other live state never live here.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use sluice_providers::anthropic::AnthropicAdapter;
use sluice_providers::gemini::GeminiAdapter;
use sluice_providers::openai::{Flavor, OpenAiAdapter};
use sluice_providers::{Adapter, Target};

use crate::config::merge::{flatten, items};
use crate::config::raw::{self, LimitsConfig, PolicyRef, ProviderKind, RawConfig};
use crate::mock::MockProvider;
use crate::policy::budget::BudgetRule;
use crate::policy::concurrency::{Flows, QueueRule};
use crate::policy::queue::Priority;
use crate::policy::rate::RateRule;
use crate::policy::{rollout_bucket, Scope};
use crate::routing::breaker::BreakerSpec;
use crate::routing::retry::{RetryBudget, RetrySpec};
use crate::routing::usage::Caps;
use crate::routing::{ClassSet, Upstream, Upstreams};
use crate::telemetry::metrics::Handles;

/// How one provider is reached.
pub enum Backend {
    /// An HTTP API, translated by this adapter.
    Http(Box<dyn Adapter>),
    /// The built-in offline provider.
    Mock(MockProvider),
}

pub struct Provider {
    pub name: Arc<str>,
    /// `name` as a response header value (`x-sluice-provider`), built once.
    pub header: Option<HeaderValue>,
    pub kind: ProviderKind,
    pub backend: Backend,
    /// True for OpenAI-format upstreams, whose answers can be relayed verbatim
    /// to OpenAI-format clients.
    pub openai_wire: bool,
    /// Its active health check, if configured.
    pub health: Option<HealthCheck>,
}

/// A provider's active health check (`routing/probe.rs`).
#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub path: Option<String>,
}

/// Where a deployment's price comes from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// Its own `price` in the config.
    Deployment,
    /// Its model's `price` in the config.
    Model,
    /// The built-in table's entry (`pricing.rs`) with this id.
    Builtin(&'static str),
    /// None: nothing it serves is charged.
    Unpriced,
}

/// A deployment's price and where it comes from: its own `price`, its
/// model's, the built-in table's for its upstream model (not for the
/// free `mock` provider), or none. A config price replaces the built-in
/// one whole.
pub fn resolve_price(
    kind: ProviderKind,
    model: &raw::ModelConfig,
    d: &raw::DeploymentConfig,
) -> (Option<raw::Price>, PriceSource) {
    if let Some(p) = d.price {
        return (Some(p), PriceSource::Deployment);
    }
    if let Some(p) = model.price {
        return (Some(p), PriceSource::Model);
    }
    match crate::pricing::for_deployment(kind, &d.model) {
        Some(b) => (Some(b.price), PriceSource::Builtin(b.key)),
        None => (None, PriceSource::Unpriced),
    }
}

pub struct Deployment {
    pub provider: Arc<Provider>,
    pub target: Target,
    /// Relative share under `strategy: weighted` (1 by default).
    pub weight: u32,
    /// Its own price, else the model's, else the built-in one for its
    /// upstream model: what it serves is charged at it.
    pub price: Option<raw::Price>,
    /// Where `price` comes from.
    pub price_source: PriceSource,
    /// Stable identity (`model/provider/upstream model`) of its live state.
    pub key: Arc<str>,
    /// Its `rpm` / `tpm` caps.
    pub caps: Caps,
    /// Its room is tracked (it has caps, or the model is `usage_aware`).
    pub counted: bool,
    /// The provider's limits are learned from its answers (`usage_aware`).
    pub learns: bool,
    /// Its live state in the dispatcher's `Upstreams`, found on first use.
    live: std::sync::OnceLock<Arc<Upstream>>,
    /// Metric handles of (model, provider), resolved on first use.
    pub series: std::sync::OnceLock<crate::telemetry::metrics::SeriesHandles>,
}

impl Deployment {
    /// Its live state (in flight, latency, breaker), kept across reloads.
    pub fn live(&self, ups: &Upstreams) -> &Arc<Upstream> {
        self.live.get_or_init(|| ups.get(&self.key))
    }
}

/// One of a model's fallbacks: the model, and the failures that lead to it.
pub struct Fallback {
    pub model: Arc<str>,
    pub on: ClassSet,
}

pub struct Model {
    pub name: Arc<str>,
    /// `name` as a response header value (`x-sluice-model`), built once.
    pub header: Option<HeaderValue>,
    pub deployments: Vec<Deployment>,
    /// Other models to try, each on its failure classes.
    pub fallbacks: Vec<Fallback>,
    /// Retry rounds and the retry budget.
    pub retries: RetrySpec,
    pub price: Option<raw::Price>,
    /// Guards of the model's own policy (enforced together with the key's).
    pub limits: LimitsConfig,
    /// The rate limits of the model's own policy (counters per model), for
    /// every rollout bucket range.
    pub rates: Box<[RateRule]>,
    /// The concurrency limit of the model's own policy.
    pub queues: Box<[QueueRule]>,
    /// The budget of the model's own policy (spend on this model).
    pub budgets: Box<[Arc<BudgetRule>]>,
    /// Apps need an approved `model:<name>` subscription.
    pub requires_approval: bool,
    /// How its prompts are counted (`tokens.rs`).
    pub tokenizer: raw::Tokenizer,
    /// How deployments are ordered (`routing/balance.rs`).
    pub strategy: raw::Strategy,
    /// Each deployment's circuit breaker; `None` when disabled.
    pub breaker: Option<BreakerSpec>,
    /// The highest of its deployments' prices, figure by figure: what a
    /// budget reserves (the serving deployment's price is charged).
    pub reserve_price: Option<raw::Price>,
    /// Its retry budget in the dispatcher's `Upstreams`, found on first use.
    budget: std::sync::OnceLock<Arc<RetryBudget>>,
    /// How long its answers stay in the response cache; `None`: never
    /// cached (no `cache:` on the model).
    pub cache_ttl: Option<Duration>,
    /// `sluice_cache_requests_total{model}` for a miss (0) and a hit (1),
    /// looked up once: a lookup then costs no label hashing.
    pub cache_lookups: Handles<Counter, 2>,
    /// Balancer cursor (reset by reload, harmless).
    pub cursor: AtomicUsize,
    /// Sum of weights under `strategy: weighted`.
    pub total_weight: u64,
}

impl Model {
    /// Its retry budget (kept across reloads, by name).
    pub fn retry_budget(&self, ups: &Upstreams) -> &Arc<RetryBudget> {
        self.budget.get_or_init(|| ups.budget(&self.name))
    }
}

/// A caller's resolved identity and effective guards.
pub struct KeyInfo {
    pub name: Arc<str>,
    pub tenant: Option<Arc<str>>,
    /// The tenant's tier (`routes` match on it).
    pub tier: Option<Arc<str>>,
    /// The app's name (store-managed keys and JWT callers).
    pub app: Option<Arc<str>>,
    /// A stable hash of the key (or app) id: keeps it on one side of a
    /// route's `split`.
    pub sticky: u64,
    /// Allowed model names (policies and scopes together); `None` = all.
    pub models: Option<Vec<Arc<str>>>,
    pub limits: LimitsConfig,
    /// Rate limits of every attached level (global, tenant, app, key) that
    /// apply to this caller's rollout bucket, in that order, each counted for
    /// everything under its level.
    pub rates: Box<[RateRule]>,
    /// Concurrency limits of every attached level, in level order.
    pub queues: Box<[QueueRule]>,
    /// The class its requests wait in.
    pub priority: Priority,
    /// USD budgets of every attached level.
    pub budgets: Box<[Arc<BudgetRule>]>,
    /// Request and response bodies to keep in the request log.
    pub log_bodies: Option<Arc<crate::telemetry::request_log::bodies::BodySpec>>,
    /// Its fair-queueing flows (the end user's is per request).
    pub flows: Flows,
    /// Stable bucket of the key (or app) id for policies' `rollout`.
    pub rollout_bucket: u16,
    /// Set for store-managed keys and app identities (JWT); `None` for the
    /// config's static keys.
    pub managed: Option<Managed>,
}

/// What a store-managed identity carries beyond its guards.
pub struct Managed {
    /// The store key id; `None` for an app identity (JWT caller).
    pub key_id: Option<Arc<str>>,
    pub app_id: Arc<str>,
    pub app: Arc<str>,
    pub tenant_id: Arc<str>,
    /// Unix ms after which the key is refused.
    pub expires_at: Option<i64>,
    /// APIs the key's scopes allow; `None` = all.
    pub apis: Option<Vec<Arc<str>>>,
    /// Why the identity is refused although it exists (e.g. a policy that no
    /// longer resolves against the config): fail closed, say why.
    pub denied: Option<Arc<str>>,
}

impl KeyInfo {
    pub fn may_use(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|n| &**n == model))
    }
}

pub struct Snapshot {
    pub version: u64,
    /// The validated config this was built from (policies by name, for
    /// resolving store-managed entities' policies).
    pub config: Arc<RawConfig>,
    /// APIs (`chat`, `messages`, `embeddings`, `models`) that need an
    /// approved `api:<name>` subscription.
    pub apis_requiring_approval: Vec<String>,
    pub models: NameMap<Arc<Model>>,
    /// Sorted model names, for error messages and `/v1/models`.
    pub model_names: Vec<Arc<str>>,
    /// SHA-256 of the secret → key.
    pub keys: DigestMap<Arc<KeyInfo>>,
    pub admin_key_hash: Option<[u8; 32]>,
    pub max_body_bytes: usize,
    pub timeouts: Timeouts,
    pub access_log: bool,
    /// `server.end_user_header`: names the end user for `per: user` limits.
    pub end_user_header: Option<HeaderName>,
    /// `server.client_ip_header`: its left-most address is the client IP.
    pub client_ip_header: Option<HeaderName>,
    /// The compiled `routes:`.
    pub routes: crate::routing::routes::Routes,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub total: Duration,
    pub stream_idle: Duration,
}

/// Hashes a map keyed by SHA-256 digests with the digest's own first bytes:
/// they are already uniform, so SipHash would be wasted work per request
/// (lookups by attacker-chosen secrets are digested first, and the table's
/// contents come from the config and the store).
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(word);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a for short names from the config (model names): looked up several
/// times per request, never inserted from request data, so SipHash's
/// flooding resistance buys nothing here.
#[derive(Clone, Copy)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by config names.
pub type NameMap<V> = HashMap<Arc<str>, V, std::hash::BuildHasherDefault<NameHasher>>;

/// A map keyed by SHA-256 digests (API key hashes).
pub type DigestMap<V> = HashMap<[u8; 32], V, std::hash::BuildHasherDefault<DigestHasher>>;

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        ProviderKind::Azure | ProviderKind::Mock => "",
    }
}

fn build_provider(name: &str, p: &raw::ProviderConfig) -> Result<Provider, String> {
    let backend = match p.kind {
        ProviderKind::Mock => Backend::Mock(MockProvider::new(p.mock.clone().unwrap_or_default())),
        ProviderKind::Openai => Backend::Http(Box::new(OpenAiAdapter::new(Flavor::OpenAi))),
        ProviderKind::Azure => Backend::Http(Box::new(OpenAiAdapter::new(Flavor::Azure))),
        ProviderKind::Anthropic => Backend::Http(Box::new(AnthropicAdapter)),
        ProviderKind::Gemini => Backend::Http(Box::new(GeminiAdapter)),
    };
    let openai_wire = matches!(p.kind, ProviderKind::Openai | ProviderKind::Azure);
    Ok(Provider {
        name: name.into(),
        header: HeaderValue::from_str(name).ok(),
        kind: p.kind,
        backend,
        openai_wire,
        health: p.health_check.as_ref().map(|h| HealthCheck {
            interval: h
                .interval
                .map_or(std::time::Duration::from_secs(30), |d| d.0),
            timeout: h.timeout.map_or(std::time::Duration::from_secs(5), |d| d.0),
            path: h.path.clone(),
        }),
    })
}

fn target(p: &raw::ProviderConfig, model: &str) -> Result<Target, String> {
    let mut headers = Vec::new();
    for (k, v) in &p.headers {
        let name = HeaderName::try_from(k.as_str())
            .map_err(|_| format!("header name `{k}` is invalid"))?;
        let value = HeaderValue::try_from(v.as_str())
            .map_err(|_| format!("header `{k}` has an invalid value"))?;
        headers.push((name, value));
    }
    Ok(Target {
        base_url: p
            .base_url
            .clone()
            .unwrap_or_else(|| default_base_url(p.kind).into())
            .trim_end_matches('/')
            .to_owned(),
        model: model.to_owned(),
        api_key: p.api_key.as_ref().map(|s| s.expose().to_owned()),
        api_version: p.api_version.clone(),
        headers,
    })
}

/// The tighter of two sets of guards: every attached limit holds.
pub fn tighter(a: LimitsConfig, b: LimitsConfig) -> LimitsConfig {
    fn min<T: Ord>(x: Option<T>, y: Option<T>) -> Option<T> {
        match (x, y) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }
    LimitsConfig {
        max_body_bytes: min(a.max_body_bytes, b.max_body_bytes),
        max_input_tokens: min(a.max_input_tokens, b.max_input_tokens),
        max_output_tokens: min(a.max_output_tokens, b.max_output_tokens),
        // `reject` is stricter than `clamp`.
        on_max_output: a.on_max_output.max(b.on_max_output),
        timeout: min(a.timeout, b.timeout),
    }
}

/// One level a caller is attached to: where it sits, and its policy.
pub type Level<'a> = (Scope, Option<&'a PolicyRef>);

/// What a caller's levels add up to.
pub struct Combined {
    pub limits: LimitsConfig,
    /// The intersection of the levels' allow-lists; `None` = all models.
    pub models: Option<Vec<String>>,
    /// The levels' rate rules in level order (per level at most an enforced
    /// rule and a shadow overlay).
    pub rates: Box<[RateRule]>,
    /// The levels' concurrency limits, one per level that sets one.
    pub queues: Box<[QueueRule]>,
    /// The caller's priority class: the most specific level's.
    pub priority: Priority,
    /// The levels' USD budgets, one per level that sets one.
    pub budgets: Box<[Arc<BudgetRule>]>,
    /// Body capture for the request log: the most specific level's.
    pub log_bodies: Option<Arc<crate::telemetry::request_log::bodies::BodySpec>>,
}

/// Every level holds: the tighter guard and the intersection of
/// allow-lists win, and each level's rate limits are its own rules (those
/// for the caller's rollout `bucket`, or all when it is `None`). A level's
/// policy list merges left to right first.
pub fn combine_levels(cfg: &RawConfig, levels: &[Level<'_>], bucket: Option<u16>) -> Combined {
    let mut limits = LimitsConfig::default();
    let mut allowed: Option<Vec<String>> = None;
    let mut rates = Vec::new();
    let mut queues = Vec::new();
    let mut priority = None;
    let mut budgets = Vec::new();
    let mut log_bodies = None;
    for (scope, r) in levels {
        let flat = flatten(cfg, *r);
        limits = tighter(limits, flat.limits.unwrap_or_default());
        allowed = intersect(allowed, flat.models);
        rates.extend(RateRule::of_level(scope, &items(cfg, *r), bucket));
        queues.extend(QueueRule::of_level(scope, flat.concurrency.as_ref()));
        priority = flat.priority.or(priority);
        log_bodies = flat.log_bodies.or(log_bodies);
        budgets.extend(BudgetRule::of_level(scope, flat.budget.as_ref()).map(Arc::new));
    }
    Combined {
        limits,
        models: allowed,
        rates: rates.into_boxed_slice(),
        queues: queues.into_boxed_slice(),
        priority: priority.unwrap_or_default(),
        budgets: budgets.into_boxed_slice(),
        log_bodies: log_bodies
            .map(|b| Arc::new(crate::telemetry::request_log::bodies::BodySpec::new(&b))),
    }
}

/// The highest of `prices`, figure by figure (`None` when there is none).
fn highest_price(prices: impl Iterator<Item = raw::Price>) -> Option<raw::Price> {
    let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    prices.reduce(|a, b| raw::Price {
        input: a.input.max(b.input),
        output: a.output.max(b.output),
        cache_read: max(a.cache_read, b.cache_read),
        cache_write: max(a.cache_write, b.cache_write),
        reasoning: max(a.reasoning, b.reasoning),
    })
}

/// A fallback entry: a name alone falls back on the retryable failures.
fn fallback(f: &raw::FallbackConfig) -> Fallback {
    Fallback {
        model: f.model().into(),
        on: match f {
            raw::FallbackConfig::Name(_) => ClassSet::RETRYABLE,
            raw::FallbackConfig::Rule(r) => ClassSet::of(&r.on),
        },
    }
}

/// A model's retry settings, defaults filled in.
fn retry_spec(c: Option<&raw::RetryConfig>) -> RetrySpec {
    let d = RetrySpec::default();
    let Some(c) = c else {
        return d;
    };
    RetrySpec {
        attempts: c.attempts.unwrap_or(d.attempts),
        backoff: c.backoff.map_or(d.backoff, |b| b.0),
        max_backoff: c.max_backoff.map_or(d.max_backoff, |b| b.0),
        budget: c.budget.unwrap_or(d.budget),
        min_per_second: c.min_per_second.unwrap_or(d.min_per_second),
    }
}

/// A model's breaker settings, defaults filled in; `None` when disabled.
fn breaker_spec(c: Option<&raw::BreakerConfig>) -> Option<BreakerSpec> {
    let d = BreakerSpec::default();
    let Some(c) = c else {
        return Some(d);
    };
    if c.enabled == Some(false) {
        return None;
    }
    Some(BreakerSpec {
        failures: c.failures.unwrap_or(d.failures),
        failure_rate: c.failure_rate.unwrap_or(d.failure_rate),
        window: c.window.map_or(d.window, |w| w.0),
        min_requests: c.min_requests.unwrap_or(d.min_requests),
        cooldown: c.cooldown.map_or(d.cooldown, |w| w.0),
        half_open_requests: c.half_open_requests.unwrap_or(d.half_open_requests),
        slow_call: c.slow_call.map(|s| s.0),
    })
}

/// The intersection of two allow-lists (`None` = everything).
pub fn intersect(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.into_iter().filter(|m| y.contains(m)).collect()),
        (x, y) => x.or(y),
    }
}

fn header_name(name: Option<&String>) -> Option<HeaderName> {
    name.and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
}

impl Snapshot {
    /// Builds the snapshot from a config that passed validation.
    pub fn build(cfg: &RawConfig, version: u64) -> Result<Snapshot, String> {
        let mut providers = HashMap::new();
        for (name, p) in &cfg.providers {
            providers.insert(name.as_str(), (Arc::new(build_provider(name, p)?), p));
        }
        let mut models = NameMap::default();
        for (name, m) in &cfg.models {
            let mut deployments = Vec::new();
            let usage_aware = m.strategy == Some(raw::Strategy::UsageAware);
            for d in &m.deployments {
                let (prov, pcfg) = providers
                    .get(d.provider.as_str())
                    .ok_or_else(|| format!("models.{name}: unknown provider `{}`", d.provider))?;
                let (price, price_source) = resolve_price(pcfg.kind, m, d);
                deployments.push(Deployment {
                    provider: prov.clone(),
                    target: target(pcfg, &d.model)?,
                    weight: d.weight.unwrap_or(1),
                    price,
                    price_source,
                    key: crate::routing::deployment_key(name, &d.provider, &d.model),
                    caps: Caps {
                        rpm: d.rpm,
                        tpm: d.tpm,
                    },
                    counted: d.rpm.is_some() || d.tpm.is_some() || usage_aware,
                    learns: usage_aware,
                    live: std::sync::OnceLock::new(),
                    series: std::sync::OnceLock::new(),
                });
            }
            let own = combine_levels(cfg, &[(Scope::model(name), m.policy.as_ref())], None);
            let tokenizer = m.tokenizer.unwrap_or_else(|| {
                deployments.first().map_or(raw::Tokenizer::Estimate, |d| {
                    raw::Tokenizer::infer(d.provider.kind, &d.target.model)
                })
            });
            let model = Model {
                tokenizer,
                name: name.as_str().into(),
                header: HeaderValue::from_str(name).ok(),
                fallbacks: m.fallbacks.iter().map(fallback).collect(),
                retries: retry_spec(m.retries.as_ref()),
                price: m.price,
                reserve_price: highest_price(deployments.iter().filter_map(|d| d.price)),
                deployments,
                requires_approval: m.requires_approval,
                strategy: m.strategy.unwrap_or_default(),
                breaker: breaker_spec(m.circuit_breaker.as_ref()),
                budget: std::sync::OnceLock::new(),
                cache_ttl: m.cache.map(|c| {
                    let default = cfg.cache.unwrap_or_default().ttl;
                    c.ttl.unwrap_or(default).0
                }),
                cache_lookups: Handles::default(),
                cursor: AtomicUsize::new(0),
                total_weight: m
                    .deployments
                    .iter()
                    .map(|d| u64::from(d.weight.unwrap_or(1)))
                    .sum(),
                limits: own.limits,
                rates: own.rates,
                queues: own.queues,
                budgets: own.budgets,
            };
            models.insert(model.name.clone(), Arc::new(model));
        }
        let mut model_names: Vec<Arc<str>> = models.keys().cloned().collect();
        model_names.sort();
        let mut keys = DigestMap::default();
        for k in &cfg.keys {
            // Every attached level is enforced: the global, tenant and key
            // policies each hold.
            let tenant = k.tenant.as_ref().and_then(|t| cfg.tenants.get(t));
            let id = format!("cfg:{}", k.name);
            let mut levels = vec![(Scope::global(), cfg.global_policy.as_ref())];
            if let (Some(name), Some(t)) = (&k.tenant, tenant) {
                levels.push((Scope::tenant(name), t.policy.as_ref()));
            }
            levels.push((Scope::key(&id, &k.name), k.policy.as_ref()));
            let bucket = rollout_bucket(&id);
            let c = combine_levels(cfg, &levels, Some(bucket));
            let info = KeyInfo {
                name: k.name.as_str().into(),
                tenant: k.tenant.as_deref().map(Into::into),
                tier: k
                    .tenant
                    .as_ref()
                    .and_then(|t| cfg.tenants.get(t))
                    .and_then(|t| t.tier.as_deref())
                    .map(Into::into),
                app: None,
                sticky: crate::routing::routes::stable_hash(&id),
                models: c
                    .models
                    .map(|v| v.iter().map(|s| s.as_str().into()).collect()),
                limits: c.limits,
                rates: c.rates,
                queues: c.queues,
                priority: c.priority,
                budgets: c.budgets,
                log_bodies: c.log_bodies,
                flows: Flows {
                    tenant: Flows::hash(k.tenant.as_deref().unwrap_or(&id)),
                    app: Flows::hash(&id),
                    key: Flows::hash(&id),
                    user: 0,
                },
                rollout_bucket: bucket,
                managed: None,
            };
            keys.insert(hash_secret(k.key.expose()), Arc::new(info));
        }
        Ok(Snapshot {
            version,
            config: Arc::new(cfg.clone()),
            apis_requiring_approval: cfg
                .apis
                .iter()
                .filter(|(_, a)| a.requires_approval)
                .map(|(n, _)| n.clone())
                .collect(),
            models,
            model_names,
            keys,
            admin_key_hash: cfg.admin_key.as_ref().map(|k| hash_secret(k.expose())),
            max_body_bytes: cfg.server.max_body_bytes.0 as usize,
            timeouts: Timeouts {
                first_byte: cfg.server.first_byte_timeout.0,
                total: cfg.server.total_timeout.0,
                stream_idle: cfg.server.stream_idle_timeout.0,
            },
            access_log: cfg.log.access_log,
            end_user_header: header_name(cfg.server.end_user_header.as_ref()),
            client_ip_header: header_name(cfg.server.client_ip_header.as_ref()),
            routes: crate::routing::routes::Routes::build(&cfg.routes),
        })
    }

    /// The model names this key may use, sorted.
    pub fn allowed_models(&self, key: &KeyInfo) -> Vec<&str> {
        self.model_names
            .iter()
            .filter(|m| key.may_use(m))
            .map(|m| &**m)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(yaml: &str) -> Snapshot {
        let cfg = crate::config::load_str(yaml, std::path::Path::new("t.yaml"), &|_| None).unwrap();
        Snapshot::build(&cfg, 1).unwrap()
    }

    #[test]
    fn weighted_order_follows_weights_and_round_robin_rotates() {
        let s = snapshot(
            "providers: { p: { kind: mock } }\nmodels:\n  w:\n    strategy: weighted\n    deployments: [ { provider: p, model: a, weight: 3 }, { provider: p, model: b, weight: 1 } ]\n  r:\n    deployments: [ { provider: p, model: a }, { provider: p, model: b }, { provider: p, model: c } ]\n",
        );
        let ups = Upstreams::default();
        let order = |m: &Model| crate::routing::balance::order(m, &ups);
        let w = &s.models["w"];
        let firsts: Vec<usize> = (0..400).map(|_| order(w)[0]).collect();
        assert_eq!(firsts.iter().filter(|i| **i == 0).count(), 300);
        assert_eq!(order(w).len(), 2, "every deployment stays a fallback");
        let r = &s.models["r"];
        let orders: Vec<Vec<usize>> = (0..3).map(|_| order(r)).collect();
        assert_eq!(orders, [vec![0, 1, 2], vec![1, 0, 2], vec![2, 0, 1]]);
    }

    #[test]
    fn levels_all_hold_and_lists_merge_left_to_right() {
        let s = snapshot(
            "providers: { p: { kind: mock } }\nmodels:\n  a: { deployments: [ { provider: p, model: a } ] }\n  b: { deployments: [ { provider: p, model: b } ] }\n  c: { deployments: [ { provider: p, model: c } ] }\npolicies:\n  loose: { limits: { max_output_tokens: 4000, timeout: 10s }, models: [a, b] }\nglobal_policy: { limits: { max_output_tokens: 100 } }\ntenants: { t: { policy: { models: [b, c] } } }\nkeys:\n  - { name: k, key: secret-0001, tenant: t, policy: [loose, { limits: { max_output_tokens: 500 } }] }\n",
        );
        let k = &s.keys[&hash_secret("secret-0001")];
        // The key's list: 4000 overridden by 500; the global 100 is tighter still.
        assert_eq!(k.limits.max_output_tokens, Some(100));
        assert_eq!(
            k.limits.timeout.map(|t| t.0),
            Some(std::time::Duration::from_secs(10))
        );
        // Key allows a, b; tenant allows b, c: only b.
        assert_eq!(s.allowed_models(k), ["b"]);
    }
}
