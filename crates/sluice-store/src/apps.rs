//! Apps within a tenant. Deleting an app revokes its keys.

use sqlx::{Any, Executor};

use crate::db::{conflict_on_unique, json_text, Change, List, Order, Sql, Tx};
use crate::ids::{new_id, now_ms};
use crate::rows::{self, APP_COLUMNS};
use crate::{validate, Actor, App, AppPatch, ListQuery, NewApp, Page, Result, Store, StoreError};

impl Store {
    /// NotFound when the tenant (or the owner) is missing; Conflict when the
    /// name is taken within the tenant; Invalid when the owner belongs to
    /// another tenant.
    pub async fn create_app(&self, by: &Actor, a: NewApp) -> Result<App> {
        validate::name("app name", &a.name)?;
        let mut tx = self.begin_write().await?;
        let tenant = self.lock_tenant(&mut tx, &a.tenant_id).await?;
        let now = now_ms();
        let app = App {
            id: new_id("app"),
            tenant_id: tenant.id,
            name: a.name,
            owner_user_id: a.owner_user_id,
            policy: a.policy,
            created_at: now,
            updated_at: now,
        };
        check_owner(&mut tx, &app).await?;
        insert(&mut tx, &app, &tenant.name).await?;
        let change = Change::new("app.create", "app", &app.id, Some(&app.tenant_id));
        self.commit_change(tx, by, change.after(&app)).await?;
        Ok(app)
    }

    /// `None` when missing or deleted.
    pub async fn get_app(&self, id: &str) -> Result<Option<App>> {
        live_app(&self.pool, id, "").await
    }

    /// Filters: `tenant_id`, `owner_user_id`, `name_contains`.
    pub async fn list_apps(&self, q: &ListQuery) -> Result<Page<App>> {
        let mut list = List::new(format!("SELECT {APP_COLUMNS} FROM apps"));
        list.condition("deleted_at IS NULL")
            .eq("tenant_id", q.tenant_id.as_deref())
            .eq("owner_user_id", q.owner_user_id.as_deref())
            .contains("name", q.name_contains.as_deref());
        list.page(
            &self.pool,
            Order::Oldest,
            q.after.as_deref(),
            q.limit,
            rows::app,
        )
        .await
    }

    /// Same rules as create. A patch that changes nothing returns the app as
    /// it is (no audit entry, no new revision).
    pub async fn update_app(&self, by: &Actor, id: &str, p: AppPatch) -> Result<App> {
        if let Some(name) = &p.name {
            validate::name("app name", name)?;
        }
        let mut tx = self.begin_write().await?;
        let before = self.lock_app(&mut tx, id).await?;
        let mut after = before.clone();
        apply_patch(&mut after, p);
        if after == before {
            return Ok(before);
        }
        if after.owner_user_id != before.owner_user_id {
            check_owner(&mut tx, &after).await?;
        }
        after.updated_at = now_ms();
        update(&mut tx, &after).await?;
        let change = Change::new("app.update", "app", id, Some(&after.tenant_id));
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// Soft-deletes the app and revokes its keys.
    pub async fn delete_app(&self, by: &Actor, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let before = self.lock_app(&mut tx, id).await?;
        let now = now_ms();
        soft_delete_apps(&mut tx, "id", id, now).await?;
        crate::keys::revoke_keys(&mut tx, "app_id", id, now).await?;
        let change = Change::new("app.delete", "app", id, Some(&before.tenant_id));
        self.commit_change(tx, by, change.before(&before)).await
    }

    /// The live app, locked for the transaction; NotFound otherwise.
    pub(crate) async fn lock_app(&self, tx: &mut Tx, id: &str) -> Result<App> {
        live_app(&mut **tx, id, self.for_update())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app `{id}`")))
    }
}

/// Soft-deletes the live apps whose `column` (`id` or `tenant_id`) is `value`.
pub(crate) async fn soft_delete_apps(
    tx: &mut Tx,
    column: &'static str,
    value: &str,
    now: i64,
) -> Result<()> {
    Sql::new(format!(
        "UPDATE apps SET deleted_at = $2, updated_at = $2 WHERE {column} = $1 AND deleted_at IS NULL"
    ))
    .bind(value)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn apply_patch(a: &mut App, p: AppPatch) {
    if let Some(name) = p.name {
        a.name = name;
    }
    if let Some(owner) = p.owner_user_id {
        a.owner_user_id = owner;
    }
    if let Some(policy) = p.policy {
        a.policy = policy;
    }
}

/// The owner, if any, must exist and not belong to another tenant.
async fn check_owner(tx: &mut Tx, app: &App) -> Result<()> {
    let Some(owner) = &app.owner_user_id else {
        return Ok(());
    };
    let user = crate::users::user_by_id(&mut **tx, owner)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("owner user `{owner}`")))?;
    match &user.tenant_id {
        Some(t) if *t != app.tenant_id => Err(StoreError::Invalid(format!(
            "owner user `{}` belongs to another tenant",
            user.name
        ))),
        _ => Ok(()),
    }
}

async fn live_app<'c, E>(ex: E, id: &str, lock: &str) -> Result<Option<App>>
where
    E: Executor<'c, Database = Any>,
{
    Sql::new(format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE id = $1 AND deleted_at IS NULL{lock}"
    ))
    .bind(id)
    .fetch_optional(ex, rows::app)
    .await
}

fn taken(name: &str, tenant: &str) -> String {
    format!("app name `{name}` is already taken in tenant `{tenant}`")
}

async fn insert(tx: &mut Tx, a: &App, tenant_name: &str) -> Result<()> {
    Sql::new(
        "INSERT INTO apps (id, tenant_id, name, owner_user_id, policy, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.id)
    .bind(&a.tenant_id)
    .bind(&a.name)
    .bind(&a.owner_user_id)
    .bind(json_text(a.policy.as_ref()))
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_on_unique(e, || taken(&a.name, tenant_name)))?;
    Ok(())
}

async fn update(tx: &mut Tx, a: &App) -> Result<()> {
    Sql::new(
        "UPDATE apps SET name = $2, owner_user_id = $3, policy = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(&a.id)
    .bind(&a.name)
    .bind(&a.owner_user_id)
    .bind(json_text(a.policy.as_ref()))
    .bind(a.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_on_unique(e, || taken(&a.name, &a.tenant_id)))?;
    Ok(())
}
