//! The access log of a test binary, captured from the global log sink, and
//! the line of one request (which is written after everything the request
//! settles, so waiting for it waits for completion).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sluice::telemetry::sink::LogSink;

/// The access log of this test binary, captured from the global sink.
pub fn access_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        struct Tee(Arc<Mutex<Vec<u8>>>);
        impl Write for Tee {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (sink, guard) = LogSink::start(Box::new(Tee(buf.clone())));
        LogSink::install_global(sink);
        std::mem::forget(guard);
        buf
    })
    .clone()
}

/// The access-log line of request `id` (waits for the batched sink).
pub async fn log_line(id: &str) -> String {
    let log = access_log();
    let needle = format!("request_id=\"{id}\"");
    let start = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
            return line.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no access-log line for {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
