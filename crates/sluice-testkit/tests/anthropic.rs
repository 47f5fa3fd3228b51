//! Anthropic Messages wire shapes served by `MockUpstream`.

mod common;

use common::{datas, post, send};
use serde_json::{json, Value};
use sluice_testkit::sse::names;
use sluice_testkit::{MockUpstream, Script, Wire};

fn messages(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]
    })
}

#[tokio::test]
async fn non_stream_text_message_and_recorded_headers() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hi!").with_usage(12, 4).with_cached(5));
    let headers = [
        ("x-api-key", "sk-ant-test"),
        ("anthropic-version", "2023-06-01"),
    ];
    let resp = send(
        up.addr(),
        "POST",
        "/v1/messages",
        &headers,
        Some(&messages(false)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.header("request-id").unwrap().starts_with("req_"));
    let v = resp.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hi!"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"]["input_tokens"], 7);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 4);

    let rec = up.last_request().unwrap();
    assert_eq!(rec.wire, Some(Wire::Anthropic));
    assert_eq!(rec.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(rec.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(rec.body["max_tokens"], 100);
}

#[tokio::test]
async fn non_stream_tool_use() {
    let up = MockUpstream::start().await;
    up.push(Script::tool_call("get_weather", json!({"city": "Paris"})));
    let v = post(up.addr(), "/v1/messages", &messages(false))
        .await
        .json();
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"city": "Paris"}));
    assert_eq!(v["stop_reason"], "tool_use");
}

#[tokio::test]
async fn stream_text_follows_the_documented_event_sequence() {
    let up = MockUpstream::start().await;
    up.push(Script::text("Hello, Claude").with_usage(9, 5));
    let resp = post(up.addr(), "/v1/messages", &messages(true)).await;
    assert!(resp.complete);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.events();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 5));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);
    let data = datas(&events);
    // Each data's `type` repeats its event name.
    for (event, value) in events.iter().zip(&data) {
        assert_eq!(
            Some(value["type"].as_str().unwrap()),
            event.event.as_deref()
        );
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["usage"]["input_tokens"], 9);
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello, Claude");
    let delta = &data[data.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn stream_tool_use_sends_input_json_deltas() {
    let up = MockUpstream::start().await;
    let args = json!({"city": "Paris", "days": 3});
    up.push(Script::tool_call("forecast", args.clone()));
    let data = datas(
        &post(up.addr(), "/v1/messages", &messages(true))
            .await
            .events(),
    );
    let block = &data[1]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "forecast");
    assert_eq!(block["input"], json!({}));
    let partial: Vec<&str> = data
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta")
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(partial.len() > 3);
    assert_eq!(
        serde_json::from_str::<Value>(&partial.concat()).unwrap(),
        args
    );
    assert_eq!(data[data.len() - 2]["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn errors_use_anthropic_shape() {
    let up = MockUpstream::start().await;
    up.push(Script::status(529));
    up.push(Script::rate_limited(4));
    up.push(Script::status(500));
    up.push(Script::context_length_exceeded());
    let resp = post(up.addr(), "/v1/messages", &messages(true)).await;
    assert_eq!(resp.status, 529);
    let v = resp.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    let resp = post(up.addr(), "/v1/messages", &messages(false)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("4"));
    assert_eq!(resp.json()["error"]["type"], "rate_limit_error");
    let resp = post(up.addr(), "/v1/messages", &messages(false)).await;
    assert_eq!(resp.json()["error"]["type"], "api_error");
    let resp = post(up.addr(), "/v1/messages", &messages(false)).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert!(resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("prompt is too long"));
}
