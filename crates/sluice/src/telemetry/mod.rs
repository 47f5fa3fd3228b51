//! Logs, metrics and traces: logging set-up (text or JSON; every line goes
//! through the batched [`sink::LogSink`], so no request ever waits on log
//! I/O), the Prometheus registry, the access log, and OpenTelemetry spans
//! exported off the request path ([`otel`]).

pub mod access_log;
mod json_line;
pub mod metrics;
pub mod otel;
pub mod request_log;
pub mod sink;
pub mod usage_metrics;

use std::sync::OnceLock;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::raw::{LogConfig, LogFormat};
use sink::{LogSink, SinkGuard};

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The log format chosen at start-up (text until logging is set up).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Installs the global subscriber and the log sink on stdout. The returned
/// guard flushes buffered lines when dropped: keep it alive until exit.
pub fn init_logging(cfg: &LogConfig) -> SinkGuard {
    let (sink, guard) = LogSink::start(Box::new(std::io::stdout()));
    LogSink::install_global(sink.clone());
    let _ = FORMAT.set(cfg.format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let ansi =
        std::io::IsTerminal::is_terminal(&std::io::stdout()) && cfg.format == LogFormat::Text;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_target(true)
        .with_ansi(ansi);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// Formats a UNIX time as RFC 3339 UTC with microseconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    let (year, month, day) = sluice_types::civil::civil_from_days(days);
    // Written digit by digit: this runs once per request (the access log),
    // and the formatting machinery cost ~3,000 instructions.
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(d.subsec_micros()));
    // Only ASCII digits and separators were written.
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_248_186_712_824);
        assert_eq!(super::rfc3339(t), "2026-11-21T08:03:06.712824Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(super::rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
