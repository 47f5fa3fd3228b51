//! Decoder for OpenAI-format SSE streams: `data: <chunk json>` events ended by
//! `data: [DONE]`. An `{"error": …}` event mid-stream becomes an error.

use sluice_types::{ChatChunk, TokenUsage};

use crate::sse::{SseEvent, SseParser};
use crate::{error_message, AdapterError, StreamDecoder};

#[derive(Debug, Default)]
pub struct OpenAiStreamDecoder {
    sse: SseParser,
    events: Vec<SseEvent>,
    usage: TokenUsage,
    done: bool,
    /// Some servers (older vLLM, Ollama) end with a finish_reason but no [DONE].
    saw_finish: bool,
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        self.sse
            .feed(bytes, &mut self.events)
            .map_err(AdapterError::BadResponse)?;
        for ev in self.events.drain(..) {
            if self.done {
                continue;
            }
            let data = ev.data.trim();
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            if data.is_empty() {
                continue;
            }
            if ev.event.as_deref() == Some("error") || data.starts_with("{\"error\"") {
                return Err(AdapterError::StreamError(error_message(data.as_bytes())));
            }
            let chunk: ChatChunk = serde_json::from_str(data)
                .map_err(|e| AdapterError::BadResponse(format!("{e} in chunk {data:.200}")))?;
            if let Some(u) = &chunk.usage {
                self.usage = u.to_tokens();
            }
            if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
                self.saw_finish = true;
            }
            out.push(chunk);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.done || (self.saw_finish && !self.sse.has_pending()) {
            Ok(())
        } else {
            Err(AdapterError::Truncated)
        }
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}
