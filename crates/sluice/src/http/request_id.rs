//! Request ids: echoed from the client's `x-request-id`, else generated
//! (random 128 bits, hex; no syscalls, no locks).

/// A new request id, `req_` + 32 hex digits.
pub fn new_id() -> String {
    format!("req_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// A short random id for upstream-facing objects (mock answers).
pub fn short_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}
