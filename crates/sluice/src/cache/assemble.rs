//! A streamed answer assembled, chunk by chunk, into the non-streamed
//! answer it amounts to: per choice the role, text, reasoning, tool calls
//! (fragments joined by index) and finish reason; the usage; the id,
//! model and creation time of the first chunk. Gives up (and keeps
//! nothing) once the text held passes its size limit.

use serde_json::Map;
use sluice_types::{
    ChatChunk, ChatResponse, Choice, Content, FinishReason, FunctionCall, Message, Role, ToolCall,
    Usage,
};

/// One choice being assembled.
#[derive(Default)]
struct Part {
    index: u32,
    role: Option<Role>,
    text: Option<String>,
    reasoning: Option<String>,
    /// By the fragments' `index`: id, type, name, arguments.
    tools: Vec<(u32, String, String, String, String)>,
    finish: Option<FinishReason>,
}

pub struct Assembler {
    id: String,
    created: u64,
    model: String,
    fingerprint: Option<String>,
    parts: Vec<Part>,
    usage: Option<Usage>,
    held: u64,
    limit: u64,
    /// Past the limit: nothing will be kept.
    over: bool,
}

impl Assembler {
    /// Keeps at most `limit` bytes of text.
    pub fn new(limit: u64) -> Assembler {
        Assembler {
            id: String::new(),
            created: 0,
            model: String::new(),
            fingerprint: None,
            parts: Vec::new(),
            usage: None,
            held: 0,
            limit,
            over: false,
        }
    }

    /// Whether it gave up (the answer is larger than the limit).
    pub fn over(&self) -> bool {
        self.over
    }

    pub fn push(&mut self, c: &ChatChunk) {
        if self.over {
            return;
        }
        if self.id.is_empty() {
            self.id.clone_from(&c.id);
            self.created = c.created;
            self.model.clone_from(&c.model);
        }
        if c.system_fingerprint.is_some() {
            self.fingerprint.clone_from(&c.system_fingerprint);
        }
        if c.usage.is_some() {
            self.usage.clone_from(&c.usage);
        }
        for ch in &c.choices {
            let part = self.part(ch.index);
            let d = &ch.delta;
            let mut added = 0;
            if d.role.is_some() {
                part.role = d.role;
            }
            if let Some(t) = &d.content {
                part.text.get_or_insert_with(String::new).push_str(t);
                added += t.len();
            }
            if let Some(t) = &d.reasoning_content {
                part.reasoning.get_or_insert_with(String::new).push_str(t);
                added += t.len();
            }
            for call in d.tool_calls.iter().flatten() {
                let i = match part.tools.iter().position(|t| t.0 == call.index) {
                    Some(i) => i,
                    None => {
                        part.tools.push((
                            call.index,
                            String::new(),
                            "function".into(),
                            String::new(),
                            String::new(),
                        ));
                        part.tools.len() - 1
                    }
                };
                let t = &mut part.tools[i];
                if let Some(id) = &call.id {
                    t.1.clone_from(id);
                }
                if let Some(k) = &call.kind {
                    t.2.clone_from(k);
                }
                if let Some(f) = &call.function {
                    if let Some(n) = &f.name {
                        t.3.push_str(n);
                        added += n.len();
                    }
                    if let Some(a) = &f.arguments {
                        t.4.push_str(a);
                        added += a.len();
                    }
                }
            }
            if ch.finish_reason.is_some() {
                part.finish = ch.finish_reason;
            }
            self.held += added as u64;
        }
        if self.held > self.limit {
            self.over = true;
            self.parts = Vec::new();
        }
    }

    fn part(&mut self, index: u32) -> &mut Part {
        let i = match self.parts.iter().position(|p| p.index == index) {
            Some(i) => i,
            None => {
                self.parts.push(Part {
                    index,
                    ..Part::default()
                });
                self.parts.len() - 1
            }
        };
        &mut self.parts[i]
    }

    /// The answer the chunks amount to.
    pub fn finish(self) -> ChatResponse {
        let mut parts = self.parts;
        parts.sort_by_key(|p| p.index);
        let choices = parts
            .into_iter()
            .map(|p| {
                let tool_calls = (!p.tools.is_empty()).then(|| {
                    p.tools
                        .into_iter()
                        .map(|(_, id, kind, name, arguments)| ToolCall {
                            id,
                            kind,
                            function: FunctionCall { name, arguments },
                        })
                        .collect()
                });
                Choice {
                    index: p.index,
                    message: Message {
                        role: p.role.unwrap_or(Role::Assistant),
                        content: p.text.map(Content::Text),
                        name: None,
                        tool_calls,
                        tool_call_id: None,
                        reasoning_content: p.reasoning,
                        extra: Map::new(),
                    },
                    finish_reason: p.finish,
                    logprobs: None,
                }
            })
            .collect();
        ChatResponse {
            id: self.id,
            object: "chat.completion".into(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            system_fingerprint: self.fingerprint,
        }
    }
}
