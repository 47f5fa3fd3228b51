//! W3C Trace Context: trace and span ids, the `traceparent` header (parsed
//! per the spec, written as version `00`), and the sampling decision.
//!
//! An inbound `traceparent` that is malformed in any way — wrong length,
//! uppercase or non-hex digits, version `ff`, an all-zero trace or parent
//! id — is ignored, and the request starts a new trace (the spec's rule).

/// A 16-byte trace id (never all zeros).
pub type TraceId = [u8; 16];
/// An 8-byte span id (never all zeros).
pub type SpanId = [u8; 8];

/// Length of a version-00 `traceparent`: `00-` 32 `-` 16 `-` 2.
pub const TRACEPARENT_LEN: usize = 55;

/// What an inbound `traceparent` says: the caller's trace and span, and
/// whether the caller recorded it (flag `01`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// Parses a `traceparent` value; `None` when it is not valid.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    // Version 00 has exactly four fields; a later version may append
    // more after a dash, which this reader ignores. ff is invalid.
    let size_ok = match version {
        0 => v.len() == TRACEPARENT_LEN,
        0xff => false,
        _ => v.len() == TRACEPARENT_LEN || v[TRACEPARENT_LEN] == b'-',
    };
    if !size_ok || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    decode_hex(&v[3..35], &mut trace_id)?;
    decode_hex(&v[36..52], &mut span_id)?;
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// `00-{trace}-{span}-{01|00}`.
pub fn format_traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> String {
    let mut out = String::with_capacity(TRACEPARENT_LEN);
    out.push_str("00-");
    push_hex(&mut out, trace_id);
    out.push('-');
    push_hex(&mut out, span_id);
    out.push_str(if sampled { "-01" } else { "-00" });
    out
}

/// A random trace id (not all zeros).
pub fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A random span id (not all zeros).
pub fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// Whether a new trace (no sampled parent to follow) is recorded: its
/// trace id's last 8 bytes below `ratio` of their range, so every
/// instance decides the same for the same trace.
pub fn sample_new(ratio: f64, trace_id: &TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let bound = (ratio * u64::MAX as f64) as u64;
    u64::from_be_bytes(low) < bound
}

/// Lowercase hex of `bytes` appended to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Decodes lowercase hex into `out` (exactly twice its length).
fn decode_hex(src: &[u8], out: &mut [u8]) -> Option<()> {
    for (i, pair) in src.chunks_exact(2).enumerate() {
        out[i] = hex_byte(pair)?;
    }
    Some(())
}

/// Two lowercase hex digits (the spec allows no uppercase).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses() {
        let p = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        let unsampled = VALID.replace("-01", "-00");
        assert!(!parse_traceparent(unsampled.as_bytes()).unwrap().sampled);
        // Other flag bits do not matter; only bit 0 samples.
        let other = VALID.replace("-01", "-03");
        assert!(parse_traceparent(other.as_bytes()).unwrap().sampled);
        assert_eq!(format_traceparent(&p.trace_id, &p.span_id, true), VALID);
    }

    #[test]
    fn malformed_values_are_rejected() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "garbage garbage garbage garbage garbage garbage garbage",
        ];
        for v in bad {
            assert_eq!(parse_traceparent(v.as_bytes()), None, "{v:?} accepted");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds";
        let p = parse_traceparent(v.as_bytes()).unwrap();
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(parse_traceparent(glued.as_bytes()), None);
    }

    #[test]
    fn new_ids_are_random_and_never_zero() {
        let (a, b) = (new_trace_id(), new_trace_id());
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        assert_ne!(new_span_id(), [0; 8]);
    }

    #[test]
    fn sampling_follows_the_ratio_and_is_deterministic_per_trace() {
        let ids: Vec<TraceId> = (0..4000).map(|_| new_trace_id()).collect();
        let kept = |r: f64| ids.iter().filter(|t| sample_new(r, t)).count();
        assert_eq!(kept(1.0), 4000);
        assert_eq!(kept(0.0), 0);
        let quarter = kept(0.25);
        assert!(
            (800..1200).contains(&quarter),
            "kept {quarter} of 4000 at 0.25"
        );
        assert!(ids.iter().all(|t| sample_new(0.5, t) == sample_new(0.5, t)));
    }
}
