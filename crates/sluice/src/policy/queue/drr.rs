//! Deficit round robin (Shreedhar & Varghese) over the flows of one
//! priority class, one grant at a time.
//!
//! Each flow (a tenant, or whatever id the caller passes) has a FIFO of
//! waiters and a deficit. Flows with waiters sit in a round; visiting a
//! flow adds one quantum to its deficit, and the flow is served while its
//! head waiter's cost fits in the deficit. When the head does not fit, the
//! visit ends and the flow goes to the back of the round, keeping what is
//! left of its deficit. A flow that empties leaves the round and forgets its
//! deficit (so an idle flow cannot bank credit). Over a long run every
//! backlogged flow is served about one quantum of cost per round, whatever
//! its request rate or request size.
//!
//! Slots come free one by one, so the classic loop is made resumable:
//! `visiting` remembers that the front flow already had its quantum for the
//! current visit. A whole round that serves nobody (costs much larger than
//! the quantum) is followed by adding the quanta of the further idle rounds
//! at once, so a grant never loops more than two rounds, whatever the costs.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

/// One queued request.
#[derive(Debug)]
pub(super) struct Waiter {
    /// Increasing over the queue's life, so a flow's FIFO is sorted by id.
    pub id: u64,
    /// ≥ 1.
    pub cost: u64,
    /// Woken when a slot is handed to the waiter (it has left the queue).
    pub wake: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Flow {
    deficit: u64,
    waiters: VecDeque<Waiter>,
}

/// The waiters of one priority class.
#[derive(Debug, Default)]
pub(super) struct Drr {
    flows: HashMap<u64, Flow>,
    /// The flows with waiters, in round order; the front is being visited.
    round: VecDeque<u64>,
    /// Whether the front flow has had its quantum for the current visit.
    visiting: bool,
    len: usize,
}

impl Drr {
    /// Waiters queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Queues `w` behind its flow's earlier waiters; a flow new to the
    /// round joins at its back.
    pub fn push(&mut self, flow: u64, w: Waiter) {
        let round = &mut self.round;
        let f = self.flows.entry(flow).or_insert_with(|| {
            round.push_back(flow);
            Flow {
                deficit: 0,
                waiters: VecDeque::new(),
            }
        });
        f.waiters.push_back(w);
        self.len += 1;
    }

    /// Takes waiter `id` of `flow` out of the queue; false when it is not
    /// queued (a slot was handed to it, or it already left).
    pub fn remove(&mut self, flow: u64, id: u64) -> bool {
        let Some(f) = self.flows.get_mut(&flow) else {
            return false;
        };
        let Ok(i) = f.waiters.binary_search_by_key(&id, |w| w.id) else {
            return false;
        };
        f.waiters.remove(i);
        self.len -= 1;
        if f.waiters.is_empty() {
            self.forget(flow);
        }
        true
    }

    /// The next waiter to serve, out of the queue.
    pub fn pop(&mut self, quantum: u64) -> Option<Waiter> {
        let mut idle_visits = 0;
        while self.len > 0 {
            let id = *self.round.front()?;
            let f = self.flows.get_mut(&id)?;
            if !self.visiting {
                f.deficit = f.deficit.saturating_add(quantum);
                self.visiting = true;
            }
            let cost = f.waiters.front()?.cost;
            if cost <= f.deficit {
                f.deficit -= cost;
                let w = f.waiters.pop_front();
                self.len -= 1;
                if f.waiters.is_empty() {
                    self.forget(id);
                }
                return w;
            }
            self.round.rotate_left(1);
            self.visiting = false;
            idle_visits += 1;
            if idle_visits == self.round.len() {
                self.skip_idle_rounds(quantum);
                idle_visits = 0;
            }
        }
        None
    }

    /// After a whole round that served nobody: every flow gets at once the
    /// quanta of the further rounds that would serve nobody either (the
    /// next round serves the flow whose head is closest to fitting).
    fn skip_idle_rounds(&mut self, quantum: u64) {
        let rounds = self
            .flows
            .values()
            .filter_map(|f| {
                let cost = f.waiters.front()?.cost;
                Some(cost.saturating_sub(f.deficit).div_ceil(quantum))
            })
            .min()
            .unwrap_or(1);
        let extra = rounds.saturating_sub(1).saturating_mul(quantum);
        for f in self.flows.values_mut() {
            f.deficit = f.deficit.saturating_add(extra);
        }
    }

    /// Drops an emptied flow from the round, and its deficit with it.
    fn forget(&mut self, flow: u64) {
        self.flows.remove(&flow);
        if let Some(i) = self.round.iter().position(|f| *f == flow) {
            self.round.remove(i);
            if i == 0 {
                self.visiting = false;
            }
        }
        if self.flows.is_empty() && self.flows.capacity() > 64 {
            // A burst of many flows is over: give the table back.
            self.flows = HashMap::new();
            self.round = VecDeque::new();
        }
    }

    /// Heap capacity held, for the test that the fast path never touches
    /// the waiter structures.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.flows.capacity() + self.round.capacity()
    }
}
