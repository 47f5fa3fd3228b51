//! `sluice-mock-upstream`: a minimal, fast OpenAI-compatible upstream for
//! load tests. Plain hyper 1 HTTP/1.1 with keep-alive; every body is built
//! once at startup and served as a refcounted `Bytes`. The only request
//! inspection on the hot path is a `memmem` search for `"stream":true`.
//!
//! ```text
//! sluice-mock-upstream [--listen 127.0.0.1:9100] [--threads 1]
//!                      [--stream-chunks 20] [--chunk-delay-ms 0]
//! ```
//!
//! Routes: `POST /v1/chat/completions` (a fixed `chat.completion` with
//! usage, or with `"stream": true` N content chunks, a finish chunk, a usage
//! chunk and `data: [DONE]`), `GET /health`; anything else is 404.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Sleep;

const USAGE: &str = "usage: sluice-mock-upstream [--listen ADDR] [--threads N] [--stream-chunks N] [--chunk-delay-ms MS]";

struct Options {
    listen: SocketAddr,
    threads: usize,
    stream_chunks: usize,
    chunk_delay: Option<Duration>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
        threads: 1,
        stream_chunks: 20,
        chunk_delay: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}\n{USAGE}");
        match flag.as_str() {
            "--listen" => opts.listen = value.parse().map_err(|e| bad(&e))?,
            "--threads" => opts.threads = value.parse().map_err(|e| bad(&e))?,
            "--stream-chunks" => opts.stream_chunks = value.parse().map_err(|e| bad(&e))?,
            "--chunk-delay-ms" => {
                let ms: u64 = value.parse().map_err(|e| bad(&e))?;
                opts.chunk_delay = (ms > 0).then(|| Duration::from_millis(ms));
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if opts.threads == 0 {
        return Err(format!("--threads must be at least 1\n{USAGE}"));
    }
    Ok(opts)
}

/// Every answer, rendered once.
struct Prebuilt {
    completion: Bytes,
    /// Stream events one per element (used with a chunk delay).
    events: Arc<[Bytes]>,
    /// All stream events concatenated (used without a chunk delay).
    stream: Bytes,
    chunk_delay: Option<Duration>,
    stream_true: memmem::Finder<'static>,
    stream_true_spaced: memmem::Finder<'static>,
}

const CREATED: u64 = 1_700_000_000;

impl Prebuilt {
    fn new(chunks: usize, chunk_delay: Option<Duration>) -> Self {
        let completion = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{CREATED},"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"This is a fixed answer from the sluice benchmark upstream.","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":10,"completion_tokens":12,"total_tokens":22,"prompt_tokens_details":{{"cached_tokens":0}}}},"system_fingerprint":"fp_bench"}}"#
        );
        let head = format!(
            r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":{CREATED},"model":"gpt-4o-mini","choices":"#
        );
        let mut events = vec![format!(
            r#"{head}[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
        )];
        for _ in 0..chunks {
            events.push(format!(
                r#"{head}[{{"index":0,"delta":{{"content":"tok "}},"logprobs":null,"finish_reason":null}}]}}"#
            ));
        }
        events.push(format!(
            r#"{head}[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}"#
        ));
        events.push(format!(
            r#"{head}[],"usage":{{"prompt_tokens":10,"completion_tokens":{chunks},"total_tokens":{}}}}}"#,
            10 + chunks
        ));
        events.push("data: [DONE]".into());
        let events: Vec<Bytes> = events
            .into_iter()
            .map(|e| Bytes::from(e + "\n\n"))
            .collect();
        let stream = Bytes::from(events.concat());
        Prebuilt {
            completion: Bytes::from(completion),
            events: events.into(),
            stream,
            chunk_delay,
            stream_true: memmem::Finder::new(br#""stream":true"#),
            stream_true_spaced: memmem::Finder::new(br#""stream": true"#),
        }
    }
}

/// Response body: one buffer, or events separated by a delay.
enum BenchBody {
    Whole(Option<Bytes>),
    Paced {
        events: Arc<[Bytes]>,
        next: usize,
        delay: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
    },
}

impl Body for BenchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            BenchBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BenchBody::Paced {
                events,
                next,
                delay,
                sleep,
            } => {
                if *next >= events.len() {
                    return Poll::Ready(None);
                }
                if *next > 0 {
                    let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*delay)));
                    ready!(timer.as_mut().poll(cx));
                    *sleep = None;
                }
                *next += 1;
                Poll::Ready(Some(Ok(Frame::data(events[*next - 1].clone()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, BenchBody::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            BenchBody::Whole(Some(b)) => SizeHint::with_exact(b.len() as u64),
            BenchBody::Whole(None) => SizeHint::with_exact(0),
            BenchBody::Paced { .. } => SizeHint::default(),
        }
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: BenchBody,
) -> Response<BenchBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Reads the request body; `Bytes` without a copy when it is one frame.
async fn read_body(mut body: Incoming) -> Bytes {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(Ok(data)) = frame.map(Frame::into_data) else {
            break;
        };
        match &first {
            None => first = Some(data),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    }
}

async fn handle(
    pre: Arc<Prebuilt>,
    req: Request<Incoming>,
) -> Result<Response<BenchBody>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.method == Method::GET && parts.uri.path() == "/health" {
        let ok = BenchBody::Whole(Some(Bytes::from_static(b"ok")));
        return Ok(response(StatusCode::OK, "text/plain", ok));
    }
    if parts.method != Method::POST || parts.uri.path() != "/v1/chat/completions" {
        let body = Bytes::from_static(br#"{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}"#);
        return Ok(response(
            StatusCode::NOT_FOUND,
            "application/json",
            BenchBody::Whole(Some(body)),
        ));
    }
    let body = read_body(body).await;
    let stream =
        pre.stream_true.find(&body).is_some() || pre.stream_true_spaced.find(&body).is_some();
    if !stream {
        let body = BenchBody::Whole(Some(pre.completion.clone()));
        return Ok(response(StatusCode::OK, "application/json", body));
    }
    let body = match pre.chunk_delay {
        None => BenchBody::Whole(Some(pre.stream.clone())),
        Some(delay) => BenchBody::Paced {
            events: pre.events.clone(),
            next: 0,
            delay,
            sleep: None,
        },
    };
    Ok(response(StatusCode::OK, "text/event-stream", body))
}

async fn serve(listener: TcpListener, pre: Arc<Prebuilt>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let pre = pre.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(pre.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .header_read_timeout(None)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("sluice-mock-upstream: cannot start the runtime: {e}");
            std::process::exit(1);
        });
    runtime.block_on(async {
        let listener = match TcpListener::bind(opts.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("sluice-mock-upstream: cannot listen on {}: {e}", opts.listen);
                std::process::exit(1);
            }
        };
        let addr = listener.local_addr().unwrap_or(opts.listen);
        println!(
            "sluice-mock-upstream listening on http://{addr} (threads {}, stream chunks {}, chunk delay {:?})",
            opts.threads, opts.stream_chunks, opts.chunk_delay.unwrap_or_default()
        );
        let pre = Arc::new(Prebuilt::new(opts.stream_chunks, opts.chunk_delay));
        serve(listener, pre).await;
    });
}
