//! Decoder for `streamGenerateContent?alt=sse`: every `data:` event is a whole
//! `GenerateContentResponse` holding the next piece of each candidate, and the
//! running usage totals.
//!
//! Gemini sends no end-of-stream marker, so a stream is complete when the body
//! ends on an event boundary and the latest event of every candidate carried a
//! `finishReason`. Because older models put `finishReason: STOP` on *every*
//! event (Google's own streaming example does), a finish reason is held until
//! the body ends and dropped if more output for that candidate follows; the
//! finish chunks and the usage chunk are emitted by [`StreamDecoder::finish`].

use std::collections::BTreeMap;

use sluice_types::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, Role, TokenUsage,
    ToolCallDelta, Usage,
};

use super::response::{args_json, call_id, finish_reason, new_id, now, token_usage};
use super::types::{Candidate, GenerateContentResponse, UsageMetadata};
use crate::sse::{SseEvent, SseParser};
use crate::{error_message, AdapterError, StreamDecoder};

#[derive(Debug, Default)]
pub struct GeminiStreamDecoder {
    sse: SseParser,
    events: Vec<SseEvent>,
    /// `responseId` of the first event (or a generated id), on every chunk.
    id: Option<String>,
    model: String,
    created: u64,
    choices: BTreeMap<u32, ChoiceState>,
    /// Function calls seen in the whole answer, for unique call ids.
    calls: u32,
    usage: Option<UsageMetadata>,
    finished: bool,
}

#[derive(Debug, Default)]
struct ChoiceState {
    role_sent: bool,
    /// Tool calls of this choice so far (the next tool call's `index`).
    tools: u32,
    /// The finish reason of the latest event, if it had one.
    finish: Option<FinishReason>,
}

impl GeminiStreamDecoder {
    fn event(&mut self, data: &str, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let resp: GenerateContentResponse = serde_json::from_str(data)
            .map_err(|e| AdapterError::BadResponse(format!("{e} in event {data:.200}")))?;
        if resp.error.is_some() {
            return Err(AdapterError::StreamError(error_message(data.as_bytes())));
        }
        if self.id.is_none() {
            self.id = Some(resp.response_id.clone().unwrap_or_else(new_id));
            self.created = now();
        }
        if self.model.is_empty() {
            self.model = resp.model_version.clone().unwrap_or_default();
        }
        if resp.usage_metadata.is_some() {
            self.usage = resp.usage_metadata;
        }
        for (pos, cand) in resp.candidates.iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            if let Some(choice) = self.candidate(index, cand) {
                out.push(self.chunk(vec![choice], None));
            }
        }
        let blocked = resp.prompt_feedback.as_ref().is_some_and(|f| f.blocked());
        if resp.candidates.is_empty() && blocked {
            let st = self.choices.entry(0).or_default();
            st.finish = Some(FinishReason::ContentFilter);
            if !st.role_sent {
                st.role_sent = true;
                out.push(self.chunk(vec![role_choice(0, Delta::default())], None));
            }
        }
        Ok(())
    }

    /// The delta of one candidate's event, if it has anything to say.
    fn candidate(&mut self, index: u32, cand: &Candidate) -> Option<ChunkChoice> {
        let st = self.choices.entry(index).or_default();
        let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
        for part in cand.content.iter().flat_map(|c| &c.parts) {
            if let Some(fc) = &part.function_call {
                calls.push(ToolCallDelta {
                    index: st.tools,
                    id: Some(call_id(self.calls)),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(fc.name.clone()),
                        arguments: Some(args_json(fc)),
                    }),
                });
                st.tools += 1;
                self.calls += 1;
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let has_output = !(text.is_empty() && reasoning.is_empty() && calls.is_empty());
        if has_output {
            st.finish = None; // an earlier finishReason was premature
        }
        if let Some(reason) = &cand.finish_reason {
            st.finish = Some(finish_reason(reason, st.tools > 0));
        }
        if !has_output && st.role_sent {
            return None;
        }
        let delta = Delta {
            role: None,
            content: (!text.is_empty()).then_some(text),
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            tool_calls: (!calls.is_empty()).then_some(calls),
        };
        if st.role_sent {
            Some(ChunkChoice {
                index,
                delta,
                finish_reason: None,
                logprobs: None,
            })
        } else {
            st.role_sent = true;
            Some(role_choice(index, delta))
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone().unwrap_or_default(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
        }
    }
}

/// A choice's first delta: `role: assistant`, and `content: ""` when it
/// carries nothing else (as OpenAI's first chunk does).
fn role_choice(index: u32, mut delta: Delta) -> ChunkChoice {
    delta.role = Some(Role::Assistant);
    if delta.content.is_none() && delta.reasoning_content.is_none() && delta.tool_calls.is_none() {
        delta.content = Some(String::new());
    }
    ChunkChoice {
        index,
        delta,
        finish_reason: None,
        logprobs: None,
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        self.sse
            .feed(bytes, &mut self.events)
            .map_err(AdapterError::BadResponse)?;
        let mut events = std::mem::take(&mut self.events);
        let result = events.iter().try_for_each(|ev| self.event(&ev.data, out));
        events.clear();
        self.events = events;
        result
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.finished {
            return Ok(());
        }
        let complete = !self.sse.has_pending()
            && !self.choices.is_empty()
            && self.choices.values().all(|c| c.finish.is_some());
        if !complete {
            return Err(AdapterError::Truncated);
        }
        self.finished = true;
        for (&index, st) in &self.choices {
            let choice = ChunkChoice {
                index,
                delta: Delta::default(),
                finish_reason: st.finish,
                logprobs: None,
            };
            out.push(self.chunk(vec![choice], None));
        }
        if let Some(u) = &self.usage {
            out.push(self.chunk(Vec::new(), Some(token_usage(u).to_openai())));
        }
        Ok(())
    }

    fn usage(&self) -> TokenUsage {
        self.usage.as_ref().map(token_usage).unwrap_or_default()
    }
}
