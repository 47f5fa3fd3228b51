//! A cached answer replayed as a stream: the canonical chunks a provider
//! would have sent for it, which `http/sse.rs` encodes for the client like
//! any upstream's (OpenAI chunks, or Anthropic's event sequence). Per
//! choice: reasoning, text, one chunk per tool call (whole arguments),
//! then the finish reason; the usage chunk last, or first for encoders
//! that report usage at the start (Anthropic's `message_start`).

use std::sync::Arc;

use futures::StreamExt;
use sluice_types::{ChatChunk, ChatResponse, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};

use super::Entry;
use crate::dispatch::ChunkStream;

/// The entry's answer as a chunk stream.
pub fn stream(entry: &Arc<Entry>, usage_first: bool) -> ChunkStream {
    futures::stream::iter(chunks(&entry.response, usage_first).into_iter().map(Ok)).boxed()
}

/// The chunks that stream `r`.
pub fn chunks(r: &ChatResponse, usage_first: bool) -> Vec<ChatChunk> {
    let chunk = |choices: Vec<ChunkChoice>| ChatChunk {
        id: r.id.clone(),
        object: "chat.completion.chunk".into(),
        created: r.created,
        model: r.model.clone(),
        choices,
        usage: None,
        system_fingerprint: r.system_fingerprint.clone(),
    };
    let usage = r.usage.clone().map(|u| ChatChunk {
        usage: Some(u),
        ..chunk(Vec::new())
    });
    let mut out = Vec::with_capacity(4 * r.choices.len() + 1);
    if usage_first {
        out.extend(usage.clone());
    }
    for c in &r.choices {
        let one = |delta: Delta| {
            chunk(vec![ChunkChoice {
                index: c.index,
                delta,
                finish_reason: None,
                logprobs: None,
            }])
        };
        let m = &c.message;
        out.push(one(Delta {
            role: Some(m.role),
            reasoning_content: m.reasoning_content.clone(),
            ..Delta::default()
        }));
        if let Some(text) = m.content.as_ref().map(|t| t.joined_text()) {
            out.push(one(Delta {
                content: Some(text),
                ..Delta::default()
            }));
        }
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            out.push(one(Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    id: Some(call.id.clone()),
                    kind: Some(call.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                    }),
                }]),
                ..Delta::default()
            }));
        }
        let mut end = one(Delta::default());
        end.choices[0].finish_reason = c.finish_reason;
        end.choices[0].logprobs.clone_from(&c.logprobs);
        out.push(end);
    }
    if !usage_first {
        out.extend(usage);
    }
    out
}
