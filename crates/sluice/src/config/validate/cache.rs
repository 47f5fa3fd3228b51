//! Checks of the response cache: `cache:` (memory, default ttl, largest
//! entry) and each model's `cache:` opt-in.

use std::time::Duration;

use super::Out;
use crate::config::raw::RawConfig;

/// Smallest accepted `cache.max_bytes`.
const MIN_MAX_BYTES: u64 = 1 << 20;
/// Largest accepted `cache.max_entry_bytes` (entries are weighed in u32).
const MAX_ENTRY_BYTES: u64 = 64 << 20;
/// Longest accepted time to live.
const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Every check; paths are `cache.field` and `models.<name>.cache.ttl`.
pub(super) fn cache(cfg: &RawConfig, out: &mut Out) {
    if let Some(c) = &cfg.cache {
        if c.max_bytes.0 < MIN_MAX_BYTES {
            out.push("cache.max_bytes", "must be at least 1MiB");
        }
        if c.max_entry_bytes.0 == 0 || c.max_entry_bytes.0 > MAX_ENTRY_BYTES {
            out.push("cache.max_entry_bytes", "must be between 1 byte and 64MiB");
        } else if c.max_entry_bytes.0 > c.max_bytes.0 {
            out.push(
                "cache.max_entry_bytes",
                "must not be larger than `cache.max_bytes`",
            );
        }
        ttl("cache.ttl", c.ttl.0, out);
    }
    for (name, m) in &cfg.models {
        if let Some(t) = m.cache.and_then(|c| c.ttl) {
            ttl(&format!("models.{name}.cache.ttl"), t.0, out);
        }
    }
}

fn ttl(path: &str, t: Duration, out: &mut Out) {
    if t.is_zero() || t > MAX_TTL {
        out.push(path, "must be more than 0 and at most 30d");
    }
}
