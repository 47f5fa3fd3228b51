//! One round trip to admit a request in shared mode (`shared_state:
//! redis://…`): its budgets, its rate limits and its first concurrency
//! slots go to Redis as one script call (`admission.lua`).
//!
//! Each policy kind builds its own part of the call and reads its own part
//! of the answer — [`BudgetCall`](super::budget::BudgetCall) in
//! `budget/shared.rs`, [`RateCall`](super::rate::RateCall) in
//! `rate/shared.rs`, [`SlotCall`](super::concurrency::SlotCall) in
//! `concurrency/shared.rs` — and this module puts them into one call and
//! splits the reply. The script checks every enforced budget and rate rule
//! before it writes anything (a refused request reserves and counts
//! nowhere, as on one instance), then takes the slots in order until one is
//! full; a request that must wait for a slot waits in its local queue and
//! retries the slot alone (the same script with only that slot).
//!
//! A failed or late call is counted and logged once (`SharedState::failed`)
//! and each part then falls back as `on_shared_state_failure` says.

use std::sync::Arc;
use std::time::Duration;

use redis::ScriptInvocation;

use super::budget::BudgetCall;
use super::concurrency::SlotCall;
use super::rate::RateCall;
use super::shared_state::SharedState;

/// The admission script over the shared-state connection.
pub struct Admission {
    state: Arc<SharedState>,
    script: redis::Script,
}

/// The script's answer, split by part.
#[derive(Debug, PartialEq)]
pub enum Reply<'v> {
    /// Budget counter `counter` (1-based, in call order) cannot take the
    /// amount; nothing was written.
    BudgetRefused {
        counter: usize,
        spent: u64,
        reserved: u64,
    },
    /// Rate rule `rule`'s gate `gate` (both 1-based) refused; nothing was
    /// written.
    RateRefused {
        rule: usize,
        gate: usize,
        wait: Duration,
        reset: Duration,
    },
    /// Reserved and counted: per budget counter whether it went over
    /// (`alert_only`), the shadow rule that would have refused (0: none),
    /// per gate its remaining cells and reset (µs), and how many slots were
    /// taken (a prefix of those asked).
    Admitted {
        over: &'v [i64],
        shadow: usize,
        gates: &'v [i64],
        taken: usize,
    },
}

impl Admission {
    pub fn new(state: Arc<SharedState>) -> Admission {
        Admission {
            state,
            script: redis::Script::new(include_str!("admission.lua")),
        }
    }

    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// One call with the parts given; `None` (already counted and logged)
    /// when Redis failed or did not answer within `shared_state_timeout`.
    pub async fn call(
        &self,
        budget: Option<&BudgetCall>,
        rate: Option<&RateCall<'_>>,
        slots: &[SlotCall],
    ) -> Option<Vec<i64>> {
        let mut call = self.script.prepare_invoke();
        let (nb, (ng, nr)) = (
            budget.map_or(0, BudgetCall::len),
            rate.map_or((0, 0), RateCall::len),
        );
        call.arg(nb).arg(ng).arg(nr).arg(slots.len());
        if let Some(b) = budget {
            b.write(&mut call);
        }
        if let Some(r) = rate {
            r.write(&mut call);
        }
        for s in slots {
            s.write(&mut call);
        }
        self.invoke(&call).await
    }

    /// Runs a prepared script call (this one's or another policy script's)
    /// under `shared_state_timeout`; `None` (counted and logged) on failure.
    pub(crate) async fn invoke(&self, call: &ScriptInvocation<'_>) -> Option<Vec<i64>> {
        let mut conn = self.state.conn();
        let reply =
            tokio::time::timeout(self.state.timeout, call.invoke_async::<Vec<i64>>(&mut conn))
                .await;
        let why = match reply {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within shared_state_timeout".to_owned(),
        };
        self.state.failed("resource policies", &why);
        None
    }
}

/// Splits the script's answer for a call of `nb` budget counters and `ng`
/// rate gates; `None` when it does not have that shape.
pub fn parse(v: &[i64], nb: usize, ng: usize) -> Option<Reply<'_>> {
    let n = |x: i64| u64::try_from(x).ok();
    let i = |x: i64| usize::try_from(x).ok();
    let us = |x: i64| Duration::from_micros(n(x).unwrap_or(0));
    match v {
        [1, counter, spent, reserved] => Some(Reply::BudgetRefused {
            counter: i(*counter).filter(|c| (1..=nb).contains(c))?,
            spent: n(*spent)?,
            reserved: n(*reserved)?,
        }),
        [2, rule, gate, wait, reset] => Some(Reply::RateRefused {
            rule: i(*rule).filter(|r| *r >= 1)?,
            gate: i(*gate).filter(|g| (1..=ng).contains(g))?,
            wait: us(*wait),
            reset: us(*reset),
        }),
        [0, rest @ ..] if rest.len() == nb + 1 + 2 * ng + 1 => Some(Reply::Admitted {
            over: &rest[..nb],
            shadow: i(rest[nb])?,
            gates: &rest[nb + 1..nb + 1 + 2 * ng],
            taken: i(rest[nb + 1 + 2 * ng])?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_by_part() {
        assert_eq!(
            parse(&[1, 2, 500, 70], 3, 1),
            Some(Reply::BudgetRefused {
                counter: 2,
                spent: 500,
                reserved: 70
            })
        );
        assert_eq!(
            parse(&[2, 1, 3, 1_500, 2_000], 0, 3),
            Some(Reply::RateRefused {
                rule: 1,
                gate: 3,
                wait: Duration::from_micros(1_500),
                reset: Duration::from_micros(2_000)
            })
        );
        let v = [0, 0, 1, 2, 9, 100, 8, 200, 1];
        assert_eq!(
            parse(&v, 2, 2),
            Some(Reply::Admitted {
                over: &[0, 1],
                shadow: 2,
                gates: &[9, 100, 8, 200],
                taken: 1
            })
        );
        // A reply of another shape (e.g. from another version of the
        // script) is not read as a verdict.
        assert_eq!(parse(&v, 2, 1), None);
        assert_eq!(parse(&[1, -1, 0, 0], 1, 0), None);
        assert_eq!(parse(&[1, 2, 0, 0], 1, 0), None, "no counter 2");
        assert_eq!(parse(&[2, 1, 4, 0, 0], 0, 3), None, "no gate 4");
        assert_eq!(parse(&[], 0, 0), None);
    }
}
