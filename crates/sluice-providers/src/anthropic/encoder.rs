//! Canonical chunks → Anthropic SSE, for clients that called `/v1/messages`.
//!
//! The event sequence is the documented one the official SDKs accumulate:
//! `message_start`, then per content block `content_block_start`,
//! `content_block_delta`…, `content_block_stop`, then `message_delta` (stop
//! reason and usage) and `message_stop`; each SSE `event:` name equals the
//! data's `type`. Blocks never interleave: reasoning opens a `thinking`
//! block, text a `text` block, each tool call a `tool_use` block whose
//! argument fragments are `input_json_delta`s; a change of kind (or of tool
//! call) closes the open block first.

use serde_json::{Map, Value};
use sluice_types::anthropic::{
    BlockDelta, ContentBlock, DeltaUsage, ErrorBody, MessageDelta, MessagesResponse, StreamEvent,
};
use sluice_types::{ChatChunk, FinishReason, TokenUsage, ToolCallDelta};

use super::inbound::{anthropic_usage, message_id, stop_reason};
use crate::sse::write_event;

/// The kind of the open content block.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    Text,
    Thinking,
    /// A tool call: its canonical index and id.
    Tool(u32, Option<String>),
}

/// Turns one canonical chunk stream into one Anthropic SSE stream.
///
/// Choices other than index 0 are ignored. A fragment of a tool call whose
/// block was already closed (providers send calls one after the other, so
/// this does not happen in practice) cannot be reopened and is dropped.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    ended: bool,
    open: Option<Open>,
    /// Index of the next content block.
    next_block: u32,
    saw_tool: bool,
    /// Canonical indexes of tool calls whose block is closed.
    closed_tools: Vec<u32>,
    finish: Option<FinishReason>,
    usage: Option<TokenUsage>,
}

impl StreamEncoder {
    /// `model` is the name the client asked for; `id` gets a `msg_` prefix if it lacks one.
    pub fn new(model: &str, id: &str) -> Self {
        StreamEncoder {
            id: message_id(id),
            model: model.to_owned(),
            started: false,
            ended: false,
            open: None,
            next_block: 0,
            saw_tool: false,
            closed_tools: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    /// Appends the events for one chunk (starting with `message_start` on the first call).
    pub fn encode(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.to_tokens());
        }
        self.start(out);
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let d = &choice.delta;
            if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                self.open_block(Open::Thinking, out);
                let delta = BlockDelta::ThinkingDelta {
                    thinking: r.to_owned(),
                };
                self.delta(delta, out);
            }
            if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                self.open_block(Open::Text, out);
                self.delta(BlockDelta::TextDelta { text: t.to_owned() }, out);
            }
            for call in d.tool_calls.iter().flatten() {
                self.tool_call(call, out);
            }
            if choice.finish_reason.is_some() {
                self.finish = choice.finish_reason;
            }
        }
    }

    /// Ends the stream: closes the open block, then `message_delta` (stop
    /// reason from the last `finish_reason`; usage from `usage`, else from the
    /// last usage chunk seen, else zeros) and `message_stop`.
    pub fn finish(&mut self, usage: Option<TokenUsage>, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        let u = anthropic_usage(&usage.or(self.usage).unwrap_or_default());
        let event = StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason(self.finish, self.saw_tool).into()),
                stop_sequence: None,
                extra: Map::new(),
            },
            usage: Some(DeltaUsage {
                output_tokens: u.output_tokens,
                input_tokens: Some(u.input_tokens),
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
                extra: Map::new(),
            }),
        };
        emit(&event, out);
        emit(&StreamEvent::MessageStop, out);
        self.ended = true;
    }

    /// Appends an `error` event (`error_type` e.g. `overloaded_error`,
    /// `api_error`); the stream is over after it.
    pub fn error(&mut self, error_type: &str, message: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let body = ErrorBody::new(error_type, message);
        write_event(out, "error", &serde_json::to_vec(&body).unwrap_or_default());
        self.ended = true;
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let input = self.usage.map(|u| anthropic_usage(&u)).unwrap_or_default();
        let message = MessagesResponse {
            id: self.id.clone(),
            kind: "message".into(),
            role: "assistant".into(),
            content: Vec::new(),
            model: self.model.clone(),
            stop_reason: None,
            stop_sequence: None,
            usage: sluice_types::anthropic::Usage {
                output_tokens: 0,
                ..input
            },
            extra: Map::new(),
        };
        emit(&StreamEvent::MessageStart { message }, out);
    }

    fn tool_call(&mut self, call: &ToolCallDelta, out: &mut Vec<u8>) {
        let same = matches!(&self.open, Some(Open::Tool(i, id))
            if *i == call.index && (call.id.is_none() || call.id == *id));
        let args = call.function.as_ref().and_then(|f| f.arguments.as_deref());
        if !same {
            if call.id.is_none() && self.opened_before(call.index) {
                return; // a late fragment of a closed call: cannot be reopened
            }
            self.close(out);
            self.saw_tool = true;
            let name = call.function.as_ref().and_then(|f| f.name.clone());
            let id = call
                .id
                .clone()
                .unwrap_or_else(|| format!("toolu_{}", call.index));
            let block = ContentBlock::ToolUse {
                id,
                name: name.unwrap_or_default(),
                input: Value::Object(Map::new()),
                extra: Map::new(),
            };
            self.open_new(Open::Tool(call.index, call.id.clone()), block, out);
        }
        if let Some(a) = args.filter(|a| !a.is_empty()) {
            let delta = BlockDelta::InputJsonDelta {
                partial_json: a.to_owned(),
            };
            self.delta(delta, out);
        }
    }

    /// Whether a tool call of this index already had a (now closed) block.
    fn opened_before(&self, index: u32) -> bool {
        self.closed_tools.contains(&index)
    }

    fn open_block(&mut self, kind: Open, out: &mut Vec<u8>) {
        if self.open.as_ref() == Some(&kind) {
            return;
        }
        self.close(out);
        let block = match kind {
            Open::Thinking => ContentBlock::Thinking {
                thinking: String::new(),
                signature: Some(String::new()),
                extra: Map::new(),
            },
            _ => ContentBlock::text(""),
        };
        self.open_new(kind, block, out);
    }

    fn open_new(&mut self, kind: Open, block: ContentBlock, out: &mut Vec<u8>) {
        let event = StreamEvent::ContentBlockStart {
            index: self.next_block,
            content_block: block,
        };
        emit(&event, out);
        self.open = Some(kind);
    }

    fn delta(&self, delta: BlockDelta, out: &mut Vec<u8>) {
        let event = StreamEvent::ContentBlockDelta {
            index: self.next_block,
            delta,
        };
        emit(&event, out);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            if let Open::Tool(index, _) = open {
                self.closed_tools.push(index);
            }
            emit(
                &StreamEvent::ContentBlockStop {
                    index: self.next_block,
                },
                out,
            );
            self.next_block += 1;
        }
    }
}

fn emit(event: &StreamEvent, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(event).unwrap_or_default();
    write_event(out, event.name(), &json);
}
