//! OpenAI and Azure OpenAI wire shapes served by `MockUpstream`.

mod common;

use common::{datas, post, send};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script, Wire};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn non_stream_text_completion() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello there").with_usage(7, 3).with_cached(2));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 7);
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 10);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

#[tokio::test]
async fn non_stream_tool_call_and_length_finish() {
    let up = MockUpstream::start().await;
    up.push(Script::tool_call("get_weather", json!({"city": "Paris"})));
    up.push(Script::text("cut").with_length_finish());
    let v = post(up.addr(), "/v1/chat/completions", &chat(false))
        .await
        .json();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    let call = &message["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let v = post(up.addr(), "/v1/chat/completions", &chat(false))
        .await
        .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn stream_text_without_usage_chunk() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello, world!"));
    let resp = post(up.addr(), "/v1/chat/completions", &chat(true)).await;
    assert!(resp.complete);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.events();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = datas(&events);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello, world!");
    // role chunk + 5 pieces of 3 chars + finish chunk.
    assert_eq!(chunks.len(), 7);
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_with_include_usage_ends_with_usage_chunk() {
    let up = MockUpstream::start().await;
    up.push(Script::text("abcdef").with_usage(11, 2));
    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = datas(
        &post(up.addr(), "/v1/chat/completions", &body)
            .await
            .events(),
    );
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 11);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 2);
    assert!(rest.iter().all(|c| c["usage"].is_null()));
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_tool_call_fragments() {
    let up = MockUpstream::start().await;
    let args = json!({"city": "Paris", "unit": "celsius"});
    up.push(Script::tool_call("get_weather", args.clone()));
    let chunks = datas(
        &post(up.addr(), "/v1/chat/completions", &chat(true))
            .await
            .events(),
    );
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() > 3);
    assert!(chunks[1..]
        .iter()
        .all(|c| c["choices"][0]["delta"]["tool_calls"][0]
            .get("id")
            .is_none()));
    let joined: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(joined, args);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn azure_path_echoes_deployment_and_records_auth() {
    let up = MockUpstream::start().await;
    let path = "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21";
    let resp = send(
        up.addr(),
        "POST",
        path,
        &[("api-key", "azure-secret")],
        Some(&json!({"messages": []})),
    )
    .await
    .unwrap();
    assert_eq!(resp.json()["model"], "my-gpt4o");
    let rec = up.last_request().unwrap();
    assert_eq!(rec.wire, Some(Wire::OpenAi));
    assert_eq!(rec.path, "/openai/deployments/my-gpt4o/chat/completions");
    assert_eq!(rec.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(rec.header("api-key"), Some("azure-secret"));
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let up = MockUpstream::start().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let v = post(up.addr(), "/v1/embeddings", &body).await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    let again = post(up.addr(), "/v1/embeddings", &body).await.json();
    assert_eq!(again["data"], v["data"]);

    let b64 = json!({"model": "m", "input": "a", "encoding_format": "base64"});
    let v = post(up.addr(), "/v1/embeddings", &b64).await.json();
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 44); // 32 bytes
}

#[tokio::test]
async fn models_list_is_not_scripted() {
    let up = MockUpstream::start().await;
    up.push(Script::status(500));
    let resp = send(up.addr(), "GET", "/v1/models", &[], None)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["data"][0]["object"], "model");
    assert_eq!(up.pending(), 1);
}

#[tokio::test]
async fn rate_limited_and_server_errors() {
    let up = MockUpstream::start().await;
    up.push(Script::rate_limited(7));
    up.push(Script::status(500));
    up.push(Script::context_length_exceeded());
    let resp = post(up.addr(), "/v1/chat/completions", &chat(true)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(resp.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(resp.json()["error"]["type"], "requests");
    let resp = post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert_eq!(resp.status, 500);
    assert_eq!(resp.json()["error"]["type"], "server_error");
    let resp = post(up.addr(), "/v1/chat/completions", &chat(false)).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn azure_rate_limit_has_azure_shape() {
    let up = MockUpstream::start().await;
    up.push(Script::rate_limited(3));
    let resp = post(
        up.addr(),
        "/openai/deployments/d/chat/completions",
        &chat(false),
    )
    .await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("3"));
    assert_eq!(resp.header("retry-after-ms"), Some("3000"));
    assert_eq!(resp.json()["error"]["code"], "429");
}
