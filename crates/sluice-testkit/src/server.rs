//! [`MockUpstream`]: one HTTP server on `127.0.0.1:0` serving every wire by
//! path. It records each request, answers it from a queue of [`Script`]s
//! (or the default script) and injects the script's faults.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::body::{EventStream, MockBody};
use crate::routes::{route, Route};
use crate::script::{Fault, Script, Wire};
use crate::wire::{anthropic, gemini, openai, str_at, Answer, AnswerBody, Call};

/// One request as the mock upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body parsed as JSON; `Null` when empty, a JSON string when not JSON.
    pub body: Value,
    pub raw_body: Bytes,
    /// The wire of the route that matched (`None`: no route matched, 404).
    pub wire: Option<Wire>,
}

impl Recorded {
    /// A header's value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body asked for a stream (`"stream": true`, or Gemini's
    /// `:streamGenerateContent`).
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
            || self.path.ends_with(":streamGenerateContent")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Script>>,
    default: Mutex<Script>,
    responder: Mutex<Option<Responder>>,
    abandoned: Arc<AtomicUsize>,
    seq: AtomicU64,
}

/// Picks an answer from the request itself (wire and JSON body); `None`
/// falls through to the default script. Consulted after the queue.
pub type Responder = Arc<dyn Fn(Option<Wire>, &Value) -> Option<Script> + Send + Sync>;

/// Locks, ignoring poisoning: a panicking test must not cascade.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A mock LLM upstream on a random local port. Dropping it stops the server
/// and every connection it holds.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Starts a server on `127.0.0.1:0`. Panics if it cannot bind (a test
    /// environment failure).
    pub async fn start() -> MockUpstream {
        Self::start_on("127.0.0.1:0")
            .await
            .expect("mock upstream: bind 127.0.0.1:0")
    }

    /// Starts a server on `addr` (used by the `sluice-testkit-server` binary).
    pub async fn start_on(addr: &str) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr().expect("mock upstream: local addr");
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(MockUpstream { addr, shared, task })
    }

    /// Sets a responder that chooses answers from the request when the queue
    /// is empty (before the default script).
    pub fn set_responder(&self, responder: Responder) {
        *lock(&self.shared.responder) = Some(responder);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<Recorded> {
        lock(&self.shared.requests).last().cloned()
    }

    /// Number of requests received so far.
    pub fn hits(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Forgets the recorded requests (hits go back to 0).
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Queues a script; each scripted route consumes one, in order. When the
    /// queue is empty the default script answers.
    pub fn push(&self, script: Script) {
        lock(&self.shared.queue).push_back(script);
    }

    /// Queues several scripts, in order.
    pub fn push_all(&self, scripts: impl IntoIterator<Item = Script>) {
        lock(&self.shared.queue).extend(scripts);
    }

    /// Scripts queued and not yet consumed.
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Replaces the answer used when the queue is empty (initially
    /// [`Script::default`]).
    pub fn set_default(&self, script: Script) {
        *lock(&self.shared.default) = script;
    }

    /// Streams whose body was dropped before its end, i.e. the client went
    /// away mid-stream (streams cut by a truncation fault are not counted).
    pub fn disconnects(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` disconnects were seen; false on timeout.
    pub async fn wait_for_disconnects(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.disconnects() >= n).await
    }

    /// Waits until at least `n` requests were received; false on timeout.
    pub async fn wait_for_hits(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.hits() >= n).await
    }
}

fn next_script(shared: &Shared, wire: Option<Wire>, body: &Value) -> Script {
    if let Some(s) = lock(&shared.queue).pop_front() {
        return s;
    }
    let responder = lock(&shared.responder).clone();
    responder
        .and_then(|r| r(wire, body))
        .unwrap_or_else(|| lock(&shared.default).clone())
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Accept loop. Connection tasks live in a `JoinSet` owned by this task, so
/// aborting it (on drop of the `MockUpstream`) aborts them all.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http1().timer(TokioTimer::new());
                    // Errors are the point of fault injection; nothing to report.
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Returned by the service to make hyper drop the connection unanswered.
#[derive(Debug)]
struct ResetFault;

impl std::fmt::Display for ResetFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock upstream: connection reset by fault injection")
    }
}

impl std::error::Error for ResetFault {}

async fn read_body(mut body: Incoming) -> Result<Bytes, hyper::Error> {
    let mut buf = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, ResetFault> {
    let (parts, body) = req.into_parts();
    let raw_body = read_body(body).await.map_err(|_| ResetFault)?;
    let body: Value = if raw_body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw_body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw_body).into_owned()))
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let (route, path_model) = route(&parts.method, &path);
    lock(&shared.requests).push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: parts.headers,
        body: body.clone(),
        raw_body,
        wire: route.wire(),
    });

    if !route.is_scripted() {
        let answer = match route {
            Route::OpenAiModels => openai::models(),
            _ => openai::no_route(parts.method.as_str(), &path),
        };
        return Ok(respond(answer, &[], &Fault::default(), &shared.abandoned));
    }

    let script = next_script(&shared, route.wire(), &body);
    if let Some(delay) = script.fault.delay_first_byte {
        tokio::time::sleep(delay).await;
    }
    if script.fault.reset {
        return Err(ResetFault);
    }
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    // Azure and Gemini name the model in the path; elsewhere the body does.
    let model = path_model
        .or_else(|| str_at(&body, "/model").map(str::to_owned))
        .unwrap_or_else(|| "mock-model".into());
    let stream = match route {
        Route::GeminiGenerate { stream } => stream,
        _ => body.get("stream").and_then(Value::as_bool) == Some(true),
    };
    let call = Call {
        model,
        body: &body,
        stream,
        seq,
        script: &script,
    };
    let answer = match route {
        Route::OpenAiChat { azure } => openai::chat(&call, azure),
        Route::OpenAiEmbeddings { azure } => openai::embeddings(&call, azure),
        Route::AnthropicMessages => anthropic::messages(&call),
        Route::GeminiGenerate { .. } => {
            let sse = query
                .as_deref()
                .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
            gemini::generate(&call, sse)
        }
        Route::GeminiEmbed { batch } => gemini::embed(&call, batch),
        Route::OpenAiModels | Route::NotFound => openai::no_route(parts.method.as_str(), &path),
    };
    Ok(respond(
        answer,
        &script.headers,
        &script.fault,
        &shared.abandoned,
    ))
}

/// Builds the response: status, the answer's and the script's headers, and
/// the body with the fault's chunk delay and truncation applied.
fn respond(
    answer: Answer,
    extra_headers: &[(String, String)],
    fault: &Fault,
    abandoned: &Arc<AtomicUsize>,
) -> Response<MockBody> {
    let mut headers = answer.headers;
    headers.extend_from_slice(extra_headers);
    let body = match (answer.body, fault.truncate_after) {
        (AnswerBody::Whole(bytes), None) => MockBody::whole(bytes),
        (AnswerBody::Whole(bytes), Some(n)) => {
            // Announce the full length, send a prefix, then abort.
            headers.push(("content-length".into(), bytes.len().to_string()));
            let cut = bytes.slice(..n.min(bytes.len().saturating_sub(1)));
            MockBody::Events(EventStream::new(
                vec![cut],
                None,
                Some(1),
                abandoned.clone(),
            ))
        }
        (AnswerBody::Events(events), truncate) => MockBody::Events(EventStream::new(
            events,
            fault.chunk_delay,
            truncate,
            abandoned.clone(),
        )),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
