//! Token estimates used before the upstream reports real usage: about one
//! token per four bytes of text (OpenAI's rule of thumb), plus a small per
//! message overhead. Real counts from the upstream always replace these.

use sluice_types::{ChatRequest, Content, ContentPart};

/// Rough token count of a text: at least one token per word, one per 4 bytes.
pub fn estimate_text(text: &str) -> u64 {
    let words = text.split_whitespace().count() as u64;
    words.max((text.len() as u64).div_ceil(4))
}

/// Estimated prompt tokens of a chat request (text, tool calls and tool
/// definitions; each image counts as 85 tokens, OpenAI's low-detail cost).
pub fn estimate_chat_input(req: &ChatRequest) -> u64 {
    let mut n = 3;
    for m in &req.messages {
        n += 4;
        match &m.content {
            Some(Content::Text(t)) => n += estimate_text(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    n += match p {
                        ContentPart::Text { text, .. } => estimate_text(text),
                        ContentPart::ImageUrl { .. } => 85,
                        ContentPart::Other(v) => (v.to_string().len() as u64).div_ceil(4),
                    };
                }
            }
            None => {}
        }
        for c in m.tool_calls.iter().flatten() {
            n += estimate_text(&c.function.name) + estimate_text(&c.function.arguments);
        }
    }
    for t in req.tools.iter().flatten() {
        n += estimate_text(&t.function.name)
            + t.function
                .parameters
                .as_ref()
                .map_or(0, |p| (p.to_string().len() as u64).div_ceil(4));
    }
    n
}
