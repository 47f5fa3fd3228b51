//! The one place rows become entities: each table's column list (selected in
//! this order everywhere) and its row mapper. JSON lives in TEXT columns,
//! enums as their snake_case names, times as BIGINT milliseconds.

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::HasId;
use crate::{
    AdminCredential, ApiKey, App, AuditEntry, Result, Role, Source, StoreError, SubState,
    Subscription, Tenant, User,
};

pub(crate) const TENANT_COLUMNS: &str = "id, name, tier, policy, source, created_at, updated_at";
pub(crate) const APP_COLUMNS: &str =
    "id, tenant_id, name, owner_user_id, policy, created_at, updated_at";
pub(crate) const KEY_COLUMNS: &str = "id, app_id, tenant_id, name, prefix, hash, scopes, policy, \
     expires_at, revoked_at, rotated_from, created_by, created_at";
pub(crate) const USER_COLUMNS: &str =
    "id, name, role, tenant_id, disabled_at, created_at, updated_at";
pub(crate) const CREDENTIAL_COLUMNS: &str =
    "id, user_id, prefix, hash, expires_at, revoked_at, created_at";
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, tenant_id, app_id, target, state, \
     requested_by, requested_at, decided_by, decided_at, note";
pub(crate) const AUDIT_COLUMNS: &str = "id, at, actor, actor_role, tenant_id, action, \
     target_type, target_id, before, after";

fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}

/// A stored value the code cannot read back: the database was edited by
/// hand or by a newer version.
fn corrupt(column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("column `{column}`: {detail}").into(),
    ))
}

fn json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<Option<T>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

fn role(row: &AnyRow, column: &str) -> Result<Role> {
    let text: String = get(row, column)?;
    Role::parse(&text).ok_or_else(|| corrupt(column, format!("unknown role `{text}`")))
}

pub(crate) fn source_str(s: Source) -> &'static str {
    match s {
        Source::Store => "store",
        Source::Config => "config",
    }
}

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant> {
    let source: String = get(row, "source")?;
    Ok(Tenant {
        id: get(row, "id")?,
        name: get(row, "name")?,
        tier: get(row, "tier")?,
        policy: json::<Value>(row, "policy")?,
        source: match source.as_str() {
            "config" => Source::Config,
            "store" => Source::Store,
            other => return Err(corrupt("source", format!("unknown source `{other}`"))),
        },
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn app(row: &AnyRow) -> Result<App> {
    Ok(App {
        id: get(row, "id")?,
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        owner_user_id: get(row, "owner_user_id")?,
        policy: json(row, "policy")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn key(row: &AnyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: get(row, "id")?,
        app_id: get(row, "app_id")?,
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        hash: get(row, "hash")?,
        scopes: json(row, "scopes")?.unwrap_or_default(),
        policy: json(row, "policy")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        rotated_from: get(row, "rotated_from")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        role: role(row, "role")?,
        tenant_id: get(row, "tenant_id")?,
        disabled_at: get(row, "disabled_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn credential(row: &AnyRow) -> Result<AdminCredential> {
    Ok(AdminCredential {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        prefix: get(row, "prefix")?,
        hash: get(row, "hash")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn subscription(row: &AnyRow) -> Result<Subscription> {
    let state: String = get(row, "state")?;
    Ok(Subscription {
        id: get(row, "id")?,
        tenant_id: get(row, "tenant_id")?,
        app_id: get(row, "app_id")?,
        target: get(row, "target")?,
        state: SubState::parse(&state)
            .ok_or_else(|| corrupt("state", format!("unknown state `{state}`")))?,
        requested_by: get(row, "requested_by")?,
        requested_at: get(row, "requested_at")?,
        decided_by: get(row, "decided_by")?,
        decided_at: get(row, "decided_at")?,
        note: get(row, "note")?,
    })
}

pub(crate) fn audit(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        actor_role: role(row, "actor_role")?,
        tenant_id: get(row, "tenant_id")?,
        action: get(row, "action")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        before: json(row, "before")?,
        after: json(row, "after")?,
    })
}

macro_rules! has_id {
    ($($t:ty),*) => {$(
        impl HasId for $t {
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}
has_id!(
    Tenant,
    App,
    ApiKey,
    User,
    AdminCredential,
    Subscription,
    AuditEntry
);
