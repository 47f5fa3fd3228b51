//! The `sluice-mock-upstream` benchmark binary: answers, stream shape and
//! keep-alive (several requests on one connection).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use common::{datas, next_frame, post, ReqBody};
use http::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;

/// The spawned binary, killed on drop.
struct Upstream(Child);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Upstream, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-mock-upstream"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sluice-mock-upstream");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("banner");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in banner {line:?}"));
    (Upstream(child), addr)
}

#[tokio::test]
async fn answers_completion_and_stream() {
    let (_child, addr) = spawn(&["--stream-chunks", "4", "--threads", "2"]);
    let resp = post(addr, "/v1/chat/completions", &json!({"model": "x"})).await;
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["usage"]["total_tokens"], 22);
    assert!((300..600).contains(&resp.body.len()));

    let resp = post(addr, "/v1/chat/completions", &json!({"stream": true})).await;
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.events();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = datas(&events);
    // role + 4 content + finish + usage.
    assert_eq!(chunks.len(), 7);
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[6]["choices"], json!([]));
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn paced_stream_and_keep_alive() {
    let (_child, addr) = spawn(&["--stream-chunks", "3", "--chunk-delay-ms", "5"]);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    for _ in 0..3 {
        let body = Bytes::from_static(br#"{"model":"x","stream": true}"#);
        let req = Request::post("/v1/chat/completions")
            .header("host", addr.to_string())
            .body(ReqBody(Some(body)))
            .unwrap();
        let mut resp = sender.send_request(req).await.unwrap().into_body();
        let mut frames = 0;
        while let Some(frame) = next_frame(&mut resp).await {
            frame.unwrap();
            frames += 1;
        }
        // Paced: one frame per event (role + 3 + finish + usage + [DONE]).
        assert_eq!(frames, 7);
    }
    assert!(!driver.is_finished(), "the connection stays open");
}
