//! Gemini `GenerateContentResponse` → canonical [`ChatResponse`], and the
//! mappings the stream decoder shares with it: finish reasons, usage, ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_types::{
    ChatResponse, Choice, Content as ChatContent, FinishReason, FunctionCall as ChatFunctionCall,
    Message, Role, TokenUsage, ToolCall,
};

use super::types::{FunctionCall, GenerateContentResponse, UsageMetadata};
use crate::AdapterError;

/// Parses a non-streamed answer.
pub fn parse(body: &[u8]) -> Result<ChatResponse, AdapterError> {
    let resp: GenerateContentResponse =
        serde_json::from_slice(body).map_err(|e| AdapterError::BadResponse(e.to_string()))?;
    Ok(to_chat(resp))
}

/// Converts a complete answer: one choice per candidate.
pub fn to_chat(resp: GenerateContentResponse) -> ChatResponse {
    let mut next_call = 0;
    let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
    for (pos, cand) in resp.candidates.iter().enumerate() {
        let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
        for part in cand.content.iter().flat_map(|c| &c.parts) {
            if let Some(fc) = &part.function_call {
                calls.push(ToolCall {
                    id: call_id(next_call),
                    kind: "function".into(),
                    function: ChatFunctionCall {
                        name: fc.name.clone(),
                        arguments: args_json(fc),
                    },
                });
                next_call += 1;
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let has_calls = !calls.is_empty();
        let finish = match cand.finish_reason.as_deref() {
            Some(reason) => finish_reason(reason, has_calls),
            None if has_calls => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        let mut message = Message::text(Role::Assistant, text);
        if has_calls && message.content == Some(ChatContent::Text(String::new())) {
            message.content = None;
        }
        message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
        message.tool_calls = has_calls.then_some(calls);
        choices.push(Choice {
            index: cand.index.unwrap_or(pos as u32),
            message,
            finish_reason: Some(finish),
            logprobs: None,
        });
    }
    if choices.is_empty() {
        // No candidates: the prompt was blocked (promptFeedback says why).
        let blocked = resp.prompt_feedback.as_ref().is_some_and(|f| f.blocked());
        choices.push(Choice {
            index: 0,
            message: Message::text(Role::Assistant, ""),
            finish_reason: Some(if blocked {
                FinishReason::ContentFilter
            } else {
                FinishReason::Stop
            }),
            logprobs: None,
        });
    }
    ChatResponse {
        id: resp.response_id.unwrap_or_else(new_id),
        object: "chat.completion".into(),
        created: now(),
        model: resp.model_version.unwrap_or_default(),
        choices,
        usage: resp.usage_metadata.map(|u| token_usage(&u).to_openai()),
        system_fingerprint: None,
    }
}

/// Maps Gemini's `finishReason`. `STOP` after function calls means the model
/// is waiting for their results, which OpenAI calls `tool_calls`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_tool_calls => FinishReason::ToolCalls,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Normalised usage. Thought tokens are output the caller pays for, so they
/// count as completion tokens (and are reported as reasoning tokens); tokens
/// of built-in tool results count as prompt tokens.
pub fn token_usage(u: &UsageMetadata) -> TokenUsage {
    TokenUsage {
        input: u.prompt_token_count + u.tool_use_prompt_token_count,
        output: u.candidates_token_count + u.thoughts_token_count,
        cache_read: u.cached_content_token_count,
        cache_write: 0,
        reasoning: u.thoughts_token_count,
    }
}

/// The OpenAI-style id of the `n`th function call of one answer.
pub fn call_id(n: u32) -> String {
    format!("call_{n}")
}

/// A function call's arguments as OpenAI's JSON text.
pub fn args_json(fc: &FunctionCall) -> String {
    fc.args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), |a| a.to_string())
}

/// An answer id for responses without `responseId`.
pub fn new_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("gen-{nanos:x}{seq:04x}")
}

/// Unix seconds, for `created`.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
