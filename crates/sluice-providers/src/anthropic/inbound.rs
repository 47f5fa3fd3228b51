//! Inbound translator for clients that speak the Anthropic Messages format to
//! sluice (`POST /v1/messages`): their request → canonical, and the canonical
//! answer (or chunk stream, see [`StreamEncoder`]) → Anthropic's shapes.

use serde_json::{Map, Value};
use sluice_types::anthropic::{
    ContentBlock, ErrorBody, ImageSource, InputMessage, MessageContent, MessageRole,
    MessagesRequest, MessagesResponse, SystemPrompt, Tool as AnthropicTool, ToolChoice, Usage,
};
use sluice_types::{
    function_type, ChatRequest, ChatResponse, Content, ContentPart, FinishReason, FunctionCall,
    FunctionDef, ImageUrl, Message, Role, Stop, StreamOptions, TokenUsage, Tool, ToolCall,
};

pub use super::encoder::StreamEncoder;
use crate::AdapterError;

/// Prefix given to a `tool_result` marked `is_error`, which OpenAI's `tool`
/// messages cannot mark otherwise.
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// Translates an Anthropic-format client request to the canonical form.
///
/// `system` → a system message (blocks → text parts keeping `cache_control`);
/// `tool_use` blocks → assistant `tool_calls`; each `tool_result` block → a
/// `tool` message (text joined with newlines, prefixed [`TOOL_ERROR_PREFIX`]
/// when `is_error`; images inside it move to a user message right after);
/// images → `image_url` parts (base64 → data URL); thinking blocks → the
/// assistant message's `thinking_blocks` extra; `tool_choice` any → required,
/// tool → function, `disable_parallel_tool_use` → `parallel_tool_calls: false`;
/// `stop_sequences` → `stop`; `metadata.user_id` → `user`; `stream` →
/// `stream` with `stream_options.include_usage`; `top_k` and `thinking` →
/// extras. Other request fields are dropped. Server tools, document blocks and
/// other block types are [`AdapterError::Unsupported`].
pub fn to_chat_request(req: MessagesRequest) -> Result<ChatRequest, AdapterError> {
    let mut messages = Vec::new();
    match req.system {
        None => {}
        Some(SystemPrompt::Text(s)) => messages.push(Message::text(Role::System, s)),
        Some(SystemPrompt::Blocks(blocks)) => {
            let parts = blocks
                .into_iter()
                .map(text_part)
                .collect::<Result<_, _>>()?;
            messages.push(with_content(Role::System, Content::Parts(parts)));
        }
    }
    for m in req.messages {
        match m.role {
            MessageRole::User => user_turn(m, &mut messages)?,
            MessageRole::Assistant => messages.push(assistant_turn(m)?),
        }
    }
    let tools = req
        .tools
        .map(|ts| ts.into_iter().map(tool).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    let mut extra = Map::new();
    if let Some(k) = req.top_k {
        extra.insert("top_k".into(), k.into());
    }
    if let Some(t) = req.thinking {
        extra.insert("thinking".into(), t);
    }
    let (tool_choice, parallel_off) = match req.tool_choice {
        None => (None, false),
        Some(ToolChoice::Auto {
            disable_parallel_tool_use: d,
        }) => (Some("auto".into()), d == Some(true)),
        Some(ToolChoice::Any {
            disable_parallel_tool_use: d,
        }) => (Some("required".into()), d == Some(true)),
        Some(ToolChoice::None) => (Some("none".into()), false),
        Some(ToolChoice::Tool {
            name,
            disable_parallel_tool_use: d,
        }) => (
            Some(serde_json::json!({"type": "function", "function": {"name": name}})),
            d == Some(true),
        ),
    };
    if parallel_off {
        extra.insert("parallel_tool_calls".into(), false.into());
    }
    let stream = req.stream == Some(true);
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: true,
            extra: Map::new(),
        }),
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        tools,
        tool_choice,
        response_format: None,
        user: req.metadata.and_then(|m| m.user_id),
        extra,
    })
}

fn with_content(role: Role, content: Content) -> Message {
    Message {
        content: Some(content),
        ..Message::text(role, "")
    }
}

fn unsupported_block(block: &ContentBlock) -> AdapterError {
    let kind = match block {
        ContentBlock::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("?"),
        ContentBlock::Text { .. } => "text",
        ContentBlock::Image { .. } => "image",
        ContentBlock::ToolUse { .. } => "tool_use",
        ContentBlock::ToolResult { .. } => "tool_result",
        ContentBlock::Thinking { .. } => "thinking",
        ContentBlock::RedactedThinking { .. } => "redacted_thinking",
    };
    AdapterError::Unsupported(format!("`{kind}` content blocks here"))
}

fn text_part(block: ContentBlock) -> Result<ContentPart, AdapterError> {
    match block {
        ContentBlock::Text { text, extra } => Ok(ContentPart::Text { text, extra }),
        other => Err(unsupported_block(&other)),
    }
}

fn image_part(source: ImageSource, extra: Map<String, Value>) -> Result<ContentPart, AdapterError> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
        ImageSource::Other(v) => {
            let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
            return Err(AdapterError::Unsupported(format!(
                "image sources of type `{kind}`"
            )));
        }
    };
    Ok(ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
        extra,
    })
}

/// Parts as content: one plain text part becomes a string.
fn compact(mut parts: Vec<ContentPart>) -> Content {
    if let [ContentPart::Text { extra, .. }] = parts.as_slice() {
        if extra.is_empty() {
            if let Some(ContentPart::Text { text, .. }) = parts.pop() {
                return Content::Text(text);
            }
        }
    }
    Content::Parts(parts)
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as
/// Anthropic requires them first), the rest one user message after them.
fn user_turn(m: InputMessage, out: &mut Vec<Message>) -> Result<(), AdapterError> {
    let blocks = match m.content {
        MessageContent::Text(s) => {
            out.push(Message::text(Role::User, s));
            return Ok(());
        }
        MessageContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text { text, extra } => parts.push(ContentPart::Text { text, extra }),
            ContentBlock::Image { source, extra } => parts.push(image_part(source, extra)?),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                let mut texts = Vec::new();
                match content {
                    None => {}
                    Some(MessageContent::Text(s)) => texts.push(s),
                    Some(MessageContent::Blocks(bs)) => {
                        for b in bs {
                            match b {
                                ContentBlock::Text { text, .. } => texts.push(text),
                                ContentBlock::Image { source, extra } => {
                                    parts.push(image_part(source, extra)?)
                                }
                                other => return Err(unsupported_block(&other)),
                            }
                        }
                    }
                }
                let mut text = texts.join("\n");
                if is_error == Some(true) {
                    text.insert_str(0, TOOL_ERROR_PREFIX);
                }
                out.push(Message {
                    tool_call_id: Some(tool_use_id),
                    ..Message::text(Role::Tool, text)
                });
            }
            other => return Err(unsupported_block(&other)),
        }
    }
    if !parts.is_empty() {
        out.push(with_content(Role::User, compact(parts)));
    }
    Ok(())
}

fn assistant_turn(m: InputMessage) -> Result<Message, AdapterError> {
    let blocks = match m.content {
        MessageContent::Text(s) => return Ok(Message::text(Role::Assistant, s)),
        MessageContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text { text, extra } => parts.push(ContentPart::Text { text, extra }),
            ContentBlock::ToolUse {
                id, name, input, ..
            } => calls.push(ToolCall {
                id,
                kind: function_type(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            b @ (ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. }) => {
                thinking.push(serde_json::to_value(&b).unwrap_or(Value::Null))
            }
            other => return Err(unsupported_block(&other)),
        }
    }
    let content = if parts.is_empty() {
        None
    } else if parts
        .iter()
        .all(|p| matches!(p, ContentPart::Text { extra, .. } if extra.is_empty()))
    {
        Some(Content::Text(Content::Parts(parts).joined_text()))
    } else {
        Some(Content::Parts(parts))
    };
    let mut msg = Message {
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::text(Role::Assistant, "")
    };
    if !thinking.is_empty() {
        msg.extra
            .insert("thinking_blocks".into(), Value::Array(thinking));
    }
    Ok(msg)
}

fn tool(t: AnthropicTool) -> Result<Tool, AdapterError> {
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
        return Err(AdapterError::Unsupported(format!(
            "Anthropic server tool `{kind}` (only client tools with an input_schema)"
        )));
    }
    Ok(Tool {
        kind: function_type(),
        function: FunctionDef {
            name: t.name,
            description: t.description,
            parameters: Some(
                t.input_schema
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            ),
            extra: t
                .extra
                .into_iter()
                .filter(|(k, _)| k == "cache_control")
                .collect(),
        },
    })
}

/// Translates a canonical answer for an Anthropic-format client; `model` is
/// the name the client asked for.
///
/// The id keeps a `msg_` prefix (added when missing). Content order:
/// thinking (the message's signed `thinking_blocks` when present, else its
/// `reasoning_content` as an unsigned block), text, `tool_use` blocks. Tool
/// arguments that are not a JSON object (a provider's broken output) are
/// wrapped as `{"_raw": "<the arguments text>"}` rather than lost. An answer
/// with no content gets one empty text block.
pub fn from_chat_response(resp: &ChatResponse, model: &str) -> MessagesResponse {
    let choice = resp.choices.first();
    let msg = choice.map(|c| &c.message);
    let mut content = Vec::new();
    if let Some(m) = msg {
        match m.extra.get("thinking_blocks") {
            Some(Value::Array(blocks)) => content.extend(
                blocks
                    .iter()
                    .filter_map(|b| serde_json::from_value::<ContentBlock>(b.clone()).ok()),
            ),
            _ => {
                if let Some(r) = m.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
                    content.push(ContentBlock::Thinking {
                        thinking: r.clone(),
                        signature: Some(String::new()),
                        extra: Map::new(),
                    });
                }
            }
        }
        let text = m
            .content
            .as_ref()
            .map(Content::joined_text)
            .unwrap_or_default();
        if !text.is_empty() {
            content.push(ContentBlock::text(text));
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(ContentBlock::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
                extra: Map::new(),
            });
        }
    }
    let has_tools = content
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolUse { .. }));
    if content.is_empty() {
        content.push(ContentBlock::text(""));
    }
    let usage = resp
        .usage
        .as_ref()
        .map(|u| u.to_tokens())
        .unwrap_or_default();
    MessagesResponse {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: "assistant".into(),
        content,
        model: model.to_owned(),
        stop_reason: Some(stop_reason(choice.and_then(|c| c.finish_reason), has_tools).into()),
        stop_sequence: None,
        usage: anthropic_usage(&usage),
        extra: Map::new(),
    }
}

/// Parses tool arguments; anything but a JSON object is wrapped as `{"_raw": text}`.
pub(crate) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "_raw": arguments }),
    }
}

/// `msg_`-prefixed message id.
pub(crate) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`. A plain stop after tool
/// calls (some providers say `stop` there) is `tool_use`.
pub(crate) fn stop_reason(finish: Option<FinishReason>, saw_tool_call: bool) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        Some(FinishReason::Stop) | None if saw_tool_call => "tool_use",
        Some(FinishReason::Stop) | None => "end_turn",
    }
}

/// Normalised usage → Anthropic usage (cached tokens counted beside `input_tokens`).
pub(crate) fn anthropic_usage(u: &TokenUsage) -> Usage {
    Usage {
        input_tokens: u.input.saturating_sub(u.cache_read + u.cache_write),
        output_tokens: u.output,
        cache_creation_input_tokens: Some(u.cache_write),
        cache_read_input_tokens: Some(u.cache_read),
        extra: Map::new(),
    }
}

/// An Anthropic error body: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody::new(error_type, message)).unwrap_or_default()
}
