//! A TCP proxy in front of the test Redis that records every command a
//! client sends (parsed from the RESP request stream), so a test can count
//! what sluice asks of Redis and when.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One command sent to Redis: its name (upper case) and first argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub first: Option<String>,
}

/// The proxy; dropped, it stops accepting (open connections end with the
/// test runtime).
pub struct RedisProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Command>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RedisProxy {
    /// A proxy to the Redis at `upstream` (`redis://host:port`).
    pub async fn start(upstream: &str) -> RedisProxy {
        let target = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, log) = (target.clone(), log.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        relay(client, server, log).await;
                    }
                });
            }
        });
        RedisProxy { url, seen, task }
    }

    /// Every command seen so far, in order.
    pub fn commands(&self) -> Vec<Command> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until no command arrived for `quiet` (background work done).
    pub async fn settle(&self, quiet: std::time::Duration) {
        let mut last = self.count();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.count();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, log: Arc<Mutex<Vec<Command>>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 16 * 1024]);
        loop {
            let n = match cr.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some((cmd, used)) = parse_command(&buf) {
                log.lock().unwrap().push(cmd);
                buf.drain(..used);
            }
            if sw.write_all(&chunk[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    tokio::join!(up, down);
}

/// One RESP command (an array of bulk strings) from the front of `buf`,
/// and the bytes it took; `None` until it is complete.
fn parse_command(buf: &[u8]) -> Option<(Command, usize)> {
    let (n, mut at) = line(buf, 0, b'*')?;
    let mut parts = Vec::new();
    for _ in 0..n {
        let (len, start) = line(buf, at, b'$')?;
        let end = start + len;
        if buf.len() < end + 2 {
            return None;
        }
        if parts.len() < 2 {
            parts.push(String::from_utf8_lossy(&buf[start..end]).into_owned());
        }
        at = end + 2;
    }
    let mut parts = parts.into_iter();
    let name = parts.next()?.to_ascii_uppercase();
    Some((
        Command {
            name,
            first: parts.next(),
        },
        at,
    ))
}

/// A `<marker><number>\r\n` line at `at`: the number and where the next
/// line starts.
fn line(buf: &[u8], at: usize, marker: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != marker {
        return None;
    }
    let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}
