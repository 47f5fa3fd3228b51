//! The cache's pure parts: keys (what they include and leave out), a
//! stream assembled back into its answer, the replayed chunks of an
//! answer, and which answers are kept.

use serde_json::json;
use sluice_types::{ChatRequest, ChatResponse, FinishReason};

use super::assemble::Assembler;
use super::key::{of, Scope};
use super::{replay, Entry, Skip};

fn req(v: serde_json::Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn key(scope: Scope<'_>, model: &str, endpoint: &str, v: serde_json::Value) -> [u8; 32] {
    of(scope, model, endpoint, &mut req(v)).unwrap()
}

const ACME: Scope<'static> = Scope("tenant", "acme");

#[test]
fn keys_leave_out_what_does_not_change_the_answer() {
    let base =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5});
    let k = key(ACME, "m", "chat", base.clone());
    let same = json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5,
        "stream": true, "stream_options": {"include_usage": true}, "user": "u-1", "metadata": {"k": "v"}});
    assert_eq!(k, key(ACME, "m", "chat", same));
}

#[test]
fn keys_differ_by_scope_model_endpoint_and_request() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let k = key(ACME, "m", "chat", base.clone());
    assert_ne!(k, key(Scope("tenant", "other"), "m", "chat", base.clone()));
    assert_ne!(k, key(Scope("key", "acme"), "m", "chat", base.clone()));
    assert_ne!(k, key(ACME, "m2", "chat", base.clone()));
    assert_ne!(k, key(ACME, "m", "messages", base.clone()));
    for changed in [
        json!({"model": "m", "messages": [{"role": "user", "content": "hi!"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1}),
        json!({"model": "m", "messages": [{"role": "system", "content": "hi"}]}),
    ] {
        assert_ne!(k, key(ACME, "m", "chat", changed.clone()), "{changed}");
    }
    // Parts are length-prefixed: moving bytes between parts changes the key.
    assert_ne!(
        key(Scope("tenant", "ab"), "c", "chat", base.clone()),
        key(Scope("tenant", "a"), "bc", "chat", base)
    );
}

#[test]
fn the_request_is_left_as_it_was() {
    let v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}, "user": "u", "metadata": {"a": 1}});
    let mut r = req(v.clone());
    of(ACME, "m", "chat", &mut r).unwrap();
    assert_eq!(r, req(v));
}

#[test]
fn extra_fields_are_keyed_in_a_canonical_order() {
    let a: ChatRequest = serde_json::from_str(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"seed":1,"logit_bias":{"1":2}}"#,
    )
    .unwrap();
    let b: ChatRequest = serde_json::from_str(
        r#"{"logit_bias":{"1":2},"seed":1,"messages":[{"role":"user","content":"x"}],"model":"m"}"#,
    )
    .unwrap();
    assert_eq!(
        of(ACME, "m", "chat", &mut a.clone()),
        of(ACME, "m", "chat", &mut b.clone())
    );
}

fn answer() -> ChatResponse {
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "up-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Looking it up.",
              "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
              ]}, "finish_reason": "tool_calls"},
            {"index": 1, "message": {"role": "assistant", "content": "Second."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}
    }))
    .unwrap()
}

#[test]
fn a_replayed_answer_assembles_back_into_itself() {
    for usage_first in [false, true] {
        let chunks = replay::chunks(&answer(), usage_first);
        let mut a = Assembler::new(1 << 20);
        for c in &chunks {
            a.push(c);
        }
        assert!(!a.over());
        assert_eq!(a.finish(), answer());
        let usage_at = chunks.iter().position(|c| c.usage.is_some()).unwrap();
        assert_eq!(usage_at, if usage_first { 0 } else { chunks.len() - 1 });
    }
}

#[test]
fn tool_call_fragments_are_joined_by_index() {
    let chunk = |v: serde_json::Value| serde_json::from_value(v).unwrap();
    let mut a = Assembler::new(1 << 20);
    a.push(&chunk(json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant",
        "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]})));
    a.push(&chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]})));
    a.push(&chunk(json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]})));
    a.push(&chunk(
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ));
    let r = a.finish();
    let call = &r.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.id.as_str(), call.function.name.as_str()),
        ("call_9", "f")
    );
    assert_eq!(call.function.arguments, r#"{"a":1}"#);
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::ToolCalls));
}

#[test]
fn an_assembler_past_its_limit_keeps_nothing() {
    let mut a = Assembler::new(10);
    for c in replay::chunks(&answer(), false) {
        a.push(&c);
    }
    assert!(a.over());
}

fn entry(r: ChatResponse, max: u64) -> Result<Entry, Skip> {
    Entry::new(
        (r, None),
        None,
        None,
        Default::default(),
        std::time::Duration::from_secs(1),
        max,
    )
}

#[test]
fn only_complete_answers_within_the_limit_are_kept() {
    assert!(entry(answer(), 1 << 20).is_ok());
    assert_eq!(entry(answer(), 100).err(), Some(Skip::TooLarge));
    for finish in [None, Some(FinishReason::ContentFilter)] {
        let mut r = answer();
        r.choices[1].finish_reason = finish;
        assert_eq!(
            entry(r, 1 << 20).err(),
            Some(Skip::Incomplete),
            "{finish:?}"
        );
    }
    let mut r = answer();
    r.choices.clear();
    assert_eq!(entry(r, 1 << 20).err(), Some(Skip::Incomplete));
}
