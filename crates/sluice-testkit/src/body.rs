//! The response body of the mock server: a whole buffer, or a sequence of
//! pre-rendered stream events sent with the script's faults (delay between
//! events, abort after N events). A guard counts event streams the client
//! abandoned before their end.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Pause before a truncation error, long enough for the sent events to be
/// flushed to the socket.
const FLUSH_PAUSE: Duration = Duration::from_millis(5);

/// Response body of [`crate::MockUpstream`].
pub(crate) enum MockBody {
    Whole(Option<Bytes>),
    Events(EventStream),
}

impl MockBody {
    pub(crate) fn whole(bytes: Bytes) -> Self {
        MockBody::Whole(Some(bytes))
    }
}

/// Events sent one per frame, with faults applied.
pub(crate) struct EventStream {
    events: VecDeque<Bytes>,
    sent: usize,
    /// The truncation error was returned; the body is over.
    aborted: bool,
    chunk_delay: Option<Duration>,
    truncate_after: Option<usize>,
    sleep: Option<Pin<Box<Sleep>>>,
    guard: AbandonGuard,
}

impl EventStream {
    pub(crate) fn new(
        events: Vec<Bytes>,
        chunk_delay: Option<Duration>,
        truncate_after: Option<usize>,
        abandoned: Arc<AtomicUsize>,
    ) -> Self {
        EventStream {
            events: events.into(),
            sent: 0,
            aborted: false,
            chunk_delay,
            truncate_after,
            sleep: None,
            guard: AbandonGuard {
                counter: abandoned,
                done: false,
            },
        }
    }
}

/// Counts a stream as abandoned when it is dropped before its last event
/// was handed to the connection (and it was not cut by a truncation fault).
struct AbandonGuard {
    counter: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.done {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Events(stream) => stream.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Whole(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Whole(None) => SizeHint::with_exact(0),
            MockBody::Events(_) => SizeHint::default(),
        }
    }
}

impl EventStream {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.aborted {
            return Poll::Ready(None);
        }
        if self.truncate_after.is_some_and(|limit| self.sent >= limit) {
            // Pause first so hyper flushes what was sent: an error while the
            // data is still buffered would abort without writing it.
            let pause = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_PAUSE)));
            ready!(pause.as_mut().poll(cx));
            self.sleep = None;
            // Our own fault, not the client's: do not count it as abandoned.
            self.guard.done = true;
            self.aborted = true;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "mock upstream: stream truncated by fault injection",
            ))));
        }
        if self.events.is_empty() {
            self.guard.done = true;
            return Poll::Ready(None);
        }
        if let (true, Some(delay)) = (self.sent > 0, self.chunk_delay) {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let Some(event) = self.events.pop_front() else {
            return Poll::Ready(None);
        };
        self.sent += 1;
        if self.events.is_empty() && self.truncate_after.is_none_or(|l| self.sent < l) {
            self.guard.done = true;
        }
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_all(body: &mut MockBody) -> Vec<Result<Bytes, io::ErrorKind>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut *body).poll_frame(&mut cx) {
            out.push(
                frame
                    .map(|f| f.into_data().unwrap_or_default())
                    .map_err(|e| e.kind()),
            );
            assert!(out.len() < 100, "the body never ends");
        }
        out
    }

    fn events(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(format!("e{i}"))).collect()
    }

    #[test]
    fn whole_body_is_one_frame() {
        let mut body = MockBody::whole(Bytes::from_static(b"abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(poll_all(&mut body), vec![Ok(Bytes::from_static(b"abc"))]);
    }

    #[test]
    fn complete_stream_is_not_abandoned() {
        let counter = Arc::new(AtomicUsize::new(0));
        let mut body = MockBody::Events(EventStream::new(events(3), None, None, counter.clone()));
        assert_eq!(poll_all(&mut body).len(), 3);
        drop(body);
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn truncation_ends_with_an_error_and_is_not_abandoned() {
        let counter = Arc::new(AtomicUsize::new(0));
        let stream = EventStream::new(events(5), None, Some(2), counter.clone());
        let mut body = MockBody::Events(stream);
        let mut frames = poll_all(&mut body);
        assert_eq!(frames.len(), 2, "the truncation waits for a flush pause");
        tokio::time::sleep(FLUSH_PAUSE * 2).await;
        frames.extend(poll_all(&mut body));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], Err(io::ErrorKind::ConnectionAborted));
        assert!(poll_all(&mut body).is_empty(), "over after the error");
        drop(body);
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dropped_midway_counts_as_abandoned() {
        let counter = Arc::new(AtomicUsize::new(0));
        let mut body = MockBody::Events(EventStream::new(events(3), None, None, counter.clone()));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        drop(body);
        assert_eq!(counter.load(Ordering::SeqCst), 1);
    }
}
