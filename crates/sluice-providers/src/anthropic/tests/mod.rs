//! Anthropic adapter tests over fixtures from Anthropic's documentation
//! (`tests/fixtures/anthropic/`, sources in its README), and the helpers they share.

mod encoder;
mod inbound;
mod request;
mod response;
mod stream;

use sluice_types::{ChatChunk, FinishReason, TokenUsage};

use super::AnthropicAdapter;
use crate::{Adapter, AdapterError};

pub(super) const STREAM_TEXT: &str =
    include_str!("../../../tests/fixtures/anthropic/stream_text.sse");
pub(super) const STREAM_TOOL: &str =
    include_str!("../../../tests/fixtures/anthropic/stream_tool_use.sse");
pub(super) const STREAM_THINKING: &str =
    include_str!("../../../tests/fixtures/anthropic/stream_thinking.sse");
pub(super) const STREAM_ERROR: &str =
    include_str!("../../../tests/fixtures/anthropic/stream_error.sse");
pub(super) const RESPONSE_TEXT: &str =
    include_str!("../../../tests/fixtures/anthropic/response_text.json");
pub(super) const RESPONSE_TOOL: &str =
    include_str!("../../../tests/fixtures/anthropic/response_tool_use.json");
pub(super) const REQUEST_TOOL_RESULT: &str =
    include_str!("../../../tests/fixtures/anthropic/request_tool_result.json");
pub(super) const REQUEST_STREAM_TOOLS: &str =
    include_str!("../../../tests/fixtures/anthropic/request_stream_tools.json");
pub(super) const REQUEST_VISION: &str =
    include_str!("../../../tests/fixtures/anthropic/request_vision.json");
pub(super) const REQUEST_CACHING: &str =
    include_str!("../../../tests/fixtures/anthropic/request_prompt_caching.json");
pub(super) const ERRORS: &str = include_str!("../../../tests/fixtures/anthropic/errors.json");

/// Decodes a body fed in the given pieces.
pub(super) fn decode(pieces: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), AdapterError>, TokenUsage) {
    let mut d = AnthropicAdapter.stream_decoder();
    let mut out = Vec::new();
    for p in pieces {
        if let Err(e) = d.feed(p, &mut out) {
            return (out, Err(e), d.usage());
        }
    }
    let fin = d.finish(&mut out);
    (out, fin, d.usage())
}

/// What a client would assemble from a chunk stream.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Assembled {
    pub text: String,
    pub reasoning: String,
    /// (id, name, arguments) per tool call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish: Option<FinishReason>,
    pub usage: Option<TokenUsage>,
    pub role_first: bool,
}

pub(super) fn assemble(chunks: &[ChatChunk]) -> Assembled {
    let mut a = Assembled {
        role_first: chunks
            .first()
            .and_then(|c| c.choices.first())
            .and_then(|c| c.delta.role)
            == Some(sluice_types::Role::Assistant),
        ..Assembled::default()
    };
    for c in chunks {
        if let Some(u) = &c.usage {
            a.usage = Some(u.to_tokens());
        }
        for ch in &c.choices {
            a.text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            a.reasoning
                .push_str(ch.delta.reasoning_content.as_deref().unwrap_or(""));
            for t in ch.delta.tool_calls.iter().flatten() {
                let i = t.index as usize;
                if a.tool_calls.len() <= i {
                    a.tool_calls.resize(i + 1, Default::default());
                }
                let slot = &mut a.tool_calls[i];
                if let Some(id) = &t.id {
                    slot.0 = id.clone();
                }
                if let Some(f) = &t.function {
                    if let Some(n) = &f.name {
                        slot.1 = n.clone();
                    }
                    slot.2.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            if ch.finish_reason.is_some() {
                a.finish = ch.finish_reason;
            }
        }
    }
    a
}
