//! Provider adapters: pure translators between sluice's canonical form (the
//! OpenAI Chat Completions shapes in `sluice-types`) and each provider's wire
//! format — requests, responses, SSE streams and errors. Adapters never do I/O;
//! the server's `dispatch` module sends what they build.
//!
//! Each provider lives in its own folder with its fixtures under `tests/`.
//! Inbound translators (a client speaking the Anthropic format to sluice) live
//! beside the upstream ones of the same family, in `anthropic/inbound.rs`.

pub mod adapter;
pub mod anthropic;
pub mod error;
pub mod fuzzing;
pub mod gemini;
pub mod openai;
pub mod ratelimit;
pub mod sse;

pub use adapter::*;
pub use error::*;
