//! A webhook receiver for tests: an axum server on 127.0.0.1:0 that
//! records each request and answers from a script of statuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A webhook receiver: answers each request with the next scripted status
/// (200 once the script is used up), or never when `hang` is set.
#[derive(Clone, Default)]
pub struct Receiver {
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub script: Arc<Mutex<VecDeque<u16>>>,
    pub hang: bool,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> (Receiver, String) {
        Receiver::serve(Receiver {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Receiver::default()
        })
        .await
    }

    pub async fn serve(r: Receiver) -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/tok-path-canary",
            listener.local_addr().unwrap()
        );
        let app = axum::Router::new()
            .route("/hooks/tok-path-canary", axum::routing::post(answer))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn answer(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.hits.lock().unwrap().push(Hit { headers, body });
    if r.hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let next = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(next).unwrap()
}
