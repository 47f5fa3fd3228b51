//! What a mock upstream answers: a [`Script`] is one scripted answer (a
//! [`Reply`], the [`MockUsage`] it reports and the [`Fault`]s injected while
//! sending it). Scripts are wire-neutral: the same script is rendered in
//! OpenAI, Anthropic or Gemini shape depending on the route that consumes it.

use std::time::Duration;

use serde_json::Value;

/// The wire format a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI Chat Completions and Embeddings (also Azure OpenAI's paths).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (Generative Language API `v1beta`).
    Gemini,
}

/// The content (or error) of one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An assistant text answer. Streamed in pieces of about 3 characters.
    Text(String),
    /// One tool (function) call. `arguments` is the JSON object of arguments;
    /// OpenAI receives it serialised as a string, streamed in pieces.
    ToolCall { name: String, arguments: Value },
    /// An error with the given status, its body in the wire's own error shape
    /// (Anthropic: 529 → `overloaded_error`, 429 → `rate_limit_error`, ...;
    /// Gemini: 429 → `RESOURCE_EXHAUSTED`, ...).
    Status(u16),
    /// 429 in the wire's own shape. OpenAI and Anthropic send a `retry-after`
    /// header (seconds); Gemini, like the real API, sends no header but a
    /// `google.rpc.RetryInfo` detail with `retryDelay: "<secs>s"` in the body.
    RateLimited { retry_after_secs: u64 },
    /// 400 "context length exceeded" in the wire's own shape.
    ContextLength,
    /// An error answered exactly as given (status and JSON body).
    Error { status: u16, body: Value },
}

/// Why generation stopped, for successful replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finish {
    /// Natural end (`stop` / `end_turn` / `STOP`), or a tool call
    /// (`tool_calls` / `tool_use`).
    #[default]
    Natural,
    /// The output cap was hit (`length` / `max_tokens` / `MAX_TOKENS`).
    Length,
}

/// Token usage reported by an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockUsage {
    /// Prompt tokens, cached ones included (OpenAI `prompt_tokens`, Gemini
    /// `promptTokenCount`; Anthropic's `input_tokens` is `input - cached`).
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Prompt tokens served from the provider's prompt cache (OpenAI
    /// `cached_tokens`, Anthropic `cache_read_input_tokens`, Gemini
    /// `cachedContentTokenCount`).
    pub cached: u64,
}

/// Faults injected while answering. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// Wait this long before sending the response head.
    pub delay_first_byte: Option<Duration>,
    /// Wait this long between two stream events (not before the first).
    pub chunk_delay: Option<Duration>,
    /// Send this many stream events, then abort the connection (no end
    /// marker, no terminating chunk: the client sees an incomplete body). On
    /// a non-streaming answer: send this many bytes of the body, then abort.
    pub truncate_after: Option<usize>,
    /// Close the connection without answering at all (after recording).
    pub reset: bool,
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub reply: Reply,
    pub usage: MockUsage,
    pub finish: Finish,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    pub fault: Fault,
}

/// Default prompt token count of scripted answers.
pub const DEFAULT_INPUT_TOKENS: u64 = 10;

/// Characters per streamed piece (and per "token" of the default usage).
pub const PIECE_CHARS: usize = 3;

impl Script {
    /// A text answer. Default usage: 10 input tokens, one output token per
    /// streamed piece (`ceil(chars / 3)`, at least 1).
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        let output = pieces_of(&text);
        Self::new(Reply::Text(text), output)
    }

    /// A tool call answer. Default usage: 10 input tokens, one output token
    /// per 3 characters of the serialised arguments.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        let output = pieces_of(&arguments.to_string());
        Self::new(
            Reply::ToolCall {
                name: name.into(),
                arguments,
            },
            output,
        )
    }

    /// An error with this status, in the wire's own error shape.
    pub fn status(status: u16) -> Self {
        Self::new(Reply::Status(status), 0)
    }

    /// A 429 asking to retry after `retry_after_secs` (see [`Reply::RateLimited`]).
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(Reply::RateLimited { retry_after_secs }, 0)
    }

    /// A 400 "context length exceeded", in the wire's own shape.
    pub fn context_length_exceeded() -> Self {
        Self::new(Reply::ContextLength, 0)
    }

    /// An error answered exactly as given (status and JSON body).
    pub fn error(status: u16, body: Value) -> Self {
        Self::new(Reply::Error { status, body }, 0)
    }

    /// Sets the usage the answer reports (input includes any cached tokens).
    pub fn with_usage(mut self, input: u64, output: u64) -> Self {
        self.usage.input = input;
        self.usage.output = output;
        self
    }

    /// Sets how many of the input tokens were prompt-cache reads.
    pub fn with_cached(mut self, cached: u64) -> Self {
        self.usage.cached = cached;
        self
    }

    /// Reports the answer as cut by the output cap instead of a natural end.
    pub fn with_length_finish(mut self) -> Self {
        self.finish = Finish::Length;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits `delay` before sending the response head.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.fault.delay_first_byte = Some(delay);
        self
    }

    /// Waits `delay` between stream events.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.fault.chunk_delay = Some(delay);
        self
    }

    /// Aborts the connection after `events` stream events (see [`Fault::truncate_after`]).
    pub fn truncated_after(mut self, events: usize) -> Self {
        self.fault.truncate_after = Some(events);
        self
    }

    /// Closes the connection without answering.
    pub fn reset(mut self) -> Self {
        self.fault.reset = true;
        self
    }

    fn new(reply: Reply, output: u64) -> Self {
        Script {
            reply,
            usage: MockUsage {
                input: DEFAULT_INPUT_TOKENS,
                output,
                cached: 0,
            },
            finish: Finish::Natural,
            headers: Vec::new(),
            fault: Fault::default(),
        }
    }
}

impl Default for Script {
    /// The default answer: `Script::text("Hello from the mock upstream.")`.
    fn default() -> Self {
        Script::text("Hello from the mock upstream.")
    }
}

/// Number of ~3-character pieces `text` streams as (at least 1).
pub(crate) fn pieces_of(text: &str) -> u64 {
    (text.chars().count().div_ceil(PIECE_CHARS)).max(1) as u64
}

/// Splits `text` into pieces of [`PIECE_CHARS`] characters (one empty piece
/// for an empty text).
pub(crate) fn split_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}
