//! The admission queue under paused tokio time. Futures are polled by hand
//! (a no-op waker), so the order in which waiters queue and the moment each
//! is granted are exact, not up to the scheduler; one test runs real tasks
//! to check that the hand-off wakes them. A proptest drives random
//! sequences of acquire / drop / release / timeout / reload and checks that
//! no slot is leaked or created and that priority and FIFO order hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::{advance, Instant};

use super::drain::{MAX_RETRY, MIN_RETRY};
use super::*;

type Acquire = Pin<Box<dyn Future<Output = Result<Permit, QueueRefusal>> + Send>>;

const HOUR: Duration = Duration::from_secs(3600);

fn spec(max_in_flight: u32, queue: u32, timeout: Duration) -> QueueSpec {
    QueueSpec {
        max_in_flight,
        queue,
        timeout,
    }
}

fn queue(max_in_flight: u32, queue: u32) -> Arc<AdmissionQueue> {
    Arc::new(AdmissionQueue::new(
        spec(max_in_flight, queue, HOUR),
        DEFAULT_QUANTUM,
    ))
}

/// An `acquire` with the caller's deadline far away.
fn start(q: &Arc<AdmissionQueue>, class: Priority, flow: u64, cost: u64) -> Acquire {
    start_until(q, class, flow, cost, Instant::now() + 10 * HOUR)
}

fn start_until(
    q: &Arc<AdmissionQueue>,
    class: Priority,
    flow: u64,
    cost: u64,
    deadline: Instant,
) -> Acquire {
    let q = Arc::clone(q);
    // Unconstrained: the tests poll hundreds of futures in one task tick,
    // beyond tokio's cooperative budget (which would answer Pending).
    Box::pin(tokio::task::unconstrained(async move {
        q.acquire(class, flow, cost, deadline).await
    }))
}

fn poll(f: &mut Acquire) -> Option<Result<Permit, QueueRefusal>> {
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// Polls a new acquire once: it must have queued.
fn queued(q: &Arc<AdmissionQueue>, class: Priority, flow: u64, cost: u64) -> Acquire {
    let mut f = start(q, class, flow, cost);
    assert!(poll(&mut f).is_none(), "expected to wait");
    f
}

/// A slot now.
fn admit(q: &Arc<AdmissionQueue>) -> Permit {
    let mut f = start(q, Priority::Normal, 0, 1);
    poll(&mut f).expect("a free slot").expect("admitted")
}

/// Polls the waiters, keeping those still waiting: the permits of those
/// that were granted.
fn claim(waiters: &mut Vec<Acquire>) -> Vec<Permit> {
    let mut permits = Vec::new();
    waiters.retain_mut(|w| match poll(w) {
        Some(r) => {
            permits.push(r.expect("granted"));
            false
        }
        None => true,
    });
    permits
}

/// With one slot held and `waiters` queued: releases the slot, finds the
/// one waiter it went to, holds its permit, and repeats. The tags in grant
/// order.
fn grant_order<T: Copy>(held: Permit, mut waiters: Vec<(T, Acquire)>) -> Vec<T> {
    let mut held = Some(held);
    let mut order = Vec::new();
    while !waiters.is_empty() {
        drop(held.take());
        let ready: Vec<usize> = (0..waiters.len())
            .filter(|&i| {
                let r = poll(&mut waiters[i].1);
                if let Some(r) = r {
                    held = Some(r.expect("granted"));
                    true
                } else {
                    false
                }
            })
            .collect();
        assert_eq!(
            ready.len(),
            1,
            "one release grants exactly one waiter (after {} grants, {} waiting)",
            order.len(),
            waiters.len()
        );
        order.push(waiters.remove(ready[0]).0);
    }
    order
}

#[tokio::test(start_paused = true)]
async fn free_slots_admit_at_once_up_to_max_in_flight() {
    let q = queue(3, 10);
    let held: Vec<Permit> = (0..3).map(|_| admit(&q)).collect();
    assert!(held.iter().all(|p| p.waited() == Duration::ZERO));
    let mut fourth = queued(&q, Priority::Normal, 0, 1);
    assert_eq!((q.in_flight(), q.waiting()), (3, 1));

    advance(Duration::from_millis(1500)).await;
    assert!(poll(&mut fourth).is_none(), "no slot came free");
    drop(held);
    let p = poll(&mut fourth)
        .expect("a release hands the slot over")
        .unwrap();
    assert_eq!(p.waited(), Duration::from_millis(1500));
    assert_eq!((q.in_flight(), q.waiting()), (1, 0));
    drop(p);
    assert!(q.is_idle());
}

#[tokio::test(start_paused = true)]
async fn a_release_wakes_a_waiting_task() {
    let q = queue(1, 10);
    let held = admit(&q);
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                let p = q
                    .acquire(Priority::Normal, i, 1, Instant::now() + HOUR)
                    .await
                    .expect("granted");
                tokio::time::sleep(Duration::from_secs(1)).await;
                drop(p);
            })
        })
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(q.waiting(), 3);
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(q.is_idle());
}

#[tokio::test(start_paused = true)]
async fn one_flow_is_served_first_come_first_served() {
    let q = queue(1, 100);
    let held = admit(&q);
    let waiters = (0..20)
        .map(|i| (i, queued(&q, Priority::Normal, 7, 1 + i * 300)))
        .collect();
    assert_eq!(grant_order(held, waiters), (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn higher_classes_go_first_whenever_they_arrived() {
    let q = queue(1, 100);
    let held = admit(&q);
    let arrivals = [
        Priority::Batch,
        Priority::Low,
        Priority::Normal,
        Priority::Low,
        Priority::High,
        Priority::Critical,
        Priority::Batch,
        Priority::High,
        Priority::Normal,
        Priority::Critical,
    ];
    let waiters = arrivals
        .iter()
        .enumerate()
        .map(|(i, &c)| ((c, i), queued(&q, c, i as u64 % 3, 1000)))
        .collect();
    let order = grant_order(held, waiters);
    let mut expected: Vec<(Priority, usize)> =
        arrivals.iter().copied().zip(0..).collect::<Vec<_>>();
    expected.sort_by_key(|&(c, i)| (c.rank(), i));
    assert_eq!(order, expected);
}

#[tokio::test(start_paused = true)]
async fn a_late_flow_is_not_starved_by_a_flooding_one() {
    let q = queue(1, 200);
    let held = admit(&q);
    let mut waiters: Vec<(char, Acquire)> = (0..100)
        .map(|_| ('a', queued(&q, Priority::Normal, 1, 1000)))
        .collect();
    waiters.extend((0..10).map(|_| ('b', queued(&q, Priority::Normal, 2, 1000))));
    let order = grant_order(held, waiters);
    let first: String = order[..20].iter().collect();
    assert_eq!(first, "ab".repeat(10), "flows alternate");
    assert!(order[20..].iter().all(|&f| f == 'a'));
}

#[tokio::test(start_paused = true)]
async fn flows_share_the_slots_by_cost_not_by_count() {
    let q = queue(1, 1000);
    let held = admit(&q);
    let mut waiters: Vec<(u64, Acquire)> = Vec::new();
    for _ in 0..150 {
        waiters.push((2000, queued(&q, Priority::Normal, 1, 2000)));
        waiters.push((1000, queued(&q, Priority::Normal, 2, 1000)));
        waiters.push((1000, queued(&q, Priority::Normal, 2, 1000)));
    }
    let order = grant_order(held, waiters);
    let big = order[..150].iter().filter(|&&c| c == 2000).count();
    let small = order[..150].iter().filter(|&&c| c == 1000).count();
    assert!((49..=51).contains(&big), "{big} big, {small} small");
    assert!((99..=101).contains(&small), "{big} big, {small} small");
}

#[tokio::test(start_paused = true)]
async fn costs_far_above_the_quantum_keep_drr_order_without_spinning() {
    // Quantum 1: without skipping idle rounds, the first grant would take
    // a billion rounds.
    let q = Arc::new(AdmissionQueue::new(spec(1, 100, HOUR), 1));
    let held = admit(&q);
    let mut waiters = vec![('a', queued(&q, Priority::Normal, 1, 5_000_000_000))];
    waiters.extend((0..6).map(|_| ('b', queued(&q, Priority::Normal, 2, 1_000_000_000))));
    let order: String = grant_order(held, waiters).into_iter().collect();
    // Flow a needs five of b's requests' worth of rounds; it is visited
    // first in the round where it fits.
    assert_eq!(order, "bbbbabb");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once() {
    let q = queue(1, 2);
    let _held = admit(&q);
    let _w = [
        queued(&q, Priority::Normal, 1, 1),
        queued(&q, Priority::Normal, 2, 1),
    ];
    let mut third = start(&q, Priority::Critical, 3, 1);
    let r = poll(&mut third).expect("refused without waiting");
    assert_eq!(
        r.unwrap_err(),
        QueueRefusal::Full {
            retry_after: MIN_RETRY
        },
        "nothing drained yet: the shortest hint"
    );
    assert_eq!(q.waiting(), 2);

    let none = queue(1, 0);
    let _held = admit(&none);
    let mut f = start(&none, Priority::Critical, 1, 1);
    assert!(matches!(poll(&mut f), Some(Err(QueueRefusal::Full { .. }))));
    assert_eq!(none.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_deadline_passes_is_refused_and_gone() {
    let q = Arc::new(AdmissionQueue::new(
        spec(1, 10, Duration::from_secs(5)),
        DEFAULT_QUANTUM,
    ));
    let held = admit(&q);
    let mut w = queued(&q, Priority::Normal, 1, 1);
    // The caller's own deadline, when earlier, wins.
    let soon = Instant::now() + Duration::from_secs(2);
    let mut early = start_until(&q, Priority::Normal, 2, 1, soon);
    assert!(poll(&mut early).is_none());

    advance(Duration::from_secs(2)).await;
    let r = poll(&mut early).expect("its deadline passed").unwrap_err();
    assert!(matches!(r, QueueRefusal::Timeout { waited, .. } if waited == Duration::from_secs(2)));
    advance(Duration::from_millis(2999)).await;
    assert!(poll(&mut w).is_none());
    advance(Duration::from_millis(1)).await;
    let r = poll(&mut w).expect("spec timeout passed").unwrap_err();
    assert_eq!(
        r,
        QueueRefusal::Timeout {
            retry_after: MIN_RETRY,
            waited: Duration::from_secs(5)
        }
    );
    assert_eq!(q.waiting(), 0);
    drop(held);
    assert!(
        q.is_idle(),
        "the slot went back to the pool, not to a ghost"
    );

    // A deadline already past: refused without queueing.
    let _held = admit(&q);
    let mut late = start_until(&q, Priority::Normal, 1, 1, Instant::now());
    assert!(matches!(
        poll(&mut late),
        Some(Err(QueueRefusal::Timeout { waited, .. })) if waited.is_zero()
    ));
    assert_eq!(q.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slot_handed_over_just_before_the_deadline_is_kept() {
    let q = Arc::new(AdmissionQueue::new(
        spec(1, 10, Duration::from_secs(5)),
        DEFAULT_QUANTUM,
    ));
    let held = admit(&q);
    let mut w = queued(&q, Priority::Normal, 1, 1);
    drop(held);
    advance(Duration::from_secs(6)).await;
    let p = poll(&mut w)
        .expect("done")
        .expect("the slot was already its");
    assert_eq!(p.waited(), Duration::from_secs(6));
    assert_eq!(q.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_grows_with_depth_and_shrinks_with_faster_drain() {
    // Two queues drained at 1 and at 4 releases a second for 60 s.
    let slow = queue(1, 1000);
    let fast = queue(1, 1000);
    for tick in 0..240 {
        if tick % 4 == 0 {
            drop(admit(&slow));
        }
        drop(admit(&fast));
        advance(Duration::from_millis(250)).await;
    }
    let _held = (admit(&slow), admit(&fast));
    let _waiters: Vec<Acquire> = (0..8)
        .flat_map(|_| {
            [
                queued(&slow, Priority::Normal, 1, 1),
                queued(&fast, Priority::Normal, 1, 1),
            ]
        })
        .collect();
    let near = |d: Duration, secs: f64| (d.as_secs_f64() - secs).abs() < 0.1 * secs;
    // 8 waiting ahead of a new normal waiter: 9 releases to go.
    assert!(near(slow.retry_after(Priority::Normal), 9.0));
    assert!(near(fast.retry_after(Priority::Normal), 9.0 / 4.0));
    // A critical waiter has nobody ahead: the next release.
    assert!(near(slow.retry_after(Priority::Critical), 1.0));
    assert_eq!(fast.retry_after(Priority::Critical), MIN_RETRY, "clamped");
    let hint = |q: &Arc<AdmissionQueue>| q.retry_after(Priority::Batch);
    let (slow_8, fast_8) = (hint(&slow), hint(&fast));
    let _more: Vec<Acquire> = (0..60)
        .flat_map(|_| {
            [
                queued(&slow, Priority::Low, 1, 1),
                queued(&fast, Priority::Low, 1, 1),
            ]
        })
        .collect();
    assert!(
        hint(&slow) > slow_8 && hint(&fast) > fast_8,
        "deeper, longer"
    );
    assert!(near(hint(&fast), 69.0 / 4.0));
    assert_eq!(hint(&slow), MAX_RETRY, "69 s of work, clamped");
}

#[tokio::test(start_paused = true)]
async fn the_hint_decays_to_the_longest_when_nothing_drains() {
    let q = queue(1, 100);
    for _ in 0..20 {
        drop(admit(&q));
        advance(Duration::from_millis(100)).await;
    }
    let _held = admit(&q);
    let _w = queued(&q, Priority::Normal, 1, 1);
    assert_eq!(q.retry_after(Priority::Normal), MIN_RETRY, "10 a second");
    advance(Duration::from_secs(120)).await;
    assert_eq!(q.retry_after(Priority::Normal), MAX_RETRY, "stuck");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_future_leaves_the_queue() {
    let q = queue(1, 10);
    let held = admit(&q);
    let a = queued(&q, Priority::Normal, 1, 1);
    let mut b = queued(&q, Priority::Normal, 2, 1);
    drop(a);
    assert_eq!(q.waiting(), 1);
    drop(held);
    let _p = poll(&mut b).expect("b is next").unwrap();
    assert_eq!((q.in_flight(), q.waiting()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_slot_handed_to_a_dropped_waiter_passes_on() {
    let q = queue(1, 10);
    let held = admit(&q);
    let a = queued(&q, Priority::Normal, 1, 1);
    let mut b = queued(&q, Priority::Normal, 2, 1);
    drop(held); // the slot goes to a, which is never polled again
    assert_eq!((q.in_flight(), q.waiting()), (1, 1));
    drop(a);
    let p = poll(&mut b).expect("a passed the slot to b").unwrap();
    drop(p);
    // With nobody behind, a dropped grantee gives the slot back.
    let held = admit(&q);
    let c = queued(&q, Priority::Normal, 3, 1);
    drop(held);
    drop(c);
    assert!(q.is_idle());
    assert_eq!(admit(&q).waited(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn raising_max_in_flight_wakes_waiters_and_lowering_lets_slots_drain() {
    let q = queue(1, 10);
    let held = admit(&q);
    let mut waiters: Vec<Acquire> = (0..4).map(|i| queued(&q, Priority::Normal, i, 1)).collect();
    q.set_spec(spec(3, 10, HOUR));
    let mut permits = claim(&mut waiters);
    assert_eq!(permits.len(), 2, "two new slots, two waiters served");
    assert_eq!((q.in_flight(), q.waiting()), (3, 2));

    q.set_spec(spec(1, 10, HOUR));
    assert_eq!(q.in_flight(), 3, "in flight requests finish");
    drop(held);
    drop(permits.pop());
    assert!(claim(&mut waiters).is_empty(), "still over");
    assert_eq!(q.in_flight(), 1);
    drop(permits.pop());
    let served = claim(&mut waiters);
    assert_eq!((served.len(), q.in_flight(), q.waiting()), (1, 1, 1));
    assert_eq!(q.spec(), spec(1, 10, HOUR));
}

#[tokio::test(start_paused = true)]
async fn the_fast_path_leaves_the_waiter_structures_alone() {
    let q = queue(4, 10);
    for _ in 0..1000 {
        let _a = admit(&q);
        let _b = admit(&q);
    }
    let s = q.lock();
    assert!(s.classes.iter().all(|c| c.capacity() == 0));
    assert_eq!(s.next_id, 0);
}

#[test]
fn priorities_parse_in_snake_case_and_default_to_normal() {
    for p in Priority::ALL {
        let parsed: Priority = serde_json::from_value(serde_json::json!(p.as_str())).unwrap();
        assert_eq!(parsed, p);
    }
    assert_eq!(Priority::default(), Priority::Normal);
    assert!(serde_json::from_str::<Priority>("\"urgent\"").is_err());
    let ranks: Vec<usize> = Priority::ALL.iter().map(|p| p.rank()).collect();
    assert_eq!(ranks, [0, 1, 2, 3, 4]);
}

#[test]
fn refusals_answer_429_and_503_with_retry_after() {
    let full = QueueRefusal::Full {
        retry_after: Duration::from_millis(2300),
    };
    let e = full.to_error("tenant `acme`");
    assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(
        e.message,
        "the concurrency queue of tenant `acme` is full; retry in 3 s"
    );
    assert_eq!(full.reason(), "queue_full");
    assert_eq!((e.code(), e.source()), ("queue_full", "policy"));
    let timeout = QueueRefusal::Timeout {
        retry_after: MIN_RETRY,
        waited: Duration::from_millis(5000),
    };
    let e = timeout.to_error("model `smart`");
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.retry_after, Some(MIN_RETRY));
    assert_eq!(
        e.message,
        "no concurrency slot of model `smart` came free within 5.0 s; retry in 1 s"
    );
    assert_eq!(timeout.reason(), "queue_timeout");
    assert_eq!((e.code(), e.source()), ("queue_timeout", "policy"));
}

#[test]
fn the_queue_and_its_future_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>(_: &T) {}
    shared::<AdmissionQueue>();
    shared::<Permit>();
    let q = queue(1, 1);
    sendable(&q.acquire(Priority::Normal, 0, 1, Instant::now()));
}

/// One step of the random model.
#[derive(Clone, Debug)]
enum Op {
    /// A new request (class rank, flow, cost).
    Acquire(usize, u64, u64),
    /// The client of the n-th pending request goes away.
    Cancel(usize),
    /// The n-th held permit ends.
    Release(usize),
    /// Time passes (ms): some waiters time out.
    Advance(u64),
    /// A reload sets `max_in_flight`.
    Reload(u32),
    /// A permit ends and a pending request is dropped before anything is
    /// polled: when the slot went to that very waiter, it must pass on.
    ReleaseThenCancel(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, 0..4u64, 1..3000u64).prop_map(|(c, f, cost)| Op::Acquire(c, f, cost)),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (1..3000u64).prop_map(Op::Advance),
        1 => (0..6u32).prop_map(Op::Reload),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(r, c)| Op::ReleaseThenCancel(r, c)),
    ]
}

struct Pending {
    fut: Acquire,
    class: usize,
    flow: u64,
    seq: usize,
}

/// Runs `ops`, checking after each that the counts match what the test
/// holds, that no grant skipped a higher class or an earlier waiter of its
/// flow, and at the end that every slot is back.
async fn run(ops: Vec<Op>) {
    let q = Arc::new(AdmissionQueue::new(
        spec(2, 6, Duration::from_secs(5)),
        DEFAULT_QUANTUM,
    ));
    let mut pending: Vec<Pending> = Vec::new();
    let mut held: Vec<Permit> = Vec::new();
    for (seq, op) in ops.into_iter().enumerate() {
        let before = q.in_flight();
        match op {
            Op::Acquire(c, flow, cost) => {
                let mut fut = start(&q, Priority::ALL[c], flow, cost);
                match poll(&mut fut) {
                    Some(Ok(p)) => held.push(p),
                    Some(Err(_)) => {}
                    None => pending.push(Pending {
                        fut,
                        class: c,
                        flow,
                        seq,
                    }),
                }
            }
            Op::Cancel(i) if !pending.is_empty() => {
                pending.remove(i % pending.len());
            }
            Op::Release(i) if !held.is_empty() => {
                drop(held.remove(i % held.len()));
            }
            Op::ReleaseThenCancel(r, c) if !held.is_empty() && !pending.is_empty() => {
                drop(held.remove(r % held.len()));
                pending.remove(c % pending.len());
            }
            Op::Advance(ms) => advance(Duration::from_millis(ms)).await,
            Op::Reload(max) => q.set_spec(spec(max, 6, Duration::from_secs(5))),
            _ => {}
        }
        // Claim what was granted; drop what timed out.
        let mut granted = Vec::new();
        let mut still = Vec::new();
        for mut p in pending.drain(..) {
            match poll(&mut p.fut) {
                Some(Ok(permit)) => {
                    held.push(permit);
                    granted.push((p.class, p.flow, p.seq));
                }
                Some(Err(r)) => assert!(matches!(r, QueueRefusal::Timeout { .. })),
                None => still.push(p),
            }
        }
        pending = still;
        assert_eq!(q.in_flight() as usize, held.len(), "slots = permits");
        assert_eq!(q.waiting() as usize, pending.len(), "waiting = pending");
        let max = q.spec().max_in_flight;
        assert!(q.in_flight() <= max.max(before), "never admitted above max");
        if !pending.is_empty() {
            assert!(q.in_flight() >= max, "nobody waits while a slot is free");
        }
        for &(class, flow, seq) in &granted {
            for p in &pending {
                assert!(p.class >= class, "a lower class was served first");
                assert!(
                    !(p.class == class && p.flow == flow && p.seq < seq),
                    "a flow was served out of order"
                );
            }
        }
    }
    drop(pending);
    drop(held);
    assert!(q.is_idle());
    assert_eq!((q.in_flight(), q.waiting()), (0, 0));
    q.set_spec(spec(3, 6, Duration::from_secs(5)));
    let again: Vec<Permit> = (0..3).map(|_| admit(&q)).collect();
    let _over = queued(&q, Priority::Critical, 0, 1);
    assert_eq!(again.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_traffic_never_leaks_or_creates_slots(ops in proptest::collection::vec(op(), 1..200)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
