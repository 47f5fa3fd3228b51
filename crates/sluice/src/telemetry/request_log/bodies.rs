//! Request and response bodies in the request log, for callers whose
//! policy sets `log_bodies`: JSON bodies have the values of secret-looking
//! keys (built-in) and of the policy's `redact` keys replaced by
//! `"[REDACTED]"`, at any depth; every body is cut to `max_bytes` (at a
//! character boundary, marked `…[cut N bytes]`). A streamed answer is kept
//! as the text of its deltas — or `"[REDACTED]"` when `content` is a
//! redacted key. Only callers that ask pay for it.

use std::collections::HashSet;

use serde_json::Value;

use crate::config::raw::LogBodiesConfig;

/// Keys always redacted.
const ALWAYS: &[&str] = &["api_key", "apikey", "authorization", "password", "secret"];
/// `max_bytes` when the policy does not say.
pub const DEFAULT_MAX_BYTES: usize = 4096;
/// The largest `max_bytes` allowed.
pub const MAX_MAX_BYTES: u64 = 1 << 20;
const REDACTED: &str = "[REDACTED]";

/// A compiled `log_bodies`.
#[derive(Debug)]
pub struct BodySpec {
    pub max_bytes: usize,
    redact: HashSet<String>,
}

/// What a request captured so far.
#[derive(Debug, Default)]
pub struct Captured {
    pub request: Option<String>,
    pub response: Option<String>,
    /// A stream's text, up to `max_bytes` (and how much more there was).
    streamed: String,
    streamed_cut: usize,
    /// The stream had text, and `content` is redacted.
    streamed_redacted: bool,
}

impl BodySpec {
    pub fn new(cfg: &LogBodiesConfig) -> BodySpec {
        let redact = ALWAYS
            .iter()
            .map(|s| s.to_string())
            .chain(cfg.redact.iter().map(|s| s.to_lowercase()))
            .collect();
        BodySpec {
            max_bytes: cfg.max_bytes.map_or(DEFAULT_MAX_BYTES, |b| b.0 as usize),
            redact,
        }
    }

    /// A body as kept: redacted when it is JSON, then cut.
    pub fn keep(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(mut v) => {
                self.redact(&mut v);
                v.to_string()
            }
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        };
        cut(text, self.max_bytes)
    }

    fn redact(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.redact.contains(&k.to_lowercase()) {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.redact(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }
}

impl Captured {
    /// Appends a stream's text, as `spec` keeps it.
    pub fn stream_text(&mut self, text: &str, spec: &BodySpec) {
        if spec.redact.contains("content") {
            self.streamed_redacted = true;
            return;
        }
        let max = spec.max_bytes;
        let room = max.saturating_sub(self.streamed.len());
        if text.len() <= room {
            self.streamed.push_str(text);
        } else {
            let end = floor_char_boundary(text, room);
            self.streamed.push_str(&text[..end]);
            self.streamed_cut += text.len() - end;
        }
    }

    /// The response body of record: the full answer, else the stream's text.
    pub fn response_body(&self) -> Option<String> {
        if self.response.is_some() {
            return self.response.clone();
        }
        if self.streamed_redacted {
            return Some(REDACTED.into());
        }
        match (self.streamed.is_empty(), self.streamed_cut) {
            (true, 0) => None,
            (_, 0) => Some(self.streamed.clone()),
            (_, n) => Some(format!("{}…[cut {n} bytes]", self.streamed)),
        }
    }
}

/// `text` cut to at most `max` bytes (plus the mark).
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let end = floor_char_boundary(&text, max);
    format!("{}…[cut {} bytes]", &text[..end], text.len() - end)
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::ByteSize;

    fn spec(max: u64, redact: &[&str]) -> BodySpec {
        BodySpec::new(&LogBodiesConfig {
            max_bytes: Some(ByteSize(max)),
            redact: redact.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn json_is_redacted_at_any_depth_then_cut() {
        let s = spec(4096, &["Content"]);
        let body = br#"{"messages":[{"role":"user","content":"my ssn"}],"metadata":{"API_KEY":"sk-1","x":{"password":"p"}}}"#;
        let kept: Value = serde_json::from_str(&s.keep(body)).unwrap();
        assert_eq!(kept["messages"][0]["content"], REDACTED);
        assert_eq!(kept["messages"][0]["role"], "user");
        assert_eq!(kept["metadata"]["API_KEY"], REDACTED);
        assert_eq!(kept["metadata"]["x"]["password"], REDACTED);
        let short = spec(10, &[]).keep("ééééééééé".as_bytes());
        assert_eq!(short, "ééééé…[cut 8 bytes]");
    }

    #[test]
    fn streams_keep_their_text_up_to_the_limit() {
        let mut c = Captured::default();
        c.stream_text("hello ", &spec(8, &[]));
        c.stream_text("wörld", &spec(8, &[]));
        assert_eq!(c.response_body().unwrap(), "hello w…[cut 5 bytes]");
        assert_eq!(Captured::default().response_body(), None);
        let mut hidden = Captured::default();
        hidden.stream_text("my secret", &spec(100, &["content"]));
        assert_eq!(hidden.response_body().unwrap(), REDACTED);
    }
}
