//! A request's admission under its levels' budgets: every period of every
//! rule reserves, `on_exceed` decides when one does not fit, a refusal or
//! a downgrade releases what was reserved, and settlement reports the
//! alerts due.

use std::sync::Arc;

use super::*;
use crate::config::raw::{BudgetConfig, OnExceed};
use crate::error::ErrorKind;
use crate::policy::{Scope, ScopeKind};

/// 2026-11-21T12:00:00Z.
const NOW: i64 = 1_795_262_400_000;

fn rule(
    scope: Scope,
    day_usd: f64,
    month_usd: Option<f64>,
    on_exceed: OnExceed,
) -> Arc<BudgetRule> {
    let b = BudgetConfig {
        usd_per_day: Some(day_usd),
        usd_per_month: month_usd,
        alert_at: Some(vec![0.5]),
        on_exceed: Some(on_exceed),
        ..BudgetConfig::default()
    };
    Arc::new(BudgetRule::of_level(&scope, Some(&b)).unwrap())
}

fn admitted(v: Verdict) -> Charges {
    match v {
        Verdict::Admitted(c) => c,
        other => panic!("not admitted: {other:?}"),
    }
}

#[test]
fn rules_name_their_scope_as_the_store_does() {
    let t = rule(Scope::tenant("acme"), 1.0, Some(20.0), OnExceed::Block);
    assert_eq!(&*t.key, "tenant:acme");
    assert_eq!(
        &*t.limits,
        [(Period::Day, 1_000_000), (Period::Month, 20_000_000)]
    );
    assert_eq!(
        &*rule(Scope::global(), 1.0, None, OnExceed::Block).key,
        "global"
    );
    assert!(BudgetRule::of_level(&Scope::global(), Some(&BudgetConfig::default())).is_none());
}

#[test]
fn every_period_of_every_rule_holds_and_a_refusal_releases_the_others() {
    let ledger = Arc::new(LocalLedger::new());
    let rules = [
        rule(Scope::tenant("acme"), 1.0, Some(1.5), OnExceed::Block),
        rule(Scope::key("k1", "ci"), 0.5, None, OnExceed::Block),
    ];
    let c = admitted(admit(&ledger, [&rules, &[]], 400_000, NOW, false));
    assert_eq!(c.held.len(), 3);
    let s = |scope: &str, p| ledger.standing(&Arc::from(scope), p, NOW);
    assert_eq!(s("tenant:acme", Period::Month).reserved, 400_000);
    // The key's $0.50 a day has 100,000 left: refused, nothing else held.
    match admit(&ledger, [&rules, &[]], 200_000, NOW, false) {
        Verdict::Refused(e, kind) => {
            assert_eq!(kind, ScopeKind::Key);
            assert_eq!(e.kind, ErrorKind::BudgetExceeded);
            assert!(
                e.message.starts_with(
                    "budget of key `ci` exceeded: $0.00 of $0.50 per day spent and $0.40 held"
                ),
                "{}",
                e.message
            );
            assert_eq!(
                e.retry_after,
                Some(std::time::Duration::from_secs(12 * 3600))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s("tenant:acme", Period::Day).reserved, 400_000);
    // Settling charges every period and reports the 50 % alerts crossed.
    let due = settle(c, [&rules, &[]], 600_000);
    let crossed: Vec<(&str, Period)> = due.iter().map(|d| (&*d.rule.key, d.period)).collect();
    assert_eq!(
        crossed,
        [("tenant:acme", Period::Day), ("key:k1", Period::Day)]
    );
    assert_eq!(s("tenant:acme", Period::Month).spent, 600_000);
    assert_eq!(s("key:k1", Period::Day).reserved, 0);
}

#[test]
fn alert_only_admits_beyond_the_budget_and_counts_it() {
    let ledger = Arc::new(LocalLedger::new());
    let rules = [rule(
        Scope::app("a1", "web"),
        0.001,
        None,
        OnExceed::AlertOnly,
    )];
    let c = admitted(admit(&ledger, [&rules, &[]], 5_000, NOW, false));
    assert_eq!(c.over.as_ref().map(|o| &*o.0), Some("app `web`"));
    let due = settle(c, [&rules, &[]], 5_000);
    assert_eq!(due.len(), 1, "50 % of $0.001 crossed");
    assert_eq!(
        ledger
            .standing(&Arc::from("app:a1"), Period::Day, NOW)
            .spent,
        5_000
    );
}

#[test]
fn downgrade_asks_once_then_admits_the_downgraded_request() {
    let ledger = Arc::new(LocalLedger::new());
    let rules = [
        rule(Scope::tenant("acme"), 10.0, None, OnExceed::Block),
        rule(
            Scope::model("smart"),
            0.001,
            None,
            OnExceed::Downgrade("cheap".into()),
        ),
    ];
    match admit(&ledger, [&rules, &[]], 5_000, NOW, false) {
        Verdict::Downgrade(to, kind) => {
            assert_eq!((to.as_str(), kind), ("cheap", ScopeKind::Model))
        }
        other => panic!("{other:?}"),
    }
    // What the tenant level reserved before the model refused is released.
    assert_eq!(
        ledger
            .standing(&Arc::from("tenant:acme"), Period::Day, NOW)
            .reserved,
        0
    );
    let c = admitted(admit(&ledger, [&rules, &[]], 5_000, NOW, true));
    assert_eq!(c.held.len(), 2);
    assert!(c.over.is_some());
}

#[test]
fn amounts_print_in_dollars() {
    assert_eq!(usd(0), "$0.00");
    assert_eq!(usd(580), "$0.0006");
    assert_eq!(usd(9_280), "$0.0093");
    assert_eq!(usd(19_620_000), "$19.62");
}

#[test]
fn a_rule_reserves_through_its_handle_in_the_ledger_cells_and_pruning_keeps_them() {
    let ledger = Arc::new(LocalLedger::new());
    let r = rule(Scope::tenant("acme"), 1.0, None, OnExceed::Block);
    // The same level seen through another rule object (another key of
    // the tenant, or the rule after a reload) shares its counters.
    let twin = rule(Scope::tenant("acme"), 1.0, None, OnExceed::Block);
    let spent = |l: &LocalLedger| l.standing(&Arc::from("tenant:acme"), Period::Day, NOW);
    let a = admitted(admit(
        &ledger,
        [std::slice::from_ref(&r), &[]],
        400_000,
        NOW,
        false,
    ));
    let b = admitted(admit(
        &ledger,
        [std::slice::from_ref(&twin), &[]],
        400_000,
        NOW,
        false,
    ));
    assert_eq!(spent(&ledger).reserved, 800_000);
    // A third request no longer fits, whichever rule it comes through.
    assert!(matches!(
        admit(
            &ledger,
            [std::slice::from_ref(&r), &[]],
            400_000,
            NOW,
            false
        ),
        Verdict::Refused(..)
    ));
    // A day later the period is over; pruning forgets nothing still
    // reserved, and the settlements land where the flush finds them.
    ledger.prune(NOW + 86_400_000);
    settle(a, [std::slice::from_ref(&r), &[]], 100_000);
    ledger.prune(NOW + 86_400_000);
    settle(b, [std::slice::from_ref(&twin), &[]], 200_000);
    let flushed: i64 = ledger.take_unflushed().iter().map(|d| d.micro_usd).sum();
    assert_eq!(flushed, 300_000);
    // The rules still hold their (now empty) cell; once they are gone,
    // pruning forgets it.
    ledger.prune(NOW + 86_400_000);
    assert!(ledger.is_empty());
    assert_eq!(ledger.cell_count(), 1, "the rules hold their cell");
    drop((r, twin));
    ledger.prune(NOW + 86_400_000);
    assert_eq!(ledger.cell_count(), 0);
    // A rule used with another ledger reserves there, not here.
    let other = Arc::new(LocalLedger::new());
    let r = rule(Scope::tenant("acme"), 1.0, None, OnExceed::Block);
    let _held = admitted(admit(
        &ledger,
        [std::slice::from_ref(&r), &[]],
        1,
        NOW,
        false,
    ));
    let _there = admitted(admit(
        &other,
        [std::slice::from_ref(&r), &[]],
        2,
        NOW,
        false,
    ));
    assert_eq!((spent(&ledger).reserved, spent(&other).reserved), (1, 2));
}
