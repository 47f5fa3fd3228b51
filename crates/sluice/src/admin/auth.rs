//! Who is calling: the secret from `Authorization: Bearer` or `x-api-key`
//! becomes an [`Actor`]. The config's `admin_key` (compared as SHA-256 in
//! constant time) is the bootstrap admin `config:admin_key`; otherwise a
//! live admin credential (`sa-sluice-…`) in the store names a user. Public
//! API keys are never admin credentials.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::HeaderMap;
use sluice_store::{Actor, Role, Store};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ApiResult};
use super::rbac::{self, Action, Resource, Scope};
use crate::snapshot::{hash_secret, Snapshot};
use crate::state::App;

/// The actor id of the config's `admin_key`.
pub const CONFIG_ADMIN: &str = "config:admin_key";

/// What every admin credential secret starts with.
const CREDENTIAL_PREFIX: &str = "sa-sluice-";

const INVALID: &str = "invalid admin credential";

/// An authenticated caller (any route of the admin API).
pub struct Caller {
    pub app: App,
    pub actor: Actor,
}

/// An authenticated caller of an entity route, with the store.
pub struct Ctx {
    pub app: App,
    pub actor: Actor,
    pub store: Store,
    /// The config snapshot, loaded once for the request.
    pub snap: Arc<Snapshot>,
}

impl Ctx {
    /// The caller's scope for an action, or 403.
    pub fn require(&self, res: Resource, act: Action) -> ApiResult<Scope> {
        rbac::require(&self.actor, res, act)
    }

    /// Call after a successful mutation: keys take effect and revocations
    /// bite at once.
    pub fn changed(&self) {
        crate::directory::notify_changed(&self.app);
    }
}

/// Resolves the caller, or 401.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Actor> {
    let snap = app.snapshot.load();
    let Some(secret) = crate::http::auth::presented_key(headers) else {
        let hint = if snap.admin_key_hash.is_none() && app.store.is_none() {
            "the admin API is disabled: set `admin_key` (or `store:` with admin credentials) in the config"
        } else {
            "missing admin credential: send `Authorization: Bearer <admin key or sa-sluice-… credential>`"
        };
        return Err(ApiError::unauthorized(hint));
    };
    let digest = hash_secret(secret);
    if let Some(expected) = snap.admin_key_hash {
        if bool::from(digest.ct_eq(&expected)) {
            return Ok(Actor {
                id: app
                    .bootstrap_actor
                    .get()
                    .map_or(CONFIG_ADMIN, String::as_str)
                    .to_owned(),
                role: Role::Admin,
                tenant_id: None,
            });
        }
    }
    let (Some(store), true) = (&app.store, secret.starts_with(CREDENTIAL_PREFIX)) else {
        return Err(ApiError::unauthorized(INVALID));
    };
    match store
        .credential_by_hash(&sluice_store::ids::hash_secret(secret))
        .await?
    {
        // The store answers live credentials of enabled users; checking
        // `disabled_at` again costs nothing and keeps a disabled user out.
        Some((_, user)) if user.disabled_at.is_none() => Ok(Actor {
            id: user.id,
            role: user.role,
            tenant_id: user.tenant_id,
        }),
        _ => Err(ApiError::unauthorized(INVALID)),
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> ApiResult<Self> {
        let actor = authenticate(app, &parts.headers).await?;
        Ok(Caller {
            app: app.clone(),
            actor,
        })
    }
}

impl FromRequestParts<App> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> ApiResult<Self> {
        let Caller { app, actor } = Caller::from_request_parts(parts, app).await?;
        let store = app.store.clone().ok_or_else(ApiError::no_store)?;
        let snap = app.snapshot.load_full();
        Ok(Ctx {
            app,
            actor,
            store,
            snap,
        })
    }
}
