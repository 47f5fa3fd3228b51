//! A JSON object written field by field straight into a byte buffer, for
//! the access log (one line per request): the same JSON serde_json writes
//! for the record, at a fraction of the instructions — strings without
//! characters to escape are copied as they are, integers and floats are
//! formatted without `fmt` where it matters (floats with zmij, as
//! serde_json does). serde_json stays the oracle:
//! the access log's tests compare both.

/// An object being written into `out`. The writers are `#[inline]`: with
/// the field names as literals at the call site, copying a name compiles
/// to a few stores instead of a `memcpy` call.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    #[inline]
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    #[inline]
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }

    #[inline]
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    #[inline]
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    #[inline]
    pub fn uint(&mut self, k: &str, v: u64) {
        self.key(k);
        write_uint(self.out, v);
    }

    #[inline]
    pub fn float(&mut self, k: &str, v: f64) {
        self.key(k);
        if !v.is_finite() {
            self.out.extend_from_slice(b"null");
            return;
        }
        // serde_json's own formatter: the same text, without `fmt`.
        let mut buf = zmij::Buffer::new();
        self.out.extend_from_slice(buf.format_finite(v).as_bytes());
    }

    #[inline]
    pub fn opt_float(&mut self, k: &str, v: Option<f64>) {
        match v {
            Some(v) => self.float(k, v),
            None => self.null(k),
        }
    }

    #[inline]
    fn null(&mut self, k: &str) {
        self.key(k);
        self.out.extend_from_slice(b"null");
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// A JSON string: copied as it is when nothing needs escaping, else
/// escaped by serde_json.
fn write_str(out: &mut Vec<u8>, v: &str) {
    if v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let _ = serde_json::to_writer(&mut *out, v);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

fn write_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_serde_would() {
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.str("a", "plain");
        o.str("b", "quote \" back \\ nl \n ctl \u{1} é");
        o.opt_str("c", None);
        o.bool("d", true);
        o.uint("e", 0);
        o.uint("f", u64::MAX);
        o.float("g", 3.0);
        o.float("h", 0.00058);
        o.float("i", f64::NAN);
        o.opt_float("j", Some(1e-7));
        o.end();
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let want = serde_json::json!({
            "a": "plain", "b": "quote \" back \\ nl \n ctl \u{1} é", "c": null, "d": true,
            "e": 0, "f": u64::MAX, "g": 3.0, "h": 0.00058, "i": null, "j": 1e-7,
        });
        assert_eq!(got, want);
    }
}
