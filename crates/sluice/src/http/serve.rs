//! The public listener's HTTP server: hyper connections (HTTP/1.1, and
//! HTTP/2 by its preface) whose LLM requests — `POST` to the chat,
//! messages and embeddings paths — go straight to their handlers, while
//! every other request (health, models, `/metrics`, the 404 and 405
//! answers) goes through the axum router of [`super::public_router`].
//!
//! Skipping the router on the hot path saves, per request, its route
//! match, the boxed clone of the route's service, the extension inserts
//! and two layers of future wrapping (`bench/README.md`, session 7, has the
//! instruction counts). Graceful shutdown matches `axum::serve`'s: stop
//! accepting, let every connection finish its in-flight requests, close
//! idle keep-alive connections.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::Router;
use http::{Method, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::peer::Peer;
use crate::state::App;

/// Serves `listener` until `shutdown` resolves, then drains its connections.
pub async fn serve(
    app: App,
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = Public {
            app: app.clone(),
            router: router.clone(),
            addr,
        };
        let conn = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept: per-connection errors (the peer gave up) are skipped;
/// others (out of file descriptors) are logged and retried after a pause,
/// like `axum::serve` does.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection's request handler.
#[derive(Clone)]
struct Public {
    app: App,
    router: Router,
    addr: SocketAddr,
}

/// The endpoints served without the router.
#[derive(Clone, Copy)]
enum Hot {
    Chat,
    Messages,
    Embeddings,
}

fn hot(method: &Method, path: &str) -> Option<Hot> {
    if method != Method::POST {
        return None;
    }
    match path.strip_prefix("/v1").unwrap_or(path) {
        "/chat/completions" => Some(Hot::Chat),
        "/embeddings" => Some(Hot::Embeddings),
        // Anthropic's API has no unversioned path (the router answers 404).
        "/messages" if path.starts_with("/v1") => Some(Hot::Messages),
        _ => None,
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Public {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Answer {
        let Some(which) = hot(req.method(), req.uri().path()) else {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(self.addr));
            return Box::pin(self.router.clone().oneshot(req));
        };
        let (parts, body) = req.into_parts();
        let (app, peer) = (State(self.app.clone()), Peer(Some(self.addr.ip())));
        let (headers, body) = (parts.headers, axum::body::Body::new(body));
        match which {
            Hot::Chat => {
                Box::pin(async move { Ok(super::chat::handle(app, peer, headers, body).await) })
            }
            Hot::Messages => {
                Box::pin(async move { Ok(super::messages::handle(app, peer, headers, body).await) })
            }
            Hot::Embeddings => {
                Box::pin(
                    async move { Ok(super::embeddings::handle(app, peer, headers, body).await) },
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_posts_to_the_llm_paths_skip_the_router() {
        let post = Method::POST;
        assert!(matches!(
            hot(&post, "/v1/chat/completions"),
            Some(Hot::Chat)
        ));
        assert!(matches!(hot(&post, "/chat/completions"), Some(Hot::Chat)));
        assert!(matches!(
            hot(&post, "/v1/embeddings"),
            Some(Hot::Embeddings)
        ));
        assert!(matches!(hot(&post, "/embeddings"), Some(Hot::Embeddings)));
        assert!(matches!(hot(&post, "/v1/messages"), Some(Hot::Messages)));
        for path in [
            "/messages",
            "/v1/models",
            "/healthz",
            "/v1/chat/completions/",
            "/v2/chat/completions",
        ] {
            assert!(hot(&post, path).is_none(), "{path}");
        }
        assert!(hot(&Method::GET, "/v1/chat/completions").is_none());
    }
}
