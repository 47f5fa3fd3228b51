//! The built-in `mock` provider: answers deterministically with no network, in
//! the OpenAI canonical form. Configurable latency, streaming pace and chunk
//! size, tool calls, and injected faults (statuses, 429 with retry-after,
//! delays, truncated streams). The quickstart and the benchmarks use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use http::StatusCode;
use sluice_providers::{ErrorClass, UpstreamError};
use sluice_types::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Content, Delta, Embedding,
    EmbeddingsRequest, EmbeddingsResponse, FinishReason, FunctionCall, FunctionCallDelta, Message,
    Role, TokenUsage, ToolCall, ToolCallDelta,
};

use crate::config::raw::{MockConfig, MockFault};
use crate::dispatch::ChunkStream;
use crate::error::GatewayError;
use crate::tokens::estimate_text as estimate_tokens;

pub struct MockProvider {
    cfg: MockConfig,
    counter: AtomicU64,
}

/// What a fault decided for one request.
#[derive(Debug, Default)]
pub struct FaultPlan {
    pub delay: Duration,
    pub error: Option<UpstreamError>,
    pub truncate_after: Option<u32>,
}

impl MockProvider {
    pub fn new(cfg: MockConfig) -> Self {
        MockProvider {
            cfg,
            counter: AtomicU64::new(0),
        }
    }

    /// Decides the faults of the next request.
    pub fn plan(&self) -> FaultPlan {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut plan = FaultPlan {
            delay: self.cfg.latency.map(|d| d.0).unwrap_or_default(),
            ..FaultPlan::default()
        };
        for f in &self.cfg.faults {
            if fires(f, n) {
                apply(f, &mut plan);
            }
        }
        plan
    }

    /// Plans the next request and plays its delay and error: what an
    /// upstream would do before answering.
    pub async fn next(&self, provider: &str) -> Result<FaultPlan, GatewayError> {
        let mut plan = self.plan();
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        match plan.error.take() {
            Some(e) => Err(GatewayError::upstream(provider, e)),
            None => Ok(plan),
        }
    }

    fn reply_text(&self, req: &ChatRequest) -> String {
        if let Some(r) = &self.cfg.reply {
            return r.clone();
        }
        let last = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .and_then(|m| m.content.as_ref())
            .map(Content::joined_text)
            .unwrap_or_default();
        let short: String = last.chars().take(200).collect();
        format!("This is a mock reply from sluice. You said: {short}")
    }

    /// The tool the mock calls: the first offered, unless the conversation
    /// already ends with a tool result or tool use is off.
    fn tool_to_call<'a>(&self, req: &'a ChatRequest) -> Option<&'a sluice_types::FunctionDef> {
        if !self.cfg.call_tools.unwrap_or(true)
            || req.tool_choice.as_ref().and_then(|c| c.as_str()) == Some("none")
        {
            return None;
        }
        if req.messages.last().is_some_and(|m| m.role == Role::Tool) {
            return None;
        }
        req.tools.as_ref()?.first().map(|t| &t.function)
    }

    fn usage(&self, req: &ChatRequest, output: &str) -> TokenUsage {
        let input: u64 = req
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| estimate_tokens(&c.joined_text()) + 3)
            .sum();
        // Like a real model, never more output tokens than `max_tokens`
        // (the estimate counts a short word as more than one token).
        let cap = req.max_output().map_or(u64::MAX, u64::from);
        TokenUsage {
            input,
            output: estimate_tokens(output).min(cap),
            ..TokenUsage::default()
        }
    }

    /// A whole answer.
    pub fn chat(&self, req: &ChatRequest, id: &str) -> ChatResponse {
        let (message, finish, out_text) = match self.tool_to_call(req) {
            Some(f) => {
                let arguments = sample_arguments(f.parameters.as_ref()).to_string();
                let out_text = format!("{} {arguments}", f.name);
                let call = ToolCall {
                    id: format!("call_{id}"),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: f.name.clone(),
                        arguments,
                    },
                };
                let mut m = Message::text(Role::Assistant, "");
                m.content = None;
                m.tool_calls = Some(vec![call]);
                (m, FinishReason::ToolCalls, out_text)
            }
            None => {
                let text = self.clamped(req, self.reply_text(req));
                (
                    Message::text(Role::Assistant, text.clone()),
                    FinishReason::Stop,
                    text,
                )
            }
        };
        let usage = self.usage(req, &out_text);
        ChatResponse {
            id: format!("chatcmpl-{id}"),
            object: "chat.completion".into(),
            created: now(),
            model: req.model.clone(),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: Some(finish),
                logprobs: None,
            }],
            usage: Some(usage.to_openai()),
            system_fingerprint: None,
        }
    }

    /// Honours the requested output cap, word by word.
    fn clamped(&self, req: &ChatRequest, text: String) -> String {
        match req.max_output() {
            Some(max) if estimate_tokens(&text) > max as u64 => text
                .split_inclusive(' ')
                .take(max as usize)
                .collect::<String>()
                .trim_end()
                .to_owned(),
            _ => text,
        }
    }

    /// A streamed answer, paced per the config; cut short when `truncate_after` fires.
    pub fn stream(&self, req: &ChatRequest, id: &str, truncate_after: Option<u32>) -> ChunkStream {
        let full = self.chat(req, id);
        let usage = full.usage.clone();
        let model = full.model.clone();
        let chunk_id = full.id.clone();
        let choice = full
            .choices
            .into_iter()
            .next()
            .expect("mock answers have one choice");
        let mut chunks = vec![delta_chunk(
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        )];
        if let Some(calls) = &choice.message.tool_calls {
            for (i, c) in calls.iter().enumerate() {
                let d = ToolCallDelta {
                    index: i as u32,
                    id: Some(c.id.clone()),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(c.function.name.clone()),
                        arguments: Some(c.function.arguments.clone()),
                    }),
                };
                chunks.push(delta_chunk(
                    Delta {
                        tool_calls: Some(vec![d]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        } else {
            let text = choice
                .message
                .content
                .as_ref()
                .map(Content::joined_text)
                .unwrap_or_default();
            let per = self.cfg.chunk_tokens.unwrap_or(1).max(1) as usize;
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            for group in words.chunks(per) {
                chunks.push(delta_chunk(
                    Delta {
                        content: Some(group.concat()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        }
        chunks.push(delta_chunk(Delta::default(), choice.finish_reason));
        let mut usage_chunk = delta_chunk(Delta::default(), None);
        usage_chunk.choices.clear();
        usage_chunk.usage = usage;
        chunks.push(usage_chunk);
        for c in &mut chunks {
            c.id.clone_from(&chunk_id);
            c.model.clone_from(&model);
        }
        let gap = self.cfg.tokens_per_second.filter(|t| *t > 0.0).map(|tps| {
            Duration::from_secs_f64(self.cfg.chunk_tokens.unwrap_or(1).max(1) as f64 / tps)
        });
        let cut = truncate_after.map(|n| n as usize);
        let total = chunks.len();
        let items = chunks.into_iter().enumerate();
        stream::iter(items)
            .then(move |(i, c)| async move {
                if i > 0 {
                    if let Some(g) = gap {
                        tokio::time::sleep(g).await;
                    }
                }
                match cut {
                    Some(n) if i >= n && i < total => Err(GatewayError::adapter(
                        "mock",
                        sluice_providers::AdapterError::Truncated,
                    )),
                    _ => Ok(c),
                }
            })
            .scan(false, |failed, item| {
                let out = if *failed { None } else { Some(item) };
                if matches!(out, Some(Err(_))) {
                    *failed = true;
                }
                futures::future::ready(out)
            })
            .boxed()
    }

    /// Deterministic embeddings: 16 floats per input derived from its bytes.
    pub fn embeddings(&self, req: &EmbeddingsRequest) -> Result<EmbeddingsResponse, GatewayError> {
        let inputs: Vec<String> = match &req.input {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) if a.iter().all(|v| v.is_string()) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::Array(a) => a.iter().map(|v| v.to_string()).collect(),
            _ => {
                return Err(
                    GatewayError::invalid("`input` must be a string or an array")
                        .with_param("input"),
                )
            }
        };
        let dims = req
            .extra
            .get("dimensions")
            .and_then(|d| d.as_u64())
            .unwrap_or(16)
            .clamp(1, 4096) as usize;
        let mut tokens = 0;
        let data = inputs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                tokens += estimate_tokens(s);
                Embedding {
                    object: "embedding".into(),
                    index: i as u32,
                    embedding: serde_json::json!(vector(s, dims)),
                }
            })
            .collect();
        let usage = sluice_types::Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
            ..Default::default()
        };
        Ok(EmbeddingsResponse {
            object: "list".into(),
            data,
            model: req.model.clone(),
            usage: Some(usage),
        })
    }
}

/// Arguments that satisfy a JSON Schema's required properties with sample
/// values (`"mock"`, `1`, `true`, the first `enum` value…).
fn sample_arguments(schema: Option<&serde_json::Value>) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let Some(props) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return json!({});
    };
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (name, p) in props {
        if !required.is_empty() && !required.contains(&name.as_str()) {
            continue;
        }
        let v = if let Some(first) = p
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            first.clone()
        } else {
            match p.get("type").and_then(Value::as_str) {
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => sample_arguments(Some(p)),
                _ => json!("mock"),
            }
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn fires(f: &MockFault, n: u64) -> bool {
    match (f.every, f.rate) {
        (Some(e), _) => e > 0 && n.is_multiple_of(e),
        (None, Some(r)) => fastrand::f64() < r,
        (None, None) => false,
    }
}

fn apply(f: &MockFault, plan: &mut FaultPlan) {
    if let Some(d) = f.delay {
        plan.delay += d.0;
    }
    if let Some(t) = f.truncate_after {
        plan.truncate_after = Some(t);
    }
    if let Some(s) = f.status {
        let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut e = UpstreamError::new(
            ErrorClass::from_status(status),
            Some(status),
            format!("mock fault: HTTP {s}"),
        );
        e.retry_after = f.retry_after.map(|d| d.0);
        plan.error.get_or_insert(e);
    }
}

fn vector(s: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (0..dims)
        .map(|i| {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407 + i as u64);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn delta_chunk(delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
    ChatChunk {
        id: String::new(),
        object: "chat.completion.chunk".into(),
        created: now(),
        model: String::new(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        }],
        usage: None,
        system_fingerprint: None,
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_cut_at_max_tokens_reports_no_more_output_tokens() {
        let mock = MockProvider::new(MockConfig {
            reply: Some("word ".repeat(100)),
            ..MockConfig::default()
        });
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let answer = mock.chat(&req, "id");
        let text = answer.choices[0]
            .message
            .content
            .as_ref()
            .unwrap()
            .joined_text();
        assert_eq!(text.split_whitespace().count(), 50);
        // 50 words of 5 bytes would estimate at 63 tokens: capped at 50.
        assert_eq!(answer.usage.unwrap().completion_tokens, 50);
    }
}
