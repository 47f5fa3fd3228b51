//! The response cache (exact match). A model opts in with
//! `models.<name>.cache`; a complete, successful answer of such a model is
//! kept in memory under a key that names the caller's isolation scope, the
//! serving model, the endpoint and the canonical request
//! ([`key`]), and an identical later request is answered from it without
//! calling an upstream.
//!
//! Entries are canonical [`ChatResponse`]s, so one entry serves a plain or
//! a streamed request in the endpoint's format ([`replay`] synthesizes the
//! chunks); streamed answers are assembled from the chunks as they pass
//! ([`assemble`]). The store is a `moka` cache weighed in bytes (TinyLFU
//! admission, LRU eviction) with a time to live fixed per entry when it is
//! stored, so a reload that changes a ttl applies to new entries. It lives
//! in `AppState`, outside the snapshot; a reload that changes
//! `cache.max_bytes` starts an empty one.

pub mod assemble;
pub mod control;
pub mod key;
pub mod metrics;
pub mod replay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use sluice_types::{ChatResponse, FinishReason, TokenUsage};

use crate::config::raw::CacheConfig;

pub use control::Control;
pub use key::Key;

/// Bytes an entry costs besides its answer's JSON (key, bookkeeping).
const ENTRY_OVERHEAD: u64 = 256;

/// One cached answer.
pub struct Entry {
    /// The answer, canonical (OpenAI Chat Completions shape).
    pub response: ChatResponse,
    /// The upstream's own bytes, when they were relayed verbatim (an
    /// OpenAI-format answer to an OpenAI-format client): a plain hit on
    /// that endpoint sends them as they came.
    pub raw: Option<bytes::Bytes>,
    /// The `providers:` name whose answer it is (`x-sluice-provider`).
    pub provider: Option<Arc<str>>,
    pub provider_header: Option<HeaderValue>,
    /// What the answer used, as the upstream reported it (or estimated).
    pub usage: TokenUsage,
    pub usage_reported: bool,
    ttl: Duration,
    weight: u32,
}

impl Entry {
    /// An entry for `response`, or `None` when it is not a complete,
    /// successful answer, or weighs more than `max_bytes`.
    pub fn new(
        (response, raw): (ChatResponse, Option<bytes::Bytes>),
        provider: Option<Arc<str>>,
        provider_header: Option<HeaderValue>,
        usage: (TokenUsage, bool),
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<Entry, Skip> {
        if !complete(&response) {
            return Err(Skip::Incomplete);
        }
        let raw_len = raw.as_ref().map_or(0, |b| b.len() as u64);
        let size = json_size(&response).ok_or(Skip::Incomplete)? + raw_len + ENTRY_OVERHEAD;
        if size > max_bytes {
            return Err(Skip::TooLarge);
        }
        Ok(Entry {
            response,
            raw,
            provider,
            provider_header,
            usage: usage.0,
            usage_reported: usage.1,
            ttl,
            weight: u32::try_from(size).unwrap_or(u32::MAX),
        })
    }
}

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No choice, a choice without a finish reason, or a content filter.
    Incomplete,
    /// Larger than `cache.max_entry_bytes`.
    TooLarge,
}

/// Whether every choice ended as intended (`stop`, `length`, tool calls).
fn complete(r: &ChatResponse) -> bool {
    !r.choices.is_empty()
        && r.choices.iter().all(|c| {
            matches!(
                c.finish_reason,
                Some(
                    FinishReason::Stop
                        | FinishReason::Length
                        | FinishReason::ToolCalls
                        | FinishReason::FunctionCall
                )
            )
        })
}

/// The length of `r` as JSON, counted without keeping the text.
fn json_size(r: &ChatResponse) -> Option<u64> {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, r).ok()?;
    Some(c.0)
}

/// Each entry expires its own `ttl` after it was stored (also when it
/// replaced an older one).
struct TtlOf;

impl moka::Expiry<Key, Arc<Entry>> for TtlOf {
    fn expire_after_create(&self, _: &Key, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(
        &self,
        _: &Key,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

struct Store {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    max_bytes: u64,
}

impl Store {
    fn new(max_bytes: u64) -> Store {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &Key, e: &Arc<Entry>| e.weight)
            .expire_after(TtlOf)
            .build();
        Store { entries, max_bytes }
    }
}

/// The process's response cache (in `AppState`).
pub struct ResponseCache {
    store: ArcSwap<Store>,
}

impl ResponseCache {
    /// An empty cache sized by `cfg` (its defaults when `None`).
    pub fn new(cfg: Option<&CacheConfig>) -> ResponseCache {
        let max = cfg.copied().unwrap_or_default().max_bytes.0;
        ResponseCache {
            store: ArcSwap::from_pointee(Store::new(max)),
        }
    }

    /// After a reload: a new `max_bytes` starts an empty cache (moka's
    /// capacity is fixed when it is built); anything else keeps it.
    pub fn configure(&self, cfg: Option<&CacheConfig>) {
        let max = cfg.copied().unwrap_or_default().max_bytes.0;
        if self.store.load().max_bytes != max {
            tracing::info!(
                max_bytes = max,
                "cache.max_bytes changed: the response cache starts empty"
            );
            self.store.store(Arc::new(Store::new(max)));
        }
    }

    /// The live entry under `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        self.store.load().entries.get(key)
    }

    pub fn insert(&self, key: Key, entry: Entry) {
        self.store.load().entries.insert(key, Arc::new(entry));
    }

    /// Entries and their bytes now (pending evictions and expiries done
    /// first), for the gauges.
    pub fn size(&self) -> (u64, u64) {
        let s = self.store.load();
        s.entries.run_pending_tasks();
        (s.entries.entry_count(), s.entries.weighted_size())
    }
}

#[cfg(test)]
mod tests;
