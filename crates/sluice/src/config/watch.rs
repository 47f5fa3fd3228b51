//! Debounced config file watcher for hot reload.
//!
//! Watches the file's *parent directory* (notify 8, non-recursive) so editors
//! that write a temp file and rename it over the original, or truncate then
//! write, are seen. Events for the file's name count; events for other names
//! count only if the file's metadata (size, mtime, inode) changed, which also
//! catches Kubernetes ConfigMap symlink swaps. Access events (including our own
//! reads) are ignored.
//!
//! One plain std thread per watcher: it waits for a relevant event, waits for
//! a quiet period (`debounce`, capped at 10× when writes never stop), then
//! calls `on_change`. If `on_change` fails (say, a half-written file) and the
//! file changes again within another quiet period, it is retried, up to
//! [`MAX_RETRIES`] times; only an error that stands is passed to
//! `on_final_error`. So `on_change` should not report failures itself.
//! Dropping the [`WatcherHandle`] stops the watcher and lets the thread end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// The quiet period used when the caller has no opinion.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);
/// Retries of a failed `on_change` while the file keeps changing.
pub const MAX_RETRIES: usize = 5;

/// Keeps a watcher alive; dropping it stops watching.
pub struct WatcherHandle {
    _watcher: RecommendedWatcher,
    stop: Arc<AtomicBool>,
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for WatcherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatcherHandle")
    }
}

/// Watches `path` and calls `on_change` once per burst of writes; an error
/// that stands after retries is logged at `warn`.
pub fn spawn_watcher(
    path: PathBuf,
    debounce: Duration,
    on_change: impl Fn() -> Result<(), String> + Send + 'static,
) -> notify::Result<WatcherHandle> {
    let file = path.display().to_string();
    spawn_watcher_with(path, debounce, on_change, move |error| {
        tracing::warn!(file = %file, %error, "config reload failed; keeping the running config");
    })
}

/// Like [`spawn_watcher`], with the final error of a burst given to
/// `on_final_error` (to log it, count it, show it in status).
pub fn spawn_watcher_with(
    path: PathBuf,
    debounce: Duration,
    on_change: impl Fn() -> Result<(), String> + Send + 'static,
    on_final_error: impl Fn(String) + Send + 'static,
) -> notify::Result<WatcherHandle> {
    let name = path
        .file_name()
        .ok_or_else(|| notify::Error::generic("config path has no file name"))?
        .to_os_string();
    let dir = super::config_dir(&path);
    let (tx, rx) = mpsc::channel::<Hint>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(ev) => {
            if let Some(hint) = classify(&ev, &name) {
                let _ = tx.send(hint);
            }
        }
        Err(error) => tracing::warn!(%error, "config watcher error"),
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        rx,
        path,
        debounce,
        stop: stop.clone(),
        last: None,
    };
    std::thread::Builder::new()
        .name("sluice-config-watch".into())
        .spawn(move || worker.run(on_change, on_final_error))
        .map_err(notify::Error::io)?;
    Ok(WatcherHandle {
        _watcher: watcher,
        stop,
    })
}

/// What an event says about the watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// The event names the file.
    Named,
    /// Something else in the directory changed; the file may have (symlinks).
    Other,
}

fn classify(ev: &Event, name: &OsString) -> Option<Hint> {
    if matches!(ev.kind, EventKind::Access(_)) {
        return None;
    }
    let named = ev
        .paths
        .iter()
        .any(|p| p.file_name() == Some(name.as_os_str()));
    Some(if named { Hint::Named } else { Hint::Other })
}

/// What identifies one version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
    })
}

struct Worker {
    rx: Receiver<Hint>,
    path: PathBuf,
    debounce: Duration,
    stop: Arc<AtomicBool>,
    /// The file as it was when `on_change` last ran.
    last: Option<Stamp>,
}

impl Worker {
    fn run(mut self, on_change: impl Fn() -> Result<(), String>, on_final_error: impl Fn(String)) {
        self.last = stamp(&self.path);
        loop {
            let Ok(hint) = self.rx.recv() else { return };
            if !self.relevant(hint) {
                continue;
            }
            if self.settle().is_none() {
                return;
            }
            let Some(mut result) = self.call(&on_change) else {
                return;
            };
            let mut retries = 0;
            while let Err(error) = result {
                let Some(saw_event) = self.settle() else {
                    return;
                };
                let changed = saw_event || stamp(&self.path) != self.last;
                if !changed || retries == MAX_RETRIES {
                    on_final_error(error);
                    break;
                }
                retries += 1;
                let Some(r) = self.call(&on_change) else {
                    return;
                };
                result = r;
            }
        }
    }

    fn relevant(&self, hint: Hint) -> bool {
        hint == Hint::Named || stamp(&self.path) != self.last
    }

    /// Waits until no relevant event came for one debounce period (at most
    /// 10 periods). `Some(saw_event)`, or `None` once the watcher is gone.
    fn settle(&self) -> Option<bool> {
        let start = Instant::now();
        let deadline = start + self.debounce * 10;
        let mut quiet_until = start + self.debounce;
        let mut saw_event = false;
        loop {
            let now = Instant::now();
            if now >= quiet_until {
                break;
            }
            match self.rx.recv_timeout(quiet_until - now) {
                Ok(hint) if self.relevant(hint) => {
                    saw_event = true;
                    quiet_until = (Instant::now() + self.debounce).min(deadline);
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        (!self.stop.load(Ordering::SeqCst)).then_some(saw_event)
    }

    /// Runs `on_change` unless stopped, remembering the file's stamp first.
    fn call(&mut self, on_change: &impl Fn() -> Result<(), String>) -> Option<Result<(), String>> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        self.last = stamp(&self.path);
        Some(on_change())
    }
}
