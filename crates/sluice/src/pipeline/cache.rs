//! The cache stage (between rate limits and concurrency) and the cache
//! store at completion, for models with `cache:` (`crate::cache`).
//!
//! The lookup reads the cache before admission is asked, so that a hit
//! takes no concurrency slot; the hit is served only once budgets and rate
//! limits admitted the request (they count it like any other), and it
//! settles at zero cost and zero tokens. A miss's answer is kept when it
//! is complete: a plain answer when it is relayed, a stream when it ended
//! cleanly (assembled from its chunks in `on_chunk`).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_types::{ChatRequest, ChatResponse};

use crate::cache::assemble::Assembler;
use crate::cache::{Control, Entry, Key, Skip};
use crate::snapshot::Model;

use super::RequestCtx;

/// What the cache did for one request.
#[derive(Default)]
pub struct CacheNote {
    /// The client's `Cache-Control`.
    pub control: Control,
    /// The key, when caching applies (the serving model caches, the
    /// client did not say `no-store`).
    pub key: Option<Key>,
    pub ttl: Duration,
    /// The entry that answered (a hit).
    pub hit: Option<Arc<Entry>>,
    /// `x-sluice-model` of a hit.
    pub model_header: Option<HeaderValue>,
    /// A miss's streamed answer, being assembled to be stored.
    pub assembler: Option<Box<Assembler>>,
}

impl CacheNote {
    /// For the request's headers.
    pub fn new(headers: &HeaderMap) -> CacheNote {
        CacheNote {
            control: Control::of(headers),
            ..CacheNote::default()
        }
    }

    /// `hit`, `miss`, or `None` when caching did not apply.
    pub fn result(&self) -> Option<&'static str> {
        self.key
            .map(|_| if self.hit.is_some() { "hit" } else { "miss" })
    }
}

impl RequestCtx {
    /// Stage 5a, the read: the cached answer to `req` on `model`, when the
    /// model caches and the client allows a lookup. Sets the key either
    /// way (a miss's answer is stored under it).
    pub fn cache_lookup(&mut self, model: &Model, req: &mut ChatRequest) -> Option<Arc<Entry>> {
        self.cache.key = None;
        let ttl = model.cache_ttl?;
        if !self.cache.control.stores() {
            return None;
        }
        let caller = self.key.clone()?;
        let scope = crate::cache::key::Scope::of(&caller);
        self.cache.key = crate::cache::key::of(scope, &model.name, self.endpoint, req);
        self.cache.ttl = ttl;
        let key = self.cache.key.as_ref()?;
        self.cache
            .control
            .looks_up()
            .then(|| self.app.cache.get(key))
            .flatten()
    }

    /// Stage 5a, the decision, once the request is admitted: counts the
    /// lookup and, on a hit, makes the entry the answer (no attempt, the
    /// model that was asked, the provider whose answer it is). On a miss
    /// of a stream to be stored, starts assembling it.
    pub fn cache_decide(&mut self, model: &Model, found: Option<Arc<Entry>>) -> Option<Arc<Entry>> {
        self.cache.key?;
        let hit = found.is_some();
        let counter = model.cache_lookups.get(usize::from(hit), || {
            self.app.metrics.cache.lookup_counter(&model.name, hit)
        });
        counter.inc();
        let Some(entry) = found else {
            if self.stream && self.cache.control.stores() {
                let limit = self.snap.config.cache.unwrap_or_default().max_entry_bytes.0;
                self.cache.assembler = Some(Box::new(Assembler::new(limit)));
            }
            return None;
        };
        self.attempts.model = Some(model.name.clone());
        self.attempts.provider.clone_from(&entry.provider);
        self.cache.model_header.clone_from(&model.header);
        self.usage = entry.usage;
        self.usage_reported = entry.usage_reported;
        self.cache.hit = Some(entry.clone());
        Some(entry)
    }

    /// Whether a miss's answer is to be stored.
    pub fn cache_wants(&self) -> bool {
        self.cache.key.is_some() && self.cache.hit.is_none() && self.cache.control.stores()
    }

    /// Stores a miss's complete answer (skipped when it is incomplete or
    /// larger than `cache.max_entry_bytes`), with the bytes it was relayed
    /// as when they were relayed verbatim.
    pub fn cache_keep(&mut self, response: ChatResponse, raw: Option<bytes::Bytes>) {
        let Some(key) = self.cache.key.filter(|_| self.cache_wants()) else {
            return;
        };
        let max = self.snap.config.cache.unwrap_or_default().max_entry_bytes.0;
        let header = (self.attempts.served.as_ref())
            .and_then(|(m, i)| m.deployments[*i].provider.header.clone());
        let usage = (self.final_usage(), self.usage_reported);
        let provider = self.attempts.provider.clone();
        match Entry::new(
            (response, raw),
            provider,
            header,
            usage,
            self.cache.ttl,
            max,
        ) {
            Ok(e) => {
                self.app.cache.insert(key, e);
                self.app.metrics.cache.stored("stored");
            }
            Err(Skip::TooLarge) => self.app.metrics.cache.stored("too_large"),
            Err(Skip::Incomplete) => {}
        }
    }

    /// A stream ended cleanly: stores what was assembled.
    pub fn cache_stream_ended(&mut self) {
        let Some(a) = self.cache.assembler.take() else {
            return;
        };
        if a.over() {
            self.app.metrics.cache.stored("too_large");
            return;
        }
        self.cache_keep(a.finish(), None);
    }

    /// `x-sluice-cache`, and a hit's model, provider and zero attempts.
    pub(super) fn decorate_cache(&self, h: &mut HeaderMap) {
        static CACHE: HeaderName = HeaderName::from_static("x-sluice-cache");
        static MODEL: HeaderName = HeaderName::from_static("x-sluice-model");
        static PROVIDER: HeaderName = HeaderName::from_static("x-sluice-provider");
        static ATTEMPTS: HeaderName = HeaderName::from_static("x-sluice-attempts");
        let Some(result) = self.cache.result() else {
            return;
        };
        h.insert(CACHE.clone(), HeaderValue::from_static(result));
        if let Some(e) = &self.cache.hit {
            if let Some(m) = &self.cache.model_header {
                h.insert(MODEL.clone(), m.clone());
            }
            if let Some(p) = &e.provider_header {
                h.insert(PROVIDER.clone(), p.clone());
            }
            h.insert(ATTEMPTS.clone(), HeaderValue::from_static("0"));
        }
    }
}
