//! Budgets shared by every instance (`shared_state: redis://…`): a request
//! reserves its maximum cost under all its counters in one Redis script
//! (`reserve_budget.lua`) and settles them in another when it ends
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

use super::rule::{admit, refusal, settle, Charges, Crossed, Verdict};
use super::{BudgetRule, Exceeded, LocalLedger, Period};
use crate::config::raw::{OnExceed, SharedStateFailure};
use crate::error::{ErrorKind, GatewayError};
use crate::policy::shared_state::SharedState;

/// Added to a request's longest life to make its hold's lease.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Redis keys outlive their period by this long.
const KEEP_AFTER_PERIOD_MS: i64 = 86_400_000;

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
    state: Arc<SharedState>,
    reserve: redis::Script,
    settle: Arc<redis::Script>,
    local: Arc<LocalLedger>,
    /// This process's hold id prefix, and the sequence after it.
    instance: String,
    seq: AtomicU64,
}

impl SharedLedger {
    pub fn new(state: Arc<SharedState>, local: Arc<LocalLedger>) -> SharedLedger {
        SharedLedger {
            state,
            reserve: redis::Script::new(include_str!("reserve_budget.lua")),
            settle: Arc::new(redis::Script::new(include_str!("settle_budget.lua"))),
            local,
            instance: format!("{:016x}", fastrand::u64(..)),
            seq: AtomicU64::new(0),
        }
    }

    pub fn local(&self) -> &Arc<LocalLedger> {
        &self.local
    }

    /// Reserves `amount` under every period of every rule in Redis (see
    /// [`admit`] for what `on_exceed` does); `lease` bounds the hold.
    pub async fn admit(
        &self,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
        lease: Duration,
    ) -> Verdict {
        let counters = counters(rules, now_ms);
        let id = format!(
            "{}:{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let mut call = self.reserve.prepare_invoke();
        for c in &counters {
            for k in keys(c) {
                call.key(k);
            }
        }
        call.arg(counters.len())
            .arg(&id)
            .arg(lease.as_millis() as u64);
        for c in &counters {
            let enforce = !downgraded && !matches!(c.rule.on_exceed, OnExceed::AlertOnly);
            call.arg(c.limit)
                .arg(amount)
                .arg(u8::from(enforce))
                .arg(ttl_ms(c, now_ms));
        }
        let mut conn = self.state.conn();
        let reply =
            tokio::time::timeout(self.state.timeout, call.invoke_async::<Vec<i64>>(&mut conn))
                .await;
        match reply {
            Ok(Ok(v)) => verdict(counters, id, &v, amount, now_ms),
            Ok(Err(e)) => self.failed(&e.to_string(), rules, amount, now_ms, downgraded),
            Err(_) => self.failed(
                "no answer within shared_state_timeout",
                rules,
                amount,
                now_ms,
                downgraded,
            ),
        }
    }

    /// Settles a request: its local reservations (fallback) at once, its
    /// shared holds in the background; `report` gets the alerts due.
    pub fn settle(
        &self,
        mut charges: Charges,
        cost: u64,
        report: impl Fn(&Crossed) + Send + 'static,
    ) {
        let shared = charges.shared.take();
        for c in settle(charges, cost) {
            report(&c);
        }
        let Some(hold) = shared else {
            return;
        };
        for c in &hold.counters {
            self.local.record(&c.rule.key, c.period, c.start, cost);
        }
        let (script, mut conn, timeout) = (
            self.settle.clone(),
            self.state.conn(),
            self.state.timeout * 4,
        );
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

    /// Seeds counters Redis does not have from the store's spend (at
    /// start): an existing counter is newer than the store and is kept.
    pub async fn seed(&self, rows: &[sluice_store::SpendRow]) {
        if rows.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for r in rows {
            let key = format!("sluice:bud:{}:{}:{}", r.scope, r.period, r.period_start);
            pipe.cmd("HSETNX")
                .arg(&key)
                .arg("spent")
                .arg(r.micro_usd)
                .ignore();
        }
        let mut conn = self.state.conn();
        let r =
            tokio::time::timeout(self.state.timeout * 20, pipe.query_async::<()>(&mut conn)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::warn!("shared state: could not seed budget counters from the store; counters start from what instances settle");
        }
    }

    fn failed(
        &self,
        why: &str,
        rules: [&[Arc<BudgetRule>]; 2],
        amount: u64,
        now_ms: i64,
        downgraded: bool,
    ) -> Verdict {
        self.state.failed("budgets", why);
        match self.state.on_failure {
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

/// The reserve script's answer as a verdict.
fn verdict(counters: Vec<HeldCounter>, id: String, v: &[i64], amount: u64, now_ms: i64) -> Verdict {
    if v.first() == Some(&1) {
        let c = &counters[usize::try_from(v[1] - 1).unwrap_or(0)];
        let kind = c.rule.scope.kind;
        if let OnExceed::Downgrade(to) = &c.rule.on_exceed {
            return Verdict::Downgrade(to.clone(), kind);
        }
        let ex = Exceeded {
            spent: u64::try_from(v[2]).unwrap_or(0),
            reserved: u64::try_from(v[3]).unwrap_or(0),
            limit: c.limit,
            amount,
            resets_at_ms: c.period.next_start(now_ms),
        };
        return Verdict::Refused(refusal(&c.rule, c.period, &ex, now_ms), kind);
    }
    let over = counters
        .iter()
        .zip(v.iter().skip(1))
        .find(|(_, o)| **o == 1)
        .map(|(c, _)| (c.rule.scope.label.clone(), c.rule.scope.kind));
    Verdict::Admitted(Charges {
        held: Vec::new(),
        shared: Some(SharedHold { id, counters }),
        over,
    })
}
