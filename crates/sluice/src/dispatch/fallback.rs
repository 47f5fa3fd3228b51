//! The visible fallback loop: which upstream a request tries, in what
//! order, and when it stops.
//!
//! 1. **Candidates.** The model's deployments in the balancer's order
//!    (group 0), then each fallback model's (group k for `fallbacks[k-1]`).
//! 2. **One round.** Each candidate in turn. A deployment whose circuit
//!    breaker is open is skipped — unless every candidate's is, and then
//!    they are tried anyway (Envoy's panic mode). After a failure the
//!    request moves on: to the model's next deployment when the failure is
//!    retryable, and to a fallback model only when that fallback is for
//!    this failure's class (`on:`; a name alone means the retryable ones).
//!    A failure no later candidate is for is answered at once.
//! 3. **Retry rounds.** When a round ends with a retryable failure and the
//!    model has `retries.attempts` left: wait (backoff with full jitter, at
//!    least the upstream's `retry-after`) and run another round.
//!    A deployment out of room (its `rpm`/`tpm` cap, or its provider's
//!    learned limit under `usage_aware`) is skipped too; when all are, the
//!    answer is a 429 with the time until the first has room.
//! 4. **Budget.** Every attempt after a request's first — failover or
//!    retry — is taken from the model's retry budget; when it is empty the
//!    request ends with its last failure.
//!
//! Every attempt is recorded (`x-sluice-attempts`, the access log, a
//! trace span whose `traceparent` it carries upstream) and on its
//! deployment's breaker; the deployment that answered stays counted in
//! flight until the returned [`Tried`] is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{Attempts, Dispatcher};
use crate::config::raw::Strategy;
use crate::error::{ErrorKind, GatewayError};
use crate::routing::breaker::{Admit, BreakerSpec, Phase};
use crate::routing::retry::RetryBudget;
use crate::routing::{balance, failure_class, InFlight, Upstream};
use crate::snapshot::{Deployment, Model, Snapshot};
use crate::telemetry::otel::request::TraceHeaders;
use sluice_providers::ErrorClass;

/// A deployment to try: of the requested model (`group` 0) or of its
/// fallback `group` (1-based).
struct Candidate {
    model: Arc<Model>,
    index: usize,
    group: usize,
}

/// How a round ended.
enum Round<T> {
    Done(Result<(T, Tried), GatewayError>),
    /// Every candidate failed, the last one retryably.
    Retry(GatewayError),
}

impl Dispatcher {
    /// Candidates in order: the model's deployments (balanced), then each
    /// fallback model's.
    fn candidates(&self, snap: &Snapshot, model: &Arc<Model>) -> Vec<Candidate> {
        let mut out = Vec::new();
        let mut add = |model: &Arc<Model>, group: usize| {
            for index in balance::order(model, &self.upstreams) {
                out.push(Candidate {
                    model: model.clone(),
                    index,
                    group,
                });
            }
        };
        add(model, 0);
        for (k, f) in model.fallbacks.iter().enumerate() {
            if let Some(fm) = snap.models.get(&f.model) {
                add(fm, k + 1);
            }
        }
        out
    }

    /// Rounds over the candidates until an answer, an answered failure, or
    /// no retry left (see the module docs).
    pub(super) async fn fallback_loop<'a, T, F, Fut>(
        &self,
        snap: &'a Snapshot,
        model: &Arc<Model>,
        att: &mut Attempts,
        mut once: F,
    ) -> Result<(T, Tried), GatewayError>
    where
        F: FnMut(&'a Model, &'a Deployment, Option<TraceHeaders>) -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>> + 'a,
    {
        let budget = model.retry_budget(&self.upstreams);
        budget.request(Instant::now());
        let mut round = 0;
        loop {
            let last = match self.round(snap, model, att, &mut once, budget).await {
                Round::Done(r) => return r,
                Round::Retry(e) => e,
            };
            round += 1;
            let wait = (round <= model.retries.attempts)
                .then(|| model.retries.wait(round, last.retry_after))
                .flatten();
            let Some(wait) = wait else {
                return Err(all_failed(Some(last), att));
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn round<'a, T, F, Fut>(
        &self,
        snap: &'a Snapshot,
        model: &Arc<Model>,
        att: &mut Attempts,
        once: &mut F,
        budget: &RetryBudget,
    ) -> Round<T>
    where
        F: FnMut(&'a Model, &'a Deployment, Option<TraceHeaders>) -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>> + 'a,
    {
        let mut last: Option<GatewayError> = None;
        let mut queue: VecDeque<Candidate> = self.candidates(snap, model).into();
        let (mut open, mut panic, mut attempted) = (Vec::new(), false, false);
        // When the first deployment skipped for want of room has room again.
        let mut full: Option<Instant> = None;
        // Candidates of a lower group are passed over (a failure the
        // model's other deployments would share).
        let mut from_group = 0;
        loop {
            let Some(c) = queue.pop_front() else {
                if attempted || open.is_empty() || panic {
                    break;
                }
                panic = true;
                queue.extend(open.drain(..));
                continue;
            };
            if c.group < from_group || !fallback_is_for(model, &c, last.as_ref()) {
                continue;
            }
            // Resolve through the snapshot so both live as long as it does.
            let Some(served) = snap.models.get(&c.model.name) else {
                continue;
            };
            let m: &'a Model = served;
            let dep: &'a Deployment = &m.deployments[c.index];
            let live = dep.live(&self.upstreams).clone();
            // One clock read for the checks and the attempt's start.
            let started = Instant::now();
            if dep.counted {
                if let Err(until) = live.usage.room(&dep.caps, started) {
                    full = Some(full.map_or(until, |f| f.min(until)));
                    continue;
                }
            }
            let admitted = match (m.breaker, panic) {
                (Some(spec), false) => live.breaker.admit(&spec, started),
                _ => Admit::Yes,
            };
            if let Admit::No { .. } = admitted {
                open.push(c);
                continue;
            }
            if att.count > 0 && !self.extra_attempt(model, budget) {
                let mut e = all_failed(last, att);
                e.message
                    .push_str("; no retry left in the model's retry budget");
                return Round::Done(Err(e));
            }
            attempted = true;
            att.count += 1;
            att.model = Some(m.name.clone());
            att.provider = Some(dep.provider.name.clone());
            att.served = Some((served.clone(), c.index));
            let tried = Tried {
                spec: m.breaker,
                in_flight: live.enter(),
                live,
                key: dep.key.clone(),
                trial: admitted == Admit::Trial,
                settled: std::sync::atomic::AtomicBool::new(false),
                measured_from: (m.strategy == Strategy::LeastLatency).then_some(started),
            };
            if dep.counted {
                tried.live.usage.sent(started);
            }
            let trace = (att.trace.as_mut()).map(|t| t.begin_attempt(m, dep, att.count, started));
            let result = once(m, dep, trace).await;
            let ended = Instant::now();
            if let Some(t) = &mut att.trace {
                t.end_attempt(ended, result.as_ref().err());
            }
            let elapsed = ended.saturating_duration_since(started);
            att.upstream += elapsed;
            if m.strategy == Strategy::LeastLatency {
                tried.live.latency.observe(elapsed, ended);
            }
            // A failure (or a slow start) counts at once; a success when the
            // caller has the whole answer (`Tried::succeeded`).
            let slow = (m.breaker.and_then(|b| b.slow_call)).is_some_and(|s| elapsed > s);
            match &result {
                Err(e) => tried.settle(!e.breaker_failure(), ended),
                Ok(_) if slow => tried.settle(false, ended),
                Ok(_) => {}
            }
            let e = match result {
                Ok(a) => return Round::Done(Ok((a, tried))),
                Err(e) => e,
            };
            if dep.learns && e.kind == ErrorKind::Upstream(ErrorClass::RateLimited) {
                tried.live.usage.rate_limited(e.retry_after, ended);
            }
            att.failures.push((dep.provider.name.clone(), e.code()));
            if !e.retryable() {
                if !later_fallback_is_for(model, c.group, &e) {
                    return Round::Done(Err(e));
                }
                from_group = c.group + 1;
            }
            last = Some(e);
        }
        match (last, full) {
            (Some(e), _) if e.retryable() => Round::Retry(e),
            (None, Some(until)) => Round::Done(Err(no_room(model, until))),
            (last, _) => Round::Done(Err(all_failed(last, att))),
        }
    }

    /// Takes an extra attempt (failover or retry) from the budget, counted.
    fn extra_attempt(&self, model: &Model, budget: &RetryBudget) -> bool {
        let ok = budget.withdraw(&model.retries, Instant::now());
        self.retries(&model.name, ok);
        ok
    }
}

/// Whether candidate `c` may be tried after failure `last`: the model's
/// own deployments always (the loop has passed them over when the failure
/// was not retryable), a fallback's when it is for that failure's class.
fn fallback_is_for(model: &Model, c: &Candidate, last: Option<&GatewayError>) -> bool {
    let Some(e) = last.filter(|_| c.group > 0) else {
        return true;
    };
    let on = model.fallbacks[c.group - 1].on;
    failure_class(e).is_some_and(|class| on.contains(class))
}

/// Whether a fallback after `group` is for failure `e`.
fn later_fallback_is_for(model: &Model, group: usize, e: &GatewayError) -> bool {
    let Some(class) = failure_class(e) else {
        return false;
    };
    model.fallbacks[group..]
        .iter()
        .any(|f| f.on.contains(class))
}

/// The deployment an attempt went to: counted in flight while this lives;
/// settles the attempt's outcome on its breaker once — a failure at once, a
/// success when the answer is whole (a stream: when it ended cleanly, so a
/// break mid-stream counts as the failure it is). A half-open trial
/// dropped unsettled (the client left) gives its trial back.
pub struct Tried {
    spec: Option<BreakerSpec>,
    live: Arc<Upstream>,
    key: Arc<str>,
    trial: bool,
    settled: std::sync::atomic::AtomicBool,
    /// When the attempt was sent, if its latency is measured
    /// (`least_latency`): a stream's time to first token is observed too.
    measured_from: Option<Instant>,
    #[allow(
        dead_code,
        reason = "held for its Drop: the request leaves the in-flight count"
    )]
    in_flight: InFlight,
}

impl Tried {
    /// Records the outcome on the breaker, the first time only.
    fn settle(&self, ok: bool, now: Instant) {
        use std::sync::atomic::Ordering;
        let Some(spec) = &self.spec else {
            return;
        };
        if self.settled.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(phase) = self.live.breaker.record(spec, ok, self.trial, now) {
            let key = &*self.key;
            match phase {
                Phase::Open => {
                    tracing::warn!(deployment = key, cooldown = ?spec.cooldown, "circuit breaker opened: the deployment leaves the rotation")
                }
                Phase::Closed => tracing::info!(
                    deployment = key,
                    "circuit breaker closed: the deployment is back"
                ),
                Phase::HalfOpen => {}
            }
        }
    }

    /// The answer is whole: a success of its deployment.
    pub fn succeeded(&self) {
        self.settle(true, Instant::now());
    }

    /// A stream's first token arrived: its time to first token is a
    /// latency sample (`least_latency`; the answer's start was one too,
    /// and the slower of the two counts, as peaks do).
    pub fn first_token(&self) {
        if let Some(from) = self.measured_from {
            let now = Instant::now();
            self.live
                .latency
                .observe(now.saturating_duration_since(from), now);
        }
    }

    /// A stream that had begun broke: a failure of its deployment.
    pub fn failed_mid_stream(&self) {
        self.settle(false, Instant::now());
    }
}

impl Drop for Tried {
    fn drop(&mut self) {
        if self.trial && !*self.settled.get_mut() {
            self.live.breaker.abandon_trial();
        }
    }
}

/// Every candidate is at its `rpm`/`tpm` cap or its provider's limit: a
/// 429 with the time until the first has room again.
fn no_room(model: &Model, until: Instant) -> GatewayError {
    let wait = until.saturating_duration_since(Instant::now());
    let mut e = GatewayError::new(
        ErrorKind::RateLimited,
        format!(
            "every deployment of `{}` is at its rate limit; retry in {} s",
            model.name,
            wait.as_secs().max(1)
        ),
    );
    e.retry_after = Some(wait.max(std::time::Duration::from_secs(1)));
    e
}

/// The answer when every attempt failed: the last failure, listing the
/// attempts when there were several.
fn all_failed(last: Option<GatewayError>, att: &Attempts) -> GatewayError {
    let mut e = last.unwrap_or_else(|| {
        GatewayError::new(ErrorKind::Unavailable, "the model has no deployment")
    });
    if att.count > 1 {
        let tried: Vec<String> = att
            .failures
            .iter()
            .map(|(p, c)| format!("{p}: {c}"))
            .collect();
        e.message = format!(
            "all {} attempts failed ({}); last: {}",
            att.count,
            tried.join(", "),
            e.message
        );
    }
    e
}
