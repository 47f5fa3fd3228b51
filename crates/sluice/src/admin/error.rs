//! The admin API's error type: a [`GatewayError`] answered in the OpenAI
//! error shape, and the mapping of store failures onto HTTP statuses
//! (not found → 404, conflict → 409, invalid → 400, database → 503, logged).

use axum::response::{IntoResponse, Response};
use sluice_store::StoreError;
use sluice_types::ApiFormat;

use crate::error::{ErrorKind, GatewayError};

/// An admin API failure; answers `{"error": {message, type, param, code}}`.
#[derive(Debug)]
pub struct ApiError(pub GatewayError);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError(GatewayError::new(kind, message))
    }

    /// 400 naming the field at fault.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError(GatewayError::invalid(message).with_param(param))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// The same answer for a missing id and one the caller may not see.
    pub fn not_found(what: &str, id: &str) -> Self {
        let id: String = id.chars().take(80).collect();
        Self::new(ErrorKind::NotFound, format!("{what} `{id}` not found"))
    }

    /// An entity route on a gateway without `store:`.
    pub fn no_store() -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "this admin route needs the control-plane store: set `store:` in the config \
             (e.g. store: sqlite://sluice.db) and restart",
        )
    }

    pub fn status(&self) -> http::StatusCode {
        self.0.status()
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                Self::new(ErrorKind::NotFound, format!("{what} not found"))
            }
            StoreError::Conflict(m) => Self::conflict(m),
            StoreError::Invalid(m) => Self::new(ErrorKind::InvalidRequest, m),
            StoreError::Db(_) | StoreError::Migrate(_) => {
                tracing::error!(error = %e, "admin API: store error");
                Self::new(
                    ErrorKind::Unavailable,
                    "store unavailable; try again later (the error is in the gateway's log)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response(ApiFormat::OpenAi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let s = |e: StoreError| ApiError::from(e).status().as_u16();
        assert_eq!(s(StoreError::NotFound("tenant `x`".into())), 404);
        assert_eq!(s(StoreError::Conflict("taken".into())), 409);
        assert_eq!(s(StoreError::Invalid("bad".into())), 400);
        assert_eq!(s(StoreError::Db(sqlx::Error::PoolTimedOut)), 503);
    }
}
