//! Stream decoder tests over the documented SSE examples.

use sluice_types::{FinishReason, TokenUsage};

use super::*;

#[test]
fn decodes_documented_text_stream() {
    let (chunks, fin, usage) = decode(&[STREAM_TEXT.as_bytes()]);
    fin.unwrap();
    let a = assemble(&chunks);
    assert!(a.role_first);
    assert_eq!(a.text, "Hello!");
    assert_eq!(a.finish, Some(FinishReason::Stop));
    let expected = TokenUsage {
        input: 25,
        output: 15,
        ..TokenUsage::default()
    };
    assert_eq!(usage, expected);
    assert_eq!(a.usage, Some(expected));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty(), "the usage chunk has no choices");
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 40);
    assert!(chunks
        .iter()
        .all(|c| c.id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY" && c.model == "claude-opus-4-6"));
}

#[test]
fn decodes_documented_tool_use_stream() {
    let (chunks, fin, usage) = decode(&[STREAM_TOOL.as_bytes()]);
    fin.unwrap();
    let a = assemble(&chunks);
    assert_eq!(
        a.text,
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(
        a.tool_calls,
        vec![(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
            "get_weather".to_owned(),
            r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#.to_owned()
        )]
    );
    assert_eq!(a.finish, Some(FinishReason::ToolCalls));
    assert_eq!((usage.input, usage.output), (472, 89));
    // The first fragment of the call carries id, type, name and "" arguments.
    let first = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .next()
        .unwrap();
    assert_eq!(
        first.index, 0,
        "tool calls count from 0, not the block index 1"
    );
    assert_eq!(first.kind.as_deref(), Some("function"));
    assert_eq!(
        first.function.as_ref().unwrap().arguments.as_deref(),
        Some("")
    );
}

#[test]
fn decodes_documented_thinking_stream_without_usage() {
    let (chunks, fin, usage) = decode(&[STREAM_THINKING.as_bytes()]);
    fin.unwrap();
    let a = assemble(&chunks);
    assert!(a
        .reasoning
        .starts_with("I need to find the GCD of 1071 and 462"));
    assert!(a.reasoning.ends_with("GCD(1071, 462) = 21."));
    assert_eq!(
        a.text,
        "The greatest common divisor of 1071 and 462 is **21**."
    );
    assert_eq!(usage, TokenUsage::default());
}

#[test]
fn every_split_point_decodes_like_the_whole() {
    for body in [STREAM_TEXT, STREAM_TOOL, STREAM_THINKING] {
        let body = body.as_bytes();
        let whole = decode(&[body]);
        whole.1.clone().unwrap();
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(decode(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode(&bytes), whole, "byte by byte");
    }
}

#[test]
fn stream_cut_before_message_stop_is_truncated() {
    let cut = STREAM_TOOL.find("event: message_stop").unwrap();
    let (chunks, fin, _) = decode(&[&STREAM_TOOL.as_bytes()[..cut]]);
    assert_eq!(fin, Err(AdapterError::Truncated));
    // Everything before the cut was still delivered, finish reason included.
    assert_eq!(assemble(&chunks).finish, Some(FinishReason::ToolCalls));
    // Cut inside the last event's data line.
    let cut = STREAM_TEXT.len() - 5;
    assert_eq!(
        decode(&[&STREAM_TEXT.as_bytes()[..cut]]).1,
        Err(AdapterError::Truncated)
    );
    let cut = STREAM_TEXT.len() - 2;
    assert_eq!(
        decode(&[&STREAM_TEXT.as_bytes()[..cut]]).1,
        Err(AdapterError::Truncated)
    );
    // Cut after the data line's end: only the blank line is missing, as in
    // the documented tool_use example (which ends that way).
    let cut = STREAM_TEXT.len() - 1;
    assert_eq!(decode(&[&STREAM_TEXT.as_bytes()[..cut]]).1, Ok(()));
    assert!(STREAM_TOOL.ends_with("{\"type\":\"message_stop\"}\n"));
}

#[test]
fn error_event_is_a_stream_error() {
    let (chunks, fin, _) = decode(&[STREAM_ERROR.as_bytes()]);
    assert_eq!(fin, Err(AdapterError::StreamError("Overloaded".into())));
    assert_eq!(
        assemble(&chunks).text,
        "Hello",
        "content before the error was delivered"
    );
}

#[test]
fn cache_usage_and_cumulative_message_delta_usage() {
    let body = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":1}}}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":7}}"#,
        "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    let (chunks, fin, usage) = decode(&[body.as_bytes()]);
    fin.unwrap();
    assert_eq!(
        usage,
        TokenUsage {
            input: 1112,
            output: 7,
            cache_read: 1000,
            cache_write: 100,
            reasoning: 0
        }
    );
    assert_eq!(assemble(&chunks).finish, Some(FinishReason::Length));
    let wire = chunks.last().unwrap().usage.clone().unwrap();
    assert_eq!(wire.prompt_tokens_details.unwrap().cached_tokens, 1000);
}

#[test]
fn unknown_events_and_server_tool_blocks_are_skipped() {
    let body = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":1,"output_tokens":1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"x\"}"}}"#,
        "\n\nevent: brand_new\ndata: {\"type\":\"brand_new\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    let (chunks, fin, _) = decode(&[body.as_bytes()]);
    fin.unwrap();
    assert!(assemble(&chunks).tool_calls.is_empty());
}
