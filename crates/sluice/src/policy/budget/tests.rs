//! Budgets: cost arithmetic (cached tokens, rounding), UTC period
//! boundaries, admission at the limit, release on drop, settlement across a
//! period change, alerts once per period (also concurrently), the "never
//! overspend" bound under many threads, the money-conservation property
//! (proptest) and the flusher against a real SQLite store.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use proptest::prelude::*;
use sluice_store::{SpendRow, Store};
use sluice_types::TokenUsage;

use super::period::{civil_from_days, days_from_civil};
use super::*;
use crate::config::raw::Price;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// Unix ms of a UTC date at 00:00.
fn utc(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * DAY
}

fn price(input: f64, output: f64) -> Price {
    Price {
        input,
        output,
        cache_read: None,
        cache_write: None,
        reasoning: None,
    }
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> TokenUsage {
    TokenUsage {
        input,
        output,
        cache_read,
        cache_write,
        reasoning: 0,
    }
}

fn scope(s: &str) -> Arc<str> {
    s.into()
}

fn ledger() -> Arc<LocalLedger> {
    Arc::new(LocalLedger::new())
}

// --- cost -------------------------------------------------------------------

#[test]
fn cost_charges_input_and_output_per_million() {
    let p = price(3.0, 15.0);
    assert_eq!(cost_micro_usd(&p, &usage(1_000, 500, 0, 0)), 3_000 + 7_500);
    assert_eq!(cost_micro_usd(&p, &usage(0, 0, 0, 0)), 0);
    // One million tokens at $3 = $3 = 3,000,000 micro-USD.
    assert_eq!(cost_micro_usd(&p, &usage(1_000_000, 0, 0, 0)), 3_000_000);
}

#[test]
fn cost_charges_cached_tokens_at_their_prices() {
    let p = Price {
        input: 3.0,
        output: 15.0,
        cache_read: Some(0.3),
        cache_write: Some(3.75),
        reasoning: None,
    };
    // 10,000 input of which 6,000 read from cache and 2,000 written to it.
    let u = usage(10_000, 100, 6_000, 2_000);
    assert_eq!(cost_micro_usd(&p, &u), 2_000 * 3 + 1_800 + 7_500 + 100 * 15);
    // Without cache prices, cached tokens cost what input costs.
    assert_eq!(cost_micro_usd(&price(3.0, 15.0), &u), 10_000 * 3 + 1_500);
    // Inconsistent usage (more cached than input) never underflows.
    assert_eq!(cost_micro_usd(&p, &usage(10, 0, 100, 0)), 30);
}

#[test]
fn cost_rounds_up_once_per_request_and_is_exact_for_decimal_prices() {
    let p = price(0.15, 0.6);
    assert_eq!(cost_micro_usd(&p, &usage(1, 0, 0, 0)), 1, "0.15 → 1");
    assert_eq!(cost_micro_usd(&p, &usage(10, 0, 0, 0)), 2, "1.5 → 2");
    // 0.15 + 0.6 = 0.75: rounded once, not per part (which would be 2).
    assert_eq!(cost_micro_usd(&p, &usage(1, 1, 0, 0)), 1);
    // 0.15 × 1000 is 150 exactly (floating point would give 150.00000000000003).
    assert_eq!(cost_micro_usd(&p, &usage(1_000, 0, 0, 0)), 150);
    assert_eq!(
        cost_micro_usd(&price(0.1, 0.7), &usage(3, 3, 0, 0)),
        3,
        "2.4 → 3"
    );
    assert_eq!(cost_micro_usd(&price(0.0, 0.0), &usage(5, 5, 0, 0)), 0);
}

#[test]
fn max_cost_takes_the_highest_input_price_and_all_output() {
    assert_eq!(
        max_cost_micro_usd(&price(3.0, 15.0), 1_000, 100),
        3_000 + 1_500
    );
    let p = Price {
        input: 3.0,
        output: 15.0,
        cache_read: Some(0.3),
        cache_write: Some(3.75),
        reasoning: None,
    };
    assert_eq!(max_cost_micro_usd(&p, 1_000, 100), 3_750 + 1_500);
    assert_eq!(max_cost_micro_usd(&price(0.15, 0.6), 1, 0), 1);
    // The maximum covers the real cost of any answer within it.
    for u in [
        usage(1_000, 100, 0, 0),
        usage(1_000, 100, 1_000, 0),
        usage(1_000, 100, 0, 1_000),
    ] {
        assert!(cost_micro_usd(&p, &u) <= max_cost_micro_usd(&p, 1_000, 100));
    }
}

#[test]
fn reasoning_tokens_are_charged_at_their_price_and_the_rest_of_the_output_at_output() {
    let p = Price {
        reasoning: Some(3.5),
        ..price(0.15, 0.6)
    };
    // 1,000 output tokens of which 400 reasoning: 600 × 0.6 + 400 × 3.5.
    let u = TokenUsage {
        reasoning: 400,
        ..usage(1_000, 1_000, 0, 0)
    };
    assert_eq!(cost_micro_usd(&p, &u), 150 + 360 + 1_400);
    // Without a reasoning price, reasoning is output like the rest.
    assert_eq!(cost_micro_usd(&price(0.15, 0.6), &u), 150 + 600);
    // More reasoning than output (inconsistent usage) never underflows:
    // at most the whole output is reasoning.
    let odd = TokenUsage {
        reasoning: 5_000,
        ..usage(0, 1_000, 0, 0)
    };
    assert_eq!(cost_micro_usd(&p, &odd), 3_500);
}

#[test]
fn cached_and_reasoning_prices_combine_exactly() {
    // Anthropic-like cache prices and a reasoning price, all decimal.
    let p = Price {
        input: 1.0,
        output: 5.0,
        cache_read: Some(0.1),
        cache_write: Some(1.25),
        reasoning: Some(7.5),
    };
    let u = TokenUsage {
        input: 10_000,
        output: 2_000,
        cache_read: 5_000,
        cache_write: 3_000,
        reasoning: 1_000,
    };
    // 2,000 × 1 + 5,000 × 0.1 + 3,000 × 1.25 + 1,000 × 5 + 1,000 × 7.5
    assert_eq!(cost_micro_usd(&p, &u), 2_000 + 500 + 3_750 + 5_000 + 7_500);
    // 0.075 × 3 = 0.225 exactly, rounded up once with the rest.
    let q = Price {
        cache_read: Some(0.075),
        ..price(0.15, 0.6)
    };
    assert_eq!(cost_micro_usd(&q, &usage(3, 0, 3, 0)), 1);
    assert_eq!(cost_micro_usd(&q, &usage(1_000, 0, 1_000, 0)), 75);
}

#[test]
fn max_cost_reserves_the_output_at_the_higher_of_output_and_reasoning() {
    let p = Price {
        reasoning: Some(20.0),
        ..price(3.0, 15.0)
    };
    assert_eq!(max_cost_micro_usd(&p, 1_000, 100), 3_000 + 2_000);
    // A reasoning price below output reserves at output.
    let cheap = Price {
        reasoning: Some(1.0),
        ..price(3.0, 15.0)
    };
    assert_eq!(max_cost_micro_usd(&cheap, 1_000, 100), 3_000 + 1_500);
    // The maximum covers any split of the output into reasoning.
    for r in [0, 50, 100] {
        let u = TokenUsage {
            reasoning: r,
            ..usage(1_000, 100, 0, 0)
        };
        assert!(cost_micro_usd(&p, &u) <= max_cost_micro_usd(&p, 1_000, 100));
        assert!(cost_micro_usd(&cheap, &u) <= max_cost_micro_usd(&cheap, 1_000, 100));
    }
}

#[test]
fn usd_limits_convert_to_micro_usd() {
    assert_eq!(micro_usd(500.0), 500_000_000);
    assert_eq!(micro_usd(0.29), 290_000, "not 289,999 from 0.29 × 1e6");
    assert_eq!(micro_usd(0.0), 0);
    assert_eq!(micro_usd(-1.0), 0);
    assert_eq!(micro_usd(f64::NAN), 0);
}

// --- periods ----------------------------------------------------------------

#[test]
fn civil_conversion_matches_known_dates() {
    assert_eq!(utc(1970, 1, 1), 0);
    assert_eq!(utc(2028, 2, 29), 1_835_395_200_000);
    assert_eq!(utc(2028, 3, 1), 1_835_481_600_000);
    assert_eq!(utc(2000, 2, 29), 951_782_400_000);
    assert_eq!(utc(1969, 12, 29), -259_200_000);
    assert_eq!(utc(1900, 3, 1), -2_203_891_200_000);
    // Every day from 1900 to 2100 round-trips and follows the previous one.
    let mut prev = civil_from_days(days_from_civil(1900, 1, 1) - 1);
    for z in days_from_civil(1900, 1, 1)..days_from_civil(2100, 1, 1) {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
        let next_of_prev = d == 1 && (m == prev.1 % 12 + 1) || (d == prev.2 + 1 && m == prev.1);
        assert!(next_of_prev, "{prev:?} → {:?}", (y, m, d));
        prev = (y, m, d);
    }
}

#[test]
fn days_start_at_midnight_utc() {
    let t = utc(2028, 2, 29) + 13 * HOUR + 45 * 60_000;
    assert_eq!(Period::Day.start_of(t), utc(2028, 2, 29));
    assert_eq!(Period::Day.next_start(t), utc(2028, 3, 1));
    assert_eq!(Period::Day.start_of(utc(2028, 3, 1)), utc(2028, 3, 1));
    assert_eq!(Period::Day.start_of(utc(2028, 3, 1) - 1), utc(2028, 2, 29));
    assert_eq!(
        Period::Day.next_start(utc(2027, 12, 31) + 1),
        utc(2028, 1, 1)
    );
    // Before the epoch too.
    assert_eq!(Period::Day.start_of(-1), -DAY);
}

#[test]
fn weeks_start_on_monday_utc() {
    // 2028-03-01 is a Wednesday; its week began Monday 2028-02-28.
    let wed = utc(2028, 3, 1) + 5 * HOUR;
    assert_eq!(Period::Week.start_of(wed), utc(2028, 2, 28));
    assert_eq!(Period::Week.next_start(wed), utc(2028, 3, 6));
    // Across a year end: Friday 2027-12-31 → Monday 2027-12-27 … 2028-01-03.
    let fri = utc(2027, 12, 31) + 23 * HOUR;
    assert_eq!(Period::Week.start_of(fri), utc(2027, 12, 27));
    assert_eq!(Period::Week.next_start(fri), utc(2028, 1, 3));
    // A Monday at midnight starts its own week; Sunday's last ms does not.
    assert_eq!(Period::Week.start_of(utc(2028, 1, 3)), utc(2028, 1, 3));
    assert_eq!(
        Period::Week.start_of(utc(2028, 1, 3) - 1),
        utc(2027, 12, 27)
    );
    // The epoch was a Thursday.
    assert_eq!(Period::Week.start_of(0), utc(1969, 12, 29));
}

#[test]
fn months_start_on_the_first_utc() {
    let leap = utc(2028, 2, 29) + 23 * HOUR;
    assert_eq!(Period::Month.start_of(leap), utc(2028, 2, 1));
    assert_eq!(Period::Month.next_start(leap), utc(2028, 3, 1));
    assert_eq!(Period::Month.next_start(utc(2027, 2, 10)), utc(2027, 3, 1));
    let new_year_eve = utc(2028, 1, 1) - 1;
    assert_eq!(Period::Month.start_of(new_year_eve), utc(2027, 12, 1));
    assert_eq!(Period::Month.next_start(new_year_eve), utc(2028, 1, 1));
    assert_eq!(Period::Month.start_of(utc(2028, 3, 1)), utc(2028, 3, 1));
    assert_eq!(Period::Month.next_start(utc(2028, 1, 31)), utc(2028, 2, 1));
}

#[test]
fn periods_have_stable_names() {
    for p in Period::ALL {
        assert_eq!(Period::parse(p.as_str()), Some(p));
    }
    assert_eq!(Period::parse("year"), None);
}

// --- ledger -----------------------------------------------------------------

#[test]
fn reserve_admits_up_to_the_limit_and_refuses_beyond_it() {
    let l = ledger();
    let acme = scope("tenant:acme");
    let now = utc(2028, 2, 29) + 10 * HOUR;
    let a = l.reserve(&acme, Period::Day, 1_000, 600, now).unwrap();
    let b = l.reserve(&acme, Period::Day, 1_000, 400, now).unwrap();
    let refused = l.reserve(&acme, Period::Day, 1_000, 1, now).unwrap_err();
    assert_eq!(
        refused,
        Exceeded {
            spent: 0,
            reserved: 1_000,
            limit: 1_000,
            amount: 1,
            resets_at_ms: utc(2028, 3, 1),
        }
    );
    assert!(a.settle(500, &[]).is_empty());
    assert_eq!(
        l.standing(&acme, Period::Day, now),
        Standing {
            spent: 500,
            reserved: 400
        }
    );
    let c = l.reserve(&acme, Period::Day, 1_000, 100, now).unwrap();
    // A request whose maximum alone exceeds what is left is refused.
    let e = l
        .reserve(&acme, Period::Month, 1_000, 1_001, now)
        .unwrap_err();
    assert_eq!(e.resets_at_ms, utc(2028, 3, 1));
    drop((b, c));
    // Other scopes and periods are separate.
    assert!(l
        .reserve(&scope("tenant:beta"), Period::Day, 1_000, 1_000, now)
        .is_ok());
    // The next day starts afresh.
    assert!(l
        .reserve(&acme, Period::Day, 1_000, 1_000, now + DAY)
        .is_ok());
}

#[test]
fn a_dropped_or_released_reservation_gives_the_money_back() {
    let l = ledger();
    let s = scope("global");
    let r = l.reserve(&s, Period::Month, 100, 100, 0).unwrap();
    drop(r);
    assert_eq!(l.standing(&s, Period::Month, 0), Standing::default());
    l.reserve(&s, Period::Month, 100, 100, 0).unwrap().release();
    assert_eq!(l.standing(&s, Period::Month, 0), Standing::default());
    // A panic while holding one releases it too.
    let l2 = l.clone();
    let s2 = s.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _held = l2.reserve(&s2, Period::Month, 100, 100, 0).unwrap();
        panic!("handler failed");
    }));
    assert!(outcome.is_err());
    assert_eq!(l.standing(&s, Period::Month, 0), Standing::default());
    assert!(l.take_unflushed().is_empty(), "nothing was spent");
}

#[test]
fn settling_records_the_real_cost_even_above_the_reservation() {
    let l = ledger();
    let s = scope("key:k1");
    let r = l.reserve(&s, Period::Day, 1_000, 100, 0).unwrap();
    assert_eq!(
        (r.amount(), r.limit(), r.period()),
        (100, 1_000, Period::Day)
    );
    r.settle(250, &[]);
    assert_eq!(
        l.standing(&s, Period::Day, 0),
        Standing {
            spent: 250,
            reserved: 0
        }
    );
}

#[test]
fn a_reservation_settles_into_the_period_it_was_made_in() {
    let l = ledger();
    let s = scope("tenant:acme");
    let before_midnight = utc(2028, 3, 1) - 1;
    let r = l
        .reserve(&s, Period::Day, 1_000, 300, before_midnight)
        .unwrap();
    assert_eq!(r.period_start(), utc(2028, 2, 29));
    let after_midnight = utc(2028, 3, 1) + 1;
    r.settle(200, &[]);
    assert_eq!(l.standing(&s, Period::Day, before_midnight).spent, 200);
    assert_eq!(
        l.standing(&s, Period::Day, after_midnight),
        Standing::default()
    );
    let deltas = l.take_unflushed();
    assert_eq!(deltas.len(), 1);
    assert_eq!(
        (
            deltas[0].period.as_str(),
            deltas[0].period_start,
            deltas[0].micro_usd
        ),
        ("day", utc(2028, 2, 29), 200)
    );
}

#[test]
fn alerts_fire_once_per_fraction_per_period() {
    let l = ledger();
    let s = scope("tenant:acme");
    let alert_at = [0.5, 0.8, 1.0];
    let spend = |amount: u64, now: i64| {
        l.reserve(&s, Period::Day, 1_000, 0, now)
            .unwrap()
            .settle(amount, &alert_at)
    };
    assert!(spend(499, 0).is_empty());
    assert_eq!(spend(1, 0), vec![0.5]);
    assert!(spend(100, 0).is_empty());
    // One settlement crossing two fractions reports both.
    assert_eq!(spend(400, 0), vec![0.8, 1.0]);
    assert!(spend(1, 0).is_empty());
    // A new period alerts again.
    assert_eq!(spend(900, DAY), vec![0.5, 0.8]);
}

#[test]
fn concurrent_settlements_fire_each_alert_once() {
    let l = ledger();
    let s = scope("global");
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (l, s, barrier) = (l.clone(), s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut fired = Vec::new();
                for _ in 0..100 {
                    let r = l.reserve(&s, Period::Week, 1_000, 1, 0).unwrap();
                    fired.extend(r.settle(1, &[0.25, 0.5, 0.75]));
                }
                fired
            })
        })
        .collect();
    let mut fired: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    fired.sort_by(f64::total_cmp);
    assert_eq!(fired, vec![0.25, 0.5, 0.75]);
    assert_eq!(l.standing(&s, Period::Week, 0).spent, 800);
}

/// Many threads reserving random maxima and settling at most what they
/// reserved: `spent + reserved` never passes the limit at any moment, and
/// ends with nothing reserved.
#[test]
fn concurrent_requests_never_overspend() {
    const LIMIT: u64 = 50_000;
    let l = ledger();
    let s = scope("tenant:acme");
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (l, s, barrier) = (l.clone(), s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t as u64);
                barrier.wait();
                let (mut admitted, mut refused) = (0u32, 0u32);
                for _ in 0..2_000 {
                    let amount = rng.u64(1..200);
                    match l.reserve(&s, Period::Month, LIMIT, amount, 0) {
                        Ok(r) if rng.bool() => drop(r),
                        Ok(r) => {
                            r.settle(rng.u64(0..=amount), &[]);
                            admitted += 1;
                        }
                        Err(e) => {
                            assert!(e.spent + e.reserved + amount > LIMIT, "{e:?}");
                            refused += 1;
                        }
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    let watcher = {
        let (l, s) = (l.clone(), s.clone());
        std::thread::spawn(move || {
            barrier.wait();
            for _ in 0..20_000 {
                let st = l.standing(&s, Period::Month, 0);
                assert!(st.spent + st.reserved <= LIMIT, "{st:?}");
            }
        })
    };
    let (admitted, refused) = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .fold((0, 0), |(a, r), (a2, r2)| (a + a2, r + r2));
    watcher.join().unwrap();
    let end = l.standing(&s, Period::Month, 0);
    assert_eq!(end.reserved, 0);
    assert!(end.spent <= LIMIT, "{end:?}");
    assert!(
        admitted > 0 && refused > 0,
        "the limit was reached: {admitted} admitted, {refused} refused"
    );
}

#[test]
fn restored_spend_counts_but_is_neither_flushed_nor_alerted_again() {
    let l = ledger();
    let s = scope("tenant:acme");
    let start = Period::Month.start_of(0);
    l.restore(&[
        row("tenant:acme", "month", start, 600),
        row("tenant:acme", "month", start, 100),
        row("tenant:acme", "year", start, 5),
    ]);
    assert_eq!(l.standing(&s, Period::Month, 0).spent, 700);
    assert!(l.take_unflushed().is_empty());
    let e = l.reserve(&s, Period::Month, 1_000, 301, 0).unwrap_err();
    assert_eq!(e.spent, 700);
    // 0.5 was passed before the restart; 0.8 is newly crossed.
    let r = l.reserve(&s, Period::Month, 1_000, 100, 0).unwrap();
    assert_eq!(r.settle(100, &[0.5, 0.8]), vec![0.8]);
}

fn row(scope: &str, period: &str, start: i64, micro_usd: i64) -> SpendRow {
    SpendRow {
        scope: scope.to_owned(),
        period: period.to_owned(),
        period_start: start,
        micro_usd,
        updated_at: 0,
    }
}

#[test]
fn take_unflushed_drains_once_and_requeue_puts_back() {
    let l = ledger();
    let (a, b) = (scope("app:a"), scope("app:b"));
    l.reserve(&a, Period::Day, 100, 10, 0)
        .unwrap()
        .settle(7, &[]);
    l.reserve(&a, Period::Day, 100, 10, 0)
        .unwrap()
        .settle(3, &[]);
    l.reserve(&b, Period::Week, 100, 10, 0)
        .unwrap()
        .settle(5, &[]);
    let mut first = l.take_unflushed();
    first.sort_by(|x, y| x.scope.cmp(&y.scope));
    let amounts: Vec<(&str, &str, i64)> = first
        .iter()
        .map(|d| (d.scope.as_str(), d.period.as_str(), d.micro_usd))
        .collect();
    assert_eq!(amounts, vec![("app:a", "day", 10), ("app:b", "week", 5)]);
    assert!(l.take_unflushed().is_empty(), "each delta once");
    l.requeue(first.clone());
    l.reserve(&a, Period::Day, 100, 10, 0)
        .unwrap()
        .settle(1, &[]);
    let mut again = l.take_unflushed();
    again.sort_by(|x, y| x.scope.cmp(&y.scope));
    assert_eq!(again[0].micro_usd, 11);
    assert_eq!(again[1], first[1]);
    // Requeued spend is not spent twice.
    assert_eq!(l.standing(&a, Period::Day, 0).spent, 11);
}

#[test]
fn prune_forgets_only_ended_idle_periods() {
    let l = ledger();
    let s = scope("tenant:acme");
    let today = utc(2028, 2, 29);
    l.reserve(&s, Period::Day, 100, 10, today)
        .unwrap()
        .settle(10, &[]);
    let open = l.reserve(&s, Period::Week, 100, 10, today).unwrap();
    l.reserve(&s, Period::Month, 100, 10, today)
        .unwrap()
        .settle(10, &[]);
    let tomorrow = today + DAY;
    l.prune(tomorrow);
    assert_eq!(l.len(), 3, "unflushed spend and open reservations are kept");
    l.take_unflushed();
    l.prune(tomorrow);
    // The day ended (gone); the week is still reserved; the month
    // (February) has ended too (tomorrow is March 1st): gone.
    assert_eq!(l.len(), 1);
    assert_eq!(l.standing(&s, Period::Week, today).reserved, 10);
    drop(open);
    l.prune(tomorrow);
    assert_eq!(l.len(), 1, "the current week stays");
    l.prune(today + 7 * DAY);
    assert!(l.is_empty());
}

// --- conservation (proptest) ------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        scope: usize,
        period: usize,
        amount: u64,
    },
    Settle {
        which: usize,
        actual: u64,
    },
    Release {
        which: usize,
    },
    Drop {
        which: usize,
    },
    Take,
    FailedFlush,
    Prune,
    Advance {
        hours: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..3usize, 0..500u64)
            .prop_map(|(scope, period, amount)| Op::Reserve { scope, period, amount }),
        3 => (any::<usize>(), 0..1_000u64).prop_map(|(which, actual)| Op::Settle { which, actual }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
        1 => any::<usize>().prop_map(|which| Op::Drop { which }),
        1 => Just(Op::Take),
        1 => Just(Op::FailedFlush),
        1 => Just(Op::Prune),
        1 => (1..400i64).prop_map(|hours| Op::Advance { hours }),
    ]
}

proptest! {
    /// Whatever happens, every settled micro-USD is flushed or unflushed
    /// exactly once, and `reserved` is exactly what open reservations hold.
    #[test]
    fn money_is_never_lost_or_counted_twice(ops in proptest::collection::vec(op(), 1..200)) {
        let l = ledger();
        let scopes = [scope("global"), scope("tenant:a"), scope("key:k")];
        let mut now = utc(2028, 2, 27);
        let mut open: Vec<Reservation> = Vec::new();
        let (mut settled, mut flushed) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Reserve { scope, period, amount } => {
                    if let Ok(r) = l.reserve(&scopes[scope], Period::ALL[period], 2_000, amount, now) {
                        open.push(r);
                    }
                }
                Op::Settle { which, actual } if !open.is_empty() => {
                    open.swap_remove(which % open.len()).settle(actual, &[0.5]);
                    settled += actual;
                }
                Op::Release { which } if !open.is_empty() => open.swap_remove(which % open.len()).release(),
                Op::Drop { which } if !open.is_empty() => drop(open.swap_remove(which % open.len())),
                Op::Take => flushed += sum(&l.take_unflushed()),
                Op::FailedFlush => l.requeue(l.take_unflushed()),
                Op::Prune => l.prune(now),
                Op::Advance { hours } => now += hours * HOUR,
                _ => {}
            }
            let (_, reserved, unflushed) = l.totals();
            prop_assert_eq!(reserved, open.iter().map(Reservation::amount).sum::<u64>());
            prop_assert_eq!(flushed + unflushed, settled);
        }
        open.clear();
        flushed += sum(&l.take_unflushed());
        prop_assert_eq!(flushed, settled);
        prop_assert_eq!(l.totals(), (l.totals().0, 0, 0));
    }
}

fn sum(deltas: &[sluice_store::SpendDelta]) -> u64 {
    deltas.iter().map(|d| d.micro_usd as u64).sum()
}

// --- flusher ----------------------------------------------------------------

/// A migrated SQLite store in a temp file, and its path (removed by the
/// caller).
async fn sqlite_store() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("sluice-budget-{:016x}.db", fastrand::u64(..)));
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opening the test store");
    (store, path)
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

#[tokio::test]
async fn the_flusher_writes_everything_at_shutdown() {
    let (store, path) = sqlite_store().await;
    let l = ledger();
    let (tx, rx) = tokio::sync::watch::channel(false);
    // A period far longer than the test: only the shutdown flush runs.
    let flusher = spawn_flusher(l.clone(), store.clone(), Duration::from_secs(3_600), rx);
    let s = scope("tenant:acme");
    let now = sluice_store::ids::now_ms();
    for cost in [100, 250, 650] {
        l.reserve(&s, Period::Month, 10_000, 1_000, now)
            .unwrap()
            .settle(cost, &[]);
    }
    l.reserve(&scope("global"), Period::Day, 10_000, 5, now)
        .unwrap()
        .settle(5, &[]);
    tx.send(true).unwrap();
    flusher.await.unwrap();
    let month = Period::Month.start_of(now);
    assert_eq!(
        store.spend_of("tenant:acme", "month", month).await.unwrap(),
        1_000
    );
    assert_eq!(
        store
            .spend_of("global", "day", Period::Day.start_of(now))
            .await
            .unwrap(),
        5
    );
    assert!(l.take_unflushed().is_empty());
    // A restarted ledger starts from what was persisted.
    let restarted = ledger();
    restarted.restore(
        &store
            .spend_since(Period::Day.start_of(now).min(month))
            .await
            .unwrap(),
    );
    assert_eq!(restarted.standing(&s, Period::Month, now).spent, 1_000);
    store.close().await;
    remove_db(&path);
}

#[tokio::test]
async fn the_flusher_flushes_on_its_timer_and_stops_when_the_sender_goes() {
    let (store, path) = sqlite_store().await;
    let l = ledger();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let flusher = spawn_flusher(l.clone(), store.clone(), Duration::from_millis(20), rx);
    let s = scope("app:a");
    let now = sluice_store::ids::now_ms();
    let start = Period::Week.start_of(now);
    l.reserve(&s, Period::Week, 100, 10, now)
        .unwrap()
        .settle(10, &[]);
    let mut persisted = 0;
    for _ in 0..250 {
        persisted = store.spend_of("app:a", "week", start).await.unwrap();
        if persisted == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(persisted, 10, "flushed without a shutdown");
    l.reserve(&s, Period::Week, 100, 10, now)
        .unwrap()
        .settle(4, &[]);
    drop(tx);
    flusher.await.unwrap();
    assert_eq!(store.spend_of("app:a", "week", start).await.unwrap(), 14);
    store.close().await;
    remove_db(&path);
}

#[tokio::test]
async fn a_failed_flush_keeps_the_spend() {
    let (store, path) = sqlite_store().await;
    let l = ledger();
    l.reserve(&scope("global"), Period::Day, 100, 10, 0)
        .unwrap()
        .settle(9, &[]);
    store.close().await;
    assert!(flush(&l, &store).await.is_err());
    let kept = l.take_unflushed();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].micro_usd, 9);
    remove_db(&path);
}
