//! A tiny HTTP/1.1 client for the testkit's own tests (one connection per
//! request, via hyper's client connection API), keeping partial bodies so
//! tests can see truncation.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sluice_testkit::sse::{self, SseEvent};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body ended cleanly (false: the connection broke mid-body).
    pub complete: bool,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    pub fn events(&self) -> Vec<SseEvent> {
        sse::parse(&self.text())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Request body: empty or one buffer.
pub struct ReqBody(pub Option<Bytes>);

impl Body for ReqBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().0.take().map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// Sends a request and returns the response head plus the live body, and
/// the task driving the connection (abort it to close the socket).
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(http::response::Parts, Incoming, JoinHandle<()>), hyper::Error> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let req = builder
        .body(ReqBody(body.map(|b| Bytes::from(b.to_string()))))
        .expect("request");
    let response = sender.send_request(req).await?;
    let (parts, incoming) = response.into_parts();
    Ok((parts, incoming, driver))
}

/// Reads the next data frame; `None` at the end, `Some(Err)` on a broken body.
pub async fn next_frame(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Sends a request and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Resp, hyper::Error> {
    let (parts, mut incoming, _driver) = open(addr, method, path, headers, body).await?;
    let mut buf = BytesMut::new();
    let mut complete = true;
    while let Some(frame) = next_frame(&mut incoming).await {
        match frame {
            Ok(data) => buf.extend_from_slice(&data),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: buf.freeze(),
        complete,
    })
}

/// `POST path` with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    send(addr, "POST", path, &[], Some(body))
        .await
        .expect("a response")
}

/// The JSON data of every event (skipping `[DONE]`).
pub fn datas(events: &[SseEvent]) -> Vec<Value> {
    events.iter().filter_map(SseEvent::json).collect()
}
