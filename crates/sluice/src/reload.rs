//! Config reload: build the new snapshot aside with the same code as startup,
//! validate, then swap it atomically. A bad file changes nothing: the running
//! config stays, the error is logged, counted and shown by `/admin/status`.
//! In-flight requests keep the snapshot they loaded. Triggers: file change
//! (watcher), SIGHUP, `POST /admin/reload`.
//!
//! Not reloadable (need a restart, a warning says so): `listen`,
//! `admin_listen`, `log`, `server.connect_timeout`,
//! `server.pool_max_idle_per_host`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config;
use crate::snapshot::Snapshot;
use crate::state::{App, ReloadStatus};
use crate::telemetry::metrics::ResultLabels;

/// Reloads from the config file and records the outcome; returns the new
/// config version.
pub fn reload(app: &App, trigger: &str) -> Result<u64, String> {
    let result = try_reload(app);
    record(app, trigger, &result);
    result
}

/// Builds, validates and swaps in the config from the file, recording nothing
/// on failure (the file watcher retries a half-written file first).
pub fn try_reload(app: &App) -> Result<u64, String> {
    let path = app
        .config_path
        .as_ref()
        .ok_or("no config file to reload from")?;
    let raw = config::load_file(path).map_err(|e| e.to_string())?;
    let version = app.versions.fetch_add(1, Ordering::Relaxed);
    let snap = Snapshot::build(&raw, version)?;
    app.snapshot.store(Arc::new(snap));
    app.alerts
        .set_webhook(raw.alerts.as_ref().map(|a| a.webhook.clone()));
    app.tracer.configure(raw.tracing.as_ref());
    app.cache.configure(raw.cache.as_ref());
    crate::directory::config_changed(app);
    Ok(version)
}

/// Counts, logs and keeps (for `/admin/status`) the outcome of a reload.
pub fn record(app: &App, trigger: &str, result: &Result<u64, String>) {
    let ok = result.is_ok();
    app.metrics
        .reloads
        .get_or_create(&ResultLabels {
            result: if ok { "ok" } else { "error" },
        })
        .inc();
    let status = ReloadStatus {
        at: Some(crate::mock::now()),
        ok: Some(ok),
        error: result.as_ref().err().cloned(),
        trigger: Some(trigger.to_owned()),
    };
    if let Ok(mut g) = app.last_reload.lock() {
        *g = status;
    }
    match result {
        Ok(v) => tracing::info!(trigger, config_version = v, "config reloaded"),
        Err(e) => {
            tracing::error!(trigger, error = %e, "config reload failed; keeping the running config")
        }
    }
}
