//! `/admin/users`: users and their roles. Admins manage everyone; a tenant
//! admin manages the non-admin users of their tenant; everyone may read
//! themselves (`/admin/users/me`). Nobody changes their own role or
//! disables themselves, and the last enabled admin stays.

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{NewUser, Role, User, UserPatch};

use super::access;
use super::auth::{Ctx, CONFIG_ADMIN};
use super::bodies::{NewUserBody, UserPatchBody};
use super::checks;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Id, Params};
use super::params::UserParams;
use super::rbac::{self, Action};
use super::views::{ListResponse, UserView};

fn role(field: &str, s: &str) -> ApiResult<Role> {
    Role::parse(s).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("`{field}` must be admin, tenant_admin, developer or auditor"),
        )
    })
}

/// List users (disabled ones only with `include_disabled=true`).
#[utoipa::path(get, path = "/admin/users", tag = "users", params(UserParams),
    responses((status = 200, description = "A page of users", body = ListResponse<UserView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<UserParams>,
) -> ApiResult<Json<ListResponse<UserView>>> {
    Ok(Json(access::list::<User>(&ctx, p.query()?).await?.into()))
}

/// Read a user.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, description = "The user", body = UserView)))]
pub async fn get(ctx: Ctx, Id(id): Id) -> ApiResult<Json<UserView>> {
    Ok(Json(
        access::load::<User>(&ctx, &id, Action::Read).await?.into(),
    ))
}

/// The calling user.
#[utoipa::path(get, path = "/admin/users/me", tag = "users",
    responses((status = 200, description = "The calling user", body = UserView)))]
pub async fn me(ctx: Ctx) -> ApiResult<Json<UserView>> {
    if ctx.actor.id == CONFIG_ADMIN {
        return Err(ApiError::not_found("user", CONFIG_ADMIN));
    }
    let id = ctx.actor.id.clone();
    Ok(Json(
        access::load::<User>(&ctx, &id, Action::Read).await?.into(),
    ))
}

/// Create a user.
#[utoipa::path(post, path = "/admin/users", tag = "users", request_body = NewUserBody,
    responses((status = 201, description = "Created", body = UserView)))]
pub async fn create(
    ctx: Ctx,
    Body(b): Body<NewUserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let role = role("role", &b.role)?;
    let tenant_id = rbac::check_new_user(&ctx.actor, role, b.tenant_id)?;
    let new = NewUser {
        name: checks::name("name", b.name)?,
        role,
        tenant_id,
    };
    let user = ctx.store.create_user(&ctx.actor, new).await?;
    ctx.changed();
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Change a user's name, role, tenant or disabled state.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UserPatchBody, responses((status = 200, description = "Changed", body = UserView)))]
pub async fn update(
    ctx: Ctx,
    Id(id): Id,
    Body(b): Body<UserPatchBody>,
) -> ApiResult<Json<UserView>> {
    let target = access::load::<User>(&ctx, &id, Action::Update).await?;
    let patch = UserPatch {
        name: b.name.map(|n| checks::name("name", n)).transpose()?,
        role: b.role.map(|r| role("role", &r)).transpose()?,
        tenant_id: b.tenant_id,
        disabled: b.disabled,
    };
    rbac::check_user_patch(&ctx.actor, &target, &patch)?;
    if rbac::removes_admin(&target, &patch) && ctx.store.count_admins().await? <= 1 {
        return Err(ApiError::conflict(
            "this is the last enabled admin: make another user admin first",
        ));
    }
    let user = ctx.store.update_user(&ctx.actor, &id, patch).await?;
    ctx.changed();
    Ok(Json(user.into()))
}
