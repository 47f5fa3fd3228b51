//! The plain-HTTP pool over real sockets: connections are reused once a body
//! is read to the end, not when it is dropped early; an upstream closing its
//! idle connections costs no request; and a connection that dies before
//! answering is an error, not a hang.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use sluice_providers::{ErrorClass, UpstreamRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::config::raw::ServerConfig;
use crate::dispatch::transport::{read_body, Transport};

/// How the test upstream treats a connection after each answer.
#[derive(Clone, Copy)]
enum After {
    KeepAlive,
    /// Close the socket after answering, without saying so.
    Close,
    /// Read the request, then close without answering.
    Hangup,
}

/// A raw HTTP/1.1 upstream: counts the connections it accepts and records
/// each request head; answers `ok` with a Content-Length.
struct Upstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn upstream(after: After) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (a, h) = (accepted.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(sock, after, h.clone()));
        }
    });
    Upstream {
        port,
        accepted,
        heads,
    }
}

async fn serve(mut sock: TcpStream, after: After, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // Requests here have no body: a head ends the request.
        let Some(end) = read_head(&mut sock, &mut buf).await else {
            return;
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        heads
            .lock()
            .await
            .push(String::from_utf8_lossy(&head).into_owned());
        if let After::Hangup = after {
            return;
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if sock.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if let After::Close = after {
            return;
        }
    }
}

/// Reads until `buf` holds a whole request head; its length, or `None` at EOF.
async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 1024];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn get(port: u16, path: &str) -> UpstreamRequest {
    UpstreamRequest {
        method: Method::GET,
        url: format!("http://127.0.0.1:{port}{path}"),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::new(),
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_body_read_to_the_end_gives_its_connection_to_the_next_request() {
    let up = upstream(After::KeepAlive).await;
    let t = Transport::new(&ServerConfig::default());
    for i in 0..5 {
        let resp = t.send(get(up.port, &format!("/v1/x?i={i}")), SECOND).await;
        let body = read_body(resp.unwrap(), SECOND).await.unwrap();
        assert_eq!(&body[..], b"ok");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    let heads = up.heads.lock().await;
    assert_eq!(heads.len(), 5);
    // Origin-form request line and the Host header, as a server expects.
    assert!(
        heads[3].starts_with("GET /v1/x?i=3 HTTP/1.1\r\n"),
        "{}",
        heads[3]
    );
    let host = format!("host: 127.0.0.1:{}\r\n", up.port);
    assert!(
        heads[3].to_ascii_lowercase().contains(&host),
        "{}",
        heads[3]
    );
}

#[tokio::test]
async fn a_body_dropped_early_takes_its_connection_with_it() {
    let up = upstream(After::KeepAlive).await;
    let t = Transport::new(&ServerConfig::default());
    let first = t.send(get(up.port, "/a"), SECOND).await.unwrap();
    drop(first);
    let second = t.send(get(up.port, "/b"), SECOND).await.unwrap();
    assert_eq!(&read_body(second, SECOND).await.unwrap()[..], b"ok");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_upstream_closing_idle_connections_costs_no_request() {
    let up = upstream(After::Close).await;
    let t = Transport::new(&ServerConfig::default());
    for _ in 0..5 {
        let resp = t.send(get(up.port, "/c"), SECOND).await.unwrap();
        assert_eq!(&read_body(resp, SECOND).await.unwrap()[..], b"ok");
    }
    assert_eq!(up.heads.lock().await.len(), 5);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_connection_dying_before_the_answer_is_a_connection_error() {
    let up = upstream(After::Hangup).await;
    let t = Transport::new(&ServerConfig::default());
    let err = t.send(get(up.port, "/d"), SECOND).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Connection, "{}", err.message);
    // Sent once: a request that may have reached the upstream is not resent.
    assert_eq!(up.heads.lock().await.len(), 1);
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error_naming_the_host() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Transport::new(&ServerConfig::default());
    let err = t.send(get(port, "/e"), SECOND).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Connection);
    assert!(
        err.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        err.message
    );
}

#[test]
fn ports_are_found_in_names_and_v6_literals() {
    use crate::dispatch::transport::has_port;
    assert!(has_port("127.0.0.1:8080"));
    assert!(has_port("[::1]:8080"));
    assert!(has_port("vllm.internal:8000"));
    assert!(!has_port("vllm.internal"));
    assert!(!has_port("[::1]"));
}
