//! The one error type of the gateway and its mapping to HTTP, in one place:
//! OpenAI-shaped bodies on OpenAI endpoints, Anthropic-shaped on `/v1/messages`.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use sluice_providers::{AdapterError, ErrorClass, UpstreamError};
use sluice_types::ApiFormat;

/// What went wrong, with enough context to answer and to count it.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    /// A message for the client: what was wrong and how to fix it.
    pub message: String,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// The `providers:` name that answered, for upstream errors.
    pub provider: Option<String>,
    pub retry_after: Option<Duration>,
    /// The HTTP status the upstream answered, for upstream errors that
    /// had one (trace attributes).
    pub upstream_status: Option<u16>,
}

/// The kinds of failure, each with one status and one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not valid JSON or not the expected shape.
    InvalidRequest,
    /// No key, or an unknown one.
    Unauthorized,
    /// Authenticated, but not allowed: an API outside the key's scopes, a
    /// subscription not approved, an admin route above the caller's role.
    Forbidden,
    /// The change clashes with existing state (e.g. a name already taken).
    Conflict,
    /// Unknown model or one this key may not use.
    ModelNotFound,
    /// A rate limit of a policy refused the request (429, `Retry-After`).
    RateLimited,
    /// A concurrency queue was full (429, `Retry-After`).
    QueueFull,
    /// No concurrency slot came free in time (503, `Retry-After`).
    QueueTimeout,
    /// A USD budget would be exceeded (402, `Retry-After` until it resets).
    BudgetExceeded,
    /// Body over the size limit.
    PayloadTooLarge,
    /// A parameter the chosen provider cannot honour.
    Unsupported,
    /// No such endpoint.
    NotFound,
    /// An upstream answered with an error of this class.
    Upstream(ErrorClass),
    /// The upstream's answer could not be understood or its stream broke.
    BadUpstreamResponse,
    /// The whole request ran out of time.
    Timeout,
    /// The server is shutting down or not ready.
    Unavailable,
    /// A bug in sluice.
    Internal,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            param: None,
            provider: None,
            retry_after: None,
            upstream_status: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A classified upstream error from `provider`.
    pub fn upstream(provider: &str, e: UpstreamError) -> Self {
        let status = e
            .status
            .map(|s| format!(" (HTTP {})", s.as_u16()))
            .unwrap_or_default();
        GatewayError {
            kind: ErrorKind::Upstream(e.class),
            message: format!("provider `{provider}` failed{status}: {}", e.message),
            param: None,
            provider: Some(provider.to_owned()),
            retry_after: e.retry_after,
            upstream_status: e.status.map(|s| s.as_u16()),
        }
    }

    /// A translation failure: the client's request cannot be expressed for the
    /// provider (client error) or its answer was not understood (upstream error).
    pub fn adapter(provider: &str, e: AdapterError) -> Self {
        let kind = match &e {
            AdapterError::Unsupported(_) => ErrorKind::Unsupported,
            AdapterError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            AdapterError::BadResponse(_)
            | AdapterError::StreamError(_)
            | AdapterError::Truncated => ErrorKind::BadUpstreamResponse,
        };
        let mut err = GatewayError::new(kind, format!("provider `{provider}`: {e}"));
        err.provider = Some(provider.to_owned());
        err
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited | ErrorKind::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::QueueTimeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::Upstream(class) => match class {
                ErrorClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorClass::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
                ErrorClass::BadRequest
                | ErrorClass::ContextLength
                | ErrorClass::ContentFiltered => StatusCode::BAD_REQUEST,
                // Auth failures upstream are the operator's credentials, not the client's.
                ErrorClass::Auth | ErrorClass::Connection | ErrorClass::ServerError => {
                    StatusCode::BAD_GATEWAY
                }
            },
            ErrorKind::BadUpstreamResponse => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Where the fault lies: `client`, `upstream`, `policy` or `internal`.
    pub fn source(&self) -> &'static str {
        match self.kind {
            ErrorKind::Upstream(_) | ErrorKind::BadUpstreamResponse | ErrorKind::Timeout => {
                "upstream"
            }
            ErrorKind::Internal | ErrorKind::Unavailable => "internal",
            ErrorKind::RateLimited
            | ErrorKind::QueueFull
            | ErrorKind::QueueTimeout
            | ErrorKind::BudgetExceeded => "policy",
            _ => "client",
        }
    }

    /// Whether the same request may succeed elsewhere or later.
    pub fn retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Upstream(c) => c.retryable(),
            ErrorKind::BadUpstreamResponse | ErrorKind::Timeout | ErrorKind::Unavailable => true,
            _ => false,
        }
    }

    /// Whether this failure counts against the deployment's circuit
    /// breaker: the upstream failed or could not be reached, not the
    /// request (a bad request, a prompt too long, a content filter).
    pub fn breaker_failure(&self) -> bool {
        match self.kind {
            ErrorKind::Upstream(c) => c.retryable() || c == sluice_providers::ErrorClass::Auth,
            ErrorKind::BadUpstreamResponse | ErrorKind::Timeout => true,
            _ => false,
        }
    }

    /// Low-cardinality label: the OpenAI `code`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "invalid_api_key",
            ErrorKind::Forbidden => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::QueueTimeout => "queue_timeout",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unsupported => "unsupported_parameter",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Upstream(c) => c.as_str(),
            ErrorKind::BadUpstreamResponse => "bad_upstream_response",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// OpenAI's `error.type`.
    fn openai_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            400 | 413 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// Anthropic's `error.type`.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        }
    }

    /// The JSON body for the client's format.
    pub fn body(&self, format: ApiFormat) -> Vec<u8> {
        let v = match format {
            ApiFormat::OpenAi => serde_json::json!({"error": {
                "message": self.message, "type": self.openai_type(), "param": self.param, "code": self.code(),
            }}),
            ApiFormat::Anthropic => serde_json::json!({"type": "error", "error": {
                "type": self.anthropic_type(), "message": self.message,
            }}),
        };
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// The full HTTP answer for the client's format.
    pub fn into_response(self, format: ApiFormat) -> Response {
        let mut resp = (
            self.status(),
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body(format),
        )
            .into_response();
        if let Some(ra) = self.retry_after {
            let secs = ra.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(p) = &self.provider {
            if let Ok(v) = HeaderValue::from_str(p) {
                resp.headers_mut().insert("x-sluice-provider", v);
            }
        }
        resp
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_statuses() {
        let e = GatewayError::new(ErrorKind::ModelNotFound, "no model `x`").with_param("model");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&e.body(ApiFormat::OpenAi)).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        let v: serde_json::Value = serde_json::from_slice(&e.body(ApiFormat::Anthropic)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        let up = GatewayError::upstream(
            "openai",
            UpstreamError::new(
                ErrorClass::RateLimited,
                Some(StatusCode::TOO_MANY_REQUESTS),
                "slow down",
            ),
        );
        assert_eq!(up.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(up.message.contains("`openai`") && up.message.contains("429"));
        assert!(up.retryable());
        let mut rl = GatewayError::new(ErrorKind::RateLimited, "rate limit of key `k`");
        rl.retry_after = Some(Duration::from_millis(2500));
        assert_eq!(
            (rl.status(), rl.code(), rl.source()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "policy")
        );
        let v: serde_json::Value = serde_json::from_slice(&rl.body(ApiFormat::OpenAi)).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        let resp = rl.into_response(ApiFormat::Anthropic);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "3");
    }
}
