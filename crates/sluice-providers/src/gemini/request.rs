//! Canonical [`ChatRequest`] → Gemini `GenerateContentRequest`.
//!
//! System and developer messages become `systemInstruction`; user turns stay
//! `user`, assistant turns become `model`; tool results become `user` turns of
//! `functionResponse` parts, named after the assistant tool call they answer
//! (Gemini matches results by function name, OpenAI by call id). Consecutive
//! turns of one role are merged, as Gemini wants roles to alternate.

use std::collections::HashMap;

use serde_json::{json, Value};
use sluice_types::{ChatRequest, Content as ChatContent, ContentPart, Message, Role};

use super::schema;
use super::types::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, Tool, ToolConfig,
};
use crate::AdapterError;

/// The thought signature Gemini documents for function calls it did not
/// generate in this request's context. Gemini 3 models reject a replayed
/// `functionCall` part without a signature (400), and the real signature cannot
/// travel through OpenAI-format clients, so replayed calls carry this one.
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Translates a canonical chat request into Gemini's request body.
pub fn build(req: &ChatRequest) -> Result<GenerateContentRequest, AdapterError> {
    let mut turns = Turns::default();
    for m in &req.messages {
        turns.message(m)?;
    }
    if turns.contents.is_empty() {
        return Err(AdapterError::InvalidRequest(
            "at least one user or assistant message is required".into(),
        ));
    }
    let tools = tools(req)?;
    let tool_config = if tools.is_empty() {
        None
    } else {
        tool_config(req.tool_choice.as_ref())?
    };
    let generation_config = generation_config(req)?;
    Ok(GenerateContentRequest {
        contents: turns.contents,
        system_instruction: (!turns.system.is_empty()).then_some(Content {
            role: None,
            parts: turns.system,
        }),
        tools,
        tool_config,
        generation_config: (!generation_config.is_empty()).then_some(generation_config),
    })
}

#[derive(Default)]
struct Turns {
    system: Vec<Part>,
    contents: Vec<Content>,
    /// tool_call id → function name, from the assistant turns seen so far.
    call_names: HashMap<String, String>,
}

impl Turns {
    fn push(&mut self, role: &str, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        match self.contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => self.contents.push(Content {
                role: Some(role.into()),
                parts,
            }),
        }
    }

    fn message(&mut self, m: &Message) -> Result<(), AdapterError> {
        match m.role {
            Role::System | Role::Developer => {
                let text = m.content.as_ref().map(ChatContent::joined_text);
                if let Some(text) = text.filter(|t| !t.is_empty()) {
                    self.system.push(Part::text(text));
                }
            }
            Role::User => {
                let parts = user_parts(m.content.as_ref())?;
                self.push("user", parts);
            }
            Role::Assistant => {
                let parts = self.assistant_parts(m)?;
                self.push("model", parts);
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = self
                    .call_names
                    .get(id)
                    .cloned()
                    .or_else(|| m.name.clone())
                    .ok_or_else(|| {
                        AdapterError::InvalidRequest(format!(
                            "tool message answers unknown tool_call_id {id:?}"
                        ))
                    })?;
                self.push("user", vec![function_response(name, m.content.as_ref())]);
            }
            Role::Function => {
                let name = m.name.clone().ok_or_else(|| {
                    AdapterError::InvalidRequest("function message without name".into())
                })?;
                self.push("user", vec![function_response(name, m.content.as_ref())]);
            }
        }
        Ok(())
    }

    fn assistant_parts(&mut self, m: &Message) -> Result<Vec<Part>, AdapterError> {
        let mut parts = Vec::new();
        let text = m.content.as_ref().map(ChatContent::joined_text);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            parts.push(Part::text(text));
        }
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            let name = &call.function.name;
            let args = parse_args(&call.function.arguments, name)?;
            self.call_names.insert(call.id.clone(), name.clone());
            parts.push(Part {
                function_call: Some(FunctionCall {
                    id: None,
                    name: name.clone(),
                    args: Some(args),
                }),
                // Gemini wants the signature on the first call of a step only.
                thought_signature: (i == 0).then(|| SKIP_THOUGHT_SIGNATURE.to_owned()),
                ..Part::default()
            });
        }
        Ok(parts)
    }
}

/// Parses OpenAI's JSON-text arguments into the object Gemini wants.
fn parse_args(arguments: &str, name: &str) -> Result<Value, AdapterError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(AdapterError::InvalidRequest(format!(
            "arguments of tool call {name:?} are not a JSON object"
        ))),
    }
}

/// A tool result: a JSON object is sent as is, anything else as `{"result": …}`.
fn function_response(name: String, content: Option<&ChatContent>) -> Part {
    let text = content.map(ChatContent::joined_text).unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => json!({ "result": v }),
        Err(_) => json!({ "result": text }),
    };
    Part {
        function_response: Some(FunctionResponse {
            id: None,
            name,
            response,
        }),
        ..Part::default()
    }
}

fn user_parts(content: Option<&ChatContent>) -> Result<Vec<Part>, AdapterError> {
    let mut out = Vec::new();
    match content {
        Some(ChatContent::Text(text)) if !text.is_empty() => out.push(Part::text(text.clone())),
        Some(ChatContent::Parts(parts)) => {
            for part in parts {
                match part {
                    ContentPart::Text { text, .. } if text.is_empty() => {}
                    ContentPart::Text { text, .. } => out.push(Part::text(text.clone())),
                    ContentPart::ImageUrl { image_url, .. } => {
                        out.push(media_part(&image_url.url)?)
                    }
                    ContentPart::Other(v) => out.push(other_part(v)?),
                }
            }
        }
        Some(ChatContent::Text(_)) | None => {}
    }
    Ok(out)
}

/// `data:` URLs become `inlineData`, http(s) URLs `fileData`.
fn media_part(url: &str) -> Result<Part, AdapterError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let bad = || AdapterError::InvalidRequest("only base64 data: URLs are supported".into());
        let (meta, data) = rest.split_once(',').ok_or_else(bad)?;
        let meta = meta.strip_suffix(";base64").ok_or_else(bad)?;
        let mime = meta.split(';').next().filter(|m| !m.is_empty());
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: mime.unwrap_or("application/octet-stream").to_owned(),
                data: data.to_owned(),
            }),
            ..Part::default()
        });
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(AdapterError::InvalidRequest(format!(
            "media URL must be http(s) or a data: URL, got {:.40}",
            url
        )));
    }
    Ok(Part {
        file_data: Some(FileData {
            mime_type: Some(guess_mime(url).to_owned()),
            file_uri: url.to_owned(),
        }),
        ..Part::default()
    })
}

/// MIME type from a URL's file extension; `image/jpeg` when unknown.
pub fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        _ => "image/jpeg",
    }
}

/// OpenAI `input_audio` and `file` (with inline `file_data`) parts.
fn other_part(v: &Value) -> Result<Part, AdapterError> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
    match kind {
        "input_audio" => {
            let audio = &v["input_audio"];
            let data = audio["data"].as_str().ok_or_else(|| {
                AdapterError::InvalidRequest("input_audio part without data".into())
            })?;
            let format = audio["format"].as_str().unwrap_or("wav");
            Ok(Part {
                inline_data: Some(Blob {
                    mime_type: format!("audio/{format}"),
                    data: data.to_owned(),
                }),
                ..Part::default()
            })
        }
        "file" => match v["file"]["file_data"].as_str() {
            Some(url) => media_part(url),
            None => Err(AdapterError::Unsupported(
                "file parts without file_data".into(),
            )),
        },
        other => Err(AdapterError::Unsupported(format!("{other} content parts"))),
    }
}

fn tools(req: &ChatRequest) -> Result<Vec<Tool>, AdapterError> {
    let mut decls = Vec::new();
    for tool in req.tools.iter().flatten() {
        if tool.kind != "function" {
            return Err(AdapterError::Unsupported(format!("{} tools", tool.kind)));
        }
        let f = &tool.function;
        let parameters = f
            .parameters
            .as_ref()
            .map(schema::to_gemini)
            // Gemini rejects an OBJECT schema without properties (a no-argument function).
            .filter(|p| p.get("properties").is_some_and(|p| p != &json!({})));
        decls.push(FunctionDeclaration {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters,
        });
    }
    Ok(if decls.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: decls,
        }]
    })
}

fn tool_config(choice: Option<&Value>) -> Result<Option<ToolConfig>, AdapterError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let (mode, names) = match choice {
        Value::String(s) => match s.as_str() {
            "none" => ("NONE", None),
            "auto" => ("AUTO", None),
            "required" => ("ANY", None),
            other => {
                return Err(AdapterError::InvalidRequest(format!(
                    "unknown tool_choice {other:?}"
                )))
            }
        },
        v => {
            let name = v.pointer("/function/name").and_then(Value::as_str);
            let name = name.ok_or_else(|| {
                AdapterError::InvalidRequest("tool_choice object without function.name".into())
            })?;
            ("ANY", Some(vec![name.to_owned()]))
        }
    };
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode: mode.into(),
            allowed_function_names: names,
        },
    }))
}

fn generation_config(req: &ChatRequest) -> Result<GenerationConfig, AdapterError> {
    let extra = |k: &str| req.extra.get(k);
    let mut gc = GenerationConfig {
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|v| !v.is_empty()),
        candidate_count: extra("n").and_then(Value::as_u64).map(|n| n as u32),
        max_output_tokens: req.max_output(),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: extra("top_k").and_then(Value::as_u64).map(|k| k as u32),
        seed: extra("seed").and_then(Value::as_i64),
        presence_penalty: extra("presence_penalty").and_then(Value::as_f64),
        frequency_penalty: extra("frequency_penalty").and_then(Value::as_f64),
        ..GenerationConfig::default()
    };
    if let Some(format) = &req.response_format {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => gc.response_mime_type = Some("application/json".into()),
            Some("json_schema") => {
                gc.response_mime_type = Some("application/json".into());
                gc.response_schema = format.pointer("/json_schema/schema").map(schema::to_gemini);
            }
            Some(other) => {
                return Err(AdapterError::Unsupported(format!(
                    "response_format {other}"
                )))
            }
        }
    }
    Ok(gc)
}
