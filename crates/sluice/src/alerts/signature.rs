//! Webhook signatures, Stripe-style: the header
//! `x-sluice-signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 keyed with the webhook secret over `"<t>.<body>"`. Signing
//! the time with the body lets a receiver reject replays (an old `t`) as
//! well as forgeries. Each delivery attempt is signed afresh.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-sluice-signature";
/// The event's `kind` (`budget_threshold`, …).
pub const EVENT_HEADER: &str = "x-sluice-event";
/// The event's `id`, the same on every attempt (for deduplication).
pub const EVENT_ID_HEADER: &str = "x-sluice-event-id";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `x-sluice-signature` value for `body` sent at `t` (Unix seconds).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Checks a signature header against `body`: some `v1` must match (in
/// constant time) and `t` must be within `tolerance_secs` of `now` (Unix
/// seconds). Unknown parts (a future `v2`) are ignored.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance_secs: u64) -> bool {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => tags.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if t.abs_diff(now) > tolerance_secs {
        return false;
    }
    tags.iter()
        .any(|tag| mac(secret, t, body).verify_slice(tag).is_ok())
}
