//! Which route (and so which wire) a request path selects. Plain string
//! matching: Gemini's `models/{model}:{method}` segments and Azure's
//! deployment paths do not fit a router's patterns well.

use http::Method;

use crate::script::Wire;

/// A route of the mock server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// OpenAI chat completions; `azure` for Azure OpenAI paths.
    OpenAiChat {
        azure: bool,
    },
    OpenAiEmbeddings {
        azure: bool,
    },
    OpenAiModels,
    AnthropicMessages,
    /// `:generateContent` / `:streamGenerateContent`.
    GeminiGenerate {
        stream: bool,
    },
    /// `:embedContent` / `:batchEmbedContents`.
    GeminiEmbed {
        batch: bool,
    },
    NotFound,
}

impl Route {
    pub(crate) fn wire(&self) -> Option<Wire> {
        match self {
            Route::OpenAiChat { .. } | Route::OpenAiEmbeddings { .. } | Route::OpenAiModels => {
                Some(Wire::OpenAi)
            }
            Route::AnthropicMessages => Some(Wire::Anthropic),
            Route::GeminiGenerate { .. } | Route::GeminiEmbed { .. } => Some(Wire::Gemini),
            Route::NotFound => None,
        }
    }

    /// Whether answering consumes a [`crate::Script`].
    pub(crate) fn is_scripted(&self) -> bool {
        !matches!(self, Route::OpenAiModels | Route::NotFound)
    }
}

/// The route of `method path`, and the model named by the path (Azure
/// deployment, Gemini model), if any.
pub(crate) fn route(method: &Method, path: &str) -> (Route, Option<String>) {
    let path = path.trim_end_matches('/');
    if method == Method::GET {
        let route = match path {
            "/v1/models" | "/openai/v1/models" => Route::OpenAiModels,
            _ => Route::NotFound,
        };
        return (route, None);
    }
    if method != Method::POST {
        return (Route::NotFound, None);
    }
    match path {
        "/v1/chat/completions" => return (Route::OpenAiChat { azure: false }, None),
        "/openai/v1/chat/completions" => return (Route::OpenAiChat { azure: true }, None),
        "/v1/embeddings" => return (Route::OpenAiEmbeddings { azure: false }, None),
        "/openai/v1/embeddings" => return (Route::OpenAiEmbeddings { azure: true }, None),
        "/v1/messages" => return (Route::AnthropicMessages, None),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        if let Some((deployment, tail)) = rest.split_once('/') {
            let route = match tail {
                "chat/completions" => Route::OpenAiChat { azure: true },
                "embeddings" => Route::OpenAiEmbeddings { azure: true },
                _ => Route::NotFound,
            };
            return (route, Some(deployment.to_owned()));
        }
    }
    if path.starts_with("/v1beta/") || path.starts_with("/v1/") {
        // `/v1beta/models/{model}:{method}`, also Vertex's
        // `/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`.
        if let Some((_, rest)) = path.rsplit_once("/models/") {
            if let Some((model, verb)) = rest.rsplit_once(':') {
                let route = match verb {
                    "generateContent" => Route::GeminiGenerate { stream: false },
                    "streamGenerateContent" => Route::GeminiGenerate { stream: true },
                    "embedContent" => Route::GeminiEmbed { batch: false },
                    "batchEmbedContents" => Route::GeminiEmbed { batch: true },
                    _ => Route::NotFound,
                };
                return (route, Some(model.to_owned()));
            }
        }
    }
    (Route::NotFound, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> (Route, Option<String>) {
        route(&Method::POST, path)
    }

    #[test]
    fn openai_and_azure_paths() {
        assert_eq!(
            post("/v1/chat/completions").0,
            Route::OpenAiChat { azure: false }
        );
        assert_eq!(
            post("/openai/deployments/my-gpt/chat/completions"),
            (Route::OpenAiChat { azure: true }, Some("my-gpt".into()))
        );
        assert_eq!(
            post("/openai/deployments/emb/embeddings"),
            (Route::OpenAiEmbeddings { azure: true }, Some("emb".into()))
        );
        assert_eq!(route(&Method::GET, "/v1/models").0, Route::OpenAiModels);
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions").0,
            Route::NotFound
        );
    }

    #[test]
    fn anthropic_path() {
        assert_eq!(post("/v1/messages").0, Route::AnthropicMessages);
        assert_eq!(post("/v1/messages").0.wire(), Some(Wire::Anthropic));
    }

    #[test]
    fn gemini_paths_split_model_and_method() {
        assert_eq!(
            post("/v1beta/models/gemini-2.0-flash:generateContent"),
            (
                Route::GeminiGenerate { stream: false },
                Some("gemini-2.0-flash".into())
            )
        );
        assert_eq!(
            post("/v1beta/models/gemini-1.5-pro-002:streamGenerateContent"),
            (
                Route::GeminiGenerate { stream: true },
                Some("gemini-1.5-pro-002".into())
            )
        );
        assert_eq!(
            post("/v1beta/models/text-embedding-004:batchEmbedContents"),
            (
                Route::GeminiEmbed { batch: true },
                Some("text-embedding-004".into())
            )
        );
        assert_eq!(
            post("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent").1,
            Some("gemini-2.0-flash".into())
        );
        assert_eq!(post("/v1beta/models/x:countTokens").0, Route::NotFound);
        assert_eq!(post("/nope").0, Route::NotFound);
    }
}
