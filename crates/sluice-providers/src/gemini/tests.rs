//! Gemini request-translation tests over fixtures modelled on Google's
//! documented request bodies (provenance in `tests/fixtures/gemini/README.md`).

use http::HeaderName;
use http::HeaderValue;
use serde_json::{json, Value};
use sluice_types::{Message, Role, ToolCall};

use super::*;

pub(super) fn target() -> Target {
    Target {
        base_url: "https://generativelanguage.googleapis.com/".into(),
        model: "gemini-2.5-flash".into(),
        api_key: Some("AIza-upstream".into()),
        headers: vec![(
            HeaderName::from_static("x-extra"),
            HeaderValue::from_static("1"),
        )],
        ..Target::default()
    }
}

fn chat(json: &str) -> ChatRequest {
    serde_json::from_str(json).unwrap()
}

fn body_of(req: &ChatRequest) -> Result<Value, AdapterError> {
    let up = GeminiAdapter.chat_request(req, &target())?;
    Ok(serde_json::from_slice(&up.body).unwrap())
}

#[test]
fn translates_documented_requests() {
    let cases = [
        (
            "chat",
            fixture!("request_chat.openai.json"),
            fixture!("request_chat.gemini.json"),
        ),
        (
            "images",
            fixture!("request_images.openai.json"),
            fixture!("request_images.gemini.json"),
        ),
        (
            "tools",
            fixture!("request_tools.openai.json"),
            fixture!("request_tools.gemini.json"),
        ),
        (
            "parallel_tools",
            fixture!("request_parallel_tools.openai.json"),
            fixture!("request_parallel_tools.gemini.json"),
        ),
        (
            "json_schema",
            fixture!("request_json_schema.openai.json"),
            fixture!("request_json_schema.gemini.json"),
        ),
    ];
    for (name, input, expected) in cases {
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(body_of(&chat(input)).unwrap(), expected, "case {name}");
    }
}

#[test]
fn builds_urls_and_auth_header() {
    let mut req = chat(fixture!("request_chat.openai.json"));
    let up = GeminiAdapter.chat_request(&req, &target()).unwrap();
    assert_eq!(
        up.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(up.method, http::Method::POST);
    assert_eq!(up.headers["x-goog-api-key"], "AIza-upstream");
    assert!(up.headers["x-goog-api-key"].is_sensitive());
    assert_eq!(up.headers["content-type"], "application/json");
    assert_eq!(up.headers["x-extra"], "1");
    assert!(up.headers.get("authorization").is_none());

    req.stream = Some(true);
    let up = GeminiAdapter.chat_request(&req, &target()).unwrap();
    assert_eq!(up.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
}

#[test]
fn maps_tool_choice_modes() {
    let base = chat(fixture!("request_parallel_tools.openai.json"));
    for (choice, mode) in [
        (json!("none"), "NONE"),
        (json!("auto"), "AUTO"),
        (json!("required"), "ANY"),
    ] {
        let mut req = base.clone();
        req.tool_choice = Some(choice);
        let body = body_of(&req).unwrap();
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": mode}})
        );
    }
    let mut req = base.clone();
    req.tool_choice = None;
    assert!(body_of(&req).unwrap().get("toolConfig").is_none());
    req.tools = None;
    req.tool_choice = Some(json!("required"));
    let body = body_of(&req).unwrap();
    assert!(body.get("toolConfig").is_none() && body.get("tools").is_none());
}

#[test]
fn json_object_sets_only_the_mime_type() {
    let mut req = chat(fixture!("request_json_schema.openai.json"));
    req.response_format = Some(json!({"type": "json_object"}));
    assert_eq!(
        body_of(&req).unwrap()["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[test]
fn tool_results_take_the_name_of_the_latest_call_with_their_id() {
    let call = |id: &str, name: &str| {
        let mut m = Message::text(Role::Assistant, "");
        m.tool_calls = Some(vec![ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: sluice_types::FunctionCall {
                name: name.into(),
                arguments: "{}".into(),
            },
        }]);
        m
    };
    let result = |id: &str| {
        let mut m = Message::text(Role::Tool, "42");
        m.tool_call_id = Some(id.into());
        m
    };
    // Gemini-generated ids restart at call_0 in every answer.
    let req = ChatRequest {
        messages: vec![
            Message::text(Role::User, "hi"),
            call("call_0", "first"),
            result("call_0"),
            call("call_0", "second"),
            result("call_0"),
        ],
        ..ChatRequest::default()
    };
    let body = body_of(&req).unwrap();
    let names: Vec<&str> = [2, 4]
        .iter()
        .map(|&i| {
            body["contents"][i]["parts"][0]["functionResponse"]["name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"result": 42})
    );
}

#[test]
fn rejects_requests_gemini_cannot_express() {
    let tools = chat(fixture!("request_parallel_tools.openai.json"));
    let mut bad_args = tools.clone();
    bad_args.messages[1].tool_calls.as_mut().unwrap()[0]
        .function
        .arguments = "{not json".into();
    assert!(matches!(
        body_of(&bad_args),
        Err(AdapterError::InvalidRequest(_))
    ));

    let mut unknown_id = tools.clone();
    unknown_id.messages[2].tool_call_id = Some("call_missing".into());
    assert!(matches!(
        body_of(&unknown_id),
        Err(AdapterError::InvalidRequest(_))
    ));

    let mut other_tool = tools.clone();
    other_tool.tools.as_mut().unwrap()[0].kind = "web_search".into();
    assert!(matches!(
        body_of(&other_tool),
        Err(AdapterError::Unsupported(_))
    ));

    let part = |p: Value| {
        chat(&json!({"model": "m", "messages": [{"role": "user", "content": [p]}]}).to_string())
    };
    let ftp = part(json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}));
    assert!(matches!(
        body_of(&ftp),
        Err(AdapterError::InvalidRequest(_))
    ));
    let not_b64 = part(json!({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}));
    assert!(matches!(
        body_of(&not_b64),
        Err(AdapterError::InvalidRequest(_))
    ));
    let file_id = part(json!({"type": "file", "file": {"file_id": "file-1"}}));
    assert!(matches!(
        body_of(&file_id),
        Err(AdapterError::Unsupported(_))
    ));

    let only_system = chat(r#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#);
    assert!(matches!(
        body_of(&only_system),
        Err(AdapterError::InvalidRequest(_))
    ));
}

#[test]
fn guesses_media_types_from_extensions() {
    assert_eq!(request::guess_mime("https://x/a.webp"), "image/webp");
    assert_eq!(
        request::guess_mime("https://x/doc.PDF?dl=1"),
        "application/pdf"
    );
    assert_eq!(request::guess_mime("https://x.org/path/"), "image/jpeg");
    assert_eq!(request::guess_mime("https://x.org"), "image/jpeg");
}
