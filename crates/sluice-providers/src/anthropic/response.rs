//! Anthropic `Message` answer → canonical chat response, and the stop-reason
//! and usage mappings shared with the stream decoder.

use serde_json::{Map, Value};
use sluice_types::anthropic::{ContentBlock, MessagesResponse, Usage};
use sluice_types::{
    function_type, ChatResponse, Choice, Content, FinishReason, FunctionCall, Message, Role,
    TokenUsage, ToolCall,
};

/// Translates a non-streamed answer.
///
/// Text blocks are joined into `content` (`null` when the answer is only tool
/// calls); `tool_use` blocks become `tool_calls` (arguments = the input as
/// JSON text); thinking text becomes `reasoning_content`, and the signed
/// thinking blocks themselves are kept in the message's `thinking_blocks`
/// extra so a client can send them back. `created` is left 0 for the server
/// to stamp.
pub fn to_chat_response(resp: MessagesResponse) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in resp.content {
        match block {
            ContentBlock::Text { text: t, .. } => text.push_str(&t),
            ContentBlock::ToolUse {
                id, name, input, ..
            } => tool_calls.push(ToolCall {
                id,
                kind: function_type(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            ContentBlock::Thinking { ref thinking, .. } => {
                reasoning.push_str(thinking);
                thinking_blocks.push(serde_json::to_value(&block).unwrap_or(Value::Null));
            }
            ContentBlock::RedactedThinking { .. } => {
                thinking_blocks.push(serde_json::to_value(&block).unwrap_or(Value::Null));
            }
            _ => {}
        }
    }
    let mut extra = Map::new();
    if !thinking_blocks.is_empty() {
        extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(Content::Text(text))
    };
    let message = Message {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_call_id: None,
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        extra,
    };
    ChatResponse {
        id: resp.id,
        object: "chat.completion".into(),
        created: 0,
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: resp.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
        }],
        usage: Some(token_usage(&resp.usage).to_openai()),
        system_fingerprint: None,
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`. Unknown reasons (and
/// `pause_turn`, a server-tool pause) read as `stop`.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Anthropic usage → normalised usage. Anthropic counts cached prompt tokens
/// beside `input_tokens`; sluice (like OpenAI) counts them inside.
pub fn token_usage(u: &Usage) -> TokenUsage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
    TokenUsage {
        input: u.input_tokens + cache_read + cache_write,
        output: u.output_tokens,
        cache_read,
        cache_write,
        reasoning: 0,
    }
}
