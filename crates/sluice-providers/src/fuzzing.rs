//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and by the
//! seed-corpus replay test that runs with `cargo test`. Each must never panic,
//! whatever the bytes.

use sluice_types::anthropic::MessagesRequest;
use sluice_types::{ChatChunk, ChatRequest};

use crate::anthropic::AnthropicAdapter;
use crate::gemini::GeminiAdapter;
use crate::openai::{Flavor, OpenAiAdapter};
use crate::sse::SseParser;
use crate::{Adapter, Target};

/// SSE parser: arbitrary bytes, split at every third byte too; both splits
/// must yield the same events.
pub fn sse(data: &[u8]) {
    let mut whole = Vec::new();
    let r1 = SseParser::new().feed(data, &mut whole);
    let mut p = SseParser::new();
    let mut split = Vec::new();
    let mut r2 = Ok(());
    for part in data.chunks(3) {
        r2 = p.feed(part, &mut split);
        if r2.is_err() {
            break;
        }
    }
    if r1.is_ok() && r2.is_ok() {
        assert_eq!(whole, split, "SSE events depend on how bytes were split");
    }
}

fn target() -> Target {
    Target {
        base_url: "http://127.0.0.1:1".into(),
        model: "m".into(),
        api_key: Some("k".into()),
        ..Target::default()
    }
}

/// Inbound OpenAI request parser, then translation to every provider.
pub fn openai_request(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<ChatRequest>(data) {
        translate_everywhere(&req);
    }
}

/// Inbound Anthropic request parser and translator, then to every provider.
pub fn anthropic_request(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<MessagesRequest>(data) {
        if let Ok(chat) = crate::anthropic::inbound::to_chat_request(req) {
            translate_everywhere(&chat);
        }
    }
}

fn translate_everywhere(req: &ChatRequest) {
    let t = target();
    let adapters: [&dyn Adapter; 4] = [
        &OpenAiAdapter::new(Flavor::OpenAi),
        &OpenAiAdapter::new(Flavor::Azure),
        &AnthropicAdapter,
        &GeminiAdapter,
    ];
    for a in adapters {
        let _ = a.chat_request(req, &t);
    }
}

/// Every provider's stream decoder fed the same bytes; every chunk it emits
/// must re-encode in the Anthropic inbound encoder and OpenAI JSON.
pub fn stream_decoders(data: &[u8]) {
    let adapters: [&dyn Adapter; 3] = [
        &OpenAiAdapter::new(Flavor::OpenAi),
        &AnthropicAdapter,
        &GeminiAdapter,
    ];
    for a in adapters {
        let mut d = a.stream_decoder();
        let mut out: Vec<ChatChunk> = Vec::new();
        let mut ok = true;
        for part in data.chunks(7) {
            if d.feed(part, &mut out).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            let _ = d.finish(&mut out);
        }
        let mut enc = crate::anthropic::inbound::StreamEncoder::new("m", "msg_1");
        let mut buf = Vec::new();
        for c in &out {
            let _ = serde_json::to_vec(c);
            enc.encode(c, &mut buf);
        }
        enc.finish(Some(d.usage()), &mut buf);
    }
}
