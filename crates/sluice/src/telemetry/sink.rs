//! The log sink: every log line (tracing events and the access log) is
//! appended to an in-memory buffer under a short lock, and one background
//! thread writes the buffer out in batches — one `write(2)` per batch instead
//! of one per line, and no I/O on the request path. Lines reach the output
//! within [`FLUSH_EVERY`]; [`SinkGuard`] flushes everything on shutdown. If the
//! output is blocked and the buffer reaches [`MAX_BUFFER`], further lines are
//! dropped and counted (`sluice_log_lines_dropped_total`), never silently.

use std::io::Write;
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

/// Longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// Buffer size that wakes the writer before `FLUSH_EVERY`.
const HIGH_WATER: usize = 256 * 1024;
/// Buffer size past which lines are dropped (and counted).
pub const MAX_BUFFER: usize = 64 << 20;

/// Lines dropped because the output could not keep up.
pub static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

static GLOBAL: OnceLock<LogSink> = OnceLock::new();

struct Inner {
    buf: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    closing: bool,
}

/// A cheap handle to the sink.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

/// Flushes and stops the writer thread when dropped.
pub struct SinkGuard {
    sink: LogSink,
    thread: Option<JoinHandle<()>>,
}

impl LogSink {
    /// Starts a sink writing to `out` on its own thread.
    pub fn start(out: Box<dyn Write + Send>) -> (LogSink, SinkGuard) {
        let sink = LogSink {
            inner: Arc::new(Inner {
                buf: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
        };
        let worker = sink.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-log".into())
            .spawn(move || worker.run(out))
            .ok();
        (sink.clone(), SinkGuard { sink, thread })
    }

    /// Makes `sink` the process-wide sink used by the access log.
    pub fn install_global(sink: LogSink) {
        let _ = GLOBAL.set(sink);
    }

    /// The process-wide sink, if logging was set up.
    pub fn global() -> Option<&'static LogSink> {
        GLOBAL.get()
    }

    /// Appends whole lines (each ending in `\n`).
    pub fn write(&self, lines: &[u8]) {
        let mut st = self.inner.buf.lock().unwrap_or_else(|p| p.into_inner());
        if st.pending.len() + lines.len() > MAX_BUFFER {
            drop(st);
            DROPPED.inc_by(lines.iter().filter(|b| **b == b'\n').count().max(1) as u64);
            return;
        }
        st.pending.extend_from_slice(lines);
        let wake = st.pending.len() >= HIGH_WATER;
        drop(st);
        if wake {
            self.inner.wake.notify_one();
        }
    }

    fn run(self, mut out: Box<dyn Write + Send>) {
        let mut batch = Vec::with_capacity(HIGH_WATER);
        loop {
            let closing = {
                let mut st = self.inner.buf.lock().unwrap_or_else(|p| p.into_inner());
                if st.pending.len() < HIGH_WATER && !st.closing {
                    st = self
                        .inner
                        .wake
                        .wait_timeout(st, FLUSH_EVERY)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                std::mem::swap(&mut st.pending, &mut batch);
                st.closing
            };
            if !batch.is_empty() {
                // A failing output (closed pipe) cannot be reported anywhere
                // but the counter.
                if out.write_all(&batch).and_then(|_| out.flush()).is_err() {
                    DROPPED.inc_by(batch.iter().filter(|b| **b == b'\n').count() as u64);
                }
                batch.clear();
            }
            if closing {
                let st = self.inner.buf.lock().unwrap_or_else(|p| p.into_inner());
                if st.pending.is_empty() {
                    return;
                }
            }
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.sink
            .inner
            .buf
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closing = true;
        self.sink.inner.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A per-event writer for tracing: collects one event, appends it on drop.
pub struct EventWriter {
    sink: LogSink,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.sink.write(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            sink: self.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_flushed_on_drop() {
        let out = Shared::default();
        let (sink, guard) = LogSink::start(Box::new(out.clone()));
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        sink.write(format!("{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .map(|l| l[2..].parse().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..5000).collect::<Vec<_>>(),
                "thread {t} lines out of order or lost"
            );
        }
    }
}
