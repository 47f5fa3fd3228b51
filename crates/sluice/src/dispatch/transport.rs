//! The upstream HTTP transport: plain `http://` upstreams through the
//! per-thread HTTP/1.1 pool of `pool.rs`; `https://` ones through a hyper-util
//! client per thread (HTTP/1.1 keep-alive, HTTP/2 by ALPN, rustls with the
//! Mozilla roots); both with TCP_NODELAY and a connect timeout; plus the
//! first-byte and whole-body timeouts. Dropping a response body drops its
//! connection, which is how a client disconnect cancels the upstream call.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_providers::{ErrorClass, UpstreamError, UpstreamRequest};

use crate::config::raw::ServerConfig;

use super::pool::{self, PooledBody};

pub type Response = hyper::Response<PooledBody>;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Transport instances, so each thread's cached client belongs to one.
static IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's client (and its connection pool) for one transport:
    /// connections are driven by the thread that uses them, so a request
    /// never waits on another thread's event loop.
    static CLIENT: RefCell<Option<(u64, HttpClient)>> = const { RefCell::new(None) };
}

pub struct Transport {
    id: u64,
    server: ServerConfig,
}

/// A pooled client; its connections are driven by the calling thread's runtime.
fn build_client(server: &ServerConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(server.connect_timeout.0));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(server.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

impl Transport {
    pub fn new(server: &ServerConfig) -> Self {
        Transport {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            server: server.clone(),
        }
    }

    /// This thread's client, built on first use.
    fn client(&self) -> HttpClient {
        CLIENT.with(|c| {
            let mut c = c.borrow_mut();
            match &*c {
                Some((id, client)) if *id == self.id => client.clone(),
                _ => {
                    let client = build_client(&self.server);
                    *c = Some((self.id, client.clone()));
                    client
                }
            }
        })
    }

    /// Sends `up` and waits for the response head up to `first_byte`.
    pub async fn send(
        &self,
        up: UpstreamRequest,
        first_byte: Duration,
    ) -> Result<Response, UpstreamError> {
        let sent = if up.url.starts_with("http://") {
            tokio::time::timeout(first_byte, self.send_plain(up)).await
        } else {
            tokio::time::timeout(first_byte, self.send_tls(up)).await
        };
        match sent {
            Err(_) => Err(UpstreamError::new(
                ErrorClass::Timeout,
                None,
                format!("no answer within {first_byte:?}"),
            )),
            Ok(r) => r,
        }
    }

    /// Through this thread's hyper-util client (`https://`).
    async fn send_tls(&self, up: UpstreamRequest) -> Result<Response, UpstreamError> {
        let uri: http::Uri = up.url.parse().map_err(invalid_url)?;
        let mut req = http::Request::new(Full::new(up.body));
        *req.method_mut() = up.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = up.headers;
        match self.client().request(req).await {
            Err(e) => Err(transport_error(&e)),
            Ok(r) => Ok(r.map(PooledBody::unpooled)),
        }
    }

    /// Through the pool of plain HTTP/1.1 connections (`http://`).
    async fn send_plain(&self, up: UpstreamRequest) -> Result<Response, UpstreamError> {
        let rest = &up.url["http://".len()..];
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (host, path) = rest.split_at(split);
        let path = if path.is_empty() { "/" } else { path };
        let uri = http::Uri::try_from(path).map_err(invalid_url)?;
        let (key, host) = pool::entry(self.id, host).map_err(invalid_url)?;
        let mut req = http::Request::new(Full::new(up.body));
        *req.method_mut() = up.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = up.headers;
        req.headers_mut().insert(http::header::HOST, host);
        let max_idle = self.server.pool_max_idle_per_host;
        let mut req = Some(req);
        loop {
            let (mut sender, reused) = match pool::take(&key) {
                Some(s) => (s, true),
                None => (self.connect(&key.host).await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue; // closed while idle: try the next
                }
                return Err(closed_before_sending(&key.host));
            }
            let this = req.take().expect("a request to send");
            match sender.try_send_request(this).await {
                Ok(r) => {
                    return Ok(r.map(|b| PooledBody::pooled(b, key, sender, max_idle)));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent on a reused connection the upstream had
                    // just closed: once more, on another.
                    Some(unsent) if reused => req = Some(unsent),
                    _ => return Err(transport_error(e.error())),
                },
            }
        }
    }

    /// A new connection to `host` (port 80 when it names none).
    async fn connect(&self, host: &str) -> Result<pool::Sender, UpstreamError> {
        let authority = if has_port(host) {
            std::borrow::Cow::Borrowed(host)
        } else {
            std::borrow::Cow::Owned([host, ":80"].concat())
        };
        pool::connect(&authority, self.server.connect_timeout.0)
            .await
            .map_err(|e| {
                let class = if e.kind() == std::io::ErrorKind::TimedOut {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Connection
                };
                UpstreamError::new(class, None, format!("connecting to {authority}: {e}"))
            })
    }
}

/// Whether `host` (an authority, `[v6]` literals included) names a port.
pub(super) fn has_port(host: &str) -> bool {
    match host.rfind(':') {
        Some(i) => !host[i..].contains(']'),
        None => false,
    }
}

fn invalid_url(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::new(
        ErrorClass::Connection,
        None,
        format!("invalid upstream URL: {e}"),
    )
}

fn closed_before_sending(authority: &str) -> UpstreamError {
    UpstreamError::new(
        ErrorClass::Connection,
        None,
        format!("the connection to {authority} closed before the request was sent"),
    )
}

/// Reads a whole body, up to `total`.
pub async fn read_body(resp: Response, total: Duration) -> Result<Bytes, UpstreamError> {
    match tokio::time::timeout(total, resp.into_body().collect()).await {
        Err(_) => Err(UpstreamError::new(
            ErrorClass::Timeout,
            None,
            format!("answer not complete within {total:?}"),
        )),
        Ok(Err(e)) => Err(transport_error(&e)),
        Ok(Ok(b)) => Ok(b.to_bytes()),
    }
}

/// The body's data frames as they arrive.
pub fn body_stream(resp: Response) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    resp.into_body()
        .into_data_stream()
        .map(|r| r.map_err(|e| transport_error(&e)))
        .boxed()
}

/// Classifies a transport failure: timeouts anywhere in the cause chain are
/// `Timeout`, everything else `Connection`. The message never contains
/// credentials (hyper errors carry no headers).
fn transport_error(e: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let mut class = ErrorClass::Connection;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            class = ErrorClass::Timeout;
        }
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    UpstreamError::new(class, None, msg)
}
