//! Concurrency limits (`concurrency` in a policy) on the request path: the
//! rule each level contributes, the live admission queues keyed by scope,
//! and one request's admission through all of them.
//!
//! A level with a merged `concurrency` gets one [`QueueRule`]; its queue
//! ([`AdmissionQueue`], `queue.rs`) is shared by everything under the level
//! (a tenant's queue by all its apps and keys) and lives outside the
//! snapshot, so a reload keeps it (a changed spec applies at once).
//!
//! A request takes a slot at every level that limits it, narrowest first —
//! key, app, tenant, model, global — so a request waiting for a wide slot
//! holds only narrow ones (its own key's), never a slot others share while
//! it waits for a narrower one. The slots are held until the answer ends
//! (stream included) or the client goes away. Within a priority class a
//! queue is fair across the *next level down* (its flows): the global and
//! model queues across tenants, a tenant's across its apps (keys, for
//! static keys), an app's across its keys, a key's across end users.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::time::Duration;

mod shared;

pub use shared::{Place, SharedSlot, SharedSlots, SlotCall};

use dashmap::DashMap;
use smallvec::SmallVec;
use tokio::time::Instant;

use super::handle::{store_id, Handle};
use super::queue::{AdmissionQueue, Permit, Priority, QueueRefusal, QueueSpec, DEFAULT_QUANTUM};
use super::{Scope, ScopeKind};
use crate::config::raw::ConcurrencyConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::snapshot::NameHasher;

/// `queue_timeout` when the policy sets none.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// One level's concurrency limit.
#[derive(Clone, Debug)]
pub struct QueueRule {
    pub scope: Scope,
    pub spec: QueueSpec,
    /// Its live queue, once used (`policy/handle.rs`).
    pub queue: Handle,
}

impl QueueRule {
    /// The rule of a level's merged `concurrency`, if it limits anything.
    pub fn of_level(scope: &Scope, c: Option<&ConcurrencyConfig>) -> Option<QueueRule> {
        let c = c?;
        Some(QueueRule {
            scope: scope.clone(),
            spec: QueueSpec {
                max_in_flight: c.max_in_flight.filter(|n| *n > 0)?,
                queue: c.queue.unwrap_or(0),
                timeout: c.queue_timeout.map_or(DEFAULT_QUEUE_TIMEOUT, |d| d.0),
            },
            queue: Handle::default(),
        })
    }

    /// Admission order: narrowest level first.
    fn rank(&self) -> u8 {
        match self.scope.kind {
            ScopeKind::Key => 0,
            ScopeKind::App => 1,
            ScopeKind::Tenant => 2,
            ScopeKind::Model => 3,
            ScopeKind::Global => 4,
        }
    }
}

/// The flows of one request at each level (see the module docs): stable
/// hashes of the tenant, app, key and end user it comes from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flows {
    pub tenant: u64,
    pub app: u64,
    pub key: u64,
    pub user: u64,
}

impl Flows {
    /// A stable hash of an id (the same in every process).
    pub fn hash(id: &str) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
    }

    fn of(&self, kind: ScopeKind) -> u64 {
        match kind {
            ScopeKind::Global | ScopeKind::Model => self.tenant,
            ScopeKind::Tenant => self.app,
            ScopeKind::App => self.key,
            ScopeKind::Key => self.user,
        }
    }
}

/// What one request asks of the queues.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    pub class: Priority,
    pub flows: Flows,
    /// Its weight in the fair share: estimated tokens, at least 1.
    pub cost: u64,
    /// The request's own deadline; each queue also bounds the wait by its
    /// `queue_timeout`.
    pub deadline: Option<Instant>,
    /// How long a shared slot may outlive a crash of this instance.
    pub lease: Duration,
}

/// Slots a request holds (released on drop), and how long it waited.
#[derive(Debug, Default)]
pub struct Held {
    pub permits: Vec<Permit>,
    pub waited: Duration,
    /// The widest level it holds a slot of (for metrics).
    pub widest: Option<ScopeKind>,
    /// Its slots in shared state (`shared_state`).
    pub shared: Vec<SharedSlot>,
}

impl Held {
    /// Gives every slot back unused (another policy refused the request).
    pub fn give_back(&mut self) {
        for p in self.permits.drain(..) {
            p.give_back();
        }
        self.shared.clear();
        self.widest = None;
    }
}

/// A request's levels in admission order (narrowest first), with the
/// local slots [`Queues::begin`] took at once.
pub struct Begun<'r> {
    order: Levels<'r>,
    pub held: Held,
}

/// A request's levels (five at most without shadow overlays), inline.
type Levels<'r> = SmallVec<[&'r QueueRule; 5]>;

/// The levels of `rules` in admission order: narrowest first.
fn order(rules: [&[QueueRule]; 2]) -> Levels<'_> {
    let mut order: Levels<'_> = rules.into_iter().flatten().collect();
    order.sort_by_key(|r| r.rank());
    order
}

/// A refusal at the level of `scope`: by its queue, or because the shared
/// state that counts its slots is unreachable (`fail_closed`).
#[derive(Debug)]
pub struct Refused {
    pub scope: Scope,
    pub refusal: Option<QueueRefusal>,
}

impl Refused {
    /// The metric label value.
    pub fn reason(&self) -> &'static str {
        self.refusal
            .as_ref()
            .map_or("shared_state_unavailable", QueueRefusal::reason)
    }

    /// The answer: the queue's 429 / 503, or a 503 saying the shared state
    /// is unreachable.
    pub fn to_error(&self) -> GatewayError {
        match &self.refusal {
            Some(r) => r.to_error(&self.scope.label),
            None => GatewayError::new(
                ErrorKind::Unavailable,
                "concurrency limits cannot be checked: the shared state is unreachable (on_shared_state_failure: fail_closed)",
            ),
        }
    }
}

/// The live queues, keyed by scope (config and store names, hashed with
/// FNV-1a: never request data), and the shared slots when `shared_state`
/// is set.
pub struct Queues {
    /// This store's number, for the rules' handles.
    id: u64,
    map: DashMap<(ScopeKind, Arc<str>), Arc<AdmissionQueue>, BuildHasherDefault<NameHasher>>,
    shared: Option<SharedSlots>,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            id: store_id(),
            map: DashMap::default(),
            shared: None,
        }
    }
}

impl Queues {
    /// Queues whose slots are also counted in shared state.
    pub fn shared(slots: SharedSlots) -> Queues {
        Queues {
            shared: Some(slots),
            ..Queues::default()
        }
    }

    /// The queue of `rule`'s scope: through the rule's handle, else looked
    /// up (created on first use) and left in the handle. A rule's spec is
    /// applied when its handle is filled, so a reload (new rules) applies a
    /// changed spec at once, and a request under an older rule still in
    /// flight does not put the old spec back.
    fn queue(&self, rule: &QueueRule) -> Arc<AdmissionQueue> {
        if let Some(q) = rule.queue.get::<Arc<AdmissionQueue>>(self.id) {
            return q.clone();
        }
        let q = self.lookup(rule);
        rule.queue.fill(self.id, Arc::new(q.clone()));
        q
    }

    fn lookup(&self, rule: &QueueRule) -> Arc<AdmissionQueue> {
        let key = (rule.scope.kind, rule.scope.id.clone());
        // A read lock when the queue exists (the common case).
        let found = self.map.get(&key).map(|q| q.clone());
        let q = found.unwrap_or_else(|| {
            self.map
                .entry(key)
                .or_insert_with(|| Arc::new(AdmissionQueue::new(rule.spec, DEFAULT_QUANTUM)))
                .clone()
        });
        if q.spec() != rule.spec {
            q.set_spec(rule.spec);
        }
        q
    }

    /// Takes a slot of every rule, narrowest level first, waiting as the
    /// queues say; on a refusal the slots taken so far are released.
    pub async fn admit(&self, rules: [&[QueueRule]; 2], ask: &Ask) -> Result<Held, Refused> {
        let begun = Begun {
            order: order(rules),
            held: Held::default(),
        };
        self.finish(begun, Vec::new(), Some(0), ask).await
    }

    /// The first step of a shared-mode admission: the local slots free at
    /// once, narrowest level first, up to the first level that would have
    /// to wait; never waits.
    pub fn begin<'r>(&self, rules: [&'r [QueueRule]; 2]) -> Begun<'r> {
        let order = order(rules);
        let mut held = Held::default();
        for rule in &order {
            let Some(p) = self.queue(rule).try_acquire() else {
                break;
            };
            held.permits.push(p);
            held.widest = Some(rule.scope.kind);
        }
        Begun { order, held }
    }

    /// The shared slots to ask for in the admission call: those of the
    /// levels whose local slot [`begin`](Self::begin) took.
    pub fn slot_calls(&self, begun: &Begun<'_>, lease: Duration) -> Vec<SlotCall> {
        let Some(s) = &self.shared else {
            return Vec::new();
        };
        let n = begun.held.permits.len();
        begun.order[..n]
            .iter()
            .map(|r| s.prepare(&r.scope, r.spec, lease))
            .collect()
    }

    /// Completes an admission: the admission call took `taken` of `calls`
    /// (`None`: it failed, and `on_shared_state_failure` decides); every
    /// other level takes its local slot (waiting in its queue) and then
    /// its shared one (retrying).
    pub async fn finish(
        &self,
        begun: Begun<'_>,
        calls: Vec<SlotCall>,
        taken: Option<usize>,
        ask: &Ask,
    ) -> Result<Held, Refused> {
        let Begun { order, mut held } = begun;
        // One clock read for the whole admission (the wait is the time
        // from here to the last slot), another per level only with shared
        // state.
        let started = Instant::now();
        let deadline = ask
            .deadline
            .unwrap_or(started + Duration::from_secs(86_400));
        let mut calls = calls.into_iter();
        let mut shared = self.shared.as_ref();
        match (shared, taken) {
            (Some(s), Some(k)) => held
                .shared
                .extend(calls.by_ref().take(k).map(|c| s.taken(c))),
            (Some(s), None) => match s.fallback() {
                shared::Taken::Unavailable => {
                    let Some(first) = order.first() else {
                        return Ok(held);
                    };
                    held.give_back();
                    return Err(Refused {
                        scope: first.scope.clone(),
                        refusal: None,
                    });
                }
                _ => shared = None,
            },
            (None, _) => {}
        }
        let done = held.shared.len();
        for (i, rule) in order.iter().enumerate() {
            // When this level's wait began (its shared slot's bound).
            let rule_started = shared.map(|_| Instant::now());
            let refused = |refusal| Refused {
                scope: rule.scope.clone(),
                refusal,
            };
            if i >= held.permits.len() {
                let q = self.queue(rule);
                let flow = ask.flows.of(rule.scope.kind);
                let p = q.acquire(ask.class, flow, ask.cost.max(1), deadline).await;
                held.permits.push(p.map_err(|r| refused(Some(r)))?);
                held.widest = Some(rule.scope.kind);
            }
            if let Some(s) = shared.filter(|_| i >= done) {
                let call = calls
                    .next()
                    .unwrap_or_else(|| s.prepare(&rule.scope, rule.spec, ask.lease));
                let began = rule_started.unwrap_or(started);
                let until = deadline.min(began + rule.spec.timeout);
                let place = Place {
                    class: ask.class,
                    flow: ask.flows.of(rule.scope.kind),
                    cost: ask.cost,
                };
                match s.take(call, rule.scope.kind, place, until).await {
                    shared::Taken::Slot(slot) => held.shared.push(slot),
                    shared::Taken::Unchecked => {}
                    shared::Taken::Refused(r) => return Err(refused(Some(r))),
                    shared::Taken::Unavailable => return Err(refused(None)),
                }
            }
        }
        held.waited = started.elapsed();
        Ok(held)
    }

    /// Slots taken and requests waiting, summed per level (for metrics);
    /// with shared state, requests waiting in a shared line count as
    /// waiting.
    pub fn totals(&self) -> Vec<(ScopeKind, u64, u64)> {
        let mut out: Vec<(ScopeKind, u64, u64)> = Vec::new();
        for e in self.map.iter() {
            let (kind, q) = (e.key().0, e.value());
            let (f, w) = (u64::from(q.in_flight()), u64::from(q.waiting()));
            match out.iter_mut().find(|t| t.0 == kind) {
                Some(t) => {
                    t.1 += f;
                    t.2 += w;
                }
                None => out.push((kind, f, w)),
            }
        }
        // A request waiting in a shared line holds its local slot: it
        // waits, it does not run.
        if let Some(s) = &self.shared {
            for t in &mut out {
                let w = s.waiting(t.0).min(t.1);
                t.1 -= w;
                t.2 += w;
            }
        }
        out
    }

    /// Forgets idle queues (no slot taken, nobody waiting). A queue in use
    /// elsewhere (an `Arc` held by a rule's handle, or by a request between
    /// lookup and acquire) is kept.
    pub fn prune(&self) {
        self.map
            .retain(|_, q| !(q.is_idle() && Arc::strong_count(q) == 1));
    }

    /// Queues alive.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
