//! `GET /admin/audit`: the append-only log of admin changes, newest first.
//! Admins and unscoped auditors read all of it; tenant admins and tenant
//! auditors the entries of their tenant; developers none.

use axum::Json;

use super::access::narrow;
use super::auth::Ctx;
use super::error::ApiResult;
use super::extract::Params;
use super::params::AuditParams;
use super::rbac::{Action, Resource, Scope};
use super::views::{AuditView, ListResponse};

/// Read the audit log.
#[utoipa::path(get, path = "/admin/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "A page of audit entries, newest first", body = ListResponse<AuditView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<AuditParams>,
) -> ApiResult<Json<ListResponse<AuditView>>> {
    let scope = ctx.require(Resource::Audit, Action::List)?;
    let mut q = p.query()?;
    if scope != Scope::Everything && !narrow(&mut q.tenant_id, &ctx.actor.tenant_id) {
        return Ok(Json(ListResponse {
            data: Vec::new(),
            next: None,
        }));
    }
    Ok(Json(ctx.store.list_audit(&q).await?.into()))
}
