//! Adapter errors (translation failed) and classified upstream errors (the
//! provider said no). Fallbacks, retries and breakers decide from the class.

use std::time::Duration;

use http::StatusCode;

/// Translation failed: the request cannot be expressed for this provider, or
/// the provider's answer could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The client asked for something this provider cannot do (a client error).
    #[error("{0} is not supported by this provider")]
    Unsupported(String),
    /// The client request is invalid for translation (a client error).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The provider's answer did not match its documented format.
    #[error("could not parse the provider's answer: {0}")]
    BadResponse(String),
    /// The provider reported an error inside a 200 stream.
    #[error("the provider reported an error mid-stream: {0}")]
    StreamError(String),
    /// The stream ended without the provider's end-of-stream marker.
    #[error("the provider's stream ended before it finished")]
    Truncated,
}

/// The class of an upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429 from the provider.
    RateLimited,
    /// 529 / "overloaded_error" / 503.
    Overloaded,
    /// No answer in time.
    Timeout,
    /// Connection refused or reset.
    Connection,
    /// Other 5xx.
    ServerError,
    /// The request was rejected as malformed (400, 404, 422).
    BadRequest,
    /// The prompt does not fit the model's context.
    ContextLength,
    /// Refused by the provider's content filter.
    ContentFiltered,
    /// 401/403: sluice's provider credentials are wrong.
    Auth,
}

impl ErrorClass {
    /// Low-cardinality label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::ServerError => "server_error",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::ContextLength => "context_length_exceeded",
            ErrorClass::ContentFiltered => "content_filtered",
            ErrorClass::Auth => "auth",
        }
    }

    /// Whether retrying the same request elsewhere may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Overloaded
                | ErrorClass::Timeout
                | ErrorClass::Connection
                | ErrorClass::ServerError
        )
    }

    /// The default class for an HTTP status, before looking at the body.
    pub fn from_status(status: StatusCode) -> ErrorClass {
        match status.as_u16() {
            401 | 403 => ErrorClass::Auth,
            408 | 504 => ErrorClass::Timeout,
            413 => ErrorClass::ContextLength,
            429 => ErrorClass::RateLimited,
            503 | 529 => ErrorClass::Overloaded,
            500..=599 => ErrorClass::ServerError,
            _ => ErrorClass::BadRequest,
        }
    }
}

/// A classified upstream error.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    pub class: ErrorClass,
    /// The provider's HTTP status, when it answered.
    pub status: Option<StatusCode>,
    /// The provider's own message (never contains sluice's credentials).
    pub message: String,
    /// From `retry-after` / `retry-after-ms` when the provider sent one.
    pub retry_after: Option<Duration>,
}

impl UpstreamError {
    pub fn new(class: ErrorClass, status: Option<StatusCode>, message: impl Into<String>) -> Self {
        UpstreamError {
            class,
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Reads `retry-after-ms` or `retry-after` (seconds) from response headers.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// Extracts a human message from a JSON error body of the common shapes
/// (`{"error":{"message"}}`, `{"error":"..."}`, `{"message"}`), else the raw text.
pub fn error_message(body: &[u8]) -> String {
    let text = || String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return text();
    };
    let pick = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    v.pointer("/error/message")
        .and_then(pick)
        .or_else(|| v.get("error").and_then(pick))
        .or_else(|| v.get("message").and_then(pick))
        .or_else(|| v.pointer("/0/error/message").and_then(pick))
        .unwrap_or_else(text)
}
