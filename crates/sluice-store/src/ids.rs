//! Ids, secrets and their hashes. Ids are `<prefix>_` + 26 Crockford base32
//! characters of (48-bit millisecond time ‖ 80 random bits), so they sort by
//! creation time. Within one millisecond the random part of the previous id
//! is incremented (as ULIDs do), so ids made by one process are strictly
//! increasing. Secrets are `sk-sluice-` (API keys) or `sa-sluice-` (admin
//! credentials) + 40 base62 characters from the OS CSPRNG (~238 bits).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_LEN: usize = 40;
const DISPLAY_CHARS: usize = 4;
const RANDOM_MASK: u128 = (1 << 80) - 1;

/// The last (millisecond, random part) handed out, for monotonicity.
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// A new sortable id, e.g. `ten_01JD…`.
pub fn new_id(prefix: &str) -> String {
    let (ms, random) = next_time_and_random();
    let value = (u128::from(ms) << 80) | random;
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    // 26 characters × 5 bits = 130 bits: the top character carries 3 bits.
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(char::from(CROCKFORD[digit]));
    }
    out
}

/// The time and random parts of the next id: a fresh random part in a new
/// millisecond, the previous one plus one within the same millisecond (or
/// when the clock went backwards).
fn next_time_and_random() -> (u64, u128) {
    let now = u64::try_from(now_ms()).unwrap_or(0) & ((1 << 48) - 1);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let next = if now > last.0 {
        (now, random_u128() & RANDOM_MASK)
    } else if last.1 < RANDOM_MASK {
        (last.0, last.1 + 1)
    } else {
        // 2^80 ids in one millisecond: borrow the next millisecond.
        (last.0 + 1, random_u128() & RANDOM_MASK)
    };
    *last = next;
    next
}

/// A new API key secret, `sk-sluice-…`.
pub fn new_key_secret() -> String {
    format!("sk-sluice-{}", random_base62(SECRET_LEN))
}

/// A new admin credential secret, `sa-sluice-…`.
pub fn new_admin_secret() -> String {
    format!("sa-sluice-{}", random_base62(SECRET_LEN))
}

/// SHA-256 of a secret, lowercase hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The display prefix kept for a secret (`sk-sluice-` + 4 characters).
pub fn display_prefix(secret: &str) -> String {
    let head = secret.find("-sluice-").map_or(0, |i| i + "-sluice-".len());
    secret.chars().take(head + DISPLAY_CHARS).collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `len` base62 characters, uniformly distributed (bytes ≥ 248 are
/// rejected so that `byte % 62` has no bias).
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    out
}

fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    fill_random(&mut buf);
    u128::from_le_bytes(buf)
}

/// Fills `buf` from the OS CSPRNG. Without one there is no safe way to make
/// a secret, so failing is the only option.
fn fill_random(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_increase() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("ten")).collect();
        for id in &ids {
            let body = id.strip_prefix("ten_").expect("prefix");
            assert_eq!(body.len(), 26, "{id}");
            assert!(body.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids must increase");
    }

    #[test]
    fn id_time_part_is_the_current_millisecond() {
        let before = now_ms();
        let id = new_id("x");
        let after = now_ms();
        let time: String = id[2..12].to_owned();
        let ms = time.bytes().fold(0i64, |acc, b| {
            acc * 32 + CROCKFORD.iter().position(|&c| c == b).unwrap_or(0) as i64
        });
        assert!(
            ms >= before && ms <= after + 1,
            "{ms} not in {before}..={after}"
        );
    }

    #[test]
    fn secrets_are_random_base62_with_their_prefix() {
        let a = new_key_secret();
        let b = new_key_secret();
        assert_ne!(a, b);
        let body = a.strip_prefix("sk-sluice-").expect("prefix");
        assert_eq!(body.len(), 40);
        assert!(body.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(new_admin_secret().starts_with("sa-sluice-"));
        assert_eq!(display_prefix(&a), a[..14]);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
