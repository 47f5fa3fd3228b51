//! The control-plane entities as the store returns them. Secrets never live
//! here: keys and admin credentials carry a hash (never serialized) and a
//! display prefix. Times are Unix milliseconds; ids are sortable strings
//! (`ten_…`, `app_…`, `key_…`, `usr_…`, `cred_…`, `sub_…`, `aud_…`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unix time in milliseconds.
pub type Millis = i64;

/// Who may do what in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything within one tenant.
    TenantAdmin,
    /// Their own apps, keys and usage within one tenant.
    Developer,
    /// Read only (everything, or one tenant when the user has a tenant).
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "tenant_admin" => Role::TenantAdmin,
            "developer" => Role::Developer,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }
}

/// Where an entity is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Created through the admin API or CLI.
    Store,
    /// Seeded from the config file; read-only through the admin API.
    Config,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub tier: Option<String>,
    /// A policy reference as in the config file (name, inline, or list), as JSON.
    pub policy: Option<Value>,
    pub source: Source,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    pub tier: Option<String>,
    pub policy: Option<Value>,
}

/// Fields to change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub tier: Option<Option<String>>,
    pub policy: Option<Option<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct App {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The developer who owns the app, if any.
    pub owner_user_id: Option<String>,
    pub policy: Option<Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub tenant_id: String,
    pub name: String,
    pub owner_user_id: Option<String>,
    pub policy: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    pub name: Option<String>,
    pub owner_user_id: Option<Option<String>>,
    pub policy: Option<Option<Value>>,
}

/// What a key may reach; `None` = everything its policies allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    /// `models:` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// APIs: `chat`, `messages`, `embeddings`, `models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apis: Option<Vec<String>>,
}

/// An app's API key. The secret was shown once at creation and is not kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub app_id: String,
    pub tenant_id: String,
    pub name: String,
    /// The first characters of the secret, for display (`sk-sluice-AbCd`).
    pub prefix: String,
    /// SHA-256 of the secret, hex. Never serialized.
    #[serde(skip)]
    pub hash: String,
    pub scopes: Scopes,
    pub policy: Option<Value>,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub app_id: String,
    pub name: String,
    pub scopes: Scopes,
    pub policy: Option<Value>,
    pub expires_at: Option<Millis>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub scopes: Option<Scopes>,
    pub policy: Option<Option<Value>>,
    pub expires_at: Option<Option<Millis>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The tenant a `tenant_admin` or `developer` (or a scoped auditor) belongs to.
    pub tenant_id: Option<String>,
    pub disabled_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub tenant_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub tenant_id: Option<Option<String>>,
    /// `Some(true)` disables the user (and so all their credentials).
    pub disabled: Option<bool>,
}

/// An admin API credential of a user (`sa-sluice-…`), stored hashed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminCredential {
    pub id: String,
    pub user_id: String,
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubState {
    Pending,
    Approved,
    Rejected,
    Revoked,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Approved => "approved",
            SubState::Rejected => "rejected",
            SubState::Revoked => "revoked",
        }
    }
    pub fn parse(s: &str) -> Option<SubState> {
        Some(match s {
            "pending" => SubState::Pending,
            "approved" => SubState::Approved,
            "rejected" => SubState::Rejected,
            "revoked" => SubState::Revoked,
            _ => return None,
        })
    }
}

/// An app's access to a model (`model:<name>`) or an API (`api:<name>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub target: String,
    pub state: SubState,
    pub requested_by: String,
    pub requested_at: Millis,
    pub decided_by: Option<String>,
    pub decided_at: Option<Millis>,
    pub note: Option<String>,
}

/// One admin change, append-only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: Millis,
    /// User id (or `config:admin_key`, `cli:<user>`).
    pub actor: String,
    pub actor_role: Role,
    /// The tenant the change belongs to, for tenant-scoped reads.
    pub tenant_id: Option<String>,
    /// e.g. `tenant.create`, `key.rotate`, `subscription.approve`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// The entity before and after, secrets redacted (never present).
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Who makes a change: recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub role: Role,
    pub tenant_id: Option<String>,
}

/// Filters and cursor for list calls. Results are ordered by id (= creation
/// time); `after` is the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub tenant_id: Option<String>,
    pub app_id: Option<String>,
    pub owner_user_id: Option<String>,
    pub user_id: Option<String>,
    /// Subscription state, user role, … depending on the entity.
    pub state: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Include revoked keys, disabled users.
    pub include_inactive: bool,
    pub after: Option<String>,
    /// 1..=500; 0 means the default of 50.
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Everything the gateway's hot path needs, loaded at once.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub revision: i64,
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    /// Keys not revoked (expired ones included: expiry is checked per request).
    pub keys: Vec<ApiKey>,
    pub subscriptions: Vec<Subscription>,
    /// Enabled users who may approve subscriptions (admins and tenant admins).
    pub approvers: Vec<User>,
}
