//! Admin credentials of users (`sa-sluice-…`): created with the secret
//! shown once, listed by prefix, revoked. Reach follows the user's: admins
//! everyone, tenant admins their tenant's users, developers their own
//! (list and revoke only).

use std::time::Duration;

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{AdminCredential, ListQuery, User};

use super::access;
use super::auth::Ctx;
use super::bodies::NewCredentialBody;
use super::checks;
use super::error::{ApiError, ApiResult};
use super::extract::{plausible_id, Id, OptionalBody};
use super::params::MAX_LIMIT;
use super::rbac::{Action, Resource, Scope};
use super::time::now_ms;
use super::views::{CreatedCredential, CredentialView, ListResponse};

const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Create an admin credential for a user; the secret is shown this once.
#[utoipa::path(post, path = "/admin/users/{id}/credentials", tag = "users", operation_id = "create_credential", params(("id" = String, Path)),
    request_body(content = Option<NewCredentialBody>, description = "Optional"),
    responses((status = 201, description = "Created; `secret` is shown only now", body = CreatedCredential)))]
pub async fn create(
    ctx: Ctx,
    Id(id): Id,
    OptionalBody(b): OptionalBody<NewCredentialBody>,
) -> ApiResult<(StatusCode, Json<CreatedCredential>)> {
    ctx.require(Resource::Credential, Action::Create)?;
    let (user, owner) = access::load_owned::<User>(&ctx, &id, Action::Read).await?;
    access::permit_under(
        &ctx,
        Resource::Credential,
        Action::Create,
        &owner,
        ("user", &id),
    )?;
    let expires_at = match &b.expires_in {
        Some(s) => match checks::duration("expires_in", s, MAX_LIFETIME)? {
            d if d.is_zero() => {
                return Err(ApiError::invalid(
                    "expires_in",
                    "`expires_in` must be more than 0s",
                ))
            }
            d => Some(now_ms() + d.as_millis() as i64),
        },
        None => None,
    };
    let (cred, secret) = ctx
        .store
        .create_credential(&ctx.actor, &user.id, expires_at)
        .await?;
    ctx.changed();
    let view = CreatedCredential {
        credential: cred.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// A user's credentials (revoked ones included; prefixes only).
#[utoipa::path(get, path = "/admin/users/{id}/credentials", tag = "users", operation_id = "list_credentials", params(("id" = String, Path)),
    responses((status = 200, description = "All of the user's credentials (one page)", body = ListResponse<CredentialView>)))]
pub async fn list(ctx: Ctx, Id(id): Id) -> ApiResult<Json<ListResponse<CredentialView>>> {
    ctx.require(Resource::Credential, Action::List)?;
    let (user, owner) = access::load_owned::<User>(&ctx, &id, Action::Read).await?;
    access::permit_under(
        &ctx,
        Resource::Credential,
        Action::List,
        &owner,
        ("user", &id),
    )?;
    let creds = ctx.store.list_credentials(&user.id).await?;
    let data = creds.into_iter().map(Into::into).collect();
    Ok(Json(ListResponse { data, next: None }))
}

/// Revoke an admin credential at once.
#[utoipa::path(post, path = "/admin/credentials/{id}/revoke", tag = "users", operation_id = "revoke_credential", params(("id" = String, Path)),
    responses((status = 200, description = "Revoked", body = CredentialView)))]
pub async fn revoke(ctx: Ctx, Id(id): Id) -> ApiResult<Json<CredentialView>> {
    let scope = ctx.require(Resource::Credential, Action::Update)?;
    if !plausible_id(&id) || !reachable(&ctx, scope, &id).await? {
        return Err(ApiError::not_found("credential", &id));
    }
    let cred = ctx.store.revoke_credential(&ctx.actor, &id).await?;
    ctx.changed();
    Ok(Json(cred.into()))
}

/// Whether credential `id` belongs to a user within `scope`. (The store has
/// no lookup of a credential by id, so the caller's users are searched.)
async fn reachable(ctx: &Ctx, scope: Scope, id: &str) -> ApiResult<bool> {
    let has = |creds: Vec<AdminCredential>| creds.iter().any(|c| c.id == id);
    match scope {
        Scope::Everything => Ok(true),
        Scope::Own => Ok(has(ctx.store.list_credentials(&ctx.actor.id).await?)),
        Scope::Tenant => {
            let Some(tenant) = ctx.actor.tenant_id.clone() else {
                return Ok(false);
            };
            let mut q = ListQuery {
                tenant_id: Some(tenant),
                include_inactive: true,
                limit: MAX_LIMIT,
                ..Default::default()
            };
            loop {
                let page = ctx.store.list_users(&q).await?;
                for u in &page.items {
                    if has(ctx.store.list_credentials(&u.id).await?) {
                        return Ok(true);
                    }
                }
                match page.next {
                    Some(n) if !page.items.is_empty() => q.after = Some(n),
                    _ => return Ok(false),
                }
            }
        }
        Scope::Deny => Ok(false),
    }
}
