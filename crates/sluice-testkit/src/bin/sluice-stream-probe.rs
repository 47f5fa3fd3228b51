//! `sluice-stream-probe`: measures streaming (SSE) chat completions for the
//! benchmark in `bench/`. Plain hyper 1 HTTP/1.1 client, one TCP connection
//! per stream slot, no TLS.
//!
//! ```text
//! sluice-stream-probe --url http://127.0.0.1:4000/v1/chat/completions
//!     [--key KEY] [--model M] [--threads 1] [--json]
//!     ttft --concurrency 20 --duration-secs 10 [--expect-events N] [--bunch-ms 1]
//!     hold --streams 2000 --hold-secs 5 [--ramp-per-sec 1000]
//! ```
//!
//! `ttft`: `concurrency` workers each send streaming requests back to back on
//! a kept-alive connection for `duration-secs`. Per request it records the
//! time to first token (request written → first complete SSE event read) and
//! the gap between consecutive SSE events. An event that arrives less than
//! `bunch-ms` (default 1 ms) after the previous one is counted as `bunched`:
//! with an upstream that spaces events 10 ms apart, a proxy that holds a
//! chunk back and flushes it with the next one shows up there, and as a gap
//! near twice the upstream spacing.
//!
//! `hold`: opens `streams` streaming requests (each on its own connection,
//! ramped at `ramp-per-sec`), waits until every one has its first event,
//! keeps them all open for `hold-secs` (reading what arrives), then drops
//! them. Reports how many were open at once. Use it to measure a gateway's
//! memory with many slow streams in flight.
//!
//! The request asks for `stream_options.include_usage`, so a gateway that
//! only forwards the usage chunk on request sends the same events as the
//! upstream. Output: a human summary, or one JSON object with `--json`.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpStream;

const USAGE: &str =
    "usage: sluice-stream-probe --url URL [--key KEY] [--model M] [--threads N] [--json]
       ttft [--concurrency 20] [--duration-secs 10] [--expect-events N] [--bunch-ms 1]
       hold [--streams 2000] [--hold-secs 5] [--ramp-per-sec 1000]";

enum Mode {
    Ttft {
        concurrency: usize,
        duration: Duration,
        expect_events: Option<usize>,
        bunch: Duration,
    },
    Hold {
        streams: usize,
        hold: Duration,
        ramp_per_sec: u64,
    },
}

struct Options {
    addr: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    auth: Option<HeaderValue>,
    body: Bytes,
    threads: usize,
    json: bool,
    mode: Mode,
}

fn parse_args() -> Result<Options, String> {
    let mut url: Option<String> = None;
    let mut key: Option<String> = None;
    let mut model = String::from("gpt-4o-mini");
    let mut threads = 1usize;
    let mut json = false;
    let mut mode_name: Option<String> = None;
    let mut concurrency = 20usize;
    let mut duration = 10f64;
    let mut expect_events: Option<usize> = None;
    let mut bunch_ms = 1f64;
    let mut streams = 2000usize;
    let mut hold = 5f64;
    let mut ramp = 1000u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(USAGE.into()),
            "--json" => {
                json = true;
                continue;
            }
            "ttft" | "hold" => {
                mode_name = Some(flag);
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}\n{USAGE}");
        match flag.as_str() {
            "--url" => url = Some(value),
            "--key" => key = Some(value),
            "--model" => model = value,
            "--threads" => threads = value.parse().map_err(|e| bad(&e))?,
            "--concurrency" => concurrency = value.parse().map_err(|e| bad(&e))?,
            "--duration-secs" => duration = value.parse().map_err(|e| bad(&e))?,
            "--expect-events" => expect_events = Some(value.parse().map_err(|e| bad(&e))?),
            "--bunch-ms" => bunch_ms = value.parse().map_err(|e| bad(&e))?,
            "--streams" => streams = value.parse().map_err(|e| bad(&e))?,
            "--hold-secs" => hold = value.parse().map_err(|e| bad(&e))?,
            "--ramp-per-sec" => ramp = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let url = url.ok_or_else(|| format!("--url is required\n{USAGE}"))?;
    let uri: Uri = url.parse().map_err(|e| format!("--url {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {url}: only http:// is supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--url {url}: no host"))?
        .clone();
    let addr: SocketAddr = authority
        .as_str()
        .parse()
        .map_err(|e| format!("--url {url}: the host must be IP:PORT ({e})"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = path.parse().map_err(|e| format!("--url {url}: {e}"))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
    let auth = key
        .map(|k| HeaderValue::from_str(&format!("Bearer {k}")).map_err(|e| e.to_string()))
        .transpose()?;
    let body = Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say something for the benchmark."}}],"stream":true,"stream_options":{{"include_usage":true}}}}"#
    ));
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("{name} must be positive\n{USAGE}"))
        }
    };
    let mode = match mode_name.as_deref() {
        Some("ttft") => Mode::Ttft {
            concurrency: concurrency.max(1),
            duration: positive("--duration-secs", duration)?,
            expect_events,
            bunch: positive("--bunch-ms", bunch_ms / 1000.0)?,
        },
        Some("hold") => Mode::Hold {
            streams: streams.max(1),
            hold: positive("--hold-secs", hold)?,
            ramp_per_sec: ramp.max(1),
        },
        _ => return Err(format!("a mode (ttft or hold) is required\n{USAGE}")),
    };
    Ok(Options {
        addr,
        uri,
        host,
        auth,
        body,
        threads: threads.max(1),
        json,
        mode,
    })
}

/// A request body sent as one frame.
struct Once(Option<Bytes>);

impl Body for Once {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

type Sender = http1::SendRequest<Once>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(opts: &Options) -> Request<Once> {
    let mut req = Request::new(Once(Some(opts.body.clone())));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = opts.uri.clone();
    let h = req.headers_mut();
    h.insert(header::HOST, opts.host.clone());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    if let Some(auth) = &opts.auth {
        h.insert(header::AUTHORIZATION, auth.clone());
    }
    req
}

/// Splits a byte stream into SSE events (terminated by a blank line,
/// `\n\n` or `\r\n\r\n`) and timestamps each.
#[derive(Default)]
struct EventCounter {
    /// The last three bytes seen, so terminators split across reads count.
    tail: [u8; 3],
    events: usize,
    first_event: Option<Instant>,
    last_event: Option<Instant>,
    /// Gaps between consecutive events' arrival.
    gaps: Vec<Duration>,
    done: bool,
    done_tail: Vec<u8>,
}

impl EventCounter {
    fn feed(&mut self, data: &[u8], at: Instant, keep_gaps: bool) {
        for (i, &b) in data.iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            let prev = |k: usize| -> u8 {
                if i >= k {
                    data[i - k]
                } else {
                    self.tail[3 - (k - i)]
                }
            };
            let end = prev(1) == b'\n' || (prev(1) == b'\r' && prev(2) == b'\n');
            if !end {
                continue;
            }
            self.events += 1;
            match self.last_event {
                None => self.first_event = Some(at),
                Some(last) if keep_gaps => self.gaps.push(at - last),
                Some(_) => {}
            }
            self.last_event = Some(at);
        }
        // Keep the last bytes for terminators and `[DONE]` split across reads.
        for &b in &data[data.len().saturating_sub(3)..] {
            self.tail = [self.tail[1], self.tail[2], b];
        }
        self.done_tail.extend_from_slice(data);
        if memmem::find(&self.done_tail, b"data: [DONE]").is_some() {
            self.done = true;
        }
        let keep = self.done_tail.len().saturating_sub(16);
        self.done_tail.drain(..keep);
    }
}

async fn next_frame(body: &mut Incoming) -> Option<Result<Bytes, String>> {
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => return Some(Ok(d)),
                Err(_) => continue, // trailers
            },
            Err(e) => return Some(Err(format!("body: {e}"))),
        }
    }
}

#[derive(Default)]
struct TtftStats {
    ttft: Vec<Duration>,
    gaps: Vec<Duration>,
    completed: usize,
    bunched: usize,
    short_streams: usize,
    errors: usize,
    first_errors: Vec<String>,
}

fn note_error(stats: &Mutex<TtftStats>, e: String) {
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    s.errors += 1;
    if s.first_errors.len() < 5 {
        s.first_errors.push(e);
    }
}

/// One streaming request on `sender`; returns the stream's events.
async fn one_stream(
    opts: &Options,
    sender: &mut Sender,
) -> Result<(Instant, EventCounter), String> {
    poll_fn(|cx| sender.poll_ready(cx))
        .await
        .map_err(|e| format!("ready: {e}"))?;
    let started = Instant::now();
    let resp = sender
        .send_request(request(opts))
        .await
        .map_err(|e| format!("send: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut counter = EventCounter::default();
    while let Some(frame) = next_frame(&mut body).await {
        let data = frame?;
        counter.feed(&data, Instant::now(), true);
    }
    Ok((started, counter))
}

async fn ttft_worker(
    opts: Arc<Options>,
    until: Instant,
    expect: Option<usize>,
    bunch: Duration,
    stats: Arc<Mutex<TtftStats>>,
) {
    let mut sender: Option<Sender> = None;
    while Instant::now() < until {
        let mut s = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(opts.addr).await {
                Ok(s) => s,
                Err(e) => {
                    note_error(&stats, e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match one_stream(&opts, &mut s).await {
            Ok((started, c)) => {
                let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                let Some(first) = c.first_event else {
                    drop(st);
                    note_error(&stats, "stream without events".into());
                    continue;
                };
                if !c.done {
                    drop(st);
                    note_error(&stats, "stream ended without [DONE]".into());
                    continue;
                }
                st.ttft.push(first - started);
                st.gaps.extend_from_slice(&c.gaps);
                st.bunched += c.gaps.iter().filter(|g| **g < bunch).count();
                st.completed += 1;
                if expect.is_some_and(|n| c.events != n) {
                    st.short_streams += 1;
                    if st.first_errors.len() < 5 {
                        let msg = format!("{} events, expected {}", c.events, expect.unwrap_or(0));
                        st.first_errors.push(msg);
                    }
                }
                sender = Some(s);
            }
            Err(e) => note_error(&stats, e),
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1e3
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

async fn run_ttft(
    opts: Arc<Options>,
    concurrency: usize,
    duration: Duration,
    expect: Option<usize>,
    bunch: Duration,
) {
    let stats = Arc::new(Mutex::new(TtftStats::default()));
    let started = Instant::now();
    let until = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(ttft_worker(
            opts.clone(),
            until,
            expect,
            bunch,
            stats.clone(),
        ));
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let mut s = std::mem::take(&mut *stats.lock().unwrap_or_else(|p| p.into_inner()));
    s.ttft.sort_unstable();
    s.gaps.sort_unstable();
    let (t50, t90, t99, tmax) = (
        pct(&s.ttft, 50.0),
        pct(&s.ttft, 90.0),
        pct(&s.ttft, 99.0),
        pct(&s.ttft, 100.0),
    );
    let (g50, g99, gmax) = (pct(&s.gaps, 50.0), pct(&s.gaps, 99.0), pct(&s.gaps, 100.0));
    if opts.json {
        let errs: Vec<String> = s.first_errors.iter().map(|e| json_str(e)).collect();
        println!(
            r#"{{"mode":"ttft","concurrency":{concurrency},"elapsed_s":{:.3},"streams":{},"errors":{},"short_streams":{},"ttft_ms":{{"p50":{},"p90":{},"p99":{},"max":{}}},"gap_ms":{{"p50":{},"p99":{},"max":{}}},"gaps":{},"bunched_events":{},"first_errors":[{}]}}"#,
            elapsed.as_secs_f64(),
            s.completed,
            s.errors,
            s.short_streams,
            num(t50),
            num(t90),
            num(t99),
            num(tmax),
            num(g50),
            num(g99),
            num(gmax),
            s.gaps.len(),
            s.bunched,
            errs.join(",")
        );
    } else {
        println!(
            "ttft: {concurrency} concurrent, {:.1}s, {} streams completed, {} errors, {} with unexpected event count",
            elapsed.as_secs_f64(),
            s.completed,
            s.errors,
            s.short_streams
        );
        println!(
            "  time to first token ms: p50 {t50:.3}  p90 {t90:.3}  p99 {t99:.3}  max {tmax:.3}"
        );
        println!(
            "  gap between events ms:  p50 {g50:.3}  p99 {g99:.3}  max {gmax:.3}  ({} gaps, {} under {:?}: bunched)",
            s.gaps.len(),
            s.bunched,
            bunch
        );
        for e in &s.first_errors {
            println!("  error: {e}");
        }
    }
}

async fn run_hold(opts: Arc<Options>, streams: usize, hold: Duration, ramp_per_sec: u64) {
    let opened = Arc::new(AtomicUsize::new(0)); // first event received
    let open_now = Arc::new(AtomicUsize::new(0));
    let peak_open = Arc::new(AtomicUsize::new(0));
    let ended_early = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / ramp_per_sec as f64);
    let mut ttft: Vec<Duration> = Vec::new();
    let ttfts = Arc::new(Mutex::new(Vec::with_capacity(streams)));
    for i in 0..streams {
        // Ramp: start stream i at i * interval.
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (opts, opened, open_now, peak_open, ended_early, events, errors, ttfts) = (
            opts.clone(),
            opened.clone(),
            open_now.clone(),
            peak_open.clone(),
            ended_early.clone(),
            events.clone(),
            errors.clone(),
            ttfts.clone(),
        );
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let fail = |e: String| {
                let mut g = errors.lock().unwrap_or_else(|p| p.into_inner());
                g.0 += 1;
                if g.1.len() < 5 {
                    g.1.push(e);
                }
            };
            let mut sender = match connect(opts.addr).await {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let t0 = Instant::now();
            let resp = tokio::select! {
                r = sender.send_request(request(&opts)) => r,
                _ = stop.wait_for(|v| *v) => return fail("no response headers before the end".into()),
            };
            let resp = match resp {
                Ok(r) if r.status() == StatusCode::OK => r,
                Ok(r) => return fail(format!("status {}", r.status())),
                Err(e) => return fail(format!("send: {e}")),
            };
            let mut body = resp.into_body();
            let mut counter = EventCounter::default();
            let mut counted_open = false;
            loop {
                let frame = tokio::select! {
                    f = next_frame(&mut body) => f,
                    _ = stop.wait_for(|v| *v) => break,
                };
                match frame {
                    Some(Ok(data)) => {
                        let before = counter.events;
                        counter.feed(&data, Instant::now(), false);
                        events.fetch_add((counter.events - before) as u64, Ordering::Relaxed);
                        if !counted_open && counter.events > 0 {
                            counted_open = true;
                            ttfts
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(counter.first_event.unwrap_or(t0) - t0);
                            opened.fetch_add(1, Ordering::Relaxed);
                            let now = open_now.fetch_add(1, Ordering::Relaxed) + 1;
                            peak_open.fetch_max(now, Ordering::Relaxed);
                        }
                    }
                    Some(Err(e)) => {
                        fail(e);
                        break;
                    }
                    None => {
                        ended_early.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            if counted_open {
                open_now.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    // Wait until every stream is open (or failed), bounded by 30 s.
    let all_in = Instant::now() + Duration::from_secs(30);
    loop {
        let failed = errors.lock().unwrap_or_else(|p| p.into_inner()).0;
        if opened.load(Ordering::Relaxed) + failed >= streams || Instant::now() >= all_in {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ramp_done = started.elapsed();
    tokio::time::sleep(hold).await;
    let open_at_end = open_now.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    ttft.extend(ttfts.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    ttft.sort_unstable();
    let (err_count, first_errors) =
        std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner()));
    let (t50, t99) = (pct(&ttft, 50.0), pct(&ttft, 99.0));
    let peak = peak_open.load(Ordering::Relaxed);
    let ended = ended_early.load(Ordering::Relaxed);
    let ev = events.load(Ordering::Relaxed);
    if opts.json {
        let errs: Vec<String> = first_errors.iter().map(|e| json_str(e)).collect();
        println!(
            r#"{{"mode":"hold","streams":{streams},"opened":{},"peak_open":{peak},"open_at_end":{open_at_end},"ended_early":{ended},"errors":{err_count},"events":{ev},"ramp_s":{:.3},"hold_s":{:.3},"ttft_ms":{{"p50":{},"p99":{}}},"first_errors":[{}]}}"#,
            opened.load(Ordering::Relaxed),
            ramp_done.as_secs_f64(),
            hold.as_secs_f64(),
            num(t50),
            num(t99),
            errs.join(",")
        );
    } else {
        println!(
            "hold: {streams} streams requested, {} opened, peak {peak} open at once, {open_at_end} open at the end, {ended} ended early, {err_count} errors",
            opened.load(Ordering::Relaxed)
        );
        println!(
            "  all open after {:.2}s, held {:.1}s, {ev} events read; first event ms p50 {t50:.3} p99 {t99:.3}",
            ramp_done.as_secs_f64(),
            hold.as_secs_f64()
        );
        for e in &first_errors {
            println!("  error: {e}");
        }
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("sluice-stream-probe: cannot start the runtime: {e}");
            std::process::exit(1);
        });
    let opts = Arc::new(opts);
    runtime.block_on(async move {
        match opts.mode {
            Mode::Ttft {
                concurrency,
                duration,
                expect_events,
                bunch,
            } => run_ttft(opts.clone(), concurrency, duration, expect_events, bunch).await,
            Mode::Hold {
                streams,
                hold,
                ramp_per_sec,
            } => run_hold(opts.clone(), streams, hold, ramp_per_sec).await,
        }
    });
}
