//! The connection pool for plain `http://` upstreams (vLLM, Ollama, a local
//! mock, a sidecar): HTTP/1.1 keep-alive connections made with hyper's
//! low-level client, kept per thread and per upstream host, most recently
//! used first. A connection goes back to its pool when its response body has
//! been read to the end ([`PooledBody`]); a body dropped early drops its
//! connection, which is how a client leaving cancels the upstream call.
//!
//! Why not hyper-util's pooled client for these: its pool is shared behind a
//! mutex, hashes its key, and spawns a task per request to watch the
//! connection become idle; this one is a `Vec` per host in a thread-local,
//! which is all a thread-per-core server needs. `https://` upstreams keep
//! that client (TLS, HTTP/2 by ALPN); see `transport.rs`.
//!
//! A reused connection can be closed by the upstream just as a request is
//! sent on it: when hyper hands the request back unsent, it is sent once
//! more on a new connection (as hyper-util's client does).

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, InvalidHeaderValue};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

pub type Sender = SendRequest<Full<Bytes>>;

/// How long an idle connection is kept (hyper-util's default, as before).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

thread_local! {
    static POOL: RefCell<Vec<Host>> = const { RefCell::new(Vec::new()) };
}

/// One upstream host: its key and `Host` header, made once and shared by
/// its requests (no allocation per request), and its idle connections,
/// oldest first.
struct Host {
    key: PoolKey,
    header: HeaderValue,
    idle: Vec<(Sender, Instant)>,
}

impl Host {
    fn new(key: PoolKey) -> Result<Host, InvalidHeaderValue> {
        Ok(Host {
            header: HeaderValue::try_from(&*key.host)?,
            key,
            idle: Vec::new(),
        })
    }
}

/// Which connections may serve a request: the transport that made them
/// (its settings) and the upstream's host as its URL names it (`host` or
/// `host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub transport: u64,
    pub host: Arc<str>,
}

/// The pool key and `Host` header of `host` under `transport` (made on
/// first use); an invalid host is an error.
pub fn entry(transport: u64, host: &str) -> Result<(PoolKey, HeaderValue), InvalidHeaderValue> {
    POOL.with_borrow_mut(|hosts| {
        let found = hosts
            .iter()
            .find(|h| h.key.transport == transport && *h.key.host == *host);
        if let Some(h) = found {
            return Ok((h.key.clone(), h.header.clone()));
        }
        let h = Host::new(PoolKey {
            transport,
            host: host.into(),
        })?;
        let entry = (h.key.clone(), h.header.clone());
        hosts.push(h);
        Ok(entry)
    })
}

/// The most recently returned live connection for `key`, if any.
pub fn take(key: &PoolKey) -> Option<Sender> {
    POOL.with_borrow_mut(|hosts| {
        let host = hosts.iter_mut().find(|h| h.key == *key)?;
        while let Some((sender, since)) = host.idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    })
}

/// Keeps `sender` for the next request to `key`, unless `max_idle` are
/// already kept; connections idle too long are dropped on the way.
fn give_back(key: PoolKey, sender: Sender, max_idle: usize) {
    if sender.is_closed() {
        return;
    }
    POOL.with_borrow_mut(|hosts| {
        let host = match hosts.iter().position(|h| h.key == key) {
            Some(i) => &mut hosts[i],
            // Released on a thread that never sent to this host.
            None => match Host::new(key) {
                Ok(h) => {
                    hosts.push(h);
                    hosts.last_mut().expect("just pushed")
                }
                Err(_) => return,
            },
        };
        let now = Instant::now();
        let stale = host
            .idle
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
            .count();
        host.idle.drain(..stale);
        if host.idle.len() < max_idle {
            host.idle.push((sender, now));
        }
    });
}

/// Opens a new HTTP/1.1 connection to `authority` (`host:port`); the
/// connection is driven by a task on the calling thread's runtime.
pub async fn connect(authority: &str, timeout: Duration) -> std::io::Result<Sender> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect to {authority} timed out after {timeout:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the upstream closes, or when the sender and any body
        // in progress are dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response body that puts its connection back into the pool once it has
/// been read to the end. Bodies from other transports carry no connection.
#[derive(Debug)]
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(PoolKey, Sender, usize)>,
}

impl PooledBody {
    pub fn unpooled(inner: Incoming) -> Self {
        PooledBody { inner, conn: None }
    }

    pub fn pooled(inner: Incoming, key: PoolKey, sender: Sender, max_idle: usize) -> Self {
        PooledBody {
            inner,
            conn: Some((key, sender, max_idle)),
        }
    }

    fn release(&mut self) {
        if let Some((key, sender, max_idle)) = self.conn.take() {
            give_back(key, sender, max_idle);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body may never be polled; anything else not read to the
        // end takes its connection with it.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
