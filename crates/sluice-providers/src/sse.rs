//! Incremental Server-Sent Events parser and writer (per the WHATWG spec):
//! bytes in arbitrary splits → complete events. Handles `\n`, `\r\n` and `\r`
//! line ends, comment lines, multi-line `data`, and splits inside a line or a
//! UTF-8 character.

/// One complete SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Upper bound on one buffered line, so a stream without line ends cannot
/// grow memory without limit.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', bytes) {
                Some(i) => {
                    self.line.extend_from_slice(&bytes[..i]);
                    self.after_cr = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    self.end_line(out)?;
                }
                None => {
                    if self.line.len() + bytes.len() > MAX_LINE {
                        return Err(format!("an SSE line exceeds {MAX_LINE} bytes"));
                    }
                    self.line.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// Whether a partial event or line is buffered (the stream was cut).
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        let result = self.process_line(&line, out);
        self.line = line;
        self.line.clear();
        result
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            } else {
                self.event = None;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|e| format!("SSE line is not UTF-8: {e}"))?;
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields are not used by LLM providers
        }
        Ok(())
    }
}

/// Appends `data: <json>\n\n` to `buf`.
pub fn write_data(buf: &mut Vec<u8>, json: &[u8]) {
    buf.extend_from_slice(b"data: ");
    buf.extend_from_slice(json);
    buf.extend_from_slice(b"\n\n");
}

/// Appends `event: <name>\ndata: <json>\n\n` to `buf`.
pub fn write_event(buf: &mut Vec<u8>, name: &str, json: &[u8]) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    write_data(buf, json);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn parses_events_across_any_split() {
        let body = "event: a\ndata: {\"x\":\"é\"}\n\r\ndata: l1\r\ndata: l2\r\n\r\n: comment\n\ndata:[DONE]\n\n".as_bytes();
        let whole = parse_all(&[body]);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "{\"x\":\"é\"}".into()
                },
                SseEvent {
                    event: None,
                    data: "l1\nl2".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(parse_all(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn lone_cr_ends_lines_and_pending_is_reported() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r\rdata: b", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(p.has_pending());
    }
}
