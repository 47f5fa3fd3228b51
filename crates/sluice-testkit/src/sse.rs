//! A small whole-body SSE parser for test assertions (sluice's own parser
//! lives in `sluice-providers`; this one is independent on purpose).
//! Handles `\n` and `\r\n` line ends, `event:` and multi-line `data:`.

use serde_json::Value;

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data parsed as JSON (`None` for `[DONE]` or non-JSON data).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Parses a complete SSE body. An event not ended by a blank line (a
/// truncated stream) is dropped, as a conforming client would.
pub fn parse(body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut event = None;
    let mut data: Option<String> = None;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(data) = data.take() {
                events.push(SseEvent {
                    event: event.take(),
                    data,
                });
            }
            event = None;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    events
}

/// The `event:` names of `events`, `""` where absent.
pub fn names(events: &[SseEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.event.as_deref().unwrap_or(""))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_events_crlf_and_drops_unterminated_tail() {
        let body =
            "event: a\ndata: {\"x\":1}\n\ndata: one\r\ndata: two\r\n\r\n: comment\n\ndata: cut";
        let events = parse(body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("a"));
        assert_eq!(events[0].json(), Some(serde_json::json!({"x": 1})));
        assert_eq!(events[1].data, "one\ntwo");
        assert_eq!(names(&events), vec!["a", ""]);
    }
}
