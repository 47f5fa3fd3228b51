//! Prompt token counts, used before the upstream reports real usage: by
//! token limits (the reservation), budgets and the `max_input_tokens`
//! guard. Real counts from the upstream always replace these at the end.
//!
//! A model counts with its tokenizer family ([`Tokenizer`]): OpenAI's BPE
//! encodings through `tiktoken-rs` (`o200k_base` for the GPT-4o, 4.1, 5 and
//! o-series, `cl100k_base` for GPT-4 and 3.5), or elsewhere an estimate of
//! one token per four bytes of text and at least one per word (OpenAI's rule
//! of thumb; Anthropic's and Gemini's tokenizers are not public). Chat
//! prompts add OpenAI's framing: 3 tokens per message and 3 to prime the
//! answer; each image counts as 85 tokens (low detail).
//!
//! Texts over [`EXACT_LIMIT`] bytes are estimated even for BPE models, so a
//! huge prompt never holds a runtime thread for milliseconds; the
//! reservation settles to the real usage anyway.
//!
//! BPE counts are remembered by a hash of the text (SipHash with a key
//! random per process), by each thread for itself (at most
//! [`CACHE_ENTRIES`] per thread, forgotten all at once when full): system
//! prompts and few-shot examples repeat from request to request, and
//! encoding even a short text costs ~10k instructions while a lookup costs
//! a few hundred. Per thread, a lookup writes nothing another thread
//! reads: a map shared by every worker took a read lock on every lookup,
//! one cache line every worker wrote for the same popular text.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use serde_json::Value;
use sluice_types::{ChatRequest, Content, ContentPart};

use crate::config::raw::{ProviderKind, Tokenizer};
use crate::policy::rate::PassThroughState;

/// Texts longer than this (bytes) are estimated, not encoded.
pub const EXACT_LIMIT: usize = 256 * 1024;

/// Remembered BPE counts per thread, at most.
pub const CACHE_ENTRIES: usize = 16_384;

/// Texts shorter than this are encoded each time (the lookup would not pay).
const CACHE_MIN_BYTES: usize = 8;

/// Tokens per image part (OpenAI's low-detail cost).
const IMAGE_TOKENS: u64 = 85;

/// Rough token count of a text: at least one token per word, one per 4 bytes.
pub fn estimate_text(text: &str) -> u64 {
    let words = text.split_whitespace().count() as u64;
    words.max((text.len() as u64).div_ceil(4))
}

thread_local! {
    /// BPE counts by the hash of (tokenizer, text), this thread's.
    static COUNTS: RefCell<HashMap<u64, u32, PassThroughState>> = RefCell::default();
}

/// The hash of (tokenizer, text) that [`COUNTS`] is keyed by.
fn text_hash(tk: Tokenizer, text: &str) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one((tk, text))
}

fn o200k() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<&'static tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(tiktoken_rs::o200k_base_singleton)
}

fn cl100k() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<&'static tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(tiktoken_rs::cl100k_base_singleton)
}

impl Tokenizer {
    /// The family a deployment's upstream model uses: OpenAI-style APIs by
    /// model name, everything else estimated.
    pub fn infer(kind: ProviderKind, upstream_model: &str) -> Tokenizer {
        let m = upstream_model.to_ascii_lowercase();
        match kind {
            ProviderKind::Openai | ProviderKind::Azure => {
                let old = ["gpt-4-", "gpt-35", "gpt-3.5", "text-embedding-"];
                if m == "gpt-4" || old.iter().any(|p| m.starts_with(p)) {
                    Tokenizer::Cl100k
                } else {
                    Tokenizer::O200k
                }
            }
            _ => Tokenizer::Estimate,
        }
    }

    /// Tokens of one text.
    pub fn count(self, text: &str) -> u64 {
        if text.len() > EXACT_LIMIT || self == Tokenizer::Estimate {
            return estimate_text(text);
        }
        if text.len() < CACHE_MIN_BYTES {
            return self.encode_len(text);
        }
        let key = text_hash(self, text);
        if let Some(n) = COUNTS.with_borrow(|c| c.get(&key).copied()) {
            return u64::from(n);
        }
        let n = self.encode_len(text);
        COUNTS.with_borrow_mut(|c| {
            if c.len() >= CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, u32::try_from(n).unwrap_or(u32::MAX));
        });
        n
    }

    /// Tokens of one text, encoded.
    fn encode_len(self, text: &str) -> u64 {
        match self {
            Tokenizer::O200k => o200k().encode_ordinary(text).len() as u64,
            Tokenizer::Cl100k => cl100k().encode_ordinary(text).len() as u64,
            Tokenizer::Estimate => estimate_text(text),
        }
    }

    /// Loads the encoding's tables (about 0.1 s), so the first request
    /// does not pay for it.
    pub fn warm_up(self) {
        match self {
            Tokenizer::O200k => drop(o200k()),
            Tokenizer::Cl100k => drop(cl100k()),
            Tokenizer::Estimate => {}
        }
    }
}

/// Prompt tokens of a chat request (text, tool calls and tool definitions).
pub fn count_chat_input(req: &ChatRequest, tk: Tokenizer) -> u64 {
    let mut n = 3;
    for m in &req.messages {
        n += 3;
        match &m.content {
            Some(Content::Text(t)) => n += tk.count(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    n += match p {
                        ContentPart::Text { text, .. } => tk.count(text),
                        ContentPart::ImageUrl { .. } => IMAGE_TOKENS,
                        ContentPart::Other(v) => tk.count(&v.to_string()),
                    };
                }
            }
            None => {}
        }
        for c in m.tool_calls.iter().flatten() {
            n += tk.count(&c.function.name) + tk.count(&c.function.arguments);
        }
    }
    for t in req.tools.iter().flatten() {
        n += tk.count(&t.function.name);
        if let Some(p) = &t.function.parameters {
            n += tk.count(&p.to_string());
        }
    }
    n
}

/// Prompt tokens of an embeddings `input`: a string, strings, or token id
/// arrays (counted as they are).
pub fn count_embedding_input(input: &Value, tk: Tokenizer) -> u64 {
    match input {
        Value::String(s) => tk.count(s),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Number(_) => 1,
                Value::Array(ids) => ids.len() as u64,
                other => count_embedding_input(other, tk),
            })
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpe_counts_match_the_published_encodings() {
        // "hello world" is two tokens in both encodings; tiktoken's README.
        assert_eq!(Tokenizer::O200k.count("hello world"), 2);
        assert_eq!(Tokenizer::Cl100k.count("hello world"), 2);
        assert_eq!(Tokenizer::Estimate.count("hello world"), 3);
    }

    #[test]
    fn families_follow_the_upstream_model() {
        use ProviderKind::*;
        assert_eq!(Tokenizer::infer(Openai, "gpt-4o-mini"), Tokenizer::O200k);
        assert_eq!(Tokenizer::infer(Azure, "gpt-4.1"), Tokenizer::O200k);
        assert_eq!(Tokenizer::infer(Openai, "gpt-4"), Tokenizer::Cl100k);
        assert_eq!(Tokenizer::infer(Openai, "gpt-3.5-turbo"), Tokenizer::Cl100k);
        assert_eq!(
            Tokenizer::infer(Openai, "text-embedding-3-small"),
            Tokenizer::Cl100k
        );
        assert_eq!(
            Tokenizer::infer(Anthropic, "claude-sonnet-4-5"),
            Tokenizer::Estimate
        );
        assert_eq!(Tokenizer::infer(Mock, "x"), Tokenizer::Estimate);
    }

    #[test]
    fn remembered_counts_equal_encoded_ones() {
        let texts = [
            "You are a helpful assistant.",
            "Bonjour, comment ça va ? 你好",
        ];
        for t in texts {
            let encoded = Tokenizer::O200k.encode_len(t);
            assert_eq!(Tokenizer::O200k.count(t), encoded);
            assert_eq!(Tokenizer::O200k.count(t), encoded, "from the cache");
            assert_eq!(Tokenizer::Cl100k.count(t), Tokenizer::Cl100k.encode_len(t));
        }
        let remembered =
            COUNTS.with_borrow(|c| c.contains_key(&text_hash(Tokenizer::O200k, texts[0])));
        assert!(remembered, "the count is remembered by this thread");
        assert!(COUNTS.with_borrow(|c| c.len()) <= CACHE_ENTRIES);
    }

    #[test]
    fn huge_texts_are_estimated() {
        let text = "a ".repeat(EXACT_LIMIT);
        assert_eq!(Tokenizer::O200k.count(&text), estimate_text(&text));
    }

    #[test]
    fn chat_prompts_add_openais_framing() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "hello world"},
                {"role": "user", "content": "hello world"}
            ]
        }))
        .unwrap();
        // 3 priming + 2 × (3 framing + 2 text).
        assert_eq!(count_chat_input(&req, Tokenizer::O200k), 13);
    }

    #[test]
    fn embedding_inputs_of_every_shape() {
        let tk = Tokenizer::O200k;
        let one = serde_json::json!("hello world");
        let many = serde_json::json!(["hello world", "hello world"]);
        let ids = serde_json::json!([[1, 2, 3], [4]]);
        let flat = serde_json::json!([1, 2, 3]);
        assert_eq!(count_embedding_input(&one, tk), 2);
        assert_eq!(count_embedding_input(&many, tk), 4);
        assert_eq!(count_embedding_input(&ids, tk), 4);
        assert_eq!(count_embedding_input(&flat, tk), 3);
    }
}
