//! Who may do what: every permission rule of the admin API, in one place.
//!
//! [`scope`] is the table: for a caller, a kind of resource and an action it
//! says how far the caller reaches — everything, their tenant, their own
//! things, or nothing (403). [`covers`] tests one entity's [`Owner`] against
//! a scope; an entity outside the caller's *read* scope answers 404 exactly
//! like a missing id. The user rules (roles, self-changes, tenants) are
//! [`check_new_user`] and [`check_user_patch`].

use sluice_store::{Actor, Role, User, UserPatch};

use super::error::{ApiError, ApiResult};

/// The kinds of thing the admin API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Tenant,
    App,
    Key,
    User,
    Credential,
    Subscription,
    Audit,
    /// `/admin/status`, `/admin/reload`.
    System,
    /// Usage analytics and request logs (read only).
    Usage,
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Read,
    Create,
    /// PATCH, and state changes such as rotating or revoking.
    Update,
    Delete,
    /// Approving, rejecting or revoking a subscription.
    Decide,
}

/// How far a permission reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everything,
    /// Entities of the caller's tenant.
    Tenant,
    /// Entities of the caller's tenant that the caller owns (their apps,
    /// those apps' keys and subscriptions, their own user record).
    Own,
    /// Never: 403.
    Deny,
}

/// The tenant and the owning user of an entity (for a user: the user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
}

/// The permission table.
pub fn scope(actor: &Actor, res: Resource, act: Action) -> Scope {
    use Action::*;
    use Resource as R;
    use Scope::*;
    let reads = matches!(act, List | Read);
    match (actor.role, res) {
        (Role::Admin, _) => Everything,
        (_, R::System) => Deny,
        (Role::Auditor, _) if reads => match actor.tenant_id {
            Some(_) => Tenant,
            None => Everything,
        },
        (Role::Auditor, _) => Deny,
        // Tier and tenant policy are admin-only: a tenant admin could
        // otherwise loosen their own limits.
        (Role::TenantAdmin, R::Tenant) if reads => Tenant,
        (Role::TenantAdmin, R::Tenant) => Deny,
        (Role::TenantAdmin, R::Audit) if reads => Tenant,
        (Role::TenantAdmin, R::Audit) => Deny,
        (Role::TenantAdmin, R::User) if act == Delete => Deny,
        (Role::TenantAdmin, _) => Tenant,
        (Role::Developer, R::App | R::Key) => Own,
        (Role::Developer, R::Usage) if reads => Own,
        (Role::Developer, R::Subscription) if act == Decide => Deny,
        (Role::Developer, R::Subscription) => Own,
        (Role::Developer, R::User) if act == Read => Own,
        (Role::Developer, R::Credential) if matches!(act, List | Read | Update) => Own,
        (Role::Developer, _) => Deny,
    }
}

/// The caller's scope for an action, or 403 when the role can never do it.
pub fn require(actor: &Actor, res: Resource, act: Action) -> ApiResult<Scope> {
    match scope(actor, res, act) {
        Scope::Deny => Err(ApiError::forbidden(format!(
            "role `{}` may not {} {}",
            actor.role.as_str(),
            verb(act),
            noun(res)
        ))),
        s => Ok(s),
    }
}

/// Whether an entity owned by `owner` lies within `scope` for `actor`.
pub fn covers(actor: &Actor, scope: Scope, owner: &Owner) -> bool {
    let same_tenant = actor.tenant_id.is_some() && owner.tenant_id == actor.tenant_id;
    match scope {
        Scope::Everything => true,
        Scope::Tenant => same_tenant,
        Scope::Own => same_tenant && owner.user_id.as_deref() == Some(actor.id.as_str()),
        Scope::Deny => false,
    }
}

/// Rules for creating a user beyond scope: a tenant admin creates only
/// non-admin users of their own tenant. Returns the tenant to use.
pub fn check_new_user(
    actor: &Actor,
    role: Role,
    tenant_id: Option<String>,
) -> ApiResult<Option<String>> {
    require(actor, Resource::User, Action::Create)?;
    if actor.role == Role::Admin {
        return Ok(tenant_id);
    }
    if role == Role::Admin {
        return Err(ApiError::forbidden("only an admin may create admins"));
    }
    match (tenant_id, &actor.tenant_id) {
        (None, own) => Ok(own.clone()),
        (Some(t), Some(own)) if &t == own => Ok(Some(t)),
        (Some(t), _) => Err(ApiError::not_found("tenant", &t)),
    }
}

/// Rules for changing a user the caller can see: nobody changes their own
/// role or disables themselves; only admins grant `admin`; nobody but an
/// admin moves a user across tenants.
pub fn check_user_patch(actor: &Actor, target: &User, p: &UserPatch) -> ApiResult<()> {
    require(actor, Resource::User, Action::Update)?;
    if target.id == actor.id {
        if p.role.is_some() {
            return Err(ApiError::forbidden("you cannot change your own role"));
        }
        if p.disabled == Some(true) {
            return Err(ApiError::forbidden("you cannot disable yourself"));
        }
    }
    if actor.role == Role::Admin {
        return Ok(());
    }
    if p.role == Some(Role::Admin) {
        return Err(ApiError::forbidden(
            "only an admin may grant the admin role",
        ));
    }
    match &p.tenant_id {
        Some(t) if t != &actor.tenant_id => Err(ApiError::forbidden(
            "users cannot be moved to another tenant (ask an admin)",
        )),
        _ => Ok(()),
    }
}

/// Whether the change takes an enabled admin's role or access away (the
/// caller must then make sure another enabled admin remains).
pub fn removes_admin(target: &User, p: &UserPatch) -> bool {
    let enabled_admin = target.role == Role::Admin && target.disabled_at.is_none();
    let demoted = p.role.is_some_and(|r| r != Role::Admin);
    enabled_admin && (demoted || p.disabled == Some(true))
}

fn verb(act: Action) -> &'static str {
    match act {
        Action::List => "list",
        Action::Read => "read",
        Action::Create => "create",
        Action::Update => "change",
        Action::Delete => "delete",
        Action::Decide => "approve, reject or revoke",
    }
}

fn noun(res: Resource) -> &'static str {
    match res {
        Resource::Tenant => "tenants",
        Resource::App => "apps",
        Resource::Key => "keys",
        Resource::User => "users",
        Resource::Credential => "admin credentials",
        Resource::Subscription => "subscriptions",
        Resource::Audit => "the audit log",
        Resource::System => "the gateway (status, reload)",
        Resource::Usage => "usage and request logs",
    }
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
