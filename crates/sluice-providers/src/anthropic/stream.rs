//! Decoder for Anthropic SSE streams: `message_start`, content blocks
//! (`content_block_start` / `_delta` / `_stop`), `message_delta`,
//! `message_stop`, with `ping`s anywhere and `error` events mid-stream.
//!
//! Mapping to canonical chunks: `message_start` → the role chunk; text and
//! thinking deltas → `content` / `reasoning_content`; a `tool_use` block →
//! a tool call (index counts tool blocks from 0) whose `input_json_delta`
//! fragments are its `arguments`; `message_delta`'s `stop_reason` → the
//! `finish_reason` chunk; `message_stop` → the final usage chunk.

use std::collections::HashMap;

use sluice_types::anthropic::{BlockDelta, ContentBlock, StreamEvent};
use sluice_types::{
    function_type, ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, Role,
    TokenUsage, ToolCallDelta,
};

use super::response::{finish_reason, token_usage};
use crate::sse::{SseEvent, SseParser};
use crate::{AdapterError, StreamDecoder};

#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    sse: SseParser,
    events: Vec<SseEvent>,
    id: String,
    model: String,
    /// Anthropic block index → canonical tool call index.
    tools: HashMap<u32, u32>,
    usage: TokenUsage,
    done: bool,
}

impl AnthropicStreamDecoder {
    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: 0,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
        }
    }

    fn tool_delta(&self, call: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        )
    }

    fn event(&mut self, ev: StreamEvent, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        match ev {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = token_usage(&message.usage);
                let delta = Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                out.push(self.chunk(delta, None));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::Text { text, .. } if !text.is_empty() => {
                    out.push(self.chunk(text_delta(text), None))
                }
                ContentBlock::Thinking { thinking, .. } if !thinking.is_empty() => {
                    out.push(self.chunk(reasoning_delta(thinking), None))
                }
                ContentBlock::ToolUse {
                    id, name, input, ..
                } => {
                    let tool_index = self.tools.len() as u32;
                    self.tools.insert(index, tool_index);
                    // Always `{}` in practice; the input streams as deltas.
                    let arguments = match input.as_object() {
                        Some(o) if !o.is_empty() => input.to_string(),
                        _ => String::new(),
                    };
                    out.push(self.tool_delta(ToolCallDelta {
                        index: tool_index,
                        id: Some(id),
                        kind: Some(function_type()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.push(self.chunk(text_delta(text), None))
                }
                BlockDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    out.push(self.chunk(reasoning_delta(thinking), None))
                }
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    // Fragments of server tools' blocks have no tool call: skipped.
                    if let Some(&tool_index) = self.tools.get(&index) {
                        out.push(self.tool_delta(ToolCallDelta {
                            index: tool_index,
                            id: None,
                            kind: None,
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(partial_json),
                            }),
                        }));
                    }
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    // Cumulative counts; input fields only in newer API versions.
                    self.usage.output = u.output_tokens;
                    if let Some(input) = u.input_tokens {
                        self.usage.cache_read =
                            u.cache_read_input_tokens.unwrap_or(self.usage.cache_read);
                        self.usage.cache_write = u
                            .cache_creation_input_tokens
                            .unwrap_or(self.usage.cache_write);
                        self.usage.input = input + self.usage.cache_read + self.usage.cache_write;
                    }
                }
                if let Some(reason) = delta.stop_reason {
                    out.push(self.chunk(Delta::default(), Some(finish_reason(&reason))));
                }
            }
            StreamEvent::MessageStop => {
                self.done = true;
                out.push(ChatChunk {
                    choices: Vec::new(),
                    usage: Some(self.usage.to_openai()),
                    ..self.chunk(Delta::default(), None)
                });
            }
            StreamEvent::Error { error } => return Err(AdapterError::StreamError(error.message)),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other(_) => {}
        }
        Ok(())
    }
}

fn text_delta(text: String) -> Delta {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}

fn reasoning_delta(text: String) -> Delta {
    Delta {
        reasoning_content: Some(text),
        ..Delta::default()
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        self.sse
            .feed(bytes, &mut self.events)
            .map_err(AdapterError::BadResponse)?;
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if self.done {
                break;
            }
            let data = ev.data.trim();
            if data.is_empty() {
                continue;
            }
            let event: StreamEvent = serde_json::from_str(data)
                .map_err(|e| AdapterError::BadResponse(format!("{e} in event {data:.200}")))?;
            self.event(event, out)?;
        }
        Ok(())
    }

    /// A last event whose lines all ended but which lacks the closing blank
    /// line (as the documented examples print it) still counts; a body cut
    /// inside a line, or before `message_stop`, is [`AdapterError::Truncated`].
    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if !self.done && self.sse.has_pending() {
            // One line end: dispatches the pending event only if its last line
            // was already complete (otherwise it merely ends that line).
            self.feed(b"\n", out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(AdapterError::Truncated)
        }
    }

    fn usage(&self) -> TokenUsage {
        self.usage
    }
}
