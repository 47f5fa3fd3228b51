//! Tenants. Deleting a tenant deletes its apps and revokes their keys (soft
//! deletes: history stays for the audit log and analytics).

use sqlx::{Any, Executor};

use crate::db::{conflict_on_unique, json_text, Change, List, Order, Sql, Tx};
use crate::ids::{new_id, now_ms};
use crate::rows::{self, TENANT_COLUMNS};
use crate::{
    validate, Actor, ListQuery, NewTenant, Page, Result, Role, Source, Store, StoreError, Tenant,
    TenantPatch,
};

impl Store {
    /// Conflict when the name is taken.
    pub async fn create_tenant(&self, by: &Actor, t: NewTenant) -> Result<Tenant> {
        let tenant = new_tenant(t, Source::Store)?;
        let mut tx = self.begin_write().await?;
        insert(&mut tx, &tenant).await?;
        let change = Change::new("tenant.create", "tenant", &tenant.id, Some(&tenant.id));
        self.commit_change(tx, by, change.after(&tenant)).await?;
        Ok(tenant)
    }

    /// `None` when missing or deleted.
    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        live_tenant(&self.pool, "id", id, "").await
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        live_tenant(&self.pool, "name", name, "").await
    }

    /// Filters: `name_contains`; `tenant_id` restricts to that one tenant.
    pub async fn list_tenants(&self, q: &ListQuery) -> Result<Page<Tenant>> {
        let mut list = List::new(format!("SELECT {TENANT_COLUMNS} FROM tenants"));
        list.condition("deleted_at IS NULL")
            .eq("id", q.tenant_id.as_deref())
            .contains("name", q.name_contains.as_deref());
        list.page(
            &self.pool,
            Order::Oldest,
            q.after.as_deref(),
            q.limit,
            rows::tenant,
        )
        .await
    }

    /// Invalid for config-seeded tenants. A patch that changes nothing
    /// returns the tenant as it is (no audit entry, no new revision).
    pub async fn update_tenant(&self, by: &Actor, id: &str, p: TenantPatch) -> Result<Tenant> {
        check_patch(&p)?;
        let mut tx = self.begin_write().await?;
        let before = self.lock_tenant(&mut tx, id).await?;
        ensure_store_managed(&before)?;
        let mut after = before.clone();
        apply_patch(&mut after, p);
        if after == before {
            return Ok(before);
        }
        after.updated_at = now_ms();
        update(&mut tx, &after).await?;
        let change = Change::new("tenant.update", "tenant", id, Some(id));
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// Soft-deletes the tenant and its apps, revokes their keys. Invalid for
    /// config-seeded tenants.
    pub async fn delete_tenant(&self, by: &Actor, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let before = self.lock_tenant(&mut tx, id).await?;
        ensure_store_managed(&before)?;
        let now = now_ms();
        Sql::new("UPDATE tenants SET deleted_at = $2, updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        crate::apps::soft_delete_apps(&mut tx, "tenant_id", id, now).await?;
        crate::keys::revoke_keys(&mut tx, "tenant_id", id, now).await?;
        let change = Change::new("tenant.delete", "tenant", id, Some(id));
        self.commit_change(tx, by, change.before(&before)).await
    }

    /// Creates or updates a config-seeded tenant (source = config) by name;
    /// audited as actor `config` only when something changed. Tenants seeded
    /// earlier but no longer in the config are left alone. Conflict when a
    /// store-managed tenant has the name.
    pub async fn seed_tenant(&self, t: NewTenant) -> Result<Tenant> {
        let wanted = new_tenant(t, Source::Config)?;
        // Several instances may seed at once: who loses the insert race
        // finds the winner's row on the second try.
        match self.seed_once(&wanted).await? {
            Some(tenant) => Ok(tenant),
            None => self.seed_once(&wanted).await?.ok_or_else(|| {
                StoreError::Conflict(format!(
                    "tenant `{}` is being seeded concurrently",
                    wanted.name
                ))
            }),
        }
    }

    /// One seeding attempt; `None` when a concurrent insert won.
    async fn seed_once(&self, wanted: &Tenant) -> Result<Option<Tenant>> {
        let by = config_actor();
        let mut tx = self.begin_write().await?;
        let lock = self.for_update();
        let Some(current) = live_tenant(&mut *tx, "name", &wanted.name, lock).await? else {
            match insert(&mut tx, wanted).await {
                Err(StoreError::Conflict(_)) => return Ok(None),
                other => other?,
            }
            let change = Change::new("tenant.create", "tenant", &wanted.id, Some(&wanted.id));
            self.commit_change(tx, &by, change.after(wanted)).await?;
            return Ok(Some(wanted.clone()));
        };
        if current.source != Source::Config {
            return Err(StoreError::Conflict(format!(
                "tenant `{}` already exists and is managed through the admin API; \
                 rename or delete it there before declaring it in the config file",
                current.name
            )));
        }
        if current.tier == wanted.tier && current.policy == wanted.policy {
            return Ok(Some(current));
        }
        let after = Tenant {
            tier: wanted.tier.clone(),
            policy: wanted.policy.clone(),
            updated_at: now_ms(),
            ..current.clone()
        };
        update(&mut tx, &after).await?;
        let change = Change::new("tenant.update", "tenant", &after.id, Some(&after.id));
        self.commit_change(tx, &by, change.before(&current).after(&after))
            .await?;
        Ok(Some(after))
    }

    /// The live tenant, locked for the transaction; NotFound otherwise.
    pub(crate) async fn lock_tenant(&self, tx: &mut Tx, id: &str) -> Result<Tenant> {
        live_tenant(&mut **tx, "id", id, self.for_update())
            .await?
            .ok_or_else(|| not_found(id))
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{id}`"))
}

/// Who seeds from the config file.
fn config_actor() -> Actor {
    Actor {
        id: "config".to_owned(),
        role: Role::Admin,
        tenant_id: None,
    }
}

fn new_tenant(t: NewTenant, source: Source) -> Result<Tenant> {
    validate::name("tenant name", &t.name)?;
    validate::tier(t.tier.as_deref())?;
    let now = now_ms();
    Ok(Tenant {
        id: new_id("ten"),
        name: t.name,
        tier: t.tier,
        policy: t.policy,
        source,
        created_at: now,
        updated_at: now,
    })
}

fn check_patch(p: &TenantPatch) -> Result<()> {
    if let Some(name) = &p.name {
        validate::name("tenant name", name)?;
    }
    if let Some(tier) = &p.tier {
        validate::tier(tier.as_deref())?;
    }
    Ok(())
}

fn apply_patch(t: &mut Tenant, p: TenantPatch) {
    if let Some(name) = p.name {
        t.name = name;
    }
    if let Some(tier) = p.tier {
        t.tier = tier;
    }
    if let Some(policy) = p.policy {
        t.policy = policy;
    }
}

fn ensure_store_managed(t: &Tenant) -> Result<()> {
    match t.source {
        Source::Store => Ok(()),
        Source::Config => Err(StoreError::Invalid(format!(
            "tenant `{}` is managed by the config file",
            t.name
        ))),
    }
}

fn taken(name: &str) -> String {
    format!("tenant name `{name}` is already taken")
}

/// The live tenant whose `column` (`id` or `name`) equals `value`.
async fn live_tenant<'c, E>(
    ex: E,
    column: &'static str,
    value: &str,
    lock: &str,
) -> Result<Option<Tenant>>
where
    E: Executor<'c, Database = Any>,
{
    Sql::new(format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE {column} = $1 AND deleted_at IS NULL{lock}"
    ))
    .bind(value)
    .fetch_optional(ex, rows::tenant)
    .await
}

async fn insert(tx: &mut Tx, t: &Tenant) -> Result<()> {
    Sql::new(
        "INSERT INTO tenants (id, name, tier, policy, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.tier)
    .bind(json_text(t.policy.as_ref()))
    .bind(rows::source_str(t.source))
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_on_unique(e, || taken(&t.name)))?;
    Ok(())
}

async fn update(tx: &mut Tx, t: &Tenant) -> Result<()> {
    Sql::new("UPDATE tenants SET name = $2, tier = $3, policy = $4, updated_at = $5 WHERE id = $1")
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.tier)
        .bind(json_text(t.policy.as_ref()))
        .bind(t.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_unique(e, || taken(&t.name)))?;
    Ok(())
}
