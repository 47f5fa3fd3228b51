//! The request pipeline: the ordered stages every LLM request goes through, the
//! typed context they share, and completion, which runs exactly once.
//!
//! | # | stage            | reads                                   | writes                          |
//! |---|------------------|-----------------------------------------|---------------------------------|
//! | 1 | request id       | `x-request-id`, client IP / end-user headers | `ctx.id`, `ctx.client_ip`  |
//! | 2 | auth             | `Authorization` / `x-api-key`, snapshot | `ctx.key`                       |
//! | 3 | body + parse     | body (size guard), inbound format       | typed request                   |
//! | 4 | model + guards   | `model`, key allow-list, policy limits  | `ctx.model`, clamped max tokens |
//! | 4a| route (before the guards) | `routes:`, tenant, tier, app, tags, size | serving model, `ctx.route` |
//! | 4b| budgets          | levels' budgets, model price            | `ctx.budget` (or 402, downgrade)|
//! | 5 | rate limits      | key's and model's rules, end user, IP   | counters, `ctx.rate` (or 429)   |
//! | 5a| cache            | model's `cache:`, `Cache-Control`, key  | `ctx.cache` (a hit answers)     |
//! | 5b| concurrency      | key's and model's queues, priority      | `ctx.held` slots (or 429 / 503) |
//! | 6 | route + dispatch | model deployments, fallbacks            | answer, `ctx.attempts`          |
//! | 7 | relay (per chunk)| each streamed chunk                     | `ctx.usage`, `ctx.ttft`         |
//! | 8 | complete (once)  | the whole ctx                           | access log, metrics, trace spans|
//!
//! A cache hit (5a) skips 5b–6: it takes no slot and calls no upstream;
//! its budgets settle at 0 and its token holds at 0 tokens. A miss's
//! complete answer is stored at 7 (`pipeline/cache.rs`).
//!
//! Stages 1–5 are methods of [`RequestCtx`] called by the handlers in
//! `http/` (5 is `policy::rate`: requests refused before it count against
//! no rate limit); 6 is `dispatch`; 7 `http::sse`; 8 is [`RequestCtx`]'s
//! `Drop`, so it runs exactly once whether the request succeeded, failed,
//! or the client went away mid-stream. Every answer past stage 5 carries
//! the `x-ratelimit-*` headers ([`RequestCtx::decorate`]). Handlers run
//! 4b–5b through `RequestCtx::admit` (`pipeline/admit.rs`): in table order
//! on one instance, as one Redis call with `shared_state`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};
use sluice_types::{ApiFormat, ChatRequest, TokenUsage};
use subtle::ConstantTimeEq;

use crate::config::raw::{LimitsConfig, OverMaxOutput};
use crate::directory::Directory;
use crate::dispatch::Attempts;
use crate::error::{ErrorKind, GatewayError};
use crate::policy::budget::{self, Budgets, Charges};
use crate::policy::concurrency::{Ask, Flows, Held, Refused};
use crate::policy::rate::{RateNote, Who};
use crate::policy::{Decision, ScopeKind};
use crate::snapshot::{hash_secret, tighter, KeyInfo, Managed, Model, Snapshot};
use crate::state::App;
use crate::telemetry::access_log;
use crate::telemetry::metrics::BudgetLabels;
use crate::telemetry::otel::{self, request::RequestTrace};
use crate::tokens::{count_chat_input, count_embedding_input};

mod admit;
mod cache;
mod route;

pub use cache::CacheNote;

/// The identity behind a presented secret: a static key of the config, else
/// a store-managed key of the directory. Hashes once; no I/O, no lock.
pub fn find_key(snap: &Snapshot, dir: &Directory, secret: &str) -> Option<Arc<KeyInfo>> {
    let hash = hash_secret(secret);
    snap.keys
        .get_key_value(&hash)
        .or_else(|| dir.keys.get_key_value(&hash))
        .filter(|(h, _)| bool::from(h.ct_eq(&hash)))
        .map(|(_, k)| k.clone())
}

/// Everything known about one request, shared by the stages.
pub struct RequestCtx {
    pub app: App,
    pub id: String,
    pub format: ApiFormat,
    pub endpoint: &'static str,
    pub started: Instant,
    /// The config snapshot, loaded once for the whole request.
    pub snap: Arc<Snapshot>,
    pub key: Option<Arc<KeyInfo>>,
    /// The end user: a JWT's user claim.
    pub user: Option<String>,
    /// The end user named by `server.end_user_header`, if configured and sent.
    pub user_header: Option<HeaderValue>,
    /// The end user the request body named (OpenAI `user`, Anthropic
    /// `metadata.user_id`), kept for the request log.
    pub body_user: Option<String>,
    /// Bodies kept for the request log (callers with `log_bodies`).
    pub bodies: Option<Box<crate::telemetry::request_log::bodies::Captured>>,
    /// The client IP: `server.client_ip_header`'s left-most address, else
    /// the TCP peer.
    pub client_ip: Option<IpAddr>,
    /// What the rate-limit stage recorded (headers, refusing rule).
    pub rate: RateNote,
    /// The model whose rate or budget rules hold tokens or money for the
    /// request, kept to settle them (holds and charges name their rules
    /// by place: `policy/few.rs`).
    pub policy_model: Option<Arc<Model>>,
    /// The concurrency slots held until the answer ends, and the wait.
    pub held: Held,
    /// The level and reason of a concurrency refusal.
    pub queue_refused: Option<(ScopeKind, &'static str)>,
    /// Budget reservations, settled when the request ends.
    pub budget: Charges,
    /// The model the request asked for, when a budget moved it to another.
    pub downgraded_from: Option<Arc<str>>,
    /// The route (`routes:`) that picked the serving model.
    pub route: Option<Arc<str>>,
    /// The `x-sluice-tag-*` headers routes read (`Routes::tag_headers`).
    pub tags: Vec<Option<HeaderValue>>,
    /// What the answer cost, at the serving model's price.
    pub cost_micro_usd: Option<u64>,
    /// Effective guards: the key's, tightened by the model's once it is known.
    pub limits: LimitsConfig,
    /// Size of the request body read.
    pub body_len: usize,
    pub requested_model: Option<String>,
    pub stream: bool,
    pub attempts: Attempts,
    pub usage: TokenUsage,
    /// Whether the upstream reported usage (else it is estimated).
    pub usage_reported: bool,
    pub estimated_input: u64,
    /// Tokens the request reserves under token limits and budgets (prompt
    /// + maximum output); 0 when neither applies.
    pub reserved_tokens: u64,
    /// The most output it may produce (its `max_tokens`, else
    /// [`DEFAULT_OUTPUT_RESERVATION`]), when counted.
    pub max_output: u64,
    /// Characters of content relayed, to estimate output when usage is missing.
    pub streamed_chars: u64,
    /// Time to the answer's start (headers) as the client saw it.
    pub answer_started: Option<Duration>,
    pub ttft: Option<Duration>,
    pub status: u16,
    pub error: Option<&'static str>,
    /// Where the error lies: `client`, `upstream` or `internal`.
    pub error_source: Option<&'static str>,
    /// Set when the answer (or stream) ended as intended.
    pub finished: bool,
    /// The response cache's part: key, hit, a stream being assembled.
    pub cache: CacheNote,
}

impl RequestCtx {
    /// Stage 1: request id and client; loads the snapshot once. `peer` is
    /// the TCP peer's address.
    pub fn start(
        app: &App,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        format: ApiFormat,
        endpoint: &'static str,
    ) -> Self {
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(crate::http::request_id::new_id);
        let snap = app.snapshot.load_full();
        let header = |name: &Option<http::HeaderName>| name.as_ref().and_then(|n| headers.get(n));
        let client_ip = header(&snap.client_ip_header)
            .and_then(left_most_ip)
            .or(peer);
        let tags = (snap.routes.tag_headers().iter())
            .map(|h| headers.get(h).cloned())
            .collect();
        let started = Instant::now();
        let mut attempts = Attempts::default();
        if let Some(t) = &snap.config.tracing {
            attempts.trace = Some(Box::new(RequestTrace::start(
                headers,
                t.sample_ratio,
                endpoint,
                started,
            )));
        }
        RequestCtx {
            user_header: header(&snap.end_user_header).cloned(),
            body_user: None,
            bodies: None,
            route: None,
            tags,
            client_ip,
            rate: RateNote::default(),
            policy_model: None,
            held: Held::default(),
            queue_refused: None,
            budget: Charges::default(),
            downgraded_from: None,
            cost_micro_usd: None,
            snap,
            app: app.clone(),
            id,
            format,
            endpoint,
            started,
            key: None,
            user: None,
            limits: LimitsConfig::default(),
            body_len: 0,
            requested_model: None,
            stream: false,
            attempts,
            usage: TokenUsage::default(),
            usage_reported: false,
            estimated_input: 0,
            reserved_tokens: 0,
            max_output: 0,
            streamed_chars: 0,
            answer_started: None,
            ttft: None,
            status: 0,
            error: None,
            error_source: None,
            finished: false,
            cache: CacheNote::new(headers),
        }
    }

    /// Stage 2: authenticates the caller by the hash of its key — the
    /// config's static keys first, then the store-managed directory — and
    /// checks that the identity may call this API.
    pub fn authenticate(&mut self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let secret = crate::http::auth::presented_key(headers).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )
        })?;
        let jwt = crate::jwt::looks_like_jwt(secret)
            .then(|| self.app.jwt.load_full())
            .flatten();
        let key = match jwt {
            Some(v) => self.identify_jwt(&v, secret)?,
            None => find_key(&self.snap, &self.app.directory.load(), secret)
                .ok_or_else(|| GatewayError::new(ErrorKind::Unauthorized, "invalid API key"))?,
        };
        if let Some(m) = &key.managed {
            self.admit_managed(m)?;
        }
        self.limits = key.limits;
        self.key = Some(key);
        Ok(())
    }

    /// A JWT caller: a verified token naming an app (and its tenant); the
    /// app's identity applies, the `user` claim is the end user.
    fn identify_jwt(
        &mut self,
        v: &Arc<crate::jwt::JwtVerifier>,
        token: &str,
    ) -> Result<Arc<KeyInfo>, GatewayError> {
        let unauthorized = |m: String| GatewayError::new(ErrorKind::Unauthorized, m);
        let id = v.verify(token).map_err(|e| {
            if matches!(e, crate::jwt::JwtError::UnknownKey) && v.wants_refresh() {
                let v = v.clone();
                tokio::spawn(async move { v.refresh().await });
            }
            unauthorized(format!("invalid token: {e}"))
        })?;
        let app = id
            .app
            .as_deref()
            .ok_or_else(|| unauthorized("the token names no app (see `jwt.claims.app`)".into()))?;
        let key = self
            .app
            .directory
            .load()
            .find_app(id.tenant.as_deref(), app)
            .cloned()
            .ok_or_else(|| {
                unauthorized(format!(
                    "the token's app `{app}` (tenant `{}`) is not known to sluice",
                    id.tenant.as_deref().unwrap_or("-")
                ))
            })?;
        self.user = id.user;
        Ok(key)
    }

    /// Expiry, scopes and API subscriptions of a store-managed identity.
    fn admit_managed(&self, m: &Managed) -> Result<(), GatewayError> {
        if let Some(why) = &m.denied {
            return Err(GatewayError::new(ErrorKind::Forbidden, &**why));
        }
        if m.expires_at.is_some_and(|t| t <= crate::mock::now_ms()) {
            return Err(GatewayError::new(
                ErrorKind::Unauthorized,
                "this API key has expired; ask for a new one",
            ));
        }
        let api = self.endpoint;
        if m.apis
            .as_ref()
            .is_some_and(|a| !a.iter().any(|x| &**x == api))
        {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                format!("this key's scopes do not include the `{api}` API"),
            ));
        }
        if self.snap.apis_requiring_approval.iter().any(|a| a == api) {
            self.app
                .directory
                .load()
                .check_subscription(m, &format!("api:{api}"))?;
        }
        Ok(())
    }

    pub fn key(&self) -> &KeyInfo {
        self.key.as_deref().expect("authenticated before use")
    }

    /// Stage 3a: reads the body under the tightest size limit.
    pub async fn read_body(
        &mut self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<bytes::Bytes, GatewayError> {
        let limit = self
            .key
            .as_ref()
            .and_then(|k| k.limits.max_body_bytes)
            .map_or(self.snap.max_body_bytes, |b| {
                (b.0 as usize).min(self.snap.max_body_bytes)
            });
        let too_large = || {
            GatewayError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body is larger than the limit of {}",
                    crate::config::units::ByteSize(limit as u64)
                ),
            )
        };
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
        let mut stream = body.into_data_stream();
        while let Some(part) = stream.next().await {
            let part = part.map_err(|e| {
                GatewayError::invalid(format!("could not read the request body: {e}"))
            })?;
            if buf.len() + part.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&part);
        }
        self.body_len = buf.len();
        if let Some(spec) = self.body_spec() {
            let mut c = Box::<crate::telemetry::request_log::bodies::Captured>::default();
            c.request = Some(spec.keep(&buf));
            self.bodies = Some(c);
        }
        Ok(buf.freeze())
    }

    /// The models this caller may call now: its allow-list, less those
    /// needing a subscription its app does not hold.
    pub fn usable_models(&self) -> Vec<&str> {
        let key = self.key();
        let dir = key.managed.as_ref().map(|_| self.app.directory.load());
        self.snap
            .allowed_models(key)
            .into_iter()
            .filter(|name| match (&dir, &key.managed) {
                (Some(d), Some(m)) if self.snap.models[*name].requires_approval => {
                    d.check_subscription(m, &format!("model:{name}")).is_ok()
                }
                _ => true,
            })
            .collect()
    }

    /// Stage 4: resolves the model for this key, or explains which it may use.
    pub fn resolve_model(&mut self, name: &str) -> Result<Arc<Model>, GatewayError> {
        self.requested_model = Some(name.to_owned());
        let key = self.key();
        match self.snap.models.get(name) {
            Some(m) if key.may_use(name) => {
                let m = m.clone();
                if let (true, Some(managed)) = (m.requires_approval, &key.managed) {
                    self.app
                        .directory
                        .load()
                        .check_subscription(managed, &format!("model:{name}"))?;
                }
                self.limits = tighter(self.limits, m.limits);
                Ok(m)
            }
            _ => {
                let allowed = self.snap.allowed_models(key);
                Err(GatewayError::new(
                    ErrorKind::ModelNotFound,
                    format!("the model `{name}` does not exist or this key may not use it; models this key may use: {}", allowed.join(", ")),
                )
                .with_param("model"))
            }
        }
    }

    /// Whether a token limit or a budget of the caller's levels or of
    /// `model` applies (both need the request's tokens).
    fn counts_tokens(&self, model: &Model) -> bool {
        let key = self.key();
        !key.budgets.is_empty()
            || !model.budgets.is_empty()
            || key
                .rates
                .iter()
                .chain(model.rates.iter())
                .any(|r| r.key.spec.counts_tokens())
    }

    /// Stage 4: per-request guards of the key's and the model's policies,
    /// and the token reservation. Prompts are counted with the model's
    /// tokenizer when a token limit or `max_input_tokens` needs them, else
    /// estimated (for the log, should the upstream report no usage).
    pub fn apply_guards(
        &mut self,
        model: &Model,
        req: &mut ChatRequest,
    ) -> Result<(), GatewayError> {
        self.stream = req.is_stream();
        let limits = self.limits;
        let counted = self.counts_tokens(model);
        let tk = if counted || limits.max_input_tokens.is_some() {
            model.tokenizer
        } else {
            crate::config::raw::Tokenizer::Estimate
        };
        self.estimated_input = count_chat_input(req, tk);
        if let Some(max) = limits.max_body_bytes.filter(|m| self.body_len as u64 > m.0) {
            return Err(GatewayError::new(
                ErrorKind::PayloadTooLarge,
                format!("request body is larger than the limit of {max} for this model"),
            ));
        }
        if let Some(max_in) = limits.max_input_tokens {
            if self.estimated_input > max_in {
                return Err(GatewayError::invalid(format!(
                    "the prompt is about {} tokens, over the limit of {max_in} input tokens",
                    self.estimated_input
                ))
                .with_param("messages"));
            }
        }
        if let Some(cap) = limits.max_output_tokens {
            let asked = req.max_output();
            if limits.on_max_output == Some(OverMaxOutput::Reject) && asked.is_some_and(|m| m > cap)
            {
                let field = if req.max_completion_tokens.is_some() {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                return Err(GatewayError::invalid(format!(
                    "`{field}` is {}, over this key's limit of {cap} output tokens",
                    asked.unwrap_or_default()
                ))
                .with_param(field));
            }
            // Clamp: the answer is at most `cap` tokens long.
            let clamped = asked.map_or(cap, |m| m.min(cap));
            if req.max_completion_tokens.is_some() {
                req.max_completion_tokens = Some(clamped);
            } else {
                req.max_tokens = Some(clamped);
            }
        }
        if let Some(t) = &mut self.attempts.trace {
            t.max_tokens = req.max_output();
        }
        if counted {
            self.max_output = req
                .max_output()
                .map_or(DEFAULT_OUTPUT_RESERVATION, u64::from);
            self.reserved_tokens = self.estimated_input + self.max_output;
        }
        Ok(())
    }

    /// Stage 4 for embeddings: counts the input, which is all they reserve.
    pub fn count_embeddings(&mut self, model: &Model, input: &serde_json::Value) {
        if self.counts_tokens(model) {
            self.estimated_input = count_embedding_input(input, model.tokenizer);
            self.reserved_tokens = self.estimated_input;
        }
    }

    /// Stage 5: the rate limits of the caller's levels and of `model`.
    /// The end user is the JWT's, else the request's own (`body_user`:
    /// OpenAI `user`, Anthropic `metadata.user_id`), else the
    /// `server.end_user_header` one. Refused: 429 naming the limit.
    pub async fn limit_rate(
        &mut self,
        model: &Arc<Model>,
        body_user: Option<&str>,
    ) -> Result<(), GatewayError> {
        // Borrows, not clones: a clone of the key's or the state's `Arc`
        // is a write to a cache line every worker shares.
        let Some(key) = self.key.as_deref() else {
            return Ok(());
        };
        if key.rates.is_empty() && model.rates.is_empty() {
            return Ok(());
        }
        let who = self.who(key, body_user);
        let decision = self
            .app
            .rates
            .acquire([&key.rates, &model.rates], &who)
            .await;
        self.apply_rate(decision, model)
    }

    /// Who the rate limits count the request for.
    fn who<'a>(&'a self, key: &KeyInfo, body_user: Option<&'a str>) -> Who<'a> {
        Who {
            tokens: u32::try_from(self.reserved_tokens).unwrap_or(u32::MAX),
            user: self.end_user(body_user),
            ip: self.client_ip,
            bucket: key.rollout_bucket,
        }
    }

    /// Records the rate decision (headers, shadow refusals) and answers
    /// its refusal.
    fn apply_rate(
        &mut self,
        decision: Decision<RateNote>,
        model: &Arc<Model>,
    ) -> Result<(), GatewayError> {
        if decision.note.holds.iter().any(|h| h.rule.list == 1) {
            self.policy_model = Some(model.clone());
        }
        self.rate = decision.note;
        decision.refusal.map_or(Ok(()), Err)
    }

    /// Stage 4b: reserves the request's maximum cost (prompt and maximum
    /// output at `model`'s price) under every budget of the caller's
    /// levels and of the model. Returns the model a `downgrade:` budget
    /// moves the request to; a `block` budget refuses (402).
    pub async fn charge_budgets(
        &mut self,
        model: &Arc<Model>,
        downgraded: bool,
    ) -> Result<Option<String>, GatewayError> {
        let key = self.key();
        if key.budgets.is_empty() && model.budgets.is_empty() {
            return Ok(None);
        }
        let rules = [&key.budgets[..], &model.budgets[..]];
        let (lease, amount) = (self.lease(), self.max_cost(model));
        let verdict = (self.app.budgets)
            .admit(rules, amount, crate::mock::now_ms(), downgraded, lease)
            .await;
        self.apply_budget(verdict, downgraded, model)
    }

    /// The most the request can cost at `model`'s highest deployment price
    /// (0 unpriced).
    fn max_cost(&self, model: &Model) -> u64 {
        model.reserve_price.as_ref().map_or(0, |p| {
            budget::max_cost_micro_usd(p, self.estimated_input, self.max_output)
        })
    }

    /// Keeps the budget reservations of an admitted request, or answers the
    /// downgrade or refusal, counting what went over.
    fn apply_budget(
        &mut self,
        verdict: budget::Verdict,
        downgraded: bool,
        model: &Arc<Model>,
    ) -> Result<Option<String>, GatewayError> {
        let exceeded = |kind: ScopeKind, action| {
            self.app
                .metrics
                .budget_exceeded
                .get_or_create(&BudgetLabels {
                    scope: kind.as_str(),
                    action,
                })
                .inc();
        };
        match verdict {
            budget::Verdict::Admitted(charges) => {
                if let Some((_, kind)) = &charges.over {
                    let action = if downgraded {
                        "downgrade"
                    } else {
                        "alert_only"
                    };
                    exceeded(*kind, action);
                }
                if charges.held.iter().any(|c| c.rule.list == 1) {
                    self.policy_model = Some(model.clone());
                }
                self.budget = charges;
                Ok(None)
            }
            budget::Verdict::Downgrade(to, kind) => {
                exceeded(kind, "downgrade");
                Ok(Some(to))
            }
            budget::Verdict::Refused(e, kind) => {
                exceeded(kind, "block");
                Err(e)
            }
        }
    }

    /// Moves the request to the model `to` a budget downgrades it to: the
    /// key must be allowed to use it; the model's own guards replace the
    /// first model's.
    pub fn downgrade(&mut self, from: &Model, to: &str) -> Result<Arc<Model>, GatewayError> {
        let key = self.key();
        let model = self
            .snap
            .models
            .get(to)
            .filter(|_| key.may_use(to))
            .cloned()
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::BudgetExceeded,
                    format!("the budget for `{}` is exhausted and its downgrade model `{to}` is not available to this key", from.name),
                )
            })?;
        self.limits = tighter(key.limits, model.limits);
        self.downgraded_from = Some(from.name.clone());
        Ok(model)
    }

    /// Stage 8: settles the budget reservations at the serving model's
    /// price of `usage` (nothing when no model served), and reports the
    /// alert thresholds crossed.
    fn settle_budgets(&mut self, usage: TokenUsage) {
        let price = (self.attempts.served.as_ref()).and_then(|(m, i)| m.deployments[*i].price);
        let answered = self.used_tokens(usage) > 0;
        let cost = price.map(|p| {
            if answered {
                budget::cost_micro_usd(&p, &usage)
            } else {
                0
            }
        });
        // A cache hit cost nothing upstream.
        let cost = if self.cache.hit.is_some() {
            Some(0)
        } else {
            cost
        };
        self.cost_micro_usd = cost;
        let (held, shared) = (
            std::mem::take(&mut self.budget.held),
            self.budget.shared.take(),
        );
        if held.is_empty() && shared.is_none() {
            return;
        }
        let cost = cost.unwrap_or(0);
        // The levels counted so far, one bit each (spend counts once per level).
        let mut counted = 0u8;
        let rules = self.held_rules(|k| &k.budgets, |m| &m.budgets);
        let kinds = (held.iter().filter_map(|c| c.rule.get(rules)))
            .map(|r| r.scope.kind)
            .chain(
                shared
                    .iter()
                    .flat_map(|s| s.counters.iter().map(|c| c.rule.scope.kind)),
            );
        for kind in kinds {
            let bit = 1u8 << kind as u8;
            if cost > 0 && counted & bit == 0 {
                counted |= bit;
                self.app.metrics.budget_spend_of(kind).inc_by(cost);
            }
        }
        let charges = Charges {
            held,
            shared,
            over: None,
        };
        match &self.app.budgets {
            Budgets::Local(_) => {
                for crossed in budget::settle(charges, rules, cost) {
                    report_alert(&self.app, &crossed);
                }
            }
            Budgets::Shared(s) => {
                let app = self.app.clone();
                s.settle(charges, rules, cost, move |c| report_alert(&app, c));
            }
        }
    }

    /// The request's rules of one kind as its holds and charges name them
    /// (`policy/few.rs`): the key's, then those of the model that holds
    /// something.
    fn held_rules<'a, T>(
        &'a self,
        of_key: impl Fn(&'a KeyInfo) -> &'a [T],
        of_model: impl Fn(&'a Model) -> &'a [T],
    ) -> [&'a [T]; 2] {
        [
            self.key.as_deref().map_or(&[], of_key),
            self.policy_model.as_deref().map_or(&[], of_model),
        ]
    }

    /// How long a shared budget hold may outlive a crash of this instance:
    /// the request's longest life (its deadline, else the upstream total
    /// timeout) plus a margin.
    fn lease(&self) -> std::time::Duration {
        let life = self
            .deadline()
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or(self.snap.timeouts.total);
        life + budget::LEASE_MARGIN
    }

    /// The end user: the JWT's, else the request's own (`body_user`), else
    /// the `server.end_user_header` one.
    fn end_user<'a>(&'a self, body_user: Option<&'a str>) -> Option<&'a str> {
        let header_user = self.user_header.as_ref().and_then(|v| v.to_str().ok());
        [self.user.as_deref(), body_user, header_user]
            .into_iter()
            .flatten()
            .find(|u| !u.is_empty())
    }

    /// The end user as the request log records it.
    pub fn end_user_of_record(&self) -> Option<String> {
        self.end_user(self.body_user.as_deref()).map(str::to_owned)
    }

    /// Stage 5b: a concurrency slot at every level of the caller and of
    /// `model` that limits concurrency, waiting in their queues by the
    /// caller's priority (`policy::concurrency`). Refused: 429 (queue
    /// full) or 503 (no slot in time), with `Retry-After`.
    pub async fn wait_for_slots(
        &mut self,
        model: &Model,
        body_user: Option<&str>,
    ) -> Result<(), GatewayError> {
        let limited = |k: &KeyInfo| !k.queues.is_empty() || !model.queues.is_empty();
        let Some(key) = self.key.as_deref().filter(|k| limited(k)) else {
            return Ok(());
        };
        let ask = self.slot_ask(key, body_user);
        let held = (self.app.queues)
            .admit([&key.queues, &model.queues], &ask)
            .await;
        self.apply_slots(held)
    }

    /// What the request asks of the concurrency queues.
    fn slot_ask(&self, key: &KeyInfo, body_user: Option<&str>) -> Ask {
        let mut flows = key.flows;
        flows.user = self.end_user(body_user).map_or(0, Flows::hash);
        Ask {
            class: key.priority,
            flows,
            cost: self.reserved_tokens.max(self.estimated_input),
            deadline: self.deadline().map(Into::into),
            lease: self.lease(),
        }
    }

    /// Keeps the slots taken, or records and answers the refusal.
    fn apply_slots(&mut self, held: Result<Held, Refused>) -> Result<(), GatewayError> {
        match held {
            Ok(held) => {
                self.held = held;
                Ok(())
            }
            Err(r) => {
                self.queue_refused = Some((r.scope.kind, r.reason()));
                Err(r.to_error())
            }
        }
    }

    /// The request's own deadline, from the policy's `limits.timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.limits.timeout.map(|t| self.started + t.0)
    }

    /// Marks the answer's start (headers about to go out).
    pub fn answer_starts(&mut self, status: u16) {
        self.status = status;
        self.answer_started = Some(self.started.elapsed());
    }

    /// Records a failure and builds the error answer with sluice's headers.
    pub fn fail(&mut self, e: GatewayError) -> Response {
        self.answer_starts(e.status().as_u16());
        self.record_error(&e);
        self.finished = true;
        let mut resp = e.into_response(self.format);
        self.decorate(resp.headers_mut());
        resp
    }

    /// Records what failed, for the access log and metrics.
    pub fn record_error(&mut self, e: &GatewayError) {
        self.error = Some(e.code());
        self.error_source = Some(e.source());
    }

    /// How many headers [`decorate`](Self::decorate) may add: sluice's
    /// four, three per `x-ratelimit-*` trio, the downgrade's. A caller
    /// that builds the answer's header map sizes it with this.
    pub fn header_room(&self) -> usize {
        let limits = 3
            * (usize::from(self.rate.tightest.is_some())
                + usize::from(self.rate.tightest_tokens.is_some()));
        4 + limits
            + usize::from(self.downgraded_from.is_some())
            + usize::from(self.cache.key.is_some())
    }

    /// Adds `x-request-id`, the `x-sluice-*` headers and, past the rate
    /// stage, the `x-ratelimit-*` headers of the tightest limit.
    pub fn decorate(&self, h: &mut HeaderMap) {
        use http::HeaderName;
        static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
        static MODEL: HeaderName = HeaderName::from_static("x-sluice-model");
        static PROVIDER: HeaderName = HeaderName::from_static("x-sluice-provider");
        static ATTEMPTS: HeaderName = HeaderName::from_static("x-sluice-attempts");
        // Room for what follows at once (one regrowth at most), and no
        // reservation when the map has room already: growing a map costs
        // ~2k instructions, and a plain answer fits the first allocation.
        let ours = self.header_room();
        if h.capacity() - h.len() < ours {
            h.reserve(ours);
        }
        if let Ok(v) = HeaderValue::from_str(&self.id) {
            h.insert(REQUEST_ID.clone(), v);
        }
        self.rate.write_headers(h);
        // Header values of config names are built once, with the snapshot.
        if let Some((model, i)) = &self.attempts.served {
            if let Some(m) = &model.header {
                h.insert(MODEL.clone(), m.clone());
            }
            if let Some(p) = &model.deployments[*i].provider.header {
                h.insert(PROVIDER.clone(), p.clone());
            }
        }
        if self.attempts.count > 0 {
            h.insert(ATTEMPTS.clone(), HeaderValue::from(self.attempts.count));
        }
        if let Some(from) = &self.downgraded_from {
            static DOWNGRADED: HeaderName = HeaderName::from_static("x-sluice-downgraded-from");
            if let Ok(v) = HeaderValue::from_str(from) {
                h.insert(DOWNGRADED.clone(), v);
            }
        }
        self.decorate_cache(h);
    }

    /// Notes a whole answer's finish reasons on its trace, if traced.
    pub fn trace_finish(&mut self, r: &sluice_types::ChatResponse) {
        if let Some(t) = self.attempts.trace.as_mut() {
            t.finished_with(r.choices.iter().filter_map(|c| c.finish_reason));
        }
    }

    /// Stage 7 hook: one relayed chunk.
    pub fn on_chunk(&mut self, chunk: &sluice_types::ChatChunk) {
        if let Some(a) = &mut self.cache.assembler {
            a.push(chunk);
        }
        if let Some(t) = self.attempts.trace.as_mut() {
            t.finished_with(chunk.choices.iter().filter_map(|c| c.finish_reason));
        }
        if let Some(u) = &chunk.usage {
            self.usage = u.to_tokens();
            self.usage_reported = true;
        }
        for c in &chunk.choices {
            let n = c.delta.content.as_ref().map_or(0, |s| s.len())
                + c.delta.reasoning_content.as_ref().map_or(0, |s| s.len());
            let n = n + c
                .delta
                .tool_calls
                .iter()
                .flatten()
                .filter_map(|t| t.function.as_ref())
                .map(|f| {
                    f.arguments.as_ref().map_or(0, |a| a.len())
                        + f.name.as_ref().map_or(0, |a| a.len())
                })
                .sum::<usize>();
            if n > 0 && self.ttft.is_none() {
                self.ttft = Some(self.started.elapsed());
            }
            self.streamed_chars += n as u64;
            // Only callers whose bodies are kept look further.
            if let (Some(b), Some(text)) = (&mut self.bodies, &c.delta.content) {
                if let Some(spec) = self.key.as_ref().and_then(|k| k.log_bodies.as_ref()) {
                    b.stream_text(text, spec);
                }
            }
        }
    }

    /// The caller's `log_bodies`, when the request log is on.
    pub fn body_spec(&self) -> Option<&crate::telemetry::request_log::bodies::BodySpec> {
        self.app.request_log.as_ref()?;
        self.key.as_ref()?.log_bodies.as_deref()
    }

    /// Tokens the request used, to settle its token reservations: the
    /// upstream's report or an estimate of what was produced; nothing when
    /// it failed before any answer.
    fn used_tokens(&self, usage: TokenUsage) -> u64 {
        let answered = self.usage_reported || self.streamed_chars > 0 || self.error.is_none();
        if answered && self.attempts.count > 0 {
            usage.total()
        } else {
            0
        }
    }

    /// Usage to account: the upstream's report, else an estimate of what was
    /// seen (a stream cut short still costs what it produced).
    fn final_usage(&self) -> TokenUsage {
        if self.usage_reported || self.usage.total() > 0 {
            return self.usage;
        }
        if self.attempts.count == 0 {
            return TokenUsage::default();
        }
        TokenUsage {
            input: self.estimated_input,
            output: self.streamed_chars.div_ceil(4),
            ..TokenUsage::default()
        }
    }
}

/// A budget threshold was crossed: an alert event (a warning in the log, a
/// metric and, with `alerts.webhook`, a signed POST).
fn report_alert(app: &App, c: &budget::Crossed) {
    use crate::alerts::{AlertEvent, AlertKind};
    let spent = c.spent.unwrap_or_else(|| {
        app.budgets
            .ledger()
            .standing(&c.rule.key, c.period, c.period_start)
            .spent
    });
    let kind = if c.fraction >= 1.0 {
        AlertKind::BudgetExceeded
    } else {
        AlertKind::BudgetThreshold
    };
    let event = AlertEvent::budget(kind, &c.rule.scope, c.period, c.period_start)
        .with_spend(c.fraction, spent, c.limit);
    app.alerts.emit(event);
}

/// Output tokens reserved for a request that sets no `max_tokens` (and
/// whose policy sets no `max_output_tokens`); settled to the real count.
pub const DEFAULT_OUTPUT_RESERVATION: u64 = 4096;

/// The left-most address of a client-IP header (`x-forwarded-for` style:
/// `client, proxy1, proxy2`); a port, if any, is ignored.
fn left_most_ip(v: &HeaderValue) -> Option<IpAddr> {
    let first = v.to_str().ok()?.split(',').next()?.trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

impl Drop for RequestCtx {
    /// Stage 8: completion, exactly once.
    fn drop(&mut self) {
        if !self.finished {
            // The client went away before the answer ended (nginx's 499).
            self.status = 499;
            self.error.get_or_insert("client_closed");
            self.error_source.get_or_insert("client");
        }
        let usage = self.final_usage();
        self.settle_budgets(usage);
        if let Some((m, i)) = &self.attempts.served {
            let d = &m.deployments[*i];
            if d.counted {
                let live = d.live(&self.app.dispatcher.upstreams);
                live.usage.used(usage.total(), Instant::now());
            }
        }
        if !self.rate.holds.is_empty() {
            let used = self.used_tokens(usage);
            let rules = self.held_rules(|k| &k.rates, |m| &m.rates);
            self.app.rates.settle(rules, &self.rate.holds, used);
        }
        access_log::complete(self, usage);
        if let Some(trace) = self.attempts.trace.take() {
            otel::finish(self, *trace, usage);
        }
    }
}
