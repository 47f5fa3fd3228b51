//! Logs and metrics: logging set-up (text or JSON, written off the request
//! path by a non-blocking writer), the Prometheus registry, and the access log.

pub mod access_log;
pub mod metrics;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::raw::{LogConfig, LogFormat};

/// Installs the global subscriber. The returned guard flushes buffered log
/// lines when dropped: keep it alive until the process exits.
pub fn init_logging(cfg: &LogConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}
