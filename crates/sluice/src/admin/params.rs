//! Query parameters of the list routes (unknown ones are a 400), turned
//! into the store's [`ListQuery`] / [`AuditQuery`].

use serde::Deserialize;
use sluice_store::{AuditQuery, ListQuery, Role, SubState};
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult};
use super::time::parse_time;

/// The most items one page may hold.
pub const MAX_LIMIT: u32 = 500;

/// `limit` (1..=500, default 50) and `after` (the previous page's `next`).
fn page(limit: Option<u32>, after: Option<String>) -> ApiResult<ListQuery> {
    if let Some(l) = limit {
        if l == 0 || l > MAX_LIMIT {
            return Err(ApiError::invalid(
                "limit",
                format!("`limit` must be between 1 and {MAX_LIMIT} (default 50)"),
            ));
        }
    }
    Ok(ListQuery {
        limit: limit.unwrap_or(0),
        after,
        ..Default::default()
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantParams {
    /// Case-insensitive substring of the name.
    name: Option<String>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

impl TenantParams {
    pub fn query(self) -> ApiResult<ListQuery> {
        let mut q = page(self.limit, self.after)?;
        q.name_contains = self.name;
        Ok(q)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppParams {
    tenant_id: Option<String>,
    owner_user_id: Option<String>,
    /// Case-insensitive substring of the name.
    name: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

impl AppParams {
    pub fn query(self) -> ApiResult<ListQuery> {
        let mut q = page(self.limit, self.after)?;
        (q.tenant_id, q.owner_user_id) = (self.tenant_id, self.owner_user_id);
        q.name_contains = self.name;
        Ok(q)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyParams {
    tenant_id: Option<String>,
    app_id: Option<String>,
    /// Include revoked keys (default false).
    include_revoked: Option<bool>,
    /// Case-insensitive substring of the name.
    name: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

impl KeyParams {
    pub fn query(self) -> ApiResult<ListQuery> {
        let mut q = page(self.limit, self.after)?;
        (q.tenant_id, q.app_id) = (self.tenant_id, self.app_id);
        q.include_inactive = self.include_revoked.unwrap_or(false);
        q.name_contains = self.name;
        Ok(q)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    tenant_id: Option<String>,
    /// `admin`, `tenant_admin`, `developer` or `auditor`.
    role: Option<String>,
    /// Include disabled users (default false).
    include_disabled: Option<bool>,
    /// Case-insensitive substring of the name.
    name: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

impl UserParams {
    pub fn query(self) -> ApiResult<ListQuery> {
        let mut q = page(self.limit, self.after)?;
        if let Some(r) = &self.role {
            let role = Role::parse(r).ok_or_else(|| {
                ApiError::invalid(
                    "role",
                    "`role` must be admin, tenant_admin, developer or auditor",
                )
            })?;
            q.state = Some(role.as_str().to_owned());
        }
        q.tenant_id = self.tenant_id;
        q.include_inactive = self.include_disabled.unwrap_or(false);
        q.name_contains = self.name;
        Ok(q)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionParams {
    tenant_id: Option<String>,
    app_id: Option<String>,
    /// `pending`, `approved`, `rejected` or `revoked`.
    state: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

impl SubscriptionParams {
    pub fn query(self) -> ApiResult<ListQuery> {
        let mut q = page(self.limit, self.after)?;
        if let Some(s) = &self.state {
            let state = SubState::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    "`state` must be pending, approved, rejected or revoked",
                )
            })?;
            q.state = Some(state.as_str().to_owned());
        }
        (q.tenant_id, q.app_id) = (self.tenant_id, self.app_id);
        Ok(q)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    tenant_id: Option<String>,
    /// The actor's id (a user id, `config:admin_key`, …).
    actor: Option<String>,
    /// e.g. `key.rotate`.
    action: Option<String>,
    target_id: Option<String>,
    /// RFC 3339 or Unix milliseconds (inclusive).
    since: Option<String>,
    /// RFC 3339 or Unix milliseconds (exclusive).
    until: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

impl AuditParams {
    pub fn query(self) -> ApiResult<AuditQuery> {
        let p = page(self.limit, self.after)?;
        let time = |name: &str, v: Option<String>| {
            v.map(|s| parse_time(&s).map_err(|e| ApiError::invalid(name, format!("`{name}`: {e}"))))
                .transpose()
        };
        Ok(AuditQuery {
            tenant_id: self.tenant_id,
            actor: self.actor,
            action: self.action,
            target_id: self.target_id,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            after: p.after,
            limit: p.limit,
        })
    }
}
