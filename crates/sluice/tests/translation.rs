//! Any inbound format reaches any provider and back, streamed or not, with
//! tool calls intact: a matrix of {OpenAI, Azure, Anthropic, Gemini} upstreams
//! (testkit mocks speaking each wire exactly) × {OpenAI, Anthropic} clients ×
//! {whole, streamed} × {text, tool call}. Also checks what the upstream
//! received: its own credentials and model, never the client's key.

mod common;

use common::{one_provider, sse_events, TestGateway, KEY};
use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script};

#[derive(Clone, Copy, Debug)]
enum Up {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
}

/// What an answer carried: text, tool calls (name, arguments), finish
/// reason, usage.
type Outcome = (String, Vec<(String, Value)>, Option<String>, Option<Value>);

const UPS: [Up; 4] = [Up::OpenAi, Up::Azure, Up::Anthropic, Up::Gemini];

async fn gateway_for(up: Up, mock: &MockUpstream) -> TestGateway {
    let yaml = match up {
        Up::OpenAi => one_provider("openai", &format!("{}/v1", mock.url()), ""),
        Up::Azure => one_provider("azure", &mock.url(), "    api_version: \"2024-10-21\""),
        Up::Anthropic => one_provider("anthropic", &mock.url(), ""),
        Up::Gemini => one_provider("gemini", &mock.url(), ""),
    };
    TestGateway::start(&yaml).await
}

/// What the upstream must have received for this wire.
fn check_upstream(up: Up, mock: &MockUpstream, stream: bool) {
    let r = mock.last_request().expect("the upstream was called");
    let raw = String::from_utf8_lossy(&r.raw_body);
    assert!(!raw.contains(KEY), "client key leaked upstream");
    for (_, v) in r.headers.iter() {
        assert!(
            !v.to_str().unwrap_or("").contains(KEY),
            "client key leaked upstream in a header"
        );
    }
    match up {
        Up::OpenAi => {
            assert_eq!(r.path, "/v1/chat/completions");
            assert_eq!(r.header("authorization"), Some("Bearer sk-upstream-secret"));
            assert_eq!(r.body["model"], "upstream-model");
            if stream {
                assert_eq!(r.body["stream_options"]["include_usage"], true);
            }
        }
        Up::Azure => {
            assert_eq!(
                r.path,
                "/openai/deployments/upstream-model/chat/completions"
            );
            assert_eq!(r.query.as_deref(), Some("api-version=2024-10-21"));
            assert_eq!(r.header("api-key"), Some("sk-upstream-secret"));
            assert_eq!(r.header("authorization"), None);
        }
        Up::Anthropic => {
            assert_eq!(r.path, "/v1/messages");
            assert_eq!(r.header("x-api-key"), Some("sk-upstream-secret"));
            assert!(r.header("anthropic-version").is_some());
            assert_eq!(r.body["model"], "upstream-model");
            assert!(r.body["max_tokens"].as_u64().is_some());
        }
        Up::Gemini => {
            let op = if stream {
                ":streamGenerateContent"
            } else {
                ":generateContent"
            };
            assert_eq!(r.path, format!("/v1beta/models/upstream-model{op}"));
            assert_eq!(r.header("x-goog-api-key"), Some("sk-upstream-secret"));
            if stream {
                assert_eq!(r.query.as_deref(), Some("alt=sse"));
            }
        }
    }
}

fn tools_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn tools_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// The text and tool calls an OpenAI-format answer carried, whole or streamed.
fn openai_result(v_or_sse: Result<Value, String>) -> Outcome {
    match v_or_sse {
        Ok(v) => {
            let m = &v["choices"][0]["message"];
            let calls = m["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    (
                        c["function"]["name"].as_str().unwrap().to_owned(),
                        serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap(),
                    )
                })
                .collect();
            (
                m["content"].as_str().unwrap_or("").to_owned(),
                calls,
                v["choices"][0]["finish_reason"].as_str().map(str::to_owned),
                Some(v["usage"].clone()),
            )
        }
        Err(body) => {
            let events = sse_events(&body);
            assert_eq!(
                events.last().map(|e| e.1.as_str()),
                Some("[DONE]"),
                "stream must end with [DONE]: {body}"
            );
            let mut text = String::new();
            let mut calls: Vec<(String, String)> = Vec::new();
            let mut finish = None;
            let mut usage = None;
            for (_, data) in &events[..events.len() - 1] {
                let c: Value = serde_json::from_str(data).unwrap();
                assert!(c.get("error").is_none(), "error event: {data}");
                if !c["usage"].is_null() {
                    usage = Some(c["usage"].clone());
                }
                for ch in c["choices"].as_array().unwrap() {
                    text.push_str(ch["delta"]["content"].as_str().unwrap_or(""));
                    for tc in ch["delta"]["tool_calls"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                    {
                        let i = tc["index"].as_u64().unwrap() as usize;
                        if calls.len() <= i {
                            calls.push((
                                tc["function"]["name"].as_str().unwrap().to_owned(),
                                String::new(),
                            ));
                            assert!(
                                tc["id"].as_str().is_some(),
                                "first fragment of a tool call carries its id"
                            );
                        }
                        calls[i]
                            .1
                            .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
                    }
                    if let Some(f) = ch["finish_reason"].as_str() {
                        finish = Some(f.to_owned());
                    }
                }
            }
            let calls = calls
                .into_iter()
                .map(|(n, a)| (n, serde_json::from_str(&a).unwrap()))
                .collect();
            (text, calls, finish, usage)
        }
    }
}

/// The same for an Anthropic-format answer.
fn anthropic_result(v_or_sse: Result<Value, String>) -> Outcome {
    match v_or_sse {
        Ok(v) => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for b in v["content"].as_array().unwrap() {
                match b["type"].as_str().unwrap() {
                    "text" => text.push_str(b["text"].as_str().unwrap()),
                    "tool_use" => {
                        calls.push((b["name"].as_str().unwrap().to_owned(), b["input"].clone()))
                    }
                    _ => {}
                }
            }
            (
                text,
                calls,
                v["stop_reason"].as_str().map(str::to_owned),
                Some(v["usage"].clone()),
            )
        }
        Err(body) => {
            let events = sse_events(&body);
            let names: Vec<&str> = events
                .iter()
                .map(|e| e.0.as_deref().unwrap_or(""))
                .collect();
            assert_eq!(names.first(), Some(&"message_start"), "{body}");
            assert_eq!(names.last(), Some(&"message_stop"), "{body}");
            let mut text = String::new();
            let mut calls: Vec<(String, String)> = Vec::new();
            let mut stop = None;
            let mut usage = None;
            for (name, data) in &events {
                let e: Value = serde_json::from_str(data).unwrap();
                assert_eq!(
                    e["type"].as_str(),
                    name.as_deref(),
                    "event name matches type"
                );
                match name.as_deref().unwrap() {
                    "content_block_start" if e["content_block"]["type"] == "tool_use" => calls
                        .push((
                            e["content_block"]["name"].as_str().unwrap().to_owned(),
                            String::new(),
                        )),
                    "content_block_delta" => match e["delta"]["type"].as_str().unwrap() {
                        "text_delta" => text.push_str(e["delta"]["text"].as_str().unwrap()),
                        "input_json_delta" => calls
                            .last_mut()
                            .unwrap()
                            .1
                            .push_str(e["delta"]["partial_json"].as_str().unwrap()),
                        _ => {}
                    },
                    "message_delta" => {
                        stop = e["delta"]["stop_reason"].as_str().map(str::to_owned);
                        usage = Some(e["usage"].clone());
                    }
                    "error" => panic!("error event: {data}"),
                    _ => {}
                }
            }
            let calls = calls
                .into_iter()
                .map(|(n, a)| (n, serde_json::from_str(&a).unwrap()))
                .collect();
            (text, calls, stop, usage)
        }
    }
}

async fn body_of(resp: reqwest::Response, stream: bool) -> Result<Value, String> {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "up");
    assert_eq!(resp.headers()["x-sluice-model"], "m");
    if stream {
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Err(resp.text().await.unwrap())
    } else {
        Ok(resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn openai_clients_reach_every_provider() {
    for up in UPS {
        for stream in [false, true] {
            let mock = MockUpstream::start().await;
            let gw = gateway_for(up, &mock).await;
            mock.push(Script::text("Hello from the upstream, in pieces.").with_usage(12, 9));
            let resp = gw.post("/v1/chat/completions", json!({"model": "m", "stream": stream, "stream_options": {"include_usage": true}, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})).await;
            let (text, calls, finish, usage) = openai_result(body_of(resp, stream).await);
            assert_eq!(
                text, "Hello from the upstream, in pieces.",
                "{up:?} stream={stream}"
            );
            assert!(calls.is_empty());
            assert_eq!(finish.as_deref(), Some("stop"), "{up:?} stream={stream}");
            let usage = usage.expect("usage reported");
            assert_eq!(
                (
                    usage["prompt_tokens"].as_u64(),
                    usage["completion_tokens"].as_u64()
                ),
                (Some(12), Some(9)),
                "{up:?} stream={stream}"
            );
            check_upstream(up, &mock, stream);

            mock.push(Script::tool_call(
                "get_weather",
                json!({"city": "Paris", "unit": "C"}),
            ));
            let resp = gw.post("/v1/chat/completions", json!({"model": "m", "stream": stream, "tools": tools_openai(), "messages": [{"role": "user", "content": "Weather in Paris?"}]})).await;
            let (_, calls, finish, _) = openai_result(body_of(resp, stream).await);
            assert_eq!(
                calls,
                vec![(
                    "get_weather".to_owned(),
                    json!({"city": "Paris", "unit": "C"})
                )],
                "{up:?} stream={stream}"
            );
            assert_eq!(
                finish.as_deref(),
                Some("tool_calls"),
                "{up:?} stream={stream}"
            );
        }
    }
}

#[tokio::test]
async fn anthropic_clients_reach_every_provider() {
    for up in UPS {
        for stream in [false, true] {
            let mock = MockUpstream::start().await;
            let gw = gateway_for(up, &mock).await;
            mock.push(Script::text("Bonjour from upstream.").with_usage(20, 7));
            let resp = gw.post_anthropic(json!({"model": "m", "max_tokens": 256, "stream": stream, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]})).await;
            let (text, calls, stop, usage) = anthropic_result(body_of(resp, stream).await);
            assert_eq!(text, "Bonjour from upstream.", "{up:?} stream={stream}");
            assert!(calls.is_empty());
            assert_eq!(stop.as_deref(), Some("end_turn"));
            assert_eq!(
                usage.unwrap()["output_tokens"].as_u64(),
                Some(7),
                "{up:?} stream={stream}"
            );
            check_upstream(up, &mock, stream);

            mock.push(Script::tool_call("get_weather", json!({"city": "Lyon"})));
            let resp = gw.post_anthropic(json!({"model": "m", "max_tokens": 256, "stream": stream, "tools": tools_anthropic(), "messages": [{"role": "user", "content": "Weather in Lyon?"}]})).await;
            let (_, calls, stop, _) = anthropic_result(body_of(resp, stream).await);
            assert_eq!(
                calls,
                vec![("get_weather".to_owned(), json!({"city": "Lyon"}))],
                "{up:?} stream={stream}"
            );
            assert_eq!(stop.as_deref(), Some("tool_use"));
        }
    }
}

#[tokio::test]
async fn tool_results_travel_back_to_every_provider() {
    for up in UPS {
        let mock = MockUpstream::start().await;
        let gw = gateway_for(up, &mock).await;
        mock.push(Script::text("It is sunny."));
        let messages = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"sunny\"}"}
        ]);
        let resp = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "m", "tools": tools_openai(), "messages": messages}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{up:?}: {}", resp.text().await.unwrap());
        let sent = mock.last_request().unwrap().raw_body;
        let sent = String::from_utf8_lossy(&sent);
        assert!(
            sent.contains("sunny") && sent.contains("get_weather"),
            "{up:?}: tool result not forwarded: {sent}"
        );
    }
}

#[tokio::test]
async fn usage_chunk_only_when_asked() {
    let mock = MockUpstream::start().await;
    let gw = gateway_for(Up::OpenAi, &mock).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("\"usage\":{"),
        "no usage chunk unless include_usage: {body}"
    );
    // The upstream was still asked for usage, so sluice can account the stream.
    assert_eq!(
        mock.last_request().unwrap().body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn a_parameter_the_provider_cannot_honour_is_a_clear_400() {
    let mock = MockUpstream::start().await;
    let gw = gateway_for(Up::Anthropic, &mock).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    assert!(v["error"]["message"].as_str().unwrap().contains('n'), "{v}");
    assert_eq!(mock.hits(), 0, "nothing was sent upstream");
    // Tool arguments that are not JSON cannot be translated either.
    let bad = json!([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "r"}]);
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": bad}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(mock.hits(), 0);
}
