//! The cache key: SHA-256 over the caller's isolation scope, the serving
//! model, the endpoint and the canonical request. Each part is written
//! with its length first, so no two different sets of parts write the
//! same bytes.
//!
//! The scope keeps tenants apart: a store-managed caller's tenant id, a
//! static key's tenant name when it has one, else the static key's name
//! (a key without a tenant shares with nobody). The canonical request is
//! the parsed [`ChatRequest`] as JSON (struct fields in declaration order,
//! `extra` maps sorted by key) after the guards clamped it, without the
//! fields that do not change the answer: `model` (the serving model is a
//! part of its own), `stream`, `stream_options`, `user` (Anthropic's
//! `metadata.user_id` arrives there) and `metadata`.

use sha2::{Digest, Sha256};
use sluice_types::ChatRequest;

use crate::snapshot::KeyInfo;

pub type Key = [u8; 32];

/// Whose answers may be shared: a kind and a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a>(pub &'static str, pub &'a str);

impl<'a> Scope<'a> {
    /// The scope of a caller.
    pub fn of(caller: &'a KeyInfo) -> Scope<'a> {
        match (&caller.managed, &caller.tenant) {
            (Some(m), _) => Scope("tenant-id", &m.tenant_id),
            (None, Some(t)) => Scope("tenant", t),
            (None, None) => Scope("key", &caller.name),
        }
    }
}

/// The key of `req` sent by a caller of `scope` to `model` on
/// `endpoint`; `None` when the request cannot be written as JSON (then
/// it is not cached).
pub fn of(scope: Scope<'_>, model: &str, endpoint: &str, req: &mut ChatRequest) -> Option<Key> {
    let mut h = Sha256::new();
    part(&mut h, scope.0.as_bytes());
    part(&mut h, scope.1.as_bytes());
    part(&mut h, model.as_bytes());
    part(&mut h, endpoint.as_bytes());
    let aside = Aside::take(req);
    let written = serde_json::to_writer(Hashing(&mut h), &*req);
    aside.restore(req);
    written.ok()?;
    Some(h.finalize().into())
}

fn part(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The fields left out of the key, put back after hashing.
struct Aside {
    model: String,
    stream: Option<bool>,
    stream_options: Option<sluice_types::chat::StreamOptions>,
    user: Option<String>,
    metadata: Option<serde_json::Value>,
}

impl Aside {
    fn take(req: &mut ChatRequest) -> Aside {
        Aside {
            model: std::mem::take(&mut req.model),
            stream: req.stream.take(),
            stream_options: req.stream_options.take(),
            user: req.user.take(),
            metadata: req.extra.remove("metadata"),
        }
    }

    fn restore(self, req: &mut ChatRequest) {
        req.model = self.model;
        req.stream = self.stream;
        req.stream_options = self.stream_options;
        req.user = self.user;
        if let Some(m) = self.metadata {
            req.extra.insert("metadata".into(), m);
        }
    }
}

/// Feeds JSON text to the hash as it is written (no buffer).
struct Hashing<'a>(&'a mut Sha256);

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
