//! Parsing client JSON with errors that say where and what: line and column
//! for syntax errors, the field for shape errors.

use serde::de::DeserializeOwned;

use crate::error::GatewayError;

/// Parses a request body, or explains what is wrong with it.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            // serde_json's message ends with "at line L column C".
            Category::Syntax | Category::Eof | Category::Io => {
                GatewayError::invalid(format!("the request body is not valid JSON: {e}"))
            }
            Category::Data => GatewayError::invalid(format!(
                "the request body does not match the expected shape: {e}"
            )),
        }
    })
}
