//! Request ids: echoed from the client's `x-request-id`, else generated
//! (random 128 bits, hex; no syscalls, no locks).

/// A new request id, `req_` + 32 hex digits.
pub fn new_id() -> String {
    let mut id = String::with_capacity(36);
    id.push_str("req_");
    push_hex(&mut id, fastrand::u64(..));
    push_hex(&mut id, fastrand::u64(..));
    id
}

/// Appends 16 lowercase hex digits (no formatting machinery: per request).
fn push_hex(out: &mut String, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize] as char);
    }
}

/// A short random id for upstream-facing objects (mock answers).
pub fn short_id() -> String {
    let mut id = String::with_capacity(16);
    push_hex(&mut id, fastrand::u64(..));
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_hex_of_fixed_length() {
        let id = super::new_id();
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("req_"));
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, super::new_id());
        let mut s = String::new();
        super::push_hex(&mut s, 0x0123_4567_89ab_cdef);
        assert_eq!(s, "0123456789abcdef");
    }
}
