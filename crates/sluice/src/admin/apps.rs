//! `/admin/apps`: admins everywhere, tenant admins in their tenant,
//! developers on the apps they own (the apps they create are theirs).

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{App, AppPatch, NewApp, Role};

use super::access;
use super::auth::Ctx;
use super::bodies::{AppPatchBody, NewAppBody};
use super::checks;
use super::error::{ApiError, ApiResult};
use super::extract::{plausible_id, Body, Id, Params};
use super::params::AppParams;
use super::rbac::{Action, Owner, Resource};
use super::views::{AppView, ListResponse};

/// List apps.
#[utoipa::path(get, path = "/admin/apps", tag = "apps", params(AppParams),
    responses((status = 200, description = "A page of apps", body = ListResponse<AppView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<AppParams>,
) -> ApiResult<Json<ListResponse<AppView>>> {
    Ok(Json(access::list::<App>(&ctx, p.query()?).await?.into()))
}

/// Read an app.
#[utoipa::path(get, path = "/admin/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, description = "The app", body = AppView)))]
pub async fn get(ctx: Ctx, Id(id): Id) -> ApiResult<Json<AppView>> {
    Ok(Json(
        access::load::<App>(&ctx, &id, Action::Read).await?.into(),
    ))
}

/// Create an app (in the caller's tenant unless an admin names one).
#[utoipa::path(post, path = "/admin/apps", tag = "apps", request_body = NewAppBody,
    responses((status = 201, description = "Created", body = AppView)))]
pub async fn create(ctx: Ctx, Body(b): Body<NewAppBody>) -> ApiResult<(StatusCode, Json<AppView>)> {
    ctx.require(Resource::App, Action::Create)?;
    let tenant_id = b
        .tenant_id
        .or_else(|| ctx.actor.tenant_id.clone())
        .ok_or_else(|| ApiError::invalid("tenant_id", "`tenant_id` is required"))?;
    let owner_user_id = match (ctx.actor.role, b.owner_user_id) {
        (Role::Developer, Some(o)) if o != ctx.actor.id => {
            return Err(ApiError::forbidden(
                "a developer's apps are their own: omit `owner_user_id`",
            ))
        }
        (Role::Developer, _) => Some(ctx.actor.id.clone()),
        (_, o) => o,
    };
    let owner = Owner {
        tenant_id: Some(tenant_id.clone()),
        user_id: owner_user_id.clone(),
    };
    access::permit_under(
        &ctx,
        Resource::App,
        Action::Create,
        &owner,
        ("tenant", &tenant_id),
    )?;
    if let Some(o) = &owner_user_id {
        check_owner(&ctx, o, &tenant_id).await?;
    }
    let new = NewApp {
        tenant_id,
        name: checks::name("name", b.name)?,
        owner_user_id,
        policy: checks::policy(&ctx.snap.config, b.policy)?,
    };
    let app = ctx.store.create_app(&ctx.actor, new).await?;
    ctx.changed();
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// Change an app's name, owner or policy.
#[utoipa::path(patch, path = "/admin/apps/{id}", tag = "apps", params(("id" = String, Path)),
    request_body = AppPatchBody, responses((status = 200, description = "Changed", body = AppView)))]
pub async fn update(ctx: Ctx, Id(id): Id, Body(b): Body<AppPatchBody>) -> ApiResult<Json<AppView>> {
    let app = access::load::<App>(&ctx, &id, Action::Update).await?;
    if let Some(new_owner) = &b.owner_user_id {
        if ctx.actor.role == Role::Developer {
            return Err(ApiError::forbidden(
                "developers cannot hand their apps over; ask a tenant admin",
            ));
        }
        if let Some(o) = new_owner {
            check_owner(&ctx, o, &app.tenant_id).await?;
        }
    }
    let patch = AppPatch {
        name: b.name.map(|n| checks::name("name", n)).transpose()?,
        owner_user_id: b.owner_user_id,
        policy: checks::policy_patch(&ctx.snap.config, b.policy)?,
    };
    let app = ctx.store.update_app(&ctx.actor, &id, patch).await?;
    ctx.changed();
    Ok(Json(app.into()))
}

/// Delete an app and revoke its keys.
#[utoipa::path(delete, path = "/admin/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(ctx: Ctx, Id(id): Id) -> ApiResult<StatusCode> {
    access::load::<App>(&ctx, &id, Action::Delete).await?;
    ctx.store.delete_app(&ctx.actor, &id).await?;
    ctx.changed();
    Ok(StatusCode::NO_CONTENT)
}

/// An app's owner must be an enabled user of the app's tenant.
async fn check_owner(ctx: &Ctx, user_id: &str, tenant_id: &str) -> ApiResult<()> {
    let user = match plausible_id(user_id) {
        true => ctx.store.get_user(user_id).await?,
        false => None,
    };
    match user {
        Some(u) if u.tenant_id.as_deref() == Some(tenant_id) && u.disabled_at.is_none() => Ok(()),
        _ => Err(ApiError::invalid(
            "owner_user_id",
            format!(
                "`owner_user_id`: no enabled user `{}` in tenant `{tenant_id}`",
                checks::clip(user_id)
            ),
        )),
    }
}
