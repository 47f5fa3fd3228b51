//! Process life: bind the listeners, build the state, serve, reload on SIGHUP
//! and file change, and shut down gracefully (stop accepting, let in-flight
//! requests and streams finish up to `server.drain_timeout`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::raw::RawConfig;
use crate::dispatch::Dispatcher;
use crate::snapshot::Snapshot;
use crate::state::{App, AppState, ReloadStatus};
use crate::telemetry::metrics::Metrics;

/// A gateway with its listeners bound, ready to run.
pub struct Server {
    pub app: App,
    pub public_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    public: TcpListener,
    admin: Option<TcpListener>,
    drain: std::time::Duration,
    /// Event-loop threads serving the public listener (the calling runtime
    /// is one of them).
    workers: usize,
}

impl Server {
    /// Builds the state from a validated config and binds its addresses.
    pub async fn bind(cfg: &RawConfig, config_path: Option<PathBuf>) -> anyhow::Result<Server> {
        let app = build_app(cfg, config_path).await?;
        let listen = cfg.listen.as_deref().unwrap_or("127.0.0.1:4000");
        let addr = tokio::net::lookup_host(listen)
            .await
            .with_context(|| format!("resolving listen address {listen}"))?
            .next()
            .with_context(|| format!("listen address {listen} resolves to nothing"))?;
        let public =
            reuseport_listener(addr).with_context(|| format!("binding listen address {listen}"))?;
        let admin = match cfg.admin_listen.as_deref() {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding admin_listen address {a}"))?,
            ),
            None => None,
        };
        Ok(Server {
            public_addr: public.local_addr()?,
            admin_addr: admin.as_ref().map(|l| l.local_addr()).transpose()?,
            app,
            public,
            admin,
            drain: cfg.server.drain_timeout.0,
            workers: match cfg.server.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
        })
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = watch::channel(false);
        let app = self.app.clone();
        let sync = crate::directory::spawn_sync(&app);
        let pruner = spawn_rate_pruner(app.clone());
        let prober = crate::routing::probe::spawn(app.clone(), rx.clone());
        warm_tokenizers(&app);
        // Budget spend goes to the store every second and once more after
        // the last request drained (`drained` turns true at the very end).
        let (drained, drained_rx) = watch::channel(false);
        let (alerts_stop, alerts_rx) = watch::channel(false);
        let alerts_worker = app.alerts_worker.lock().ok().and_then(|mut w| w.take());
        let alerts_task = alerts_worker.map(|w| w.spawn(alerts_rx.clone()));
        let tracer_worker = app.tracer_worker.lock().ok().and_then(|mut w| w.take());
        let tracer_task = tracer_worker.map(|w| w.spawn(alerts_rx));
        let flusher = app.store.clone().map(|store| {
            crate::policy::budget::spawn_flusher(
                app.budgets.ledger().clone(),
                store,
                FLUSH_EVERY,
                drained_rx.clone(),
            )
        });
        let reseeder = spawn_budget_reseeder(app.clone(), rx.clone());
        // Alert rules are judged until shutdown begins.
        let evaluator = (app.alert_evaluator.lock().ok())
            .and_then(|mut e| e.take())
            .map(|e| e.spawn(app.clone(), rx.clone()));
        // The request log is drained after the last request, like spend.
        let log_writer = (app.request_log_writer.lock().ok())
            .and_then(|mut w| w.take())
            .map(|w| w.spawn(drained_rx.clone()));
        if let Some(jwt) = app.jwt.load_full() {
            jwt.spawn_refresher();
        }
        let drain = self.drain;
        let with_metrics = self.admin.is_none();
        let mut threads = Vec::new();
        for i in 1..self.workers {
            let listener =
                reuseport_listener(self.public_addr).context("binding a worker listener")?;
            let (app, rx) = (app.clone(), rx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{i}"))
                .spawn(move || worker_thread(app, listener, with_metrics, rx, drain))
                .context("starting a worker thread")?;
            threads.push(thread);
        }
        let public = serve_public(app.clone(), self.public, with_metrics, rx.clone());
        let admin = self.admin.map(|l| {
            axum::serve(l, crate::http::admin::router(app.clone()))
                .with_graceful_shutdown(wait_for(rx.clone()))
        });
        let servers = async move {
            let admin = async move {
                if let Some(a) = admin {
                    a.await
                } else {
                    Ok(())
                }
            };
            let (p, a) = tokio::join!(public, admin);
            p.and(a)
        };
        let trigger = async move {
            shutdown.await;
            tracing::info!(drain_timeout = ?drain, "shutting down: no new connections; draining in-flight requests");
            app.draining.store(true, Ordering::Relaxed);
            let _ = tx.send(true);
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            r = servers => r.context("serving")?,
            _ = trigger => tracing::warn!("drain timeout reached; closing remaining connections"),
        }
        // The workers stop on the same signal within the same drain timeout.
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
            .await
            .ok();
        if let Some(sync) = sync {
            sync.abort();
        }
        pruner.abort();
        prober.abort();
        if let Some(r) = reseeder {
            r.abort();
        }
        if let Some(e) = evaluator {
            let _ = e.await;
        }
        let _ = drained.send(true);
        if let Some(f) = flusher {
            let _ = f.await;
        }
        if let Some(w) = log_writer {
            let _ = w.await;
        }
        // Alerts of the last requests go out before the process ends.
        let _ = alerts_stop.send(true);
        if let Some(t) = alerts_task {
            let _ = t.await;
        }
        // So do the last requests' spans (the same signal; both flushes
        // run together).
        if let Some(t) = tracer_task {
            let _ = t.await;
        }
        Ok(())
    }
}

/// How often settled budget spend is written to the store.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How often shared budgets check that Redis still holds their counters.
const RESEED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often idle rate counters are forgotten.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Forgets idle rate counters every [`PRUNE_EVERY`], off the event loop
/// (a prune walks every partition). Aborted when `run` ends.
fn spawn_rate_pruner(app: App) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || {
                app.rates.prune();
                app.queues.prune();
            })
            .await;
        }
    })
}

/// The directory relative paths in the config resolve against.
pub fn config_dir(config_path: Option<&std::path::Path>) -> PathBuf {
    config_path
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Builds the process state from a validated config: snapshot, store (with
/// migrations, seeding and the first directory load), JWT verifier. Used by
/// `serve` and by the CLI's in-process admin API.
pub async fn build_app(cfg: &RawConfig, config_path: Option<PathBuf>) -> anyhow::Result<App> {
    let snap = Snapshot::build(cfg, 1).map_err(anyhow::Error::msg)?;
    let store = match &cfg.store {
        Some(url) => Some(crate::directory::open_store(url, config_path.as_deref(), cfg).await?),
        None => None,
    };
    let jwt = match &cfg.jwt {
        Some(j) => Some(Arc::new(
            crate::jwt::JwtVerifier::load(j, &config_dir(config_path.as_deref()))
                .await
                .map_err(|e| anyhow::anyhow!("jwt: {e}"))?,
        )),
        None => None,
    };
    let metrics = Metrics::new();
    let (rates, budgets, queues, admission) = limit_stores(cfg, &metrics)?;
    let webhook = cfg.alerts.as_ref().map(|a| a.webhook.clone());
    let (alerts, alerts_worker) = crate::alerts::Alerts::new(webhook, &metrics)
        .map_err(|e| anyhow::anyhow!("alerts: {e}"))?;
    let (alert_feed, alert_evaluator) = crate::alerts::rules::feed(&metrics);
    let (request_log, request_log_writer) =
        request_log(cfg, store.as_ref(), config_path.as_deref(), &metrics)?.unzip();
    let (tracer, tracer_worker) =
        crate::telemetry::otel::Tracer::new(cfg.tracing.as_ref(), &metrics)
            .map_err(|e| anyhow::anyhow!("tracing: {e}"))?;
    let app = Arc::new(AppState {
        request_log,
        request_log_writer: Mutex::new(request_log_writer),
        snapshot: ArcSwap::from_pointee(snap),
        dispatcher: Dispatcher::new(&cfg.server, &metrics),
        metrics,
        alerts,
        alerts_worker: Mutex::new(Some(alerts_worker)),
        alert_feed,
        alert_evaluator: Mutex::new(Some(alert_evaluator)),
        tracer,
        tracer_worker: Mutex::new(Some(tracer_worker)),
        config_path,
        last_reload: Mutex::new(ReloadStatus::default()),
        versions: AtomicU64::new(2),
        draining: AtomicBool::new(false),
        started_at: Instant::now(),
        store,
        jwt: arc_swap::ArcSwapOption::new(jwt),
        bootstrap_actor: std::sync::OnceLock::new(),
        directory: ArcSwap::from_pointee(crate::directory::Directory::default()),
        directory_changed: tokio::sync::Notify::new(),
        store_ok: AtomicBool::new(true),
        redis: match &cfg.shared_state {
            Some(url) => Some(redis::Client::open(url.as_str()).map_err(|e| {
                anyhow::anyhow!("shared_state `{}`: {e}", crate::directory::redact_url(url))
            })?),
            None => None,
        },
        redis_ok: AtomicBool::new(true),
        rates,
        queues,
        budgets,
        admission,
        cache: crate::cache::ResponseCache::new(cfg.cache.as_ref()),
    });
    // Store-managed keys work from the first request.
    crate::directory::refresh(&app, true)
        .await
        .map_err(|e| anyhow::anyhow!("loading keys from the store: {e}"))?;
    restore_spend(&app).await?;
    Ok(app)
}

/// The request log and its writer, when `store:` is set and the log is
/// not turned off.
fn request_log(
    cfg: &RawConfig,
    store: Option<&sluice_store::Store>,
    config_path: Option<&std::path::Path>,
    metrics: &Metrics,
) -> anyhow::Result<
    Option<(
        crate::telemetry::request_log::RequestLog,
        crate::telemetry::request_log::Writer,
    )>,
> {
    let (Some(store), rl) = (store, cfg.request_log.clone().unwrap_or_default()) else {
        return Ok(None);
    };
    if !rl.enabled {
        return Ok(None);
    }
    let dir = config_dir(config_path).join(rl.spill_dir.as_deref().unwrap_or("sluice-spill"));
    crate::telemetry::request_log::RequestLog::new(&rl, store.clone(), &dir, &metrics.request_log)
        .map(Some)
}

/// The rate and budget counters: shared through `shared_state` when it is
/// set (one connection for both), else in this process.
fn limit_stores(cfg: &RawConfig, metrics: &Metrics) -> anyhow::Result<LimitStores> {
    use crate::policy::admission::Admission;
    use crate::policy::budget::{Budgets, SharedLedger};
    use crate::policy::concurrency::{Queues, SharedSlots};
    use crate::policy::rate::{LocalRates, Rates, SharedRates};
    use crate::policy::shared_state::SharedState;
    let ledger = Arc::new(crate::policy::budget::LocalLedger::new());
    let Some(url) = &cfg.shared_state else {
        let local = (Rates::Local(LocalRates::default()), Budgets::Local(ledger));
        return Ok((local.0, local.1, Queues::default(), None));
    };
    let redacted = crate::directory::redact_url(url);
    let timeout = cfg
        .shared_state_timeout
        .map_or(std::time::Duration::from_millis(50), |d| d.0);
    let on_failure = cfg.on_shared_state_failure.unwrap_or_default();
    let failures = metrics.shared_state_failures.clone();
    let client = redis::Client::open(url.as_str())
        .map_err(|e| anyhow::anyhow!("shared_state `{redacted}`: {e}"))?;
    let state = SharedState::connect(client.clone(), on_failure, timeout, failures)
        .map_err(|e| anyhow::anyhow!("shared_state `{redacted}`: {e}"))?;
    let admission = Arc::new(Admission::new(Arc::new(state)));
    let rates = SharedRates::new(admission.clone());
    let slots = SharedSlots::new(admission.clone(), client);
    let budgets = SharedLedger::new(admission.clone(), ledger);
    Ok((
        Rates::Shared(rates),
        Budgets::Shared(budgets),
        Queues::shared(slots),
        Some(admission),
    ))
}

/// Rate counters, budget counters, concurrency queues, and the admission
/// call that serves all three in shared mode.
type LimitStores = (
    crate::policy::rate::Rates,
    crate::policy::budget::Budgets,
    crate::policy::concurrency::Queues,
    Option<Arc<crate::policy::admission::Admission>>,
);

/// Loads the budget spend of the current periods from the store, so budgets
/// hold across restarts.
async fn restore_spend(app: &App) -> anyhow::Result<()> {
    let Some(store) = &app.store else {
        return Ok(());
    };
    let rows = current_spend(store)
        .await
        .map_err(|e| anyhow::anyhow!("loading budget spend from the store: {e}"))?;
    app.budgets.ledger().restore(&rows);
    if let crate::policy::budget::Budgets::Shared(s) = &app.budgets {
        s.seed(&rows).await;
    }
    Ok(())
}

/// The store's spend of every budget period under way.
async fn current_spend(
    store: &sluice_store::Store,
) -> Result<Vec<sluice_store::SpendRow>, sluice_store::StoreError> {
    use crate::policy::budget::Period;
    let now = crate::mock::now_ms();
    let since = Period::ALL
        .iter()
        .map(|p| p.start_of(now))
        .min()
        .unwrap_or(now);
    store.spend_since(since).await
}

/// With shared budgets and a store: every [`RESEED_EVERY`], checks that
/// Redis still holds the budget counters, and seeds them again from the
/// store when it lost them (a restart without persistence), so a budget
/// is not forgotten for the rest of its period. Ends with `stop`.
fn spawn_budget_reseeder(
    app: App,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let crate::policy::budget::Budgets::Shared(_) = &app.budgets else {
        return None;
    };
    let store = app.store.clone()?;
    Some(tokio::spawn(async move {
        let crate::policy::budget::Budgets::Shared(ledger) = &app.budgets else {
            return;
        };
        let mut tick = tokio::time::interval(RESEED_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if ledger.seeded().await != Some(false) {
                continue;
            }
            match current_spend(&store).await {
                Ok(rows) if ledger.seed(&rows).await => tracing::warn!(
                    counters = rows.len(),
                    "shared state had lost the budget counters; seeded them again from the store"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "shared state lost the budget counters and the store could not be read to seed them; retrying")
                }
            }
        }
    }))
}

/// A listener with `SO_REUSEPORT`, so every worker thread can accept on the
/// same address and the kernel spreads connections across them (the nginx
/// model: no task migrates between threads).
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves the public API on `listener` until `rx` turns true.
async fn serve_public(
    app: App,
    listener: TcpListener,
    with_metrics: bool,
    rx: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut router = crate::http::public_router(app.clone());
    if with_metrics {
        router = router.merge(crate::http::admin::metrics_router(app.clone()));
    }
    crate::http::serve::serve(app, router, listener, wait_for(rx)).await
}

/// One extra event-loop thread: a single-threaded runtime serving its own
/// `SO_REUSEPORT` listener, drained like the main one.
fn worker_thread(
    app: App,
    listener: TcpListener,
    with_metrics: bool,
    rx: watch::Receiver<bool>,
    drain: std::time::Duration,
) {
    let std_listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "worker listener unusable"),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tracing::error!(error = %e, "cannot start a worker runtime"),
    };
    rt.block_on(async move {
        let Ok(listener) = TcpListener::from_std(std_listener) else {
            return tracing::error!("worker listener unusable");
        };
        let mut stop = rx.clone();
        let deadline = async move {
            let _ = stop.wait_for(|v| *v).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            r = serve_public(app, listener, with_metrics, rx) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "worker stopped");
                }
            }
            _ = deadline => {}
        }
    });
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Watches the config file and reloads on change (debounced). Keep the handle
/// alive; dropping it stops watching.
pub fn spawn_config_watcher(app: &App) -> Option<crate::config::WatcherHandle> {
    let path = app.config_path.clone()?;
    let (on_change, on_error) = (app.clone(), app.clone());
    crate::config::spawn_watcher_with(
        path,
        crate::config::watch::DEFAULT_DEBOUNCE,
        move || {
            let result = crate::reload::try_reload(&on_change);
            if result.is_ok() {
                crate::reload::record(&on_change, "file_watch", &result);
            }
            result.map(|_| ())
        },
        move |e| crate::reload::record(&on_error, "file_watch", &Err(e)),
    )
    .map_err(|e| tracing::warn!(error = %e, "config file watching is off"))
    .ok()
}

/// Reloads the config on every SIGHUP.
pub fn spawn_sighup_reloader(app: App) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        // Ends with the runtime: the process is exiting.
        while hup.recv().await.is_some() {
            let _ = crate::reload::reload(&app, "sighup");
        }
    });
}

/// Loads the BPE tables of the models' tokenizers off the request path, so
/// the first counted request does not pay for it — only when the config
/// counts tokens somewhere (a token limit, a budget, `max_input_tokens`):
/// the tables take ~35 MiB. Store-managed policies that count load them on
/// first use.
fn warm_tokenizers(app: &App) {
    let snap = app.snapshot.load_full();
    if !counts_tokens(&snap.config) {
        return;
    }
    let mut used: Vec<crate::config::raw::Tokenizer> = snap
        .models
        .values()
        .map(|m| m.tokenizer)
        .filter(|t| *t != crate::config::raw::Tokenizer::Estimate)
        .collect();
    used.dedup();
    if !used.is_empty() {
        tokio::task::spawn_blocking(move || used.into_iter().for_each(|t| t.warm_up()));
    }
}

/// Whether any policy of the config needs prompt token counts.
fn counts_tokens(cfg: &RawConfig) -> bool {
    use crate::config::merge::items;
    let refs = std::iter::once(cfg.global_policy.as_ref())
        .chain(cfg.tenants.values().map(|t| t.policy.as_ref()))
        .chain(cfg.keys.iter().map(|k| k.policy.as_ref()))
        .chain(cfg.models.values().map(|m| m.policy.as_ref()));
    let inline = refs.flat_map(|r| items(cfg, r)).map(|(_, p)| p);
    cfg.policies.values().chain(inline).any(|p| {
        p.budget.is_some()
            || p.limits.is_some_and(|l| l.max_input_tokens.is_some())
            || p.rate_limit
                .is_some_and(|r| r.tokens_per_minute.is_some() || r.tokens_per_day.is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::counts_tokens;

    fn cfg(rest: &str) -> crate::config::RawConfig {
        let text = format!("providers: {{ p: {{ kind: mock }} }}\nmodels: {{ m: {{ price: {{ input: 1, output: 1 }}, deployments: [ {{ provider: p, model: m }} ] }} }}\n{rest}");
        crate::config::load_str(&text, std::path::Path::new("t.yaml"), &|_| None).unwrap()
    }

    #[test]
    fn tokenizers_load_only_when_a_policy_counts_tokens() {
        assert!(!counts_tokens(&cfg("")));
        assert!(!counts_tokens(&cfg(
            "global_policy: { rate_limit: { requests_per_second: 5 } }"
        )));
        assert!(counts_tokens(&cfg("keys: [ { name: k, key: secret-0000, policy: { rate_limit: { tokens_per_day: 5 } } } ]")));
        assert!(counts_tokens(&cfg(
            "policies: { b: { budget: { usd_per_day: 5 } } }"
        )));
        assert!(counts_tokens(&cfg(
            "tenants: { t: { policy: { limits: { max_input_tokens: 5 } } } }"
        )));
    }
}
