//! Users (with roles) and their admin credentials.

use sqlx::{Any, Executor};

use crate::db::{conflict_on_unique, Change, List, Order, Sql, Tx};
use crate::ids::{display_prefix, hash_secret, new_admin_secret, new_id, now_ms};
use crate::rows::{self, CREDENTIAL_COLUMNS, USER_COLUMNS};
use crate::{
    validate, Actor, AdminCredential, ListQuery, Millis, NewUser, Page, Result, Role, Store,
    StoreError, User, UserPatch,
};

impl Store {
    /// Conflict when the name is taken. Invalid when a tenant_admin or
    /// developer has no tenant, or an admin has one. NotFound for an unknown tenant.
    pub async fn create_user(&self, by: &Actor, u: NewUser) -> Result<User> {
        validate::name("user name", &u.name)?;
        check_role_tenant(u.role, u.tenant_id.as_deref())?;
        let mut tx = self.begin_write().await?;
        if let Some(tenant) = &u.tenant_id {
            self.lock_tenant(&mut tx, tenant).await?;
        }
        let now = now_ms();
        let user = User {
            id: new_id("usr"),
            name: u.name,
            role: u.role,
            tenant_id: u.tenant_id,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        };
        Sql::new(format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.tenant_id)
        .bind(user.disabled_at)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || taken(&user.name)))?;
        let change = Change::new("user.create", "user", &user.id, user.tenant_id.as_deref());
        self.commit_change(tx, by, change.after(&user)).await?;
        Ok(user)
    }

    /// Disabled users included.
    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        user_by_id(&self.pool, id).await
    }

    /// Filters: `tenant_id`, `state` (= role), `name_contains`; disabled users
    /// only with `include_inactive`.
    pub async fn list_users(&self, q: &ListQuery) -> Result<Page<User>> {
        let role = q.state.as_deref().map(parse_role).transpose()?;
        let mut list = List::new(format!("SELECT {USER_COLUMNS} FROM users"));
        list.eq("tenant_id", q.tenant_id.as_deref())
            .eq("role", role.map(Role::as_str))
            .contains("name", q.name_contains.as_deref());
        if !q.include_inactive {
            list.condition("disabled_at IS NULL");
        }
        list.page(
            &self.pool,
            Order::Oldest,
            q.after.as_deref(),
            q.limit,
            rows::user,
        )
        .await
    }

    /// Same role/tenant rules as create. A patch that changes nothing
    /// returns the user as they are (no audit entry, no new revision).
    pub async fn update_user(&self, by: &Actor, id: &str, p: UserPatch) -> Result<User> {
        if let Some(name) = &p.name {
            validate::name("user name", name)?;
        }
        let mut tx = self.begin_write().await?;
        let before = self.lock_user(&mut tx, id).await?;
        let mut after = before.clone();
        apply_patch(&mut after, p, now_ms());
        if after == before {
            return Ok(before);
        }
        check_role_tenant(after.role, after.tenant_id.as_deref())?;
        if let Some(tenant) = after
            .tenant_id
            .as_deref()
            .filter(|_| after.tenant_id != before.tenant_id)
        {
            self.lock_tenant(&mut tx, tenant).await?;
        }
        after.updated_at = now_ms();
        Sql::new(
            "UPDATE users SET name = $2, role = $3, tenant_id = $4, disabled_at = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(&after.name)
        .bind(after.role.as_str())
        .bind(&after.tenant_id)
        .bind(after.disabled_at)
        .bind(after.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || taken(&after.name)))?;
        let change = Change::new("user.update", "user", id, after.tenant_id.as_deref());
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// How many enabled users hold `admin` (to refuse removing the last one).
    pub async fn count_admins(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Returns the credential and its secret (shown once). NotFound for an
    /// unknown user, Invalid for a disabled one.
    pub async fn create_credential(
        &self,
        by: &Actor,
        user_id: &str,
        expires_at: Option<Millis>,
    ) -> Result<(AdminCredential, String)> {
        let mut tx = self.begin_write().await?;
        let user = self.lock_user(&mut tx, user_id).await?;
        if user.disabled_at.is_some() {
            return Err(StoreError::Invalid(format!(
                "user `{}` is disabled",
                user.name
            )));
        }
        let secret = new_admin_secret();
        let cred = AdminCredential {
            id: new_id("cred"),
            user_id: user.id.clone(),
            prefix: display_prefix(&secret),
            hash: hash_secret(&secret),
            expires_at,
            revoked_at: None,
            created_at: now_ms(),
        };
        Sql::new(format!(
            "INSERT INTO admin_credentials ({CREDENTIAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&cred.id)
        .bind(&cred.user_id)
        .bind(&cred.prefix)
        .bind(&cred.hash)
        .bind(cred.expires_at)
        .bind(cred.revoked_at)
        .bind(cred.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || {
                "a credential with this secret already exists".to_owned()
            })
        })?;
        let change = Change::new(
            "credential.create",
            "credential",
            &cred.id,
            user.tenant_id.as_deref(),
        );
        self.commit_change(tx, by, change.after(&cred)).await?;
        Ok((cred, secret))
    }

    /// A user's credentials, revoked ones included.
    pub async fn list_credentials(&self, user_id: &str) -> Result<Vec<AdminCredential>> {
        Sql::new(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM admin_credentials WHERE user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool, rows::credential)
        .await
    }

    /// Revoking a revoked credential is a no-op returning it.
    pub async fn revoke_credential(&self, by: &Actor, id: &str) -> Result<AdminCredential> {
        let mut tx = self.begin_write().await?;
        let before = Sql::new(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM admin_credentials WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *tx, rows::credential)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("credential `{id}`")))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let after = AdminCredential {
            revoked_at: Some(now_ms()),
            ..before.clone()
        };
        Sql::new("UPDATE admin_credentials SET revoked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(after.revoked_at)
            .execute(&mut *tx)
            .await?;
        let tenant = user_by_id(&mut *tx, &after.user_id)
            .await?
            .and_then(|u| u.tenant_id);
        let change = Change::new("credential.revoke", "credential", id, tenant.as_deref());
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// The live credential with this secret hash (not revoked, not expired,
    /// user enabled) and its user.
    pub async fn credential_by_hash(&self, hash: &str) -> Result<Option<(AdminCredential, User)>> {
        let mut tx = self.begin_read().await?;
        let cred = Sql::new(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM admin_credentials WHERE hash = $1 \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(hash)
        .bind(now_ms())
        .fetch_optional(&mut *tx, rows::credential)
        .await?;
        let Some(cred) = cred else {
            return Ok(None);
        };
        let user = user_by_id(&mut *tx, &cred.user_id).await?;
        tx.commit().await?;
        Ok(user.filter(|u| u.disabled_at.is_none()).map(|u| (cred, u)))
    }

    /// The user, locked for the transaction; NotFound otherwise.
    async fn lock_user(&self, tx: &mut Tx, id: &str) -> Result<User> {
        Sql::new(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut **tx, rows::user)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user `{id}`")))
    }
}

/// The user with this id, disabled or not.
pub(crate) async fn user_by_id<'c, E>(ex: E, id: &str) -> Result<Option<User>>
where
    E: Executor<'c, Database = Any>,
{
    Sql::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex, rows::user)
        .await
}

/// tenant_admin and developer need a tenant; admin has none; an auditor
/// may have one (then reads only that tenant).
fn check_role_tenant(role: Role, tenant: Option<&str>) -> Result<()> {
    match (role, tenant) {
        (Role::Admin, Some(_)) => Err(StoreError::Invalid(
            "tenant_id must be empty for role `admin`".to_owned(),
        )),
        (Role::TenantAdmin | Role::Developer, None) => Err(StoreError::Invalid(format!(
            "tenant_id is required for role `{}`",
            role.as_str()
        ))),
        _ => Ok(()),
    }
}

fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| {
        StoreError::Invalid(
            "role filter must be one of: admin, tenant_admin, developer, auditor".to_owned(),
        )
    })
}

fn apply_patch(u: &mut User, p: UserPatch, now: Millis) {
    if let Some(name) = p.name {
        u.name = name;
    }
    if let Some(role) = p.role {
        u.role = role;
    }
    if let Some(tenant) = p.tenant_id {
        u.tenant_id = tenant;
    }
    match p.disabled {
        Some(true) if u.disabled_at.is_none() => u.disabled_at = Some(now),
        Some(false) => u.disabled_at = None,
        _ => {}
    }
}

fn taken(name: &str) -> String {
    format!("user name `{name}` is already taken")
}
