//! With `shared_state`, requests waiting for a level's concurrency slots on
//! different instances wait in one line (`policy/concurrency/take_slot.lua`):
//! strict priority across classes, fair (start-time fair queueing by
//! estimated tokens) across the level's flows within a class, in arrival
//! order between equal starts; a ticket whose
//! request stopped trying lapses; and the admission call does not take a
//! free slot ahead of requests waiting for it; a slot given back names the
//! head of its line on a channel, and a waiting request does not poll Redis
//! in a tight loop. The scripts are driven
//! directly against the real Redis, and three gateways on one Redis show
//! the priority order end to end.

mod common;

use std::time::{Duration, Instant};

use common::db::redis_url;
use common::{TestGateway, ADMIN_KEY};
use redis::aio::MultiplexedConnection;
use serde_json::json;

const TAKE_SLOT: &str = include_str!("../src/policy/concurrency/take_slot.lua");
const RELEASE_SLOT: &str = include_str!("../src/policy/concurrency/release_slot.lua");
const ADMISSION: &str = include_str!("../src/policy/admission.lua");

const CRITICAL: u8 = 0;
const BATCH: u8 = 4;

/// One level's keys in Redis, under a prefix no other test uses.
struct Level {
    slots: String,
    conn: MultiplexedConnection,
    /// Each ticket's arrival number, as the script gave it.
    arrivals: std::collections::HashMap<String, i64>,
}

impl Level {
    async fn new() -> Level {
        let client = redis::Client::open(redis_url()).unwrap();
        Level {
            slots: format!("sluice:cc:test:{:016x}", fastrand::u64(..)),
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            arrivals: Default::default(),
        }
    }

    fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.slots)
    }

    /// One try of ticket `id`: `Ok(())` when it took a slot of `max`, else
    /// `Err(tickets ahead of it)`.
    async fn take(
        &mut self,
        max: u32,
        id: &str,
        class: u8,
        flow: &str,
        cost: u64,
        ticket_ms: u64,
    ) -> Result<(), i64> {
        let reply = self.try_slot(max, id, class, flow, cost, ticket_ms).await;
        match reply[..] {
            [1, 0, _] => Ok(()),
            [0, ahead, _, _] => Err(ahead),
            _ => panic!("unexpected reply {reply:?}"),
        }
    }

    /// One try of ticket `id`, answered as the script answers (its arrival
    /// number is kept for the ticket's next try).
    async fn try_slot(
        &mut self,
        max: u32,
        id: &str,
        class: u8,
        flow: &str,
        cost: u64,
        ticket_ms: u64,
    ) -> Vec<i64> {
        let reply: Vec<i64> = redis::Script::new(TAKE_SLOT)
            .key(&self.slots)
            .key(self.key("line"))
            .key(self.key("tickets"))
            .key(self.key("flows"))
            .key(self.key("clock"))
            .arg(max)
            .arg(id)
            .arg(60_000)
            .arg(class)
            .arg(flow)
            .arg(cost)
            .arg(ticket_ms)
            .arg(self.arrivals.get(id).copied().unwrap_or(0))
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        if let [0, _, n, _] = reply[..] {
            self.arrivals.insert(id.to_owned(), n);
        }
        reply
    }

    async fn release(&mut self, id: &str) {
        let _: i64 = redis::cmd("ZREM")
            .arg(&self.slots)
            .arg(id)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }

    /// The admission call's slot part alone (no budget, no rate rule):
    /// how many slots it took.
    async fn admit(&mut self, max: u32, id: &str) -> i64 {
        self.admit_for(max, id, 60_000).await
    }

    /// The same with a slot lease of `lease_ms`.
    async fn admit_for(&mut self, max: u32, id: &str, lease_ms: u64) -> i64 {
        let reply: Vec<i64> = redis::Script::new(ADMISSION)
            .key(&self.slots)
            .key(self.key("tickets"))
            .arg(0)
            .arg(0)
            .arg(0)
            .arg(1)
            .arg(max)
            .arg(id)
            .arg(lease_ms)
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        *reply.last().unwrap()
    }
}

/// Frees the one slot `holder` has, then lets every waiting ticket try
/// (in the order given, which must not matter): the one that took the slot.
async fn next_served(level: &mut Level, holder: &str, waiting: &[(&str, u8, &str)]) -> String {
    level.release(holder).await;
    let mut served = None;
    for (id, class, flow) in waiting.iter().rev() {
        if level.take(1, id, *class, flow, 10, 60_000).await.is_ok() {
            assert!(served.is_none(), "two tickets took one slot");
            served = Some(id.to_string());
        }
    }
    served.expect("a waiting ticket takes the freed slot")
}

#[tokio::test]
async fn a_flooding_flow_waits_behind_itself_not_in_front_of_others() {
    let mut level = Level::new().await;
    level
        .take(1, "x", BATCH, "other", 10, 60_000)
        .await
        .unwrap();
    // Flow A queues five tickets, then flow B one.
    let mut waiting: Vec<(String, u8, &str)> = Vec::new();
    for i in 1..=5 {
        let id = format!("a{i}");
        assert_eq!(level.take(1, &id, BATCH, "A", 10, 60_000).await, Err(i - 1));
        waiting.push((id, BATCH, "A"));
    }
    assert!(level.take(1, "b1", BATCH, "B", 10, 60_000).await.is_err());
    waiting.push(("b1".into(), BATCH, "B"));

    let mut order = Vec::new();
    let mut holder = "x".to_string();
    while !waiting.is_empty() {
        let view: Vec<(&str, u8, &str)> = waiting
            .iter()
            .map(|(i, c, f)| (i.as_str(), *c, *f))
            .collect();
        let next = next_served(&mut level, &holder, &view).await;
        waiting.retain(|(i, _, _)| *i != next);
        order.push(next.clone());
        holder = next;
    }
    // B's one ticket starts at the line's clock, level with A's first
    // (which came earlier): it is served second, not after A's five.
    assert_eq!(order, ["a1", "b1", "a2", "a3", "a4", "a5"]);
}

#[tokio::test]
async fn a_higher_class_goes_first_whenever_it_came() {
    let mut level = Level::new().await;
    level.take(1, "x", BATCH, "f", 10, 60_000).await.unwrap();
    for id in ["low1", "low2", "low3"] {
        assert!(level.take(1, id, BATCH, "f", 10, 60_000).await.is_err());
    }
    // Last to come, first in line.
    assert_eq!(
        level.take(1, "vip", CRITICAL, "g", 10, 60_000).await,
        Err(0)
    );
    let waiting = [
        ("low1", BATCH, "f"),
        ("low2", BATCH, "f"),
        ("low3", BATCH, "f"),
        ("vip", CRITICAL, "g"),
    ];
    assert_eq!(next_served(&mut level, "x", &waiting).await, "vip");
    assert_eq!(next_served(&mut level, "vip", &waiting[..3]).await, "low1");
}

#[tokio::test]
async fn equal_starts_go_in_arrival_order() {
    let mut level = Level::new().await;
    level.take(1, "x", BATCH, "f", 10, 60_000).await.unwrap();
    // Three new flows, each starting at the clock: named against their
    // arrival, so an order by name would be the reverse.
    for id in ["z", "y", "w"] {
        assert!(level.take(1, id, BATCH, id, 10, 60_000).await.is_err());
    }
    let waiting = [("z", BATCH, "z"), ("y", BATCH, "y"), ("w", BATCH, "w")];
    assert_eq!(next_served(&mut level, "x", &waiting).await, "z");
    assert_eq!(next_served(&mut level, "z", &waiting[1..]).await, "y");
    assert_eq!(next_served(&mut level, "y", &waiting[2..]).await, "w");
}

#[tokio::test]
async fn a_ticket_no_longer_renewed_lapses_and_blocks_nobody() {
    let mut level = Level::new().await;
    level.take(1, "x", BATCH, "f", 10, 60_000).await.unwrap();
    // A request that tried once with a 50 ms ticket, then went away.
    assert!(level.take(1, "gone", CRITICAL, "f", 10, 50).await.is_err());
    assert_eq!(level.take(1, "stays", BATCH, "g", 10, 60_000).await, Err(1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    level.release("x").await;
    assert_eq!(level.take(1, "stays", BATCH, "g", 10, 60_000).await, Ok(()));
}

/// A waiting try learns when the first slot's lease ends: the head of the
/// line tries again then, when a slot whose instance died frees (nobody
/// announces that one).
#[tokio::test]
async fn a_waiting_try_learns_when_the_first_lease_ends() {
    let mut level = Level::new().await;
    // A slot with a 400 ms lease, as an instance that then dies holds it.
    assert_eq!(level.admit_for(1, "dead", 400).await, 1);
    let reply = level.try_slot(1, "waiter", BATCH, "f", 10, 60_000).await;
    let [0, 0, _, lapse] = reply[..] else {
        panic!("unexpected reply {reply:?}");
    };
    assert!((1..=401).contains(&lapse), "{lapse} ms");
    // Once it ends, the waiting ticket takes the slot.
    tokio::time::sleep(Duration::from_millis(lapse as u64 + 10)).await;
    assert_eq!(
        level.take(1, "waiter", BATCH, "f", 10, 60_000).await,
        Ok(())
    );
}

#[tokio::test]
async fn the_admission_call_takes_no_slot_others_wait_for() {
    let mut level = Level::new().await;
    assert_eq!(level.admit(2, "first").await, 1);
    assert_eq!(level.admit(2, "second").await, 1);
    assert_eq!(level.admit(2, "third").await, 0, "both slots are taken");
    // "third" waits in the line; when a slot frees, a newcomer's
    // admission call leaves it to the waiting ticket.
    assert!(level
        .take(2, "third", BATCH, "f", 10, 60_000)
        .await
        .is_err());
    level.release("first").await;
    assert_eq!(level.admit(2, "newcomer").await, 0);
    assert_eq!(level.take(2, "third", BATCH, "f", 10, 60_000).await, Ok(()));
    // Nobody waits any more: the next free slot goes to the admission call.
    level.release("second").await;
    assert_eq!(level.admit(2, "newcomer").await, 1);
}

/// Milliseconds until the level's slots key expires.
async fn slots_ttl(level: &mut Level) -> i64 {
    redis::cmd("PTTL")
        .arg(&level.slots)
        .query_async(&mut level.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_short_lease_never_shortens_the_life_of_a_longer_slot() {
    let mut level = Level::new().await;
    assert_eq!(level.admit_for(3, "long", 600_000).await, 1);
    // Taken after it by the admission call and in the line, each with a
    // 60 s lease: the key still lives as long as the 600 s slot needs.
    assert_eq!(level.admit_for(3, "short", 60_000).await, 1);
    assert!(slots_ttl(&mut level).await > 500_000);
    level
        .take(3, "waited", BATCH, "f", 10, 60_000)
        .await
        .unwrap();
    assert!(slots_ttl(&mut level).await > 500_000);
    // Alone, a slot keeps the key a second past its own lease.
    let mut other = Level::new().await;
    assert_eq!(other.admit_for(1, "only", 60_000).await, 1);
    let ttl = slots_ttl(&mut other).await;
    assert!((59_000..=61_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_slot_given_back_names_the_head_of_its_line() {
    let mut level = Level::new().await;
    level.take(1, "x", BATCH, "f", 10, 60_000).await.unwrap();
    assert!(level.take(1, "w1", BATCH, "f", 10, 60_000).await.is_err());
    assert!(level
        .take(1, "w2", CRITICAL, "g", 10, 60_000)
        .await
        .is_err());
    let channel = format!("{}:freed", level.slots);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(&channel).await.unwrap();
    let removed: i64 = redis::Script::new(RELEASE_SLOT)
        .key(&level.slots)
        .key(level.key("line"))
        .arg("x")
        .arg(&channel)
        .invoke_async(&mut level.conn)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    use futures::StreamExt;
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.on_message().next())
        .await
        .expect("a message")
        .unwrap();
    let ticket: String = msg.get_payload().unwrap();
    // The critical ticket, second to come: 16 hex digits of arrival, then
    // its slot id.
    assert_eq!(ticket.len(), 16 + 2, "{ticket}");
    assert!(ticket.ends_with("w2"), "{ticket}");
}

/// Gateways on one Redis; the tenant's one slot is shared.
fn config(tag: &str) -> String {
    config_on(tag, &redis_url())
}

fn config_on(tag: &str, redis: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
shared_state: {redis}
shared_state_timeout: 1s
providers:
  mock: {{ kind: mock, mock: {{ latency: 700ms }} }}
models:
  m: {{ deployments: [ {{ provider: mock, model: m }} ] }}
tenants:
  t-{tag}: {{ policy: {{ concurrency: {{ max_in_flight: 1, queue: 10, queue_timeout: 20s }} }} }}
keys:
  - {{ name: bulk-{tag}, key: sk-bulk-{tag}, tenant: t-{tag}, policy: {{ priority: batch }} }}
  - {{ name: vip-{tag}, key: sk-vip-{tag}, tenant: t-{tag}, policy: {{ priority: critical }} }}
"#
    )
}

/// Sends one chat request; resolves to its status and when it finished.
fn send(url: &str, key: String) -> tokio::task::JoinHandle<(u16, Instant)> {
    let url = format!("{url}/v1/chat/completions");
    tokio::spawn(async move {
        let status = TestGateway::client()
            .post(url)
            .bearer_auth(key)
            .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (status, Instant::now())
    })
}

/// Waits until `n` tickets wait in the line of tenant `t-tag`.
async fn tickets(conn: &mut MultiplexedConnection, tag: &str, n: usize) {
    for _ in 0..250 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("sluice:cc:tenant:*{tag}*:line"))
            .query_async(conn)
            .await
            .unwrap();
        let mut count = 0;
        for k in &keys {
            let c: usize = redis::cmd("ZCARD").arg(k).query_async(conn).await.unwrap();
            count += c;
        }
        if count >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {n} tickets in the line of t-{tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_request_on_one_instance_goes_before_a_batch_one_waiting_on_another() {
    let tag = format!("{:08x}", fastrand::u32(..));
    let a = TestGateway::start(&config(&tag)).await;
    let b = TestGateway::start(&config(&tag)).await;
    let c = TestGateway::start(&config(&tag)).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    // Instance C holds the tenant's one slot.
    let filler = send(&c.url, format!("sk-bulk-{tag}"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Instance A: three batch requests; the first waits in the shared
    // line, the others in A's own queue behind it.
    let batch: Vec<_> = (0..3)
        .map(|_| send(&a.url, format!("sk-bulk-{tag}")))
        .collect();
    tickets(&mut conn, &tag, 1).await;
    // A's gauges: the one in the shared line and the two in A's own queue
    // wait; none runs.
    let gauges = |m: &str| {
        m.contains("sluice_queue_waiting{scope=\"tenant\"} 3\n")
            && m.contains("sluice_queue_in_flight{scope=\"tenant\"} 0\n")
    };
    let mut metrics = a.metrics().await;
    for _ in 0..250 {
        if gauges(&metrics) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = a.metrics().await;
    }
    assert!(gauges(&metrics), "{metrics}");
    // Instance B: a critical request comes after them.
    let vip = send(&b.url, format!("sk-vip-{tag}"));
    tickets(&mut conn, &tag, 2).await;

    let (status, _) = filler.await.unwrap();
    assert_eq!(status, 200);
    let (status, vip_done) = vip.await.unwrap();
    assert_eq!(status, 200);
    for (i, h) in batch.into_iter().enumerate() {
        let (status, done) = h.await.unwrap();
        assert_eq!(status, 200, "batch request {i}");
        assert!(
            vip_done < done,
            "batch request {i} finished before the critical one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_does_not_poll_redis_in_a_tight_loop() {
    use common::redis_proxy::RedisProxy;
    let tag = format!("{:08x}", fastrand::u32(..));
    let proxy = RedisProxy::start(&redis_url()).await;
    let holder = TestGateway::start(&config(&tag)).await;
    let waiter = TestGateway::start(&config_on(&tag, &proxy.url)).await;
    let sha = redis::Script::new(TAKE_SLOT).get_hash().to_owned();

    let filler = send(&holder.url, format!("sk-bulk-{tag}"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Waits ~550 ms for the slot.
    let waiting = send(&waiter.url, format!("sk-vip-{tag}"));
    assert_eq!(filler.await.unwrap().0, 200);
    assert_eq!(waiting.await.unwrap().0, 200);
    let tries = proxy
        .commands()
        .iter()
        .filter(|c| c.first.as_deref() == Some(sha.as_str()))
        .count();
    // Polling doubles from 2 ms to 50 ms (about 15 tries in 550 ms), and
    // the slot's release wakes it once; every 2 ms would be ~275.
    assert!((1..=40).contains(&tries), "{tries} tries");
}
