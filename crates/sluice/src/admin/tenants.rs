//! `/admin/tenants`: list and read (admins, auditors, a tenant admin their
//! own tenant); create, change and delete (admins only — tier and tenant
//! policy bound what a tenant may do).

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{NewTenant, Tenant, TenantPatch};

use super::access;
use super::auth::Ctx;
use super::bodies::{NewTenantBody, TenantPatchBody};
use super::checks;
use super::error::ApiResult;
use super::extract::{Body, Id, Params};
use super::params::TenantParams;
use super::rbac::{Action, Resource};
use super::views::{ListResponse, TenantView};

/// List tenants.
#[utoipa::path(get, path = "/admin/tenants", tag = "tenants", params(TenantParams),
    responses((status = 200, description = "A page of tenants", body = ListResponse<TenantView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<TenantParams>,
) -> ApiResult<Json<ListResponse<TenantView>>> {
    Ok(Json(access::list::<Tenant>(&ctx, p.query()?).await?.into()))
}

/// Read a tenant.
#[utoipa::path(get, path = "/admin/tenants/{id}", tag = "tenants", params(("id" = String, Path)),
    responses((status = 200, description = "The tenant", body = TenantView)))]
pub async fn get(ctx: Ctx, Id(id): Id) -> ApiResult<Json<TenantView>> {
    Ok(Json(
        access::load::<Tenant>(&ctx, &id, Action::Read)
            .await?
            .into(),
    ))
}

/// Create a tenant (admin).
#[utoipa::path(post, path = "/admin/tenants", tag = "tenants", request_body = NewTenantBody,
    responses((status = 201, description = "Created", body = TenantView)))]
pub async fn create(
    ctx: Ctx,
    Body(b): Body<NewTenantBody>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    ctx.require(Resource::Tenant, Action::Create)?;
    let new = NewTenant {
        name: checks::name("name", b.name)?,
        tier: b.tier.map(|t| checks::name("tier", t)).transpose()?,
        policy: checks::policy(&ctx.snap.config, b.policy)?,
    };
    let t = ctx.store.create_tenant(&ctx.actor, new).await?;
    ctx.changed();
    Ok((StatusCode::CREATED, Json(t.into())))
}

/// Change a tenant's name, tier or policy (admin).
#[utoipa::path(patch, path = "/admin/tenants/{id}", tag = "tenants", params(("id" = String, Path)),
    request_body = TenantPatchBody, responses((status = 200, description = "Changed", body = TenantView)))]
pub async fn update(
    ctx: Ctx,
    Id(id): Id,
    Body(b): Body<TenantPatchBody>,
) -> ApiResult<Json<TenantView>> {
    access::load::<Tenant>(&ctx, &id, Action::Update).await?;
    let patch = TenantPatch {
        name: b.name.map(|n| checks::name("name", n)).transpose()?,
        tier: b
            .tier
            .map(|t| t.map(|t| checks::name("tier", t)).transpose())
            .transpose()?,
        policy: checks::policy_patch(&ctx.snap.config, b.policy)?,
    };
    let t = ctx.store.update_tenant(&ctx.actor, &id, patch).await?;
    ctx.changed();
    Ok(Json(t.into()))
}

/// Delete a tenant: its apps are deleted and their keys revoked (admin).
#[utoipa::path(delete, path = "/admin/tenants/{id}", tag = "tenants", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(ctx: Ctx, Id(id): Id) -> ApiResult<StatusCode> {
    access::load::<Tenant>(&ctx, &id, Action::Delete).await?;
    ctx.store.delete_tenant(&ctx.actor, &id).await?;
    ctx.changed();
    Ok(StatusCode::NO_CONTENT)
}
