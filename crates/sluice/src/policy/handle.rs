//! A rule's direct handle on its live state (rate gates, budget counters,
//! an admission queue), so a request reaches that state without a map
//! lookup: the first request under a rule finds (or creates) the state in
//! its store's map and leaves an `Arc` of it in the rule; later requests
//! under the same rule use that `Arc`.
//!
//! The state still lives in the store's map, keyed as before, so a reload
//! that keeps a rule keeps its state, and equal rules share it. Pruning
//! removes an entry only when nothing else holds its `Arc`
//! (`Arc::strong_count == 1`, checked under the map's write lock, which
//! every lookup also takes): a rule still in the snapshot keeps its state,
//! and no request can ever count into a copy the map has forgotten. So the
//! state is never split in two, and memory stays bounded by the rules alive
//! (the config and the cached keys) plus what was used recently.
//!
//! A handle remembers which store filled it (stores are numbered at
//! creation): a rule used with another store (tests build several) looks
//! its state up there as before.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A fresh store number, never 0 and never reused in this process.
pub fn store_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// See the module docs. Cloning a rule clones its handle (the same state).
#[derive(Clone, Default)]
pub struct Handle(OnceLock<(u64, Arc<dyn Any + Send + Sync>)>);

impl Handle {
    /// The state this handle holds for `store`, if it was filled by it.
    pub fn get<T: Any>(&self, store: u64) -> Option<&T> {
        let (id, state) = self.0.get()?;
        (*id == store).then(|| state.downcast_ref::<T>())?
    }

    /// Fills the handle with `state` of `store`, unless it is filled already.
    pub fn fill<T: Any + Send + Sync>(&self, store: u64, state: Arc<T>) {
        let _ = self.0.set((store, state));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some((id, _)) => write!(f, "Handle(store {id})"),
            None => f.write_str("Handle(empty)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_answers_only_the_store_that_filled_it() {
        let h = Handle::default();
        assert!(h.get::<u32>(1).is_none());
        h.fill(1, Arc::new(7u32));
        assert_eq!(h.get::<u32>(1), Some(&7));
        assert!(h.get::<u32>(2).is_none(), "another store looks its own up");
        assert!(h.get::<u64>(1).is_none(), "another type is not this one");
        h.fill(1, Arc::new(8u32));
        assert_eq!(h.get::<u32>(1), Some(&7), "the first fill stays");
        assert_ne!(store_id(), store_id());
    }
}
