//! Rate counters shared by every instance (`shared_state: redis://…`): one
//! Redis script admits a request under all its rules in one round trip
//! (`acquire.lua`: the same GCRA as the local gates, on the Redis server's
//! clock, every rule checked before any counter is written, so a refused
//! request counts nowhere), and a second one settles token reservations
//! when the request ends (`settle.lua`, off the request path).
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

use sha2::{Digest, Sha256};

use super::{
    GateSpec, LocalRates, RateNote, RateRule, RateStore, Refused, Standing, TokenHold, Who,
    INTERVALS,
};
use crate::config::raw::{RatePer, SharedStateFailure};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::shared_state::SharedState;
use crate::policy::Decision;

/// Rate counters in Redis, with this instance's own as the fallback.
pub struct SharedRates {
    state: Arc<SharedState>,
    acquire: redis::Script,
    settle: Arc<redis::Script>,
    fallback: LocalRates,
}

/// One gate of the script call: its rule, spec and counter key.
struct Sent<'r> {
    rule: &'r RateRule,
    spec: GateSpec,
    part: u64,
}

impl SharedRates {
    pub fn new(state: Arc<SharedState>) -> SharedRates {
        SharedRates {
            state,
            acquire: redis::Script::new(include_str!("acquire.lua")),
            settle: Arc::new(redis::Script::new(include_str!("settle.lua"))),
            fallback: LocalRates::default(),
        }
    }

    /// Admits the request under every applicable rule, in Redis.
    pub async fn acquire(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        let applicable: Vec<&RateRule> = rules
            .into_iter()
            .flatten()
            .filter(|r| r.applies_to(who.bucket))
            .collect();
        if let Some(d) = too_large(&applicable, who.tokens) {
            return d;
        }
        let mut sent: Vec<Sent<'_>> = Vec::new();
        let mut call = self.acquire.prepare_invoke();
        for rule in &applicable {
            let part = partition(rule.key.per, who);
            for (i, spec) in rule.key.spec.gates().enumerate() {
                let cost = if spec.tokens { who.tokens } else { 1 };
                if cost == 0 {
                    continue;
                }
                call.key(counter_key(rule, part, i));
                sent.push(Sent { rule, spec, part });
            }
        }
        call.arg(sent.len());
        for s in &sent {
            let rule_no = applicable
                .iter()
                .position(|r| std::ptr::eq(*r, s.rule))
                .map_or(0, |p| p + 1);
            let cost = if s.spec.tokens { who.tokens } else { 1 };
            call.arg(rule_no)
                .arg(micros_per_cell(&s.spec))
                .arg(s.spec.burst)
                .arg(cost);
        }
        for rule in &applicable {
            call.arg(u8::from(rule.shadow));
        }
        let mut conn = self.state.conn();
        let reply =
            tokio::time::timeout(self.state.timeout, call.invoke_async::<Vec<i64>>(&mut conn))
                .await;
        match reply {
            Ok(Ok(v)) => decide(&applicable, &sent, &v, who.tokens),
            Ok(Err(e)) => self.failed(&e.to_string(), rules, who),
            Err(_) => self.failed("no answer within shared_state_timeout", rules, who),
        }
    }

    /// Settles token holds in Redis, in the background.
    pub fn settle(&self, holds: &[TokenHold], actual: u64) {
        let (mut keys, mut args) = (Vec::new(), Vec::new());
        for h in holds {
            for (i, spec) in h.key.spec.gates().enumerate() {
                if !spec.tokens {
                    continue;
                }
                let delta = actual as f64 - f64::from(h.reserved);
                if delta == 0.0 {
                    continue;
                }
                keys.push(format!("sluice:rl:{}:{:016x}:{i}", h.key.stable, h.part));
                args.push(micros_per_cell(&spec));
                args.push(delta);
            }
        }
        if keys.is_empty() {
            return;
        }
        let script = self.settle.clone();
        let (mut conn, timeout) = (self.state.conn(), self.state.timeout * 4);
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

    /// Redis failed: counted and logged, then decided as configured.
    fn failed(&self, why: &str, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        self.state.failed("rate limits", why);
        match self.state.on_failure {
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

/// The script's answer as a decision.
fn decide(rules: &[&RateRule], sent: &[Sent<'_>], v: &[i64], tokens: u32) -> Decision<RateNote> {
    let micros = |x: i64| Duration::from_micros(u64::try_from(x).unwrap_or(0));
    if v.first() == Some(&1) {
        let rule = rules[usize::try_from(v[1] - 1).unwrap_or(0)];
        let gate = &sent[usize::try_from(v[2] - 1).unwrap_or(0)];
        let refused = Refused {
            wait: micros(v[3]),
            reset: micros(v[4]),
            never: false,
        };
        return super::registry::refuse(rule, gate.spec, refused, tokens);
    }
    let shadow_refused = v.get(1).copied().unwrap_or(0);
    let mut note = RateNote::default();
    if shadow_refused > 0 {
        let rule = rules[usize::try_from(shadow_refused - 1).unwrap_or(0)];
        let gate = sent.iter().find(|s| std::ptr::eq(s.rule, rule));
        note.would_block = Some(rule.hit(gate.is_some_and(|g| g.spec.tokens)));
    }
    for (i, s) in sent.iter().enumerate() {
        let skipped = shadow_refused > 0
            && std::ptr::eq(
                s.rule,
                rules[usize::try_from(shadow_refused - 1).unwrap_or(0)],
            );
        if skipped {
            continue;
        }
        let standing = Standing {
            limit: s.spec.count,
            remaining: u32::try_from(v.get(2 + 2 * i).copied().unwrap_or(0).max(0))
                .unwrap_or(u32::MAX),
            reset: micros(v.get(3 + 2 * i).copied().unwrap_or(0)),
        };
        if !s.rule.shadow {
            if s.spec.tokens {
                note.tighten(None, Some(standing));
            } else {
                note.tighten(Some(standing), None);
            }
        }
        let held = note
            .holds
            .iter()
            .any(|h| h.key == s.rule.key && h.part == s.part);
        if s.spec.tokens && !held {
            note.holds.push(TokenHold {
                key: s.rule.key.clone(),
                part: s.part,
                reserved: tokens,
            });
        }
    }
    Decision {
        note,
        refusal: None,
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
