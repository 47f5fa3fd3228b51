//! Wire schemas shared by every sluice crate: the OpenAI Chat Completions shapes
//! (sluice's canonical in-memory request/response/chunk form), the Anthropic
//! Messages shapes, embeddings, token usage and the inbound API format enum;
//! and calendar arithmetic (`civil`). serde only, no I/O.

pub mod anthropic;
pub mod chat;
pub mod civil;
pub mod embeddings;
mod extra;
pub mod secret;
pub mod usage;

pub use chat::*;
pub use embeddings::*;
pub use secret::Secret;
pub use usage::*;

/// The wire format a client spoke to sluice (decides the answer's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// OpenAI Chat Completions / Embeddings / Models.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl ApiFormat {
    /// Low-cardinality label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFormat::OpenAi => "openai",
            ApiFormat::Anthropic => "anthropic",
        }
    }
}
