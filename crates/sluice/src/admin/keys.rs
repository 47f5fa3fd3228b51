//! `/admin/keys`: API keys of apps. Create and rotate answer the secret
//! once (201); nothing else ever shows it. Revocation bites at once (the
//! directory is told after every change).

use std::time::Duration;

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{ApiKey, App, KeyPatch, NewKey};

use super::access;
use super::auth::Ctx;
use super::bodies::{KeyPatchBody, NewKeyBody, RotateBody};
use super::checks;
use super::error::ApiResult;
use super::extract::{Body, Id, OptionalBody, Params};
use super::params::KeyParams;
use super::rbac::{Action, Resource};
use super::views::{CreatedKey, KeyView, ListResponse};

const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 86_400);

fn created(k: ApiKey, secret: String) -> (StatusCode, Json<CreatedKey>) {
    (
        StatusCode::CREATED,
        Json(CreatedKey {
            key: k.into(),
            secret,
        }),
    )
}

/// List keys (revoked ones only with `include_revoked=true`).
#[utoipa::path(get, path = "/admin/keys", tag = "keys", params(KeyParams),
    responses((status = 200, description = "A page of keys (prefixes only)", body = ListResponse<KeyView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<KeyParams>,
) -> ApiResult<Json<ListResponse<KeyView>>> {
    Ok(Json(access::list::<ApiKey>(&ctx, p.query()?).await?.into()))
}

/// Read a key.
#[utoipa::path(get, path = "/admin/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, description = "The key (prefix only)", body = KeyView)))]
pub async fn get(ctx: Ctx, Id(id): Id) -> ApiResult<Json<KeyView>> {
    Ok(Json(
        access::load::<ApiKey>(&ctx, &id, Action::Read)
            .await?
            .into(),
    ))
}

/// Create a key for an app; the answer holds the secret, shown this once.
#[utoipa::path(post, path = "/admin/keys", tag = "keys", request_body = NewKeyBody,
    responses((status = 201, description = "Created; `secret` is shown only now", body = CreatedKey)))]
pub async fn create(
    ctx: Ctx,
    Body(b): Body<NewKeyBody>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    ctx.require(Resource::Key, Action::Create)?;
    let (app, owner) = access::load_owned::<App>(&ctx, &b.app_id, Action::Read).await?;
    access::permit_under(
        &ctx,
        Resource::Key,
        Action::Create,
        &owner,
        ("app", &app.id),
    )?;
    let cfg = &ctx.snap.config;
    let new = NewKey {
        app_id: app.id,
        name: checks::name("name", b.name)?,
        scopes: checks::scopes(cfg, b.scopes.unwrap_or_default())?,
        policy: checks::policy(cfg, b.policy)?,
        expires_at: b
            .expires_at
            .map(|t| checks::future_time("expires_at", &t))
            .transpose()?,
    };
    let (key, secret) = ctx.store.create_key(&ctx.actor, new).await?;
    ctx.changed();
    Ok(created(key, secret))
}

/// Change a key's name, scopes, policy or expiry.
#[utoipa::path(patch, path = "/admin/keys/{id}", tag = "keys", params(("id" = String, Path)),
    request_body = KeyPatchBody, responses((status = 200, description = "Changed", body = KeyView)))]
pub async fn update(ctx: Ctx, Id(id): Id, Body(b): Body<KeyPatchBody>) -> ApiResult<Json<KeyView>> {
    access::load::<ApiKey>(&ctx, &id, Action::Update).await?;
    let cfg = &ctx.snap.config;
    let expires_at = match b.expires_at {
        Some(Some(t)) => Some(Some(checks::future_time("expires_at", &t)?)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = KeyPatch {
        name: b.name.map(|n| checks::name("name", n)).transpose()?,
        scopes: b.scopes.map(|s| checks::scopes(cfg, s)).transpose()?,
        policy: checks::policy_patch(cfg, b.policy)?,
        expires_at,
    };
    let key = ctx.store.update_key(&ctx.actor, &id, patch).await?;
    ctx.changed();
    Ok(Json(key.into()))
}

/// Rotate: a successor key (secret shown once); the old one keeps working
/// for `overlap` (default 24h, at most 30d).
#[utoipa::path(post, path = "/admin/keys/{id}/rotate", tag = "keys", params(("id" = String, Path)),
    request_body(content = Option<RotateBody>, description = "Optional"),
    responses((status = 201, description = "The successor; `secret` is shown only now", body = CreatedKey)))]
pub async fn rotate(
    ctx: Ctx,
    Id(id): Id,
    OptionalBody(b): OptionalBody<RotateBody>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    access::load::<ApiKey>(&ctx, &id, Action::Update).await?;
    let overlap = match &b.overlap {
        Some(s) => checks::duration("overlap", s, MAX_OVERLAP)?,
        None => DEFAULT_OVERLAP,
    };
    let (key, secret) = ctx
        .store
        .rotate_key(&ctx.actor, &id, overlap.as_millis() as i64)
        .await?;
    ctx.changed();
    Ok(created(key, secret))
}

/// Revoke a key at once (revoking a revoked key changes nothing).
#[utoipa::path(post, path = "/admin/keys/{id}/revoke", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, description = "Revoked", body = KeyView)))]
pub async fn revoke(ctx: Ctx, Id(id): Id) -> ApiResult<Json<KeyView>> {
    access::load::<ApiKey>(&ctx, &id, Action::Update).await?;
    let key = ctx.store.revoke_key(&ctx.actor, &id).await?;
    ctx.changed();
    Ok(Json(key.into()))
}
