//! OpenAI Embeddings request and response shapes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Usage;

/// `POST /v1/embeddings` body. Fields sluice does not interpret ride in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    /// A string, an array of strings, or arrays of token ids.
    pub input: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/embeddings` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    #[serde(default = "list")]
    pub object: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Option<Usage>,
}

fn list() -> String {
    "list".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    #[serde(default = "embedding")]
    pub object: String,
    pub index: u32,
    /// A float array, or a base64 string when `encoding_format: base64`.
    pub embedding: Value,
}

fn embedding() -> String {
    "embedding".into()
}
