//! `sluice-testkit-server`: the testkit's full mock upstream (OpenAI, Azure,
//! Anthropic and Gemini wires on one port) as a process, for end-to-end tests
//! that drive sluice with real SDKs. Answers a text, or — when the request
//! offers tools and does not end with a tool result — a call of the first
//! tool with `{"city": "Paris"}`.
//!
//! Usage: `sluice-testkit-server --listen 127.0.0.1:PORT`

use std::sync::Arc;

use serde_json::{json, Value};
use sluice_testkit::{MockUpstream, Script, Wire};

/// The first offered tool's name, unless the conversation ends with a result.
fn tool_to_call(wire: Option<Wire>, body: &Value) -> Option<String> {
    let last = |p: &str| {
        body.pointer(p)
            .and_then(Value::as_array)
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (name, answered) = match wire? {
        Wire::OpenAi => (
            body.pointer("/tools/0/function/name"),
            last("/messages")["role"] == "tool",
        ),
        Wire::Anthropic => {
            let m = last("/messages");
            let has_result = m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
            (body.pointer("/tools/0/name"), has_result)
        }
        Wire::Gemini => {
            let c = last("/contents");
            let has_result = c["parts"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x.get("functionResponse").is_some()));
            (
                body.pointer("/tools/0/functionDeclarations/0/name"),
                has_result,
            )
        }
    };
    if answered {
        return None;
    }
    name.and_then(Value::as_str).map(str::to_owned)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let mock = match MockUpstream::start_on(&listen).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sluice-testkit-server: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    mock.set_default(Script::text("Hello from the mock upstream."));
    mock.set_responder(Arc::new(|wire, body| {
        tool_to_call(wire, body).map(|name| Script::tool_call(name, json!({"city": "Paris"})))
    }));
    println!("sluice-testkit-server listening on {}", mock.url());
    // Serve until killed.
    std::future::pending::<()>().await;
}
