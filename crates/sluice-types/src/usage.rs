//! Token usage: the normalised counters every adapter reports, and the OpenAI
//! `usage` wire object.

use serde::{Deserialize, Serialize};

/// Normalised token usage of one upstream answer, whatever its provider.
///
/// `input` counts every prompt token, including cached ones (`cache_read` and
/// `cache_write` are subsets of it), so `input + output` is what limits charge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input + self.output
    }

    /// Converts to the OpenAI wire object.
    pub fn to_openai(&self) -> Usage {
        Usage {
            prompt_tokens: self.input,
            completion_tokens: self.output,
            total_tokens: self.total(),
            prompt_tokens_details: (self.cache_read > 0).then_some(PromptTokensDetails {
                cached_tokens: self.cache_read,
            }),
            completion_tokens_details: (self.reasoning > 0).then_some(CompletionTokensDetails {
                reasoning_tokens: self.reasoning,
            }),
        }
    }
}

/// OpenAI `usage` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

impl Usage {
    /// Converts the OpenAI wire object to normalised usage.
    pub fn to_tokens(&self) -> TokenUsage {
        TokenUsage {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            cache_read: self
                .prompt_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens),
            cache_write: 0,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}
