//! Stages 4b, 5 and 5b together: a request's budgets, rate limits and
//! concurrency slots. On one instance they run one after the other
//! (`charge_budgets`, `limit_rate`, `wait_for_slots`); with `shared_state`
//! they go to Redis as one admission call (`policy/admission.rs`), so a
//! request under every kind of limit costs one round trip. Either way the
//! order of the answers is the same: a budget refuses (or downgrades)
//! before a rate limit, a rate limit before a queue, and a refused request
//! reserves, counts and holds nothing.

use std::sync::Arc;

use crate::error::{ErrorKind, GatewayError};
use crate::policy::admission::{parse, Admission, Reply};
use crate::policy::budget::{Budgets, SharedLedger};
use crate::policy::rate::{Rates, SharedRates};
use crate::snapshot::Model;

use super::RequestCtx;

impl RequestCtx {
    /// Stages 4b–5b: reserves the request's budgets, counts it under its
    /// rate limits and takes its concurrency slots (none when `slots` is
    /// false: a cache hit calls no upstream). Returns the model a
    /// `downgrade:` budget moves it to, having reserved, counted and taken
    /// nothing (the caller re-admits it for that model).
    pub async fn admit(
        &mut self,
        model: &Arc<Model>,
        downgraded: bool,
        body_user: Option<&str>,
        slots: bool,
    ) -> Result<Option<String>, GatewayError> {
        if self.app.request_log.is_some() {
            self.body_user = body_user.filter(|u| !u.is_empty()).map(str::to_owned);
        }
        let shared = matches!(
            (&self.app.admission, &self.app.rates, &self.app.budgets),
            (Some(_), Rates::Shared(_), Budgets::Shared(_))
        );
        if shared {
            let app = self.app.clone();
            if let (Some(adm), Rates::Shared(rates), Budgets::Shared(ledger)) =
                (&app.admission, &app.rates, &app.budgets)
            {
                return self
                    .admit_shared((adm, rates, ledger), model, downgraded, body_user, slots)
                    .await;
            }
        }
        if let Some(to) = self.charge_budgets(model, downgraded).await? {
            return Ok(Some(to));
        }
        self.limit_rate(model, body_user).await?;
        if slots {
            self.wait_for_slots(model, body_user).await?;
        }
        Ok(None)
    }

    /// The shared-mode admission: the local slots free at once, then one
    /// call for budgets, rate limits and those levels' shared slots, then
    /// whatever slots must still be waited for.
    async fn admit_shared(
        &mut self,
        (adm, rates, ledger): (&Admission, &SharedRates, &SharedLedger),
        model: &Arc<Model>,
        downgraded: bool,
        body_user: Option<&str>,
        slots: bool,
    ) -> Result<Option<String>, GatewayError> {
        let key = self.key.clone().expect("authenticated before use");
        let (now_ms, lease) = (crate::mock::now_ms(), self.lease());
        let budget_rules = [&key.budgets[..], &model.budgets[..]];
        let amount = self.max_cost(model);
        let budget = budget_rules
            .iter()
            .any(|r| !r.is_empty())
            .then(|| ledger.prepare(budget_rules, amount, now_ms, downgraded, lease));
        let rate_rules = [&key.rates[..], &model.rates[..]];
        let who = self.who(&key, body_user);
        let rate = if rate_rules.iter().all(|r| r.is_empty()) {
            None
        } else {
            match rates.prepare(rate_rules, &who) {
                Ok(call) => Some(call),
                Err(decided) => return self.apply_rate(*decided, model).map(|()| None),
            }
        };
        let app = self.app.clone();
        let none: &[_] = &[];
        let mut begun = if slots {
            app.queues.begin([&key.queues, &model.queues])
        } else {
            app.queues.begin([none, none])
        };
        let calls = app.queues.slot_calls(&begun, lease);
        let reply = adm.call(budget.as_ref(), rate.as_ref(), &calls).await;
        let (nb, ng) = (
            budget.as_ref().map_or(0, |b| b.len()),
            rate.as_ref().map_or(0, |r| r.len().0),
        );
        let (verdict, decision, taken) = match reply.as_deref().and_then(|v| parse(v, nb, ng)) {
            Some(Reply::BudgetRefused {
                counter,
                spent,
                reserved,
            }) => (
                budget.map(|b| b.refused(counter, spent, reserved)),
                None,
                None,
            ),
            Some(Reply::RateRefused {
                rule,
                gate,
                wait,
                reset,
            }) => (None, rate.map(|r| r.refused(rule, gate, wait, reset)), None),
            Some(Reply::Admitted {
                over,
                shadow,
                gates,
                taken,
            }) => (
                budget.map(|b| b.admitted(over)),
                rate.map(|r| r.admitted(shadow, gates)),
                Some(taken),
            ),
            // Failed (counted and logged once): each part falls back.
            None => (
                budget.map(|_| ledger.fallback(budget_rules, amount, now_ms, downgraded)),
                rate.map(|_| rates.fallback(rate_rules, &who)),
                None,
            ),
        };
        let answered = reply.is_some();
        if let Some(v) = verdict {
            let moved = self.apply_budget(v, downgraded, model);
            if !matches!(moved, Ok(None)) {
                begun.held.give_back();
                return moved;
            }
        }
        if let Some(d) = decision {
            if let Err(e) = self.apply_rate(d, model) {
                begun.held.give_back();
                return Err(e);
            }
        }
        if answered && taken.is_none() {
            // A refusal whose part answered above; `parse` only reads one
            // for a part that was sent, so this is never reached — and if
            // it were, the request is not let through unchecked.
            begun.held.give_back();
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "the shared admission answered a refusal for a policy that was not asked",
            ));
        }
        let ask = self.slot_ask(&key, body_user);
        if !slots {
            begun.held.give_back();
            return Ok(None);
        }
        let held = app.queues.finish(begun, calls, taken, &ask).await;
        self.apply_slots(held).map(|()| None)
    }
}
