//! Keeping the directory fresh: revision polling, wake-ups after admin
//! changes and config reloads, and `shared_state` (Redis pub/sub) notices
//! between instances.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{seed_tenants, Directory};
use crate::state::App;

/// The Redis channel that carries "the store changed" notices.
pub const CHANNEL: &str = "sluice:directory";

/// Call after any change to the store: this instance reloads its directory
/// at once, and (with `shared_state`) so does every other instance.
pub fn notify_changed(app: &App) {
    app.directory_changed.notify_one();
    if app.redis.is_some() {
        let app = app.clone();
        tokio::spawn(async move { publish_change(&app).await });
    }
}

/// Publishes a change notice on `shared_state` (no-op without it).
pub async fn publish_change(app: &App) {
    let Some(client) = &app.redis else {
        return;
    };
    let r: redis::RedisResult<i64> = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg("changed")
            .query_async(&mut con)
            .await
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not publish a store change to shared_state; other instances will see it by polling");
    }
}

/// Reads the store if its revision moved (or `force`) and swaps in the new
/// directory. Returns whether it changed.
pub async fn refresh(app: &App, force: bool) -> Result<bool, sluice_store::StoreError> {
    let Some(store) = &app.store else {
        return Ok(false);
    };
    let result = async {
        let rev = store.revision().await?;
        if rev == app.directory.load().revision && !force {
            return Ok(false);
        }
        let rows = Arc::new(store.load_directory().await?);
        let snap = app.snapshot.load();
        app.directory
            .store(Arc::new(Directory::build(rows, &snap.config)));
        Ok(true)
    }
    .await;
    app.store_ok.store(result.is_ok(), Ordering::Relaxed);
    result
}

/// After a config reload: wakes the sync, which re-seeds the config's
/// tenants and re-resolves every identity against the new policies.
pub fn config_changed(app: &App) {
    app.directory_changed.notify_one();
}

/// Keeps the directory fresh until the process ends: polls the revision,
/// wakes on [`notify_changed`] and config reloads, and listens to
/// `shared_state` notices.
pub fn spawn_sync(app: &App) -> Option<tokio::task::JoinHandle<()>> {
    let store = app.store.clone()?;
    if let Some(client) = app.redis.clone() {
        tokio::spawn(listen_redis(app.clone(), client));
    }
    let app = app.clone();
    Some(tokio::spawn(async move {
        let every = if app.redis.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        };
        let mut config_version = app.snapshot.load().version;
        let mut jwt_config = app.snapshot.load().config.jwt.clone();
        loop {
            let snap = app.snapshot.load_full();
            let reloaded = snap.version != config_version;
            if reloaded {
                config_version = snap.version;
                if let Err(e) = seed_tenants(&store, &snap.config).await {
                    tracing::error!(error = %e, "re-seeding tenants after a config reload failed");
                }
                if snap.config.jwt != jwt_config {
                    jwt_config = snap.config.jwt.clone();
                    reload_jwt(&app, jwt_config.as_ref()).await;
                }
            }
            if let Err(e) = refresh(&app, reloaded).await {
                tracing::warn!(error = %e, "store unreachable; serving the last known keys");
            }
            tokio::select! {
                _ = app.directory_changed.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }))
}

/// Builds the verifier of a changed `jwt:` section and swaps it in; a JWKS
/// that cannot be loaded keeps the previous verifier.
async fn reload_jwt(app: &App, cfg: Option<&crate::jwt::JwtConfig>) {
    let Some(cfg) = cfg else {
        app.jwt.store(None);
        return;
    };
    let dir = crate::server::config_dir(app.config_path.as_deref());
    match crate::jwt::JwtVerifier::load(cfg, &dir).await {
        Ok(v) => {
            let v = Arc::new(v);
            v.spawn_refresher();
            app.jwt.store(Some(v));
        }
        Err(e) => tracing::error!(error = %e, "jwt: keeping the previous key set"),
    }
}

/// Subscribes to the change channel, reconnecting with backoff.
async fn listen_redis(app: App, client: redis::Client) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    app.redis_ok.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    // Changes made while we were away.
                    app.directory_changed.notify_one();
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        app.directory_changed.notify_one();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "subscribing to shared_state failed"),
            },
            Err(e) => tracing::warn!(error = %e, "shared_state unreachable"),
        }
        app.redis_ok.store(false, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
