//! Gemini stream decoder tests over Google's streaming examples: any split of
//! the body decodes the same, text and reasoning reassemble, tool calls arrive
//! whole, usage is the last event's, and cut or failed streams are errors.

use sluice_types::{ChatChunk, FinishReason, Role, TokenUsage};

use super::*;

const TEXT: &str = fixture!("stream_text.sse");
const LEGACY: &str = fixture!("stream_text_legacy.sse");
const TOOL: &str = fixture!("stream_thinking_tool_call.sse");

fn decode(splits: &[&[u8]]) -> (Vec<ChatChunk>, Result<(), AdapterError>, TokenUsage) {
    let mut d = GeminiAdapter.stream_decoder();
    let mut out = Vec::new();
    for s in splits {
        d.feed(s, &mut out).unwrap();
    }
    let fin = d.finish(&mut out);
    (out, fin, d.usage())
}

/// Chunks with `created` and generated ids blanked (they differ per decoder).
fn comparable(chunks: Vec<ChatChunk>) -> Vec<ChatChunk> {
    chunks
        .into_iter()
        .map(|mut c| {
            c.created = 0;
            if c.id.starts_with("gen-") {
                c.id.clear();
            }
            c
        })
        .collect()
}

fn whole(body: &str) -> Vec<ChatChunk> {
    let (chunks, fin, _) = decode(&[body.as_bytes()]);
    fin.unwrap();
    comparable(chunks)
}

fn joined(chunks: &[ChatChunk], field: fn(&sluice_types::Delta) -> Option<&String>) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| field(&c.delta))
        .map(String::as_str)
        .collect()
}

fn finishes(chunks: &[ChatChunk]) -> Vec<FinishReason> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason)
        .collect()
}

#[test]
fn every_split_decodes_like_the_whole_body() {
    for body in [TEXT, LEGACY, TOOL] {
        let expected = whole(body);
        let bytes = body.as_bytes();
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let (chunks, fin, _) = decode(&[a, b]);
            fin.unwrap();
            assert_eq!(comparable(chunks), expected, "split at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(comparable(decode(&singles).0), expected);
    }
}

#[test]
fn documented_text_stream_reassembles_with_usage() {
    let (chunks, fin, usage) = decode(&[TEXT.as_bytes()]);
    fin.unwrap();
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(
        joined(&chunks, |d| d.content.as_ref()),
        "The capital of Wyoming is **Cheyenne**.\n"
    );
    assert_eq!(finishes(&chunks), [FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    let u = last.usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (7, 10, 17)
    );
    assert_eq!((usage.input, usage.output), (7, 10));
    assert!(chunks.iter().all(|c| c.model == "gemini-3.1-flash-lite"));
    let id = &chunks[0].id;
    assert!(id.starts_with("gen-") && chunks.iter().all(|c| &c.id == id));
}

#[test]
fn legacy_stop_on_every_event_finishes_once_at_the_end() {
    let chunks = whole(LEGACY);
    let text = joined(&chunks, |d| d.content.as_ref());
    assert!(text.starts_with("In the quaint, sunlit cottage"));
    assert!(text.contains("\"冒险伙伴\" (Adventure Buddies)"));
    assert!(text.ends_with("their love for each other and for adventure stronger than ever."));
    assert_eq!(finishes(&chunks), [FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert_eq!(last.choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(last.usage.is_none(), "this old model reported no usage");
    let roles = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter(|c| c.delta.role.is_some());
    assert_eq!(roles.count(), 1);
}

#[test]
fn thinking_stream_yields_reasoning_and_a_whole_tool_call() {
    let (chunks, fin, usage) = decode(&[TOOL.as_bytes()]);
    fin.unwrap();
    let reasoning = joined(&chunks, |d| d.reasoning_content.as_ref());
    assert!(reasoning.starts_with("**Calculating the Days**"));
    assert!(reasoning.contains("**Determining the Approach**"));
    assert_eq!(joined(&chunks, |d| d.content.as_ref()), "");
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].index, 0);
    assert_eq!(calls[0].id.as_deref(), Some("call_0"));
    assert_eq!(calls[0].kind.as_deref(), Some("function"));
    let f = calls[0].function.as_ref().unwrap();
    assert_eq!(
        (f.name.as_deref(), f.arguments.as_deref()),
        (Some("now"), Some("{}"))
    );
    assert_eq!(finishes(&chunks), [FinishReason::ToolCalls]);
    assert!(chunks.iter().all(|c| c.id == "48SHaPHpHKbG-8YPtZCawAk"));
    let u = chunks.last().unwrap().usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (38, 174, 212)
    );
    assert_eq!(
        u.completion_tokens_details
            .as_ref()
            .unwrap()
            .reasoning_tokens,
        168
    );
    assert_eq!((usage.input, usage.output, usage.reasoning), (38, 174, 168));
}

#[test]
fn stream_cut_mid_event_or_before_finish_is_truncated() {
    let bytes = TEXT.as_bytes();
    for cut in 0..bytes.len() {
        let (_, fin, _) = decode(&[&bytes[..cut]]);
        assert_eq!(fin, Err(AdapterError::Truncated), "cut at {cut}");
    }
    // With CRLF line ends the final `\r` already ends the event.
    let bytes = TOOL.as_bytes();
    for cut in 0..bytes.len() - 1 {
        let (_, fin, _) = decode(&[&bytes[..cut]]);
        assert_eq!(fin, Err(AdapterError::Truncated), "cut at {cut}");
    }
}

#[test]
fn error_event_is_a_stream_error() {
    let mut d = GeminiAdapter.stream_decoder();
    let mut out = Vec::new();
    d.feed(TEXT.split("\n\n").next().unwrap().as_bytes(), &mut out)
        .unwrap();
    let err = d
        .feed(
            b"\n\ndata: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}\n\n",
            &mut out,
        )
        .unwrap_err();
    assert_eq!(
        err,
        AdapterError::StreamError("The model is overloaded. Please try again later.".into())
    );
}

#[test]
fn blocked_prompt_finishes_with_content_filter() {
    let body = "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\",\"safetyRatings\": [{\"category\": \"HARM_CATEGORY_HARASSMENT\",\"probability\": \"MEDIUM\"}]},\"usageMetadata\": {\"promptTokenCount\": 7,\"totalTokenCount\": 7}}\r\n\r\n";
    let (chunks, fin, usage) = decode(&[body.as_bytes()]);
    fin.unwrap();
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(finishes(&chunks), [FinishReason::ContentFilter]);
    assert_eq!(usage.input, 7);
}

#[test]
fn candidates_finish_independently() {
    let ev = |json: &str| format!("data: {json}\n\n");
    let body = [
        ev(r#"{"candidates":[{"index":0,"content":{"role":"model","parts":[{"text":"A"}]}},{"index":1,"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{"q":1}}}]}}]}"#),
        ev(r#"{"candidates":[{"index":0,"content":{"role":"model","parts":[{"text":"B"}]},"finishReason":"MAX_TOKENS"}]}"#),
    ]
    .concat();
    let (_, fin, _) = decode(&[body.as_bytes()]);
    assert_eq!(
        fin,
        Err(AdapterError::Truncated),
        "candidate 1 never finished"
    );

    let body = body
        + &ev(
            r#"{"candidates":[{"index":1,"content":{"role":"model","parts":[{"functionCall":{"name":"g"}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}"#,
        );
    let (chunks, fin, _) = decode(&[body.as_bytes()]);
    fin.unwrap();
    let calls: Vec<(u32, u32, Option<&str>)> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| {
            c.delta
                .tool_calls
                .iter()
                .flatten()
                .map(move |t| (c.index, t.index, t.id.as_deref()))
        })
        .collect();
    assert_eq!(calls, [(1, 0, Some("call_0")), (1, 1, Some("call_1"))]);
    assert_eq!(
        finishes(&chunks),
        [FinishReason::Length, FinishReason::ToolCalls]
    );
    let roles = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter(|c| c.delta.role.is_some());
    assert_eq!(roles.count(), 2);
}
