//! Gemini wire shapes served by `MockUpstream`.

mod common;

use common::{datas, post, send};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script, Wire};

fn request() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

const GENERATE: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";

#[tokio::test]
async fn generate_content_text_and_recorded_key() {
    let up = MockUpstream::start().await;
    up.push(
        Script::text("Hi from Gemini")
            .with_usage(8, 4)
            .with_cached(3),
    );
    let resp = send(
        up.addr(),
        "POST",
        GENERATE,
        &[("x-goog-api-key", "AIza-test")],
        Some(&request()),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    let v = resp.json();
    let candidate = &v["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(
        candidate["content"]["parts"],
        json!([{"text": "Hi from Gemini"}])
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 8);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 12);
    assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 3);
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");
    assert!(v["responseId"].is_string());
    let rec = up.last_request().unwrap();
    assert_eq!(rec.wire, Some(Wire::Gemini));
    assert_eq!(rec.header("x-goog-api-key"), Some("AIza-test"));
}

#[tokio::test]
async fn generate_content_function_call_and_max_tokens() {
    let up = MockUpstream::start().await;
    up.push(Script::tool_call("get_weather", json!({"city": "Paris"})));
    up.push(Script::text("cut").with_length_finish());
    let v = post(up.addr(), GENERATE, &request()).await.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    let v = post(up.addr(), GENERATE, &request()).await.json();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[tokio::test]
async fn stream_sse_has_pieces_crlf_and_no_done() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello Gemini").with_usage(6, 8));
    let resp = post(up.addr(), &format!("{STREAM}?alt=sse"), &request()).await;
    assert!(resp.complete);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.text().contains("\r\n\r\n"));
    assert!(!resp.text().contains("[DONE]"));
    let events = resp.events();
    let data = datas(&events);
    assert_eq!(data.len(), events.len());
    assert_eq!(data.len(), 4);
    let text: String = data
        .iter()
        .map(|d| {
            d["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, "Hello Gemini");
    let (last, rest) = data.split_last().unwrap();
    assert!(rest
        .iter()
        .all(|d| d["candidates"][0].get("finishReason").is_none()));
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 8);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 14);
    // Usage is cumulative: earlier events report less.
    assert!(rest
        .iter()
        .all(|d| d["usageMetadata"]["candidatesTokenCount"].as_u64() < Some(8)));
    assert_eq!(up.last_request().unwrap().query.as_deref(), Some("alt=sse"));
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let up = MockUpstream::start().await;
    up.push(Script::text("abcdefg"));
    let resp = post(up.addr(), STREAM, &request()).await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let array = resp.json();
    assert_eq!(array.as_array().unwrap().len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn stream_function_call_is_one_event() {
    let up = MockUpstream::start().await;
    up.push(Script::tool_call("f", json!({"a": 1})));
    let data = datas(
        &post(up.addr(), &format!("{STREAM}?alt=sse"), &request())
            .await
            .events(),
    );
    assert_eq!(data.len(), 1);
    assert_eq!(
        data[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"a": 1})
    );
}

#[tokio::test]
async fn errors_use_google_shape() {
    let up = MockUpstream::start().await;
    up.push(Script::rate_limited(30));
    up.push(Script::status(503));
    let resp = post(up.addr(), GENERATE, &request()).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), None);
    let v = resp.json();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    let retry = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    assert_eq!(retry["retryDelay"], "30s");
    let v = post(up.addr(), GENERATE, &request()).await.json();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn embeddings_single_and_batch() {
    let up = MockUpstream::start().await;
    let batch = json!({"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}
    ]});
    let v = post(
        up.addr(),
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        &batch,
    )
    .await
    .json();
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
    let single = json!({"content": {"parts": [{"text": "a"}]}});
    let v = post(
        up.addr(),
        "/v1beta/models/text-embedding-004:embedContent",
        &single,
    )
    .await
    .json();
    assert_eq!(v["embedding"]["values"], embeddings[0]["values"]);
}
