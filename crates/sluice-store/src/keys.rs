//! API keys of apps: create (secret returned once), rotate with an overlap
//! window, revoke. The store keeps the SHA-256 and a display prefix only.

use serde_json::Value;
use sqlx::{Any, Executor};

use crate::db::{conflict_on_unique, json_text, snapshot, Change, List, Order, Sql, Tx};
use crate::ids::{display_prefix, hash_secret, new_id, new_key_secret, now_ms};
use crate::rows::{self, KEY_COLUMNS};
use crate::{
    validate, Actor, ApiKey, App, KeyPatch, ListQuery, Millis, NewKey, Page, Result, Store,
    StoreError,
};

impl Store {
    /// Returns the key and its secret (shown once). NotFound when the app is
    /// missing or deleted.
    pub async fn create_key(&self, by: &Actor, k: NewKey) -> Result<(ApiKey, String)> {
        validate::key_name(&k.name)?;
        validate::scopes(&k.scopes)?;
        let mut tx = self.begin_write().await?;
        let app = self.lock_app(&mut tx, &k.app_id).await?;
        let template = KeyTemplate {
            name: k.name,
            scopes: k.scopes,
            policy: k.policy,
            expires_at: k.expires_at,
            rotated_from: None,
        };
        let (key, secret) = insert_new(&mut tx, by, &app, template).await?;
        let change = Change::new("key.create", "key", &key.id, Some(&key.tenant_id));
        self.commit_change(tx, by, change.after(&key)).await?;
        Ok((key, secret))
    }

    /// Revoked keys included (with `revoked_at`); deleted apps' keys are revoked.
    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>> {
        key_by_id(&self.pool, id, "").await
    }

    /// Filters: `tenant_id`, `app_id`, `name_contains`; revoked keys only
    /// with `include_inactive`.
    pub async fn list_keys(&self, q: &ListQuery) -> Result<Page<ApiKey>> {
        let mut list = List::new(format!("SELECT {KEY_COLUMNS} FROM api_keys"));
        list.eq("tenant_id", q.tenant_id.as_deref())
            .eq("app_id", q.app_id.as_deref())
            .contains("name", q.name_contains.as_deref());
        if !q.include_inactive {
            list.condition("revoked_at IS NULL");
        }
        list.page(
            &self.pool,
            Order::Oldest,
            q.after.as_deref(),
            q.limit,
            rows::key,
        )
        .await
    }

    /// Invalid for a revoked key. A patch that changes nothing returns the
    /// key as it is (no audit entry, no new revision).
    pub async fn update_key(&self, by: &Actor, id: &str, p: KeyPatch) -> Result<ApiKey> {
        if let Some(name) = &p.name {
            validate::key_name(name)?;
        }
        if let Some(scopes) = &p.scopes {
            validate::scopes(scopes)?;
        }
        let mut tx = self.begin_write().await?;
        let before = self.lock_key(&mut tx, id).await?;
        if before.revoked_at.is_some() {
            return Err(revoked(id));
        }
        let mut after = before.clone();
        apply_patch(&mut after, p);
        if after == before {
            return Ok(before);
        }
        Sql::new(
            "UPDATE api_keys SET name = $2, scopes = $3, policy = $4, expires_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(&after.name)
        .bind(scopes_text(&after))
        .bind(json_text(after.policy.as_ref()))
        .bind(after.expires_at)
        .execute(&mut *tx)
        .await?;
        let change = Change::new("key.update", "key", id, Some(&after.tenant_id));
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// Creates a successor (same app, name, scopes, policy, expiry) and sets
    /// the old key to expire at `min(its expiry, now + overlap_ms)`; both work
    /// until then. Returns the new key and its secret. Invalid for a revoked
    /// or expired key, or a negative overlap. Audited as `key.rotate` on the
    /// old key, its `after` carrying the successor's id as `rotated_to`.
    pub async fn rotate_key(
        &self,
        by: &Actor,
        id: &str,
        overlap_ms: Millis,
    ) -> Result<(ApiKey, String)> {
        if overlap_ms < 0 {
            return Err(StoreError::Invalid(
                "rotation overlap must not be negative".to_owned(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let peek = key_by_id(&mut *tx, id, "")
            .await?
            .ok_or_else(|| not_found(id))?;
        ensure_usable(&peek, now_ms())?;
        // Lock parent before child, as every transaction here does.
        let app = self.lock_app(&mut tx, &peek.app_id).await?;
        let old = self.lock_key(&mut tx, id).await?;
        let now = now_ms();
        ensure_usable(&old, now)?;
        let template = KeyTemplate {
            name: old.name.clone(),
            scopes: old.scopes.clone(),
            policy: old.policy.clone(),
            expires_at: old.expires_at,
            rotated_from: Some(old.id.clone()),
        };
        let (new, secret) = insert_new(&mut tx, by, &app, template).await?;
        let cutoff = now.saturating_add(overlap_ms);
        let retired = ApiKey {
            expires_at: Some(old.expires_at.map_or(cutoff, |e| e.min(cutoff))),
            ..old.clone()
        };
        Sql::new("UPDATE api_keys SET expires_at = $2 WHERE id = $1")
            .bind(id)
            .bind(retired.expires_at)
            .execute(&mut *tx)
            .await?;
        let mut after = snapshot(&retired);
        if let Value::Object(fields) = &mut after {
            fields.insert("rotated_to".to_owned(), Value::String(new.id.clone()));
        }
        let mut change = Change::new("key.rotate", "key", id, Some(&old.tenant_id)).before(&old);
        change.after = Some(after);
        self.commit_change(tx, by, change).await?;
        Ok((new, secret))
    }

    /// Revokes at once. Revoking a revoked key is a no-op returning it.
    pub async fn revoke_key(&self, by: &Actor, id: &str) -> Result<ApiKey> {
        let mut tx = self.begin_write().await?;
        let before = self.lock_key(&mut tx, id).await?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let after = ApiKey {
            revoked_at: Some(now_ms()),
            ..before.clone()
        };
        Sql::new("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(after.revoked_at)
            .execute(&mut *tx)
            .await?;
        let change = Change::new("key.revoke", "key", id, Some(&after.tenant_id));
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// The key, locked for the transaction; NotFound otherwise.
    async fn lock_key(&self, tx: &mut Tx, id: &str) -> Result<ApiKey> {
        key_by_id(&mut **tx, id, self.for_update())
            .await?
            .ok_or_else(|| not_found(id))
    }
}

/// Revokes the live keys whose `column` (`app_id` or `tenant_id`) is `value`.
pub(crate) async fn revoke_keys(
    tx: &mut Tx,
    column: &'static str,
    value: &str,
    now: i64,
) -> Result<()> {
    Sql::new(format!(
        "UPDATE api_keys SET revoked_at = $2 WHERE {column} = $1 AND revoked_at IS NULL"
    ))
    .bind(value)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a new key copies from its request or its predecessor.
struct KeyTemplate {
    name: String,
    scopes: crate::Scopes,
    policy: Option<Value>,
    expires_at: Option<Millis>,
    rotated_from: Option<String>,
}

/// Inserts a key with a fresh secret; returns it and the secret.
async fn insert_new(
    tx: &mut Tx,
    by: &Actor,
    app: &App,
    t: KeyTemplate,
) -> Result<(ApiKey, String)> {
    let secret = new_key_secret();
    let key = ApiKey {
        id: new_id("key"),
        app_id: app.id.clone(),
        tenant_id: app.tenant_id.clone(),
        name: t.name,
        prefix: display_prefix(&secret),
        hash: hash_secret(&secret),
        scopes: t.scopes,
        policy: t.policy,
        expires_at: t.expires_at,
        revoked_at: None,
        rotated_from: t.rotated_from,
        created_by: by.id.clone(),
        created_at: now_ms(),
    };
    Sql::new(format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&key.id)
    .bind(&key.app_id)
    .bind(&key.tenant_id)
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(scopes_text(&key))
    .bind(json_text(key.policy.as_ref()))
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(&key.rotated_from)
    .bind(&key.created_by)
    .bind(key.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_on_unique(e, || "a key with this secret already exists".to_owned()))?;
    Ok((key, secret))
}

fn scopes_text(k: &ApiKey) -> String {
    snapshot(&k.scopes).to_string()
}

fn apply_patch(k: &mut ApiKey, p: KeyPatch) {
    if let Some(name) = p.name {
        k.name = name;
    }
    if let Some(scopes) = p.scopes {
        k.scopes = scopes;
    }
    if let Some(policy) = p.policy {
        k.policy = policy;
    }
    if let Some(expires_at) = p.expires_at {
        k.expires_at = expires_at;
    }
}

/// A key that can still be rotated: neither revoked nor expired.
fn ensure_usable(k: &ApiKey, now: Millis) -> Result<()> {
    if k.revoked_at.is_some() {
        return Err(revoked(&k.id));
    }
    match k.expires_at {
        Some(at) if at <= now => Err(StoreError::Invalid(format!("key `{}` has expired", k.id))),
        _ => Ok(()),
    }
}

fn revoked(id: &str) -> StoreError {
    StoreError::Invalid(format!("key `{id}` is revoked"))
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("key `{id}`"))
}

async fn key_by_id<'c, E>(ex: E, id: &str, lock: &str) -> Result<Option<ApiKey>>
where
    E: Executor<'c, Database = Any>,
{
    Sql::new(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(ex, rows::key)
    .await
}
