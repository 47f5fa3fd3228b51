//! Where rate counters live. [`RateStore`] is the boundary the stage calls;
//! [`LocalRates`] keeps the counters in this process: GCRA gates in a
//! concurrent map keyed by [`RuleKey`], created on first use, pruned on a
//! timer. Shared counters for several instances live in Redis
//! (`rate/shared.rs`), which falls back to a [`LocalRates`].
//!
//! The map holds each rule's counters in an `Arc`, and the rule keeps a
//! [`Handle`] on them (`policy/handle.rs`), so a request under a rule it
//! has seen needs no lookup. Pruning resets idle gates and removes a rule's
//! counters only when they are idle and nothing else holds them — no rule
//! in use, no request checking them — so an admission is never lost to a
//! concurrent prune, and a rule's counters never split in two.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::DefaultClock;

use super::gcra::{Cells, Gate, PassThroughState, Passed, RateClock, Refused, Write};
use super::{
    GateSpec, Holds, Many, One, RateNote, RateRule, RuleAt, RuleKey, Standing, TokenHold, Who,
};
use crate::config::raw::RatePer;
use crate::policy::handle::store_id;
use crate::policy::Decision;

/// Where rate counters live (see the module docs).
pub trait RateStore: Send + Sync {
    /// Admits the request under every applicable rule — counting it only
    /// if all admit — or refuses it, naming the first enforced rule that
    /// does not. `rules` are the caller's then the model's. Token gates
    /// count `who.tokens`; the note's `holds` say what to settle.
    fn acquire(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote>;

    /// Settles the token reservations of an admitted request to the
    /// tokens it really used (0 when it failed before any answer);
    /// `rules` are the ones it was admitted under.
    fn settle(&self, rules: [&[RateRule]; 2], holds: &Holds, actual: u64);

    /// Forgets idle counters (run on a timer): memory stays bounded by the
    /// callers active within each rule's longest interval.
    fn prune(&self);
}

/// A rule's gates, each with its spec (worked out once, not per
/// request): one counter each, or one per partition.
enum Counters<C: RateClock> {
    Shared(Gates<One, C>),
    Partitioned(Gates<Many, C>),
}

type Gates<S, C> = Vec<(GateSpec, Gate<S, C>)>;

fn gates<S: Cells, C: RateClock>(key: &RuleKey, clock: &C) -> Gates<S, C> {
    key.spec
        .gates()
        .map(|g| {
            let burst = NonZeroU32::new(g.burst).unwrap_or(NonZeroU32::MIN);
            (g, Gate::new(g.period(), burst, clock.clone()))
        })
        .collect()
}

/// What one rule counted for the request (four request gates and four
/// token gates at most).
type Writes = [Option<Write>; 8];

/// A rule's admission: its writes and its tightest request and token gates.
struct RuleOk {
    writes: Writes,
    standing: Option<Standing>,
    tokens: Option<Standing>,
}

/// A rule's refusal: the refusing gate, and what it says.
struct RuleRefused {
    gate: GateSpec,
    refused: Refused,
}

impl<C: RateClock> Counters<C> {
    fn new(key: &RuleKey, clock: &C) -> Self {
        match key.per {
            None => Counters::Shared(gates(key, clock)),
            Some(_) => Counters::Partitioned(gates(key, clock)),
        }
    }

    fn check(&self, part: u64, cost: u32) -> Result<RuleOk, RuleRefused> {
        match self {
            Counters::Shared(g) => check_gates(g, part, cost),
            Counters::Partitioned(g) => check_gates(g, part, cost),
        }
    }

    fn settle(&self, part: u64, reserved: u32, actual: u64) {
        match self {
            Counters::Shared(g) => settle_gates(g, part, reserved, actual),
            Counters::Partitioned(g) => settle_gates(g, part, reserved, actual),
        }
    }

    fn undo(&self, part: u64, writes: &Writes) {
        match self {
            Counters::Shared(g) => undo_gates(g, part, writes),
            Counters::Partitioned(g) => undo_gates(g, part, writes),
        }
    }

    /// Prunes every gate; true when all are idle.
    fn prune(&self) -> bool {
        match self {
            Counters::Shared(g) => prune_gates(g),
            Counters::Partitioned(g) => prune_gates(g),
        }
    }

    fn is_idle(&self) -> bool {
        match self {
            Counters::Shared(g) => g.iter().all(|(_, g)| g.len() == 0),
            Counters::Partitioned(g) => g.iter().all(|(_, g)| g.len() == 0),
        }
    }
}

/// Checks the gates in order — request gates count one, token gates
/// `cost` (skipped when 0) — and a refusal undoes the gates before it.
fn check_gates<S: Cells, C: RateClock>(
    gates: &[(GateSpec, Gate<S, C>)],
    part: u64,
    cost: u32,
) -> Result<RuleOk, RuleRefused> {
    let mut ok = RuleOk {
        writes: [None; 8],
        standing: None,
        tokens: None,
    };
    for (i, &(spec, ref gate)) in gates.iter().enumerate() {
        let checked = match (spec.tokens, cost) {
            (false, _) => gate.check(part),
            (true, 0) => continue,
            (true, n) => gate.check_n(part, n),
        };
        match checked {
            Ok(Passed {
                write,
                remaining,
                reset,
            }) => {
                ok.writes[i] = write;
                let s = Standing {
                    limit: spec.count,
                    remaining,
                    reset,
                };
                let slot = if spec.tokens {
                    &mut ok.tokens
                } else {
                    &mut ok.standing
                };
                if slot.is_none_or(|t| s.remaining < t.remaining) {
                    *slot = Some(s);
                }
            }
            Err(refused) => {
                undo_gates(gates, part, &ok.writes);
                return Err(RuleRefused {
                    gate: spec,
                    refused,
                });
            }
        }
    }
    Ok(ok)
}

/// Settles the token gates of one admission.
fn settle_gates<S: Cells, C: RateClock>(
    gates: &[(GateSpec, Gate<S, C>)],
    part: u64,
    reserved: u32,
    actual: u64,
) {
    for (spec, gate) in gates {
        if spec.tokens {
            gate.settle(part, reserved, actual);
        }
    }
}

/// Prunes each gate (all of them: no short circuit); true when all are idle.
fn prune_gates<S: Cells, C: RateClock>(gates: &[(GateSpec, Gate<S, C>)]) -> bool {
    let mut idle = true;
    for (_, g) in gates {
        idle &= g.prune();
    }
    idle
}

fn undo_gates<S: Cells, C: RateClock>(
    gates: &[(GateSpec, Gate<S, C>)],
    part: u64,
    writes: &Writes,
) {
    for ((_, gate), w) in gates.iter().zip(writes) {
        if let Some(w) = w {
            gate.undo(part, *w);
        }
    }
}

/// The admissions of one request so far, to undo if a later rule refuses.
/// Inline for up to eight rules (five levels — global, tenant, app, key,
/// model — some with a shadow overlay); spills to the heap beyond.
#[derive(Default)]
struct Taken<'r> {
    inline: [Option<(&'r RuleKey, u64, Writes)>; 8],
    len: usize,
    spill: Vec<(&'r RuleKey, u64, Writes)>,
}

impl<'r> Taken<'r> {
    fn push(&mut self, key: &'r RuleKey, part: u64, writes: Writes) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some((key, part, writes));
                self.len += 1;
            }
            None => self.spill.push((key, part, writes)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(&'r RuleKey, u64, Writes)> {
        self.inline.iter().flatten().chain(&self.spill)
    }
}

/// The partition keys of one request, hashed on first need.
struct Parts<'a> {
    who: &'a Who<'a>,
    hasher: &'a RandomState,
    user: Option<u64>,
    ip: Option<u64>,
}

/// The partition of requests without an end user / a known IP.
const ANONYMOUS: u64 = 0;

impl Parts<'_> {
    fn of(&mut self, per: Option<RatePer>) -> u64 {
        let (who, hasher) = (self.who, self.hasher);
        match per {
            None => 0,
            Some(RatePer::User) => *self
                .user
                .get_or_insert_with(|| who.user.map_or(ANONYMOUS, |u| hasher.hash_one(u))),
            Some(RatePer::Ip) => *self
                .ip
                .get_or_insert_with(|| who.ip.map_or(ANONYMOUS, |ip| hasher.hash_one(ip))),
        }
    }
}

/// Rate counters in this process.
pub struct LocalRates<C: RateClock = DefaultClock> {
    /// This store's number, for the rules' handles.
    id: u64,
    rules: DashMap<RuleKey, Arc<Counters<C>>, PassThroughState>,
    clock: C,
    /// Keys partition hashes (random per process: ids cannot be crafted to
    /// collide with another user's bucket).
    hasher: RandomState,
}

impl Default for LocalRates<DefaultClock> {
    fn default() -> Self {
        LocalRates::with_clock(DefaultClock::default())
    }
}

impl<C: RateClock> LocalRates<C> {
    pub fn with_clock(clock: C) -> Self {
        LocalRates {
            id: store_id(),
            rules: DashMap::default(),
            clock,
            hasher: RandomState::new(),
        }
    }

    /// The counters of `key`, created on first use.
    fn lookup(&self, key: &RuleKey) -> Arc<Counters<C>> {
        if let Some(c) = self.rules.get(key) {
            return c.clone();
        }
        self.rules
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Counters::new(key, &self.clock)))
            .clone()
    }

    /// Runs `f` on the counters of `rule`: through its handle, else looked
    /// up (and left in the handle).
    fn with<T>(&self, rule: &RateRule, f: impl FnOnce(&Counters<C>) -> T) -> T {
        if let Some(c) = rule.counters.get::<Counters<C>>(self.id) {
            return f(c);
        }
        let c = self.lookup(&rule.key);
        rule.counters.fill(self.id, c.clone());
        f(&c)
    }

    fn undo(&self, taken: &Taken<'_>) {
        for (key, part, writes) in taken.iter() {
            if let Some(c) = self.rules.get(*key) {
                c.undo(*part, writes);
            }
        }
    }

    /// Rules with live counters.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Cells in use and allocated by the partitioned rule `key` (for tests).
    pub fn partitions(&self, key: &RuleKey) -> Option<(usize, usize)> {
        match &**self.rules.get(key)? {
            Counters::Partitioned(g) => g.first().map(|(_, g)| (g.len(), g.cells().capacity())),
            Counters::Shared(_) => None,
        }
    }
}

impl<C: RateClock> RateStore for LocalRates<C> {
    fn acquire(&self, rules: [&[RateRule]; 2], who: &Who<'_>) -> Decision<RateNote> {
        let mut note = RateNote::default();
        let mut taken = Taken::default();
        let mut parts = Parts {
            who,
            hasher: &self.hasher,
            user: None,
            ip: None,
        };
        for (rule, at) in RuleAt::placed(rules) {
            if !rule.applies_to(who.bucket) {
                continue;
            }
            let part = parts.of(rule.key.per);
            match self.with(rule, |c| c.check(part, who.tokens)) {
                Ok(ok) => {
                    if !rule.shadow {
                        note.tighten(ok.standing, ok.tokens);
                    }
                    if who.tokens > 0 && rule.key.spec.counts_tokens() {
                        note.holds.push(TokenHold {
                            rule: at,
                            part,
                            reserved: who.tokens,
                        });
                    }
                    taken.push(&rule.key, part, ok.writes);
                }
                Err(RuleRefused { gate, .. }) if rule.shadow => {
                    note.would_block
                        .get_or_insert_with(|| rule.hit(gate.tokens));
                }
                Err(RuleRefused { gate, refused }) => {
                    self.undo(&taken);
                    return refuse(rule, gate, refused, who.tokens);
                }
            }
        }
        Decision {
            note,
            refusal: None,
        }
    }

    fn settle(&self, rules: [&[RateRule]; 2], holds: &Holds, actual: u64) {
        for h in holds.iter() {
            // Always there: the request keeps the rules it was admitted
            // under (and a place out of range is a bug, not a reason to
            // panic while a request ends).
            if let Some(rule) = h.rule.get(rules) {
                self.with(rule, |c| c.settle(h.part, h.reserved, actual));
            }
        }
    }

    fn prune(&self) {
        for entry in self.rules.iter() {
            entry.value().prune();
        }
        // Under the shard's write lock: nobody can take a new `Arc` of an
        // entry meanwhile, so a count of 1 means no rule or request holds it.
        self.rules
            .retain(|_, c| !(Arc::strong_count(c) == 1 && c.is_idle()));
    }
}

pub(super) fn refuse(
    rule: &RateRule,
    gate: GateSpec,
    refused: Refused,
    cost: u32,
) -> Decision<RateNote> {
    let standing = Some(Standing {
        limit: gate.count,
        remaining: 0,
        reset: refused.reset,
    });
    let mut note = RateNote {
        limited: Some(rule.hit(gate.tokens)),
        ..RateNote::default()
    };
    if gate.tokens {
        note.tightest_tokens = standing;
    } else {
        note.tightest = standing;
    }
    Decision {
        note,
        refusal: Some(rule.refusal(gate, refused, cost)),
    }
}
