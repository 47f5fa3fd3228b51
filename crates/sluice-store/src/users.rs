//! Users (with roles) and their admin credentials.

use crate::{
    Actor, AdminCredential, ListQuery, Millis, NewUser, Page, Result, Store, User, UserPatch,
};

impl Store {
    /// Conflict when the name is taken. Invalid when a tenant_admin or
    /// developer has no tenant, or an admin has one. NotFound for an unknown tenant.
    pub async fn create_user(&self, by: &Actor, u: NewUser) -> Result<User> {
        let _ = (by, u);
        unimplemented!()
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let _ = id;
        unimplemented!()
    }

    /// Filters: `tenant_id`, `state` (= role), `name_contains`; disabled users
    /// only with `include_inactive`.
    pub async fn list_users(&self, q: &ListQuery) -> Result<Page<User>> {
        let _ = q;
        unimplemented!()
    }

    /// Same role/tenant rules as create.
    pub async fn update_user(&self, by: &Actor, id: &str, p: UserPatch) -> Result<User> {
        let _ = (by, id, p);
        unimplemented!()
    }

    /// How many enabled users hold `admin` (to refuse removing the last one).
    pub async fn count_admins(&self) -> Result<i64> {
        unimplemented!()
    }

    /// Returns the credential and its secret (shown once).
    pub async fn create_credential(
        &self,
        by: &Actor,
        user_id: &str,
        expires_at: Option<Millis>,
    ) -> Result<(AdminCredential, String)> {
        let _ = (by, user_id, expires_at);
        unimplemented!()
    }

    /// A user's credentials, revoked ones included.
    pub async fn list_credentials(&self, user_id: &str) -> Result<Vec<AdminCredential>> {
        let _ = user_id;
        unimplemented!()
    }

    pub async fn revoke_credential(&self, by: &Actor, id: &str) -> Result<AdminCredential> {
        let _ = (by, id);
        unimplemented!()
    }

    /// The live credential with this secret hash (not revoked, not expired,
    /// user enabled) and its user.
    pub async fn credential_by_hash(&self, hash: &str) -> Result<Option<(AdminCredential, User)>> {
        let _ = hash;
        unimplemented!()
    }
}
