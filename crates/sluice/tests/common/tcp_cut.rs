//! A TCP proxy that can be cut: `cut()` closes every open connection and
//! refuses new ones (accepted, then closed at once) until `restore()`. Put
//! in front of a database, it is an outage the client sees exactly as a
//! dead server.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpCut {
    /// `host:port` to connect to instead of the target.
    pub addr: String,
    down: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpCut {
    /// A proxy to `target` (`host:port`).
    pub async fn start(target: &str) -> TcpCut {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (down, _) = watch::channel(false);
        let down = Arc::new(down);
        let state = down.clone();
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut = state.subscribe();
                if *cut.borrow_and_update() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        TcpCut { addr, down, task }
    }

    pub fn cut(&self) {
        self.down.send_replace(true);
    }

    pub fn restore(&self) {
        self.down.send_replace(false);
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.task.abort();
    }
}
