//! Canonical (OpenAI Chat Completions) request → Anthropic Messages request.

use serde_json::{Map, Value};
use sluice_types::anthropic::{
    ContentBlock, ImageSource, InputMessage, MessageContent, MessageRole, MessagesRequest,
    Metadata, SystemPrompt, Tool as AnthropicTool, ToolChoice,
};
use sluice_types::{ChatRequest, Content, ContentPart, Message, Role, Tool};

use crate::AdapterError;

/// `max_tokens` sent when the client gives neither `max_completion_tokens` nor
/// `max_tokens`: Anthropic requires a value, OpenAI does not.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Translates a canonical request for the upstream model `model`.
///
/// - `system`/`developer` messages, wherever they stand, become `system`: one
///   string (joined with a blank line) when all are plain strings, else text
///   blocks that keep each part's `cache_control`.
/// - Consecutive turns of one role are merged (Anthropic requires
///   alternation); `tool` messages become `tool_result` blocks of a user turn.
/// - `image_url` parts become image blocks (`data:` URLs → base64 source).
/// - Assistant `tool_calls` become `tool_use` blocks; arguments that are not a
///   JSON object are an [`AdapterError::InvalidRequest`]. Signed blocks in the
///   message's `thinking_blocks` extra are sent back first; plain
///   `reasoning_content` is dropped (Anthropic needs a signature).
/// - `max_completion_tokens`/`max_tokens` → `max_tokens`, else
///   [`DEFAULT_MAX_TOKENS`]; `temperature` is clamped to Anthropic's 0–1;
///   `stop` → `stop_sequences`; `user` → `metadata.user_id`;
///   `parallel_tool_calls: false` → `disable_parallel_tool_use`; the extras
///   `top_k` and `thinking` pass through.
/// - Refused as [`AdapterError::Unsupported`]: `n` > 1, `logprobs: true`,
///   `response_format` other than `text`, non-function tools, content parts
///   other than text and images, `function` role messages.
/// - Other OpenAI parameters (`seed`, penalties, `logit_bias`, …) are dropped.
pub fn to_messages_request(
    req: &ChatRequest,
    model: &str,
) -> Result<MessagesRequest, AdapterError> {
    refuse_unsupported(req)?;
    let mut system = SystemBuilder::default();
    let mut turns: Vec<(MessageRole, Vec<ContentBlock>)> = Vec::new();
    for msg in &req.messages {
        let (role, blocks) = match msg.role {
            Role::System | Role::Developer => {
                system.push(msg)?;
                continue;
            }
            Role::User => (MessageRole::User, content_blocks(msg.content.as_ref())?),
            Role::Assistant => (MessageRole::Assistant, assistant_blocks(msg)?),
            Role::Tool => (MessageRole::User, vec![tool_result(msg)?]),
            Role::Function => {
                return Err(AdapterError::Unsupported(
                    "`function` role messages (send `tool` messages instead)".into(),
                ))
            }
        };
        match turns.last_mut() {
            Some((last, prev)) if *last == role => prev.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, blocks)| InputMessage {
            role,
            content: compact(blocks),
        })
        .collect();

    let tools = req
        .tools
        .as_ref()
        .map(|tools| tools.iter().map(tool).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    let parallel_off = req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let tool_choice = tool_choice(req.tool_choice.as_ref(), parallel_off && tools.is_some())?;

    Ok(MessagesRequest {
        model: model.to_owned(),
        messages,
        system: system.build(),
        max_tokens: req.max_output().unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        top_k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|s| !s.is_empty()),
        stream: req.is_stream().then_some(true),
        tools,
        tool_choice,
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
            extra: Map::new(),
        }),
        thinking: req.extra.get("thinking").filter(|t| t.is_object()).cloned(),
        extra: Map::new(),
    })
}

fn refuse_unsupported(req: &ChatRequest) -> Result<(), AdapterError> {
    if req
        .extra
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(AdapterError::Unsupported(
            "`n` > 1 (several choices per request)".into(),
        ));
    }
    if req.extra.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(AdapterError::Unsupported("`logprobs`".into()));
    }
    if let Some(format) = &req.response_format {
        let kind = format.get("type").and_then(Value::as_str).unwrap_or("?");
        if kind != "text" {
            return Err(AdapterError::Unsupported(format!(
                "`response_format` of type `{kind}` (Anthropic has no JSON mode; describe the format in the prompt or use a tool)"
            )));
        }
    }
    Ok(())
}

/// Collects system and developer messages.
#[derive(Default)]
struct SystemBuilder {
    blocks: Vec<ContentBlock>,
    texts: Vec<String>,
    any_parts: bool,
}

impl SystemBuilder {
    fn push(&mut self, msg: &Message) -> Result<(), AdapterError> {
        match &msg.content {
            None => {}
            Some(Content::Text(s)) => {
                self.texts.push(s.clone());
                if !s.is_empty() {
                    self.blocks.push(ContentBlock::text(s.clone()));
                }
            }
            Some(Content::Parts(parts)) => {
                self.any_parts = true;
                for part in parts {
                    match part {
                        ContentPart::Text { text, extra } if !text.is_empty() => {
                            self.blocks.push(ContentBlock::Text {
                                text: text.clone(),
                                extra: keep_cache_control(extra),
                            })
                        }
                        ContentPart::Text { .. } => {}
                        _ => {
                            return Err(AdapterError::InvalidRequest(
                                "system messages may contain only text".into(),
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn build(self) -> Option<SystemPrompt> {
        if self.any_parts {
            (!self.blocks.is_empty()).then_some(SystemPrompt::Blocks(self.blocks))
        } else {
            let text = self.texts.join("\n\n");
            (!text.is_empty()).then_some(SystemPrompt::Text(text))
        }
    }
}

/// Only `cache_control` of a part's extra fields is meaningful to Anthropic.
fn keep_cache_control(extra: &Map<String, Value>) -> Map<String, Value> {
    extra
        .iter()
        .filter(|(k, _)| k.as_str() == "cache_control")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A turn's blocks as content: a lone plain text block becomes a string.
fn compact(mut blocks: Vec<ContentBlock>) -> MessageContent {
    if let [ContentBlock::Text { extra, .. }] = blocks.as_slice() {
        if extra.is_empty() {
            if let Some(ContentBlock::Text { text, .. }) = blocks.pop() {
                return MessageContent::Text(text);
            }
        }
    }
    MessageContent::Blocks(blocks)
}

fn content_blocks(content: Option<&Content>) -> Result<Vec<ContentBlock>, AdapterError> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(s)) if s.is_empty() => {}
        Some(Content::Text(s)) => out.push(ContentBlock::text(s.clone())),
        Some(Content::Parts(parts)) => {
            for part in parts {
                match part {
                    ContentPart::Text { text, extra } => {
                        if !text.is_empty() {
                            out.push(ContentBlock::Text {
                                text: text.clone(),
                                extra: keep_cache_control(extra),
                            });
                        }
                    }
                    ContentPart::ImageUrl { image_url, extra } => out.push(ContentBlock::Image {
                        source: image_source(&image_url.url)?,
                        extra: keep_cache_control(extra),
                    }),
                    ContentPart::Other(v) => {
                        let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
                        return Err(AdapterError::Unsupported(format!(
                            "content parts of type `{kind}`"
                        )));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `data:<mime>;base64,<data>` → base64 source; `http(s)://` → URL source.
pub(crate) fn image_source(url: &str) -> Result<ImageSource, AdapterError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| AdapterError::InvalidRequest("image data URL without a `,`".into()))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            AdapterError::InvalidRequest("image data URLs must be base64 encoded".into())
        })?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(AdapterError::InvalidRequest(
        "image_url must be an http(s) URL or a base64 data URL".into(),
    ))
}

fn assistant_blocks(msg: &Message) -> Result<Vec<ContentBlock>, AdapterError> {
    let mut out: Vec<ContentBlock> = thinking_blocks(msg);
    out.extend(content_blocks(msg.content.as_ref())?);
    for call in msg.tool_calls.iter().flatten() {
        let args = call.function.arguments.trim();
        let input = if args.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(args).map_err(|e| {
                AdapterError::InvalidRequest(format!(
                    "arguments of tool call `{}` are not valid JSON: {e}",
                    call.id
                ))
            })?
        };
        if !input.is_object() {
            return Err(AdapterError::InvalidRequest(format!(
                "arguments of tool call `{}` must be a JSON object",
                call.id
            )));
        }
        out.push(ContentBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            extra: Map::new(),
        });
    }
    Ok(out)
}

/// Signed thinking blocks an earlier Anthropic answer left in the message's
/// `thinking_blocks` extra; unsigned ones would be rejected, so they are dropped.
fn thinking_blocks(msg: &Message) -> Vec<ContentBlock> {
    let Some(Value::Array(blocks)) = msg.extra.get("thinking_blocks") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(|b| serde_json::from_value::<ContentBlock>(b.clone()).ok())
        .filter(|b| match b {
            ContentBlock::Thinking { signature, .. } => {
                signature.as_ref().is_some_and(|s| !s.is_empty())
            }
            ContentBlock::RedactedThinking { data, .. } => !data.is_empty(),
            _ => false,
        })
        .collect()
}

fn tool_result(msg: &Message) -> Result<ContentBlock, AdapterError> {
    let id = msg.tool_call_id.clone().ok_or_else(|| {
        AdapterError::InvalidRequest("a `tool` message needs a `tool_call_id`".into())
    })?;
    let content = match &msg.content {
        None => None,
        Some(Content::Text(s)) if s.is_empty() => None,
        Some(Content::Text(s)) => Some(MessageContent::Text(s.clone())),
        Some(c @ Content::Parts(_)) => {
            let blocks = content_blocks(Some(c))?;
            (!blocks.is_empty()).then(|| compact(blocks))
        }
    };
    Ok(ContentBlock::ToolResult {
        tool_use_id: id,
        content,
        is_error: None,
        extra: Map::new(),
    })
}

fn tool(t: &Tool) -> Result<AnthropicTool, AdapterError> {
    if t.kind != "function" {
        return Err(AdapterError::Unsupported(format!(
            "tools of type `{}`",
            t.kind
        )));
    }
    let mut schema = t
        .function
        .parameters
        .clone()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("type").or_insert_with(|| Value::from("object"));
    }
    Ok(AnthropicTool {
        name: t.function.name.clone(),
        kind: None,
        description: t.function.description.clone(),
        input_schema: Some(schema),
        extra: keep_cache_control(&t.function.extra),
    })
}

fn tool_choice(
    choice: Option<&Value>,
    parallel_off: bool,
) -> Result<Option<ToolChoice>, AdapterError> {
    let disable = parallel_off.then_some(true);
    let Some(choice) = choice else {
        return Ok(disable.map(|_| ToolChoice::Auto {
            disable_parallel_tool_use: disable,
        }));
    };
    let named = choice
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    Ok(Some(match (choice.as_str(), named) {
        (Some("auto"), _) => ToolChoice::Auto {
            disable_parallel_tool_use: disable,
        },
        (Some("none"), _) => ToolChoice::None,
        (Some("required"), _) => ToolChoice::Any {
            disable_parallel_tool_use: disable,
        },
        (None, Some(name)) => ToolChoice::Tool {
            name: name.to_owned(),
            disable_parallel_tool_use: disable,
        },
        _ => {
            return Err(AdapterError::InvalidRequest(format!(
                "unknown tool_choice {choice}"
            )))
        }
    }))
}
