//! API keys of apps: create (secret returned once), rotate with an overlap
//! window, revoke. The store keeps the SHA-256 and a display prefix only.

use crate::{Actor, ApiKey, KeyPatch, ListQuery, Millis, NewKey, Page, Result, Store};

impl Store {
    /// Returns the key and its secret (shown once). NotFound when the app is
    /// missing or deleted.
    pub async fn create_key(&self, by: &Actor, k: NewKey) -> Result<(ApiKey, String)> {
        let _ = (by, k);
        unimplemented!()
    }

    /// Revoked keys included (with `revoked_at`); deleted apps' keys are revoked.
    pub async fn get_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let _ = id;
        unimplemented!()
    }

    /// Filters: `tenant_id`, `app_id`, `name_contains`; revoked keys only
    /// with `include_inactive`.
    pub async fn list_keys(&self, q: &ListQuery) -> Result<Page<ApiKey>> {
        let _ = q;
        unimplemented!()
    }

    pub async fn update_key(&self, by: &Actor, id: &str, p: KeyPatch) -> Result<ApiKey> {
        let _ = (by, id, p);
        unimplemented!()
    }

    /// Creates a successor (same app, name, scopes, policy, expiry) and sets
    /// the old key to expire at `min(its expiry, now + overlap_ms)`; both work
    /// until then. Returns the new key and its secret. Invalid for a revoked
    /// or expired key.
    pub async fn rotate_key(
        &self,
        by: &Actor,
        id: &str,
        overlap_ms: Millis,
    ) -> Result<(ApiKey, String)> {
        let _ = (by, id, overlap_ms);
        unimplemented!()
    }

    /// Revokes at once. Revoking a revoked key is a no-op returning it.
    pub async fn revoke_key(&self, by: &Actor, id: &str) -> Result<ApiKey> {
        let _ = (by, id);
        unimplemented!()
    }
}
