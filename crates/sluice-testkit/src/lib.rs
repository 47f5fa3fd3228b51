//! Test kit for sluice: mock LLM upstreams that speak each provider's exact
//! wire format over real sockets, record what they receive and inject
//! faults.
//!
//! One [`MockUpstream`] serves every wire, chosen by path:
//!
//! | wire | routes |
//! |---|---|
//! | OpenAI | `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models` |
//! | Azure OpenAI | `POST /openai/deployments/{deployment}/chat/completions` and `/embeddings`, `POST /openai/v1/chat/completions` |
//! | Anthropic | `POST /v1/messages` |
//! | Gemini | `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent[?alt=sse]`, `:embedContent`, `:batchEmbedContents` (also under `/v1/`) |
//!
//! Answers come from a queue of [`Script`]s (one per scripted request, in
//! order), then from a default script. A script is wire-neutral: a
//! [`Reply`] (text, tool call or error), the usage to report and the
//! [`Fault`]s to inject (first-byte delay, delay between stream events,
//! abort after N events, reset without answer).
//!
//! ```no_run
//! # async fn demo() {
//! use sluice_testkit::{MockUpstream, Script};
//! let upstream = MockUpstream::start().await;
//! upstream.push(Script::rate_limited(2));
//! upstream.push(Script::text("Hello!").with_usage(12, 3));
//! // ... point the gateway at upstream.url(), send requests ...
//! assert_eq!(upstream.hits(), 2);
//! # }
//! ```
//!
//! The [`sse`] module parses SSE bodies for assertions. The binary
//! `sluice-mock-upstream` is a separate, minimal and fast OpenAI upstream
//! for load tests.

mod body;
mod routes;
mod script;
mod server;
pub mod sse;
mod wire;

pub use script::{
    Fault, Finish, MockUsage, Reply, Script, Wire, DEFAULT_INPUT_TOKENS, PIECE_CHARS,
};
pub use server::{MockUpstream, Recorded, Responder};
