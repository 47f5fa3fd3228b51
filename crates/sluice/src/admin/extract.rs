//! Request extractors with admin-API errors: JSON bodies (64 KiB at most,
//! 413 above; syntax errors with line and column; unknown fields named),
//! query strings (unknown parameters rejected) and path ids.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};
use crate::error::ErrorKind;
use crate::state::App;

/// The largest request body the admin API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body (required).
pub struct Body<T>(pub T);

/// A JSON request body that may be absent (empty): then `T::default()`.
pub struct OptionalBody<T>(pub T);

/// Query-string parameters.
pub struct Params<T>(pub T);

/// The `{id}` path segment.
pub struct Id(pub String);

async fn read_body(req: Request) -> ApiResult<bytes::Bytes> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is over the admin API's limit of {} KiB",
                MAX_BODY_BYTES / 1024
            ),
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("could not read the request body: {e}"),
        )),
    }
}

impl<T: DeserializeOwned> FromRequest<App> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &App) -> ApiResult<Self> {
        let bytes = read_body(req).await?;
        Ok(Body(crate::http::json::parse(&bytes)?))
    }
}

impl<T: DeserializeOwned + Default> FromRequest<App> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &App) -> ApiResult<Self> {
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        Ok(OptionalBody(crate::http::json::parse(&bytes)?))
    }
}

impl<T: DeserializeOwned> FromRequestParts<App> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> ApiResult<Self> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| {
                ApiError::invalid(
                    "query",
                    format!("invalid query parameters: {}", e.body_text()),
                )
            })
    }
}

impl FromRequestParts<App> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> ApiResult<Self> {
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(|e| ApiError::invalid("id", format!("invalid id: {}", e.body_text())))?;
        Ok(Id(id))
    }
}

/// Whether `id` can be an id at all (letters, digits, `_`, `-`, at most 64):
/// anything else is answered 404 without asking the store.
pub fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_ids() {
        assert!(plausible_id("app_01JD3ZK5Q8V9B2N4M6P7R8S9T0"));
        assert!(!plausible_id(""));
        assert!(!plausible_id("x' OR '1'='1"));
        assert!(!plausible_id("config:admin_key"));
        assert!(!plausible_id(&"a".repeat(65)));
    }
}
