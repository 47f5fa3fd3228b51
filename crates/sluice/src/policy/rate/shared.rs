//! Rate counters shared by every instance (`shared_state: redis://…`): a
//! request is counted under all its rules as its part of the admission
//! script (`policy/admission.lua`, with its budgets and slots: the same
//! GCRA as the local gates, on the Redis server's clock, every rule checked
//! before any counter is written, so a refused request counts nowhere), and
//! a second script settles token reservations when the request ends
//! (`settle.lua`, off the request path).
//!
//! Counter keys are `sluice:rl:<rule>:<partition>:<gate>`, where `<rule>`
//! is the rule's stable digest ([`RuleKey::stable`]) and `<partition>` a
//! SHA-256 prefix of the end user or client IP (never the value itself):
//! equal on every instance, expiring when the counter is full again.
//!
//! When Redis errs or does not answer within `shared_state_timeout`, the
//! request is decided as `on_shared_state_failure` says — `local`: by this
//! instance's own counters (the limit then holds per instance),
//! `fail_open`: admitted, `fail_closed`: refused with 503 — and the failure
//! is counted and logged (at most once every 10 s).

use std::sync::Arc;
use std::time::Duration;

use redis::ScriptInvocation;
use sha2::{Digest, Sha256};

use super::{
    GateSpec, Holds, LocalRates, RateNote, RateRule, RateStore, Refused, RuleAt, Standing,
    TokenHold, Who, INTERVALS,
};
use crate::config::raw::{RatePer, SharedStateFailure};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::admission::{parse, Admission, Reply};
use crate::policy::Decision;

/// Rate counters in Redis, with this instance's own as the fallback.
pub struct SharedRates {
    admission: Arc<Admission>,
    settle: Arc<redis::Script>,
    fallback: LocalRates,
}

/// One gate of the script call: its rule, spec, index among the rule's
/// gates, and partition (which make its counter key).
struct Sent<'r> {
    rule: &'r RateRule,
    spec: GateSpec,
    gate: usize,
    part: u64,
}

/// A request's rate part of the admission call (`admission.lua`): the
/// rules that apply to it and the gates they count.
pub struct RateCall<'r> {
    /// The request's rules (the caller's, the model's), which holds name.
    lists: [&'r [RateRule]; 2],
    rules: Vec<&'r RateRule>,
    sent: Vec<Sent<'r>>,
    tokens: u32,
}

impl SharedRates {
    pub fn new(admission: Arc<Admission>) -> SharedRates {
        SharedRates {
            admission,
            settle: Arc::new(redis::Script::new(include_str!("settle.lua"))),
            fallback: LocalRates::default(),
        }
    }

    /// The part of the admission call that counts the request under every
    /// applicable rule; `Err` when it is decided without asking (a token
    /// gate asked for more than its whole quota).
    pub fn prepare<'r>(
        &self,
        rules: [&'r [RateRule]; 2],
        who: &Who<'_>,
    ) -> Result<RateCall<'r>, Box<Decision<RateNote>>> {
        let applicable: Vec<&RateRule> = rules
            .into_iter()
            .flatten()
            .filter(|r| r.applies_to(who.bucket))
            .collect();
        if let Some(d) = too_large(&applicable, who.tokens) {
            return Err(Box::new(d));
        }
        let mut sent: Vec<Sent<'_>> = Vec::new();
        for rule in &applicable {
            let part = partition(rule.key.per, who);
            for (gate, spec) in rule.key.spec.gates().enumerate() {
                if spec.tokens && who.tokens == 0 {
                    continue;
                }
                sent.push(Sent {
                    rule,
                    spec,
                    gate,
                    part,
                });
            }
        }
        Ok(RateCall {
            lists: rules,
            rules: applicable,
            sent,
            tokens: who.tokens,
        })
    }

    /// Admits the request under every applicable rule in Redis, alone; a
    /// request's admission sends this part with its others instead.
    pub async fn acquire(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        let call = match self.prepare(rules, who) {
            Ok(c) => c,
            Err(decided) => return *decided,
        };
        let reply = self.admission.call(None, Some(&call), &[]).await;
        match reply.as_deref().and_then(|v| parse(v, 0, call.len().0)) {
            Some(Reply::RateRefused {
                rule,
                gate,
                wait,
                reset,
            }) => call.refused(rule, gate, wait, reset),
            Some(Reply::Admitted { shadow, gates, .. }) => call.admitted(shadow, gates),
            _ => self.fallback(rules, who),
        }
    }

    /// Settles token holds in Redis, in the background.
    pub fn settle(&self, rules: [&[RateRule]; 2], holds: &Holds, actual: u64) {
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        for (h, rule) in holds.iter().filter_map(|h| Some((h, h.rule.get(rules)?))) {
            for (i, spec) in rule.key.spec.gates().enumerate() {
                if !spec.tokens {
                    continue;
                }
                let delta = actual as f64 - f64::from(h.reserved);
                if delta == 0.0 {
                    continue;
                }
                keys.push(format!("sluice:rl:{}:{:016x}:{i}", rule.key.stable, h.part));
                args.push(micros_per_cell(&spec));
                args.push(delta);
            }
        }
        if keys.is_empty() {
            return;
        }
        let script = self.settle.clone();
        let state = self.admission.state();
        let (mut conn, timeout) = (state.conn(), state.timeout * 4);
        tokio::spawn(async move {
            let mut call = script.prepare_invoke();
            for k in keys {
                call.key(k);
            }
            for a in args {
                call.arg(a);
            }
            let r = tokio::time::timeout(timeout, call.invoke_async::<i64>(&mut conn)).await;
            if !matches!(r, Ok(Ok(_))) {
                tracing::warn!("shared state: settling token reservations failed; the reserved tokens come back as the counter refills");
            }
        });
    }

    pub fn prune(&self) {
        self.fallback.prune();
    }

    /// The decision when the shared state failed (already counted and
    /// logged): as `on_shared_state_failure` says.
    pub fn fallback(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        match self.admission.state().on_failure {
            SharedStateFailure::Local => self.fallback.acquire(rules, who),
            SharedStateFailure::FailOpen => Decision {
                note: RateNote::default(),
                refusal: None,
            },
            SharedStateFailure::FailClosed => Decision {
                note: RateNote::default(),
                refusal: Some(GatewayError::new(
                    ErrorKind::Unavailable,
                    "rate limits cannot be checked: the shared state is unreachable (on_shared_state_failure: fail_closed)",
                )),
            },
        }
    }
}

/// A token gate asked for more than its whole quota: refused for good,
/// without asking Redis.
fn too_large(rules: &[&RateRule], tokens: u32) -> Option<Decision<RateNote>> {
    for rule in rules.iter().filter(|r| !r.shadow) {
        if let Some(spec) = rule.key.spec.gates().find(|g| g.tokens && tokens > g.burst) {
            let full =
                Duration::from_micros((micros_per_cell(&spec) * f64::from(spec.burst)) as u64);
            let refused = Refused {
                wait: full,
                reset: full,
                never: true,
            };
            return Some(super::registry::refuse(rule, spec, refused, tokens));
        }
    }
    None
}

impl RateCall<'_> {
    /// Gates and rules in the call.
    pub fn len(&self) -> (usize, usize) {
        (self.sent.len(), self.rules.len())
    }

    /// Adds this part's keys and arguments to the admission call.
    pub fn write(&self, call: &mut ScriptInvocation<'_>) {
        for s in &self.sent {
            call.key(counter_key(s.rule, s.part, s.gate));
            let rule_no = self
                .rules
                .iter()
                .position(|r| std::ptr::eq(*r, s.rule))
                .map_or(0, |p| p + 1);
            call.arg(rule_no)
                .arg(micros_per_cell(&s.spec))
                .arg(s.spec.burst)
                .arg(self.cost(&s.spec));
        }
        for rule in &self.rules {
            call.arg(u8::from(rule.shadow));
        }
    }

    fn cost(&self, spec: &GateSpec) -> u32 {
        if spec.tokens {
            self.tokens
        } else {
            1
        }
    }

    /// Rule `rule`'s gate `gate` (1-based) refused: the 429 naming it.
    pub fn refused(
        &self,
        rule: usize,
        gate: usize,
        wait: Duration,
        reset: Duration,
    ) -> Decision<RateNote> {
        let (Some(r), Some(g)) = (self.rules.get(rule - 1), self.sent.get(gate - 1)) else {
            // `admission::parse` checks the range; never admit on a bad one.
            return Decision {
                note: RateNote::default(),
                refusal: Some(GatewayError::new(
                    ErrorKind::Internal,
                    "rate check answered an unknown rule",
                )),
            };
        };
        let refused = Refused {
            wait,
            reset,
            never: false,
        };
        super::registry::refuse(r, g.spec, refused, self.tokens)
    }

    /// Counted under every rule: the tightest standing for the headers,
    /// the shadow rule (1-based, 0: none) that would have refused, and the
    /// token holds to settle. `gates` holds each gate's remaining cells
    /// and reset (µs).
    pub fn admitted(&self, shadow: usize, gates: &[i64]) -> Decision<RateNote> {
        let micros = |x: i64| Duration::from_micros(u64::try_from(x).unwrap_or(0));
        let shadow_rule = shadow.checked_sub(1).and_then(|i| self.rules.get(i));
        let mut note = RateNote::default();
        if let Some(rule) = shadow_rule {
            let gate = self.sent.iter().find(|s| std::ptr::eq(s.rule, *rule));
            note.would_block = Some(rule.hit(gate.is_some_and(|g| g.spec.tokens)));
        }
        for (i, s) in self.sent.iter().enumerate() {
            if shadow_rule.is_some_and(|r| std::ptr::eq(s.rule, *r)) {
                continue;
            }
            let standing = Standing {
                limit: s.spec.count,
                remaining: u32::try_from(gates.get(2 * i).copied().unwrap_or(0).max(0))
                    .unwrap_or(u32::MAX),
                reset: micros(gates.get(2 * i + 1).copied().unwrap_or(0)),
            };
            if !s.rule.shadow {
                if s.spec.tokens {
                    note.tighten(None, Some(standing));
                } else {
                    note.tighten(Some(standing), None);
                }
            }
            if !s.spec.tokens {
                continue;
            }
            let Some(at) = RuleAt::of(self.lists, s.rule) else {
                continue;
            };
            if !note.holds.iter().any(|h| h.rule == at && h.part == s.part) {
                note.holds.push(TokenHold {
                    rule: at,
                    part: s.part,
                    reserved: self.tokens,
                });
            }
        }
        Decision {
            note,
            refusal: None,
        }
    }
}

/// The counter of gate `i` of `rule` for partition `part`.
fn counter_key(rule: &RateRule, part: u64, i: usize) -> String {
    format!("sluice:rl:{}:{part:016x}:{i}", rule.key.stable)
}

/// A gate's emission interval in microseconds per cell.
fn micros_per_cell(g: &GateSpec) -> f64 {
    (INTERVALS[g.interval].0 as f64 * 1e6) / f64::from(g.count.max(1))
}

/// The partition of a request under a rule, the same on every instance.
fn partition(per: Option<RatePer>, who: &Who<'_>) -> u64 {
    let digest = |s: &str| {
        let d = Sha256::digest(s.as_bytes());
        u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
    };
    match per {
        None => 0,
        Some(RatePer::User) => who.user.map_or(0, digest),
        Some(RatePer::Ip) => who.ip.map_or(0, |ip| digest(&ip.to_string())),
    }
}
