//! Ids, secrets and their hashes. Ids are `<prefix>_` + 26 Crockford base32
//! characters of (48-bit millisecond time ‖ 80 random bits), so they sort by
//! creation time. Secrets are `sk-sluice-` (API keys) or `sa-sluice-` (admin
//! credentials) + 40 base62 characters from the OS CSPRNG (~238 bits).

/// A new sortable id, e.g. `ten_01JD…`.
pub fn new_id(prefix: &str) -> String {
    let _ = prefix;
    unimplemented!()
}

/// A new API key secret, `sk-sluice-…`.
pub fn new_key_secret() -> String {
    unimplemented!()
}

/// A new admin credential secret, `sa-sluice-…`.
pub fn new_admin_secret() -> String {
    unimplemented!()
}

/// SHA-256 of a secret, lowercase hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    let _ = secret;
    unimplemented!()
}

/// The display prefix kept for a secret (`sk-sluice-` + 4 characters).
pub fn display_prefix(secret: &str) -> String {
    let _ = secret;
    unimplemented!()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    unimplemented!()
}
