//! Budgets shared by every instance (`shared_state: redis://…`): a request
//! reserves its maximum cost under all its counters as its part of the
//! admission script (`policy/admission.lua`, with its rate limits and
//! slots) and settles them in another script when it ends
//! (`settle_budget.lua`, off the request path). So concurrent requests on
//! different instances cannot overspend a `block` budget together, and each
//! `alert_at` fraction fires once across all instances.
//!
//! A counter is `sluice:bud:<scope>:<period>:<start>` (a hash of `spent`
//! and `reserved` micro-USD) with its holds (a sorted set of hold ids by
//! expiry), their amounts, and the fractions fired. A hold whose instance
//! died before settling (SIGKILL) is released by the next reservation after
//! its lease — the request's longest possible life plus [`LEASE_MARGIN`].
//!
//! The store stays the durable record: each instance also records what it
//! settles in its [`LocalLedger`], which flushes to the store as without
//! Redis; at start, spend restored from the store seeds Redis counters that
//! do not exist yet (`HSETNX`). When Redis fails, `on_shared_state_failure`
//! decides, as for rate limits (`local` uses the [`LocalLedger`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::ScriptInvocation;

use super::rule::{admit, refusal, settle, Charges, Crossed, Verdict};
use super::{BudgetRule, Exceeded, LocalLedger, Period};
use crate::config::raw::{OnExceed, SharedStateFailure};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::admission::{parse, Admission, Reply};

/// Added to a request's longest life to make its hold's lease.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Redis keys outlive their period by this long.
const KEEP_AFTER_PERIOD_MS: i64 = 86_400_000;

/// Set when the counters were seeded from the store; its absence means
/// Redis lost them.
const SEEDED: &str = "sluice:bud:seeded";

/// One counter a shared hold is in.
#[derive(Debug, Clone)]
pub struct HeldCounter {
    pub rule: Arc<BudgetRule>,
    pub period: Period,
    pub start: i64,
    pub limit: u64,
}

/// A request's holds in Redis.
#[derive(Debug)]
pub struct SharedHold {
    pub id: String,
    pub counters: Vec<HeldCounter>,
}

/// Budget counters in Redis, with this instance's ledger as the record for
/// the store and the fallback.
pub struct SharedLedger {
    admission: Arc<Admission>,
    settle: Arc<redis::Script>,
    seed: redis::Script,
    local: Arc<LocalLedger>,
    /// This process's hold id prefix, and the sequence after it.
    instance: String,
    seq: AtomicU64,
}

/// A request's budget part of the admission call (`admission.lua`): its
/// counters, its hold id and what it reserves.
pub struct BudgetCall {
    counters: Vec<HeldCounter>,
    id: String,
    lease_ms: u64,
    amount: u64,
    now_ms: i64,
    downgraded: bool,
}

impl SharedLedger {
    pub fn new(admission: Arc<Admission>, local: Arc<LocalLedger>) -> SharedLedger {
        SharedLedger {
            admission,
            settle: Arc::new(redis::Script::new(include_str!("settle_budget.lua"))),
            seed: redis::Script::new(include_str!("seed_budget.lua")),
            local,
            instance: format!("{:016x}", fastrand::u64(..)),
            seq: AtomicU64::new(0),
        }
    }

    pub fn local(&self) -> &Arc<LocalLedger> {
        &self.local
    }

    /// The part of the admission call that reserves `amount` under every
    /// period of every rule; `lease` bounds the hold.
    pub fn prepare(
        &self,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
        lease: Duration,
    ) -> BudgetCall {
        BudgetCall {
            counters: counters(rules, now_ms),
            id: format!(
                "{}:{}",
                self.instance,
                self.seq.fetch_add(1, Ordering::Relaxed)
            ),
            lease_ms: lease.as_millis() as u64,
            amount,
            now_ms,
            downgraded,
        }
    }

    /// Reserves `amount` under every period of every rule in Redis, alone
    /// (see [`admit`] for what `on_exceed` does); a request's admission
    /// sends this part with its others instead.
    pub async fn admit(
        &self,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
        lease: Duration,
    ) -> Verdict {
        let call = self.prepare(rules, amount, now_ms, downgraded, lease);
        let reply = self.admission.call(Some(&call), None, &[]).await;
        match reply.as_deref().and_then(|v| parse(v, call.len(), 0)) {
            Some(Reply::BudgetRefused {
                counter,
                spent,
                reserved,
            }) => call.refused(counter, spent, reserved),
            Some(Reply::Admitted { over, .. }) => call.admitted(over),
            _ => self.fallback(rules, amount, now_ms, downgraded),
        }
    }

    /// Settles a request: its local reservations (fallback) at once, its
    /// shared holds in the background; `report` gets the alerts due.
    pub fn settle(
        &self,
        mut charges: Charges,
        rules: [&[Arc<BudgetRule>]; 2],
        cost: u64,
        report: impl Fn(&Crossed) + Send + 'static,
    ) {
        let shared = charges.shared.take();
        for c in settle(charges, rules, cost) {
            report(&c);
        }
        let Some(hold) = shared else {
            return;
        };
        for c in &hold.counters {
            self.local.record(&c.rule.key, c.period, c.start, cost);
        }
        let state = self.admission.state();
        let (script, mut conn, timeout) = (self.settle.clone(), state.conn(), state.timeout * 4);
        tokio::spawn(async move {
            let mut call = script.prepare_invoke();
            for c in &hold.counters {
                for k in keys(c) {
                    call.key(k);
                }
            }
            call.arg(hold.counters.len()).arg(&hold.id);
            let now = crate::mock::now_ms();
            for c in &hold.counters {
                let fractions: Vec<String> =
                    c.rule.alert_at.iter().map(|f| f.to_string()).collect();
                call.arg(cost)
                    .arg(c.limit)
                    .arg(fractions.join(","))
                    .arg(ttl_ms(c, now));
            }
            match tokio::time::timeout(timeout, call.invoke_async::<Vec<String>>(&mut conn)).await {
                Ok(Ok(fired)) => {
                    for fire in fired.chunks(3) {
                        let [i, f, spent] = fire else { continue };
                        let (Ok(i), Ok(fraction), Ok(spent)) =
                            (i.parse::<usize>(), f.parse::<f64>(), spent.parse::<u64>())
                        else {
                            continue;
                        };
                        if let Some(c) = hold.counters.get(i.wrapping_sub(1)) {
                            report(&Crossed {
                                rule: c.rule.clone(),
                                period: c.period,
                                period_start: c.start,
                                fraction,
                                limit: c.limit,
                                spent: Some(spent),
                            });
                        }
                    }
                }
                _ => tracing::warn!("shared state: settling budget holds failed; their reservations are released when the lease ends"),
            }
        });
    }

    /// Seeds the counters from the store's spend of the current periods
    /// (`rows`): at start, and again whenever Redis turns out to have lost
    /// them ([`seeded`](Self::seeded)). A counter Redis holds keeps its
    /// figure unless the store's is higher (`seed_budget.lua`). Returns
    /// whether it was done.
    pub async fn seed(&self, rows: &[sluice_store::SpendRow]) -> bool {
        let now = crate::mock::now_ms();
        let mut call = self.seed.prepare_invoke();
        for r in rows {
            let Some(period) = Period::parse(&r.period) else {
                continue;
            };
            call.key(format!(
                "sluice:bud:{}:{}:{}",
                r.scope, r.period, r.period_start
            ))
            .arg(r.micro_usd)
            .arg((period.next_start(r.period_start) - now).max(0) + KEEP_AFTER_PERIOD_MS);
        }
        call.key(SEEDED);
        let state = self.admission.state();
        let mut conn = state.conn();
        let r = tokio::time::timeout(state.timeout * 20, call.invoke_async::<i64>(&mut conn)).await;
        let done = matches!(r, Ok(Ok(_)));
        if !done {
            tracing::warn!("shared state: could not seed budget counters from the store; counters start from what instances settle");
        }
        done
    }

    /// Whether Redis still holds the counters seeded from the store:
    /// `Some(false)` after it lost its data (a restart without
    /// persistence, a flush), `None` when it cannot be asked now.
    pub async fn seeded(&self) -> Option<bool> {
        let state = self.admission.state();
        let mut conn = state.conn();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(SEEDED);
        let asked = exists.query_async::<i64>(&mut conn);
        match tokio::time::timeout(state.timeout * 20, asked).await {
            Ok(Ok(n)) => Some(n > 0),
            _ => None,
        }
    }

    /// The verdict when the shared state failed (already counted and
    /// logged): as `on_shared_state_failure` says.
    pub fn fallback(
        &self,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
    ) -> Verdict {
        match self.admission.state().on_failure {
            SharedStateFailure::Local => admit(&self.local, rules, amount, now_ms, downgraded),
            SharedStateFailure::FailOpen => Verdict::Admitted(Charges::default()),
            SharedStateFailure::FailClosed => Verdict::Refused(
                GatewayError::new(
                    ErrorKind::Unavailable,
                    "budgets cannot be checked: the shared state is unreachable (on_shared_state_failure: fail_closed)",
                ),
                crate::policy::ScopeKind::Global,
            ),
        }
    }
}

impl BudgetCall {
    /// Budget counters in the call.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Adds this part's keys and arguments to the admission call.
    pub fn write(&self, call: &mut ScriptInvocation<'_>) {
        if self.counters.is_empty() {
            return;
        }
        for c in &self.counters {
            for k in keys(c) {
                call.key(k);
            }
        }
        call.arg(&self.id).arg(self.lease_ms);
        for c in &self.counters {
            let enforce = !self.downgraded && !matches!(c.rule.on_exceed, OnExceed::AlertOnly);
            call.arg(c.limit)
                .arg(self.amount)
                .arg(u8::from(enforce))
                .arg(ttl_ms(c, self.now_ms));
        }
    }

    /// Counter `counter` (1-based) could not take the amount: a downgrade
    /// or a refusal, as its rule says.
    pub fn refused(self, counter: usize, spent: u64, reserved: u64) -> Verdict {
        let Some(c) = self.counters.get(counter.wrapping_sub(1)) else {
            // `admission::parse` checks the range; never admit on a bad one.
            let e = GatewayError::new(
                ErrorKind::Internal,
                "budget check answered an unknown counter",
            );
            return Verdict::Refused(e, crate::policy::ScopeKind::Global);
        };
        let kind = c.rule.scope.kind;
        if let OnExceed::Downgrade(to) = &c.rule.on_exceed {
            return Verdict::Downgrade(to.clone(), kind);
        }
        let ex = Exceeded {
            spent,
            reserved,
            limit: c.limit,
            amount: self.amount,
            resets_at_ms: c.period.next_start(self.now_ms),
        };
        Verdict::Refused(refusal(&c.rule, c.period, &ex, self.now_ms), kind)
    }

    /// Reserved under every counter; `over` says which went over their
    /// limit (`alert_only`, or a downgraded request).
    pub fn admitted(self, over: &[i64]) -> Verdict {
        let over = self
            .counters
            .iter()
            .zip(over)
            .find(|(_, o)| **o == 1)
            .map(|(c, _)| (c.rule.scope.label.clone(), c.rule.scope.kind));
        Verdict::Admitted(Charges {
            held: Default::default(),
            shared: (!self.counters.is_empty()).then_some(SharedHold {
                id: self.id,
                counters: self.counters,
            }),
            over,
        })
    }
}

/// Every (rule, period) counter of a request.
fn counters(rules: [&[Arc<BudgetRule>]; 2], now_ms: i64) -> Vec<HeldCounter> {
    rules
        .into_iter()
        .flatten()
        .flat_map(|rule| {
            rule.limits.iter().map(move |&(period, limit)| HeldCounter {
                rule: rule.clone(),
                period,
                start: period.start_of(now_ms),
                limit,
            })
        })
        .collect()
}

/// The four keys of a counter: the hash, holds, hold amounts, fired set.
fn keys(c: &HeldCounter) -> [String; 4] {
    let base = format!(
        "sluice:bud:{}:{}:{}",
        c.rule.key,
        c.period.as_str(),
        c.start
    );
    let (holds, amounts, fired) = (
        format!("{base}:holds"),
        format!("{base}:amounts"),
        format!("{base}:fired"),
    );
    [base, holds, amounts, fired]
}

fn ttl_ms(c: &HeldCounter, now_ms: i64) -> i64 {
    (c.period.next_start(now_ms) - now_ms).max(0) + KEEP_AFTER_PERIOD_MS
}
