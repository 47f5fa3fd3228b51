//! Rendering a [`Script`] in each provider's wire format. Every module here
//! builds the provider's documented JSON by hand (never through sluice's own
//! adapters), so the mocks are an independent check of those adapters.

pub(crate) mod anthropic;
pub(crate) mod gemini;
pub(crate) mod openai;

use bytes::Bytes;
use serde_json::Value;

use crate::script::Script;

/// Fixed `created` timestamp of every answer, so answers are reproducible.
pub(crate) const CREATED: u64 = 1_700_000_000;

/// Everything a renderer needs about one request.
pub(crate) struct Call<'a> {
    /// The model to echo (from the body, or the path for Azure and Gemini).
    pub model: String,
    /// The parsed request body (`Null` when empty or not JSON).
    pub body: &'a Value,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// Per-server sequence number of the request, used in generated ids.
    pub seq: u64,
    pub script: &'a Script,
}

/// A rendered answer, before faults are applied.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: AnswerBody,
}

pub(crate) enum AnswerBody {
    Whole(Bytes),
    /// Stream events, each already framed (`data: ...\n\n`).
    Events(Vec<Bytes>),
}

impl Answer {
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: AnswerBody::Whole(Bytes::from(body.to_string())),
        }
    }

    pub(crate) fn sse(events: Vec<Bytes>) -> Self {
        Answer {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            body: AnswerBody::Events(events),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// `data: <json>\n\n`.
pub(crate) fn data_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// A deterministic 8-dimensional embedding of `text`, components in [-1, 1].
pub(crate) fn embedding(text: &str) -> Vec<f32> {
    // FNV-1a, then one byte of the hash per component.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..8)
        .map(|i| {
            let byte = (hash >> (i * 8)) & 0xff;
            (byte as f32 / 127.5 - 1.0).clamp(-1.0, 1.0)
        })
        .collect()
}

/// Reads `pointer` in `body` as a string.
pub(crate) fn str_at<'v>(body: &'v Value, pointer: &str) -> Option<&'v str> {
    body.pointer(pointer).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding("hello");
        assert_eq!(a, embedding("hello"));
        assert_ne!(a, embedding("world"));
        assert_eq!(a.len(), 8);
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
