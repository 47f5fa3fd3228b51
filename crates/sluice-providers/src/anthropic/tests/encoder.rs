//! StreamEncoder: documented streams decoded, re-encoded, and decoded again.

use serde_json::{json, Value};
use sluice_types::{ChatChunk, FinishReason, TokenUsage};

use super::*;
use crate::anthropic::inbound::StreamEncoder;
use crate::openai::OpenAiStreamDecoder;
use crate::sse::SseParser;
use crate::StreamDecoder;

const OPENAI_STREAM: &str = include_str!("../../../tests/fixtures/openai/stream_tool_call.sse");

/// Parses SSE bytes into (event name, data) pairs, checking name == data.type.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut raw = Vec::new();
    SseParser::new().feed(bytes, &mut raw).unwrap();
    raw.into_iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            let name = e.event.unwrap();
            assert_eq!(
                data["type"],
                name.as_str(),
                "event name must equal data.type"
            );
            (name, data)
        })
        .collect()
}

fn encode(chunks: &[ChatChunk], usage: Option<TokenUsage>) -> Vec<u8> {
    let mut enc = StreamEncoder::new("smart", &chunks[0].id);
    let mut out = Vec::new();
    for c in chunks {
        enc.encode(c, &mut out);
    }
    enc.finish(usage, &mut out);
    enc.finish(usage, &mut out); // idempotent
    out
}

/// The documented events the encoder reproduces: without pings, empty
/// `input_json_delta`s and signatures, which carry nothing canonical. (Some
/// documented examples end without the last blank line: one is added.)
fn reproducible(doc: &str) -> Vec<(String, Value)> {
    events(format!("{doc}\n").as_bytes())
        .into_iter()
        .filter(|(name, data)| {
            name != "ping"
                && data["delta"]["partial_json"] != json!("")
                && data["delta"]["type"] != json!("signature_delta")
        })
        .collect()
}

#[test]
fn documented_streams_round_trip_through_the_encoder() {
    for doc in [STREAM_TEXT, STREAM_TOOL, STREAM_THINKING] {
        let (chunks, fin, usage) = decode(&[doc.as_bytes()]);
        fin.unwrap();
        let encoded = encode(&chunks, Some(usage));
        let ours = events(&encoded);
        let theirs = reproducible(doc);
        let names = |evs: &[(String, Value)]| evs.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs));
        // Block deltas and stops are identical, tool_use and text starts too.
        for (o, t) in ours.iter().zip(&theirs) {
            match o.0.as_str() {
                "content_block_delta" | "content_block_stop" => assert_eq!(o.1, t.1),
                "content_block_start" if t.1["content_block"]["type"] != "thinking" => {
                    assert_eq!(o.1, t.1)
                }
                _ => {}
            }
        }
        let start = &ours[0].1["message"];
        assert_eq!(start["model"], "smart");
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert!(start["id"].as_str().unwrap().starts_with("msg_"));

        let (again, fin, usage_again) = decode(&[&encoded]);
        fin.unwrap();
        let (before, after) = (assemble(&chunks), assemble(&again));
        assert_eq!(after, before);
        assert_eq!(usage_again, usage);
    }
}

#[test]
fn tool_stream_message_delta_carries_stop_reason_and_usage() {
    let (chunks, _, usage) = decode(&[STREAM_TOOL.as_bytes()]);
    let evs = events(&encode(&chunks, Some(usage)));
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(
        delta,
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 89, "input_tokens": 472,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
    );
    assert_eq!(evs.last().unwrap().1, json!({"type": "message_stop"}));
}

#[test]
fn openai_tool_call_stream_encodes_for_anthropic_clients() {
    let mut d = OpenAiStreamDecoder::default();
    let mut chunks = Vec::new();
    d.feed(OPENAI_STREAM.as_bytes(), &mut chunks).unwrap();
    d.finish(&mut chunks).unwrap();
    // No usage passed: the encoder uses the stream's own usage chunk.
    let encoded = encode(&chunks, None);
    let names: Vec<String> = events(&encoded).into_iter().map(|e| e.0).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names[1], "content_block_start");
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let (again, fin, usage) = decode(&[&encoded]);
    fin.unwrap();
    let (before, after) = (assemble(&chunks), assemble(&again));
    assert_eq!(after.tool_calls, before.tool_calls);
    assert_eq!(after.tool_calls[0].2, "{\"location\": \"Paris\"}");
    assert_eq!(after.finish, Some(FinishReason::ToolCalls));
    assert_eq!((usage.input, usage.output), (82, 17));
}

fn chunk(delta: Value, finish: Option<&str>) -> ChatChunk {
    serde_json::from_value(
        json!({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
    .unwrap()
}

#[test]
fn blocks_switch_on_kind_and_tool_index() {
    let chunks = [
        chunk(
            json!({"role": "assistant", "reasoning_content": "hmm"}),
            None,
        ),
        chunk(json!({"content": "Two calls:"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "late"}}]}),
            None,
        ),
        chunk(json!({}), Some("stop")),
    ];
    let encoded = encode(&chunks, None);
    let evs = events(&encoded);
    let starts: Vec<(u64, Value)> = evs
        .iter()
        .filter(|e| e.0 == "content_block_start")
        .map(|e| {
            (
                e.1["index"].as_u64().unwrap(),
                e.1["content_block"]["type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        starts,
        [
            (0, json!("thinking")),
            (1, json!("text")),
            (2, json!("tool_use")),
            (3, json!("tool_use"))
        ]
    );
    assert_eq!(
        evs.iter().filter(|e| e.0 == "content_block_stop").count(),
        4
    );
    let (again, fin, _) = decode(&[&encoded]);
    fin.unwrap();
    let a = assemble(&again);
    assert_eq!(a.reasoning, "hmm");
    assert_eq!(a.text, "Two calls:");
    assert_eq!(
        a.tool_calls,
        [
            ("a".into(), "f".into(), "{\"x\":1}".into()),
            ("b".into(), "g".into(), "{}".into())
        ]
    );
    // finish_reason "stop" after tool calls still tells the client to run them.
    assert_eq!(a.finish, Some(FinishReason::ToolCalls));
}

#[test]
fn empty_stream_and_error_event() {
    let mut enc = StreamEncoder::new("m", "msg_1");
    let mut out = Vec::new();
    enc.finish(None, &mut out);
    let names: Vec<String> = events(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);

    let mut enc = StreamEncoder::new("m", "1");
    let mut out = Vec::new();
    enc.encode(&chunk(json!({"content": "Hel"}), None), &mut out);
    enc.error("overloaded_error", "Overloaded", &mut out);
    enc.finish(None, &mut out); // nothing after an error
    let evs = events(&out);
    assert_eq!(evs[0].1["message"]["id"], "msg_1");
    assert_eq!(
        evs.last().unwrap().1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let (_, fin, _) = decode(&[&out]);
    assert_eq!(fin, Err(AdapterError::StreamError("Overloaded".into())));
}
