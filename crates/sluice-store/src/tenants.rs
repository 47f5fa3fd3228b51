//! Tenants. Deleting a tenant deletes its apps and revokes their keys (soft
//! deletes: history stays for the audit log and analytics).

use crate::{Actor, ListQuery, NewTenant, Page, Result, Store, Tenant, TenantPatch};

impl Store {
    /// Conflict when the name is taken.
    pub async fn create_tenant(&self, by: &Actor, t: NewTenant) -> Result<Tenant> {
        let _ = (by, t);
        unimplemented!()
    }

    /// `None` when missing or deleted.
    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let _ = id;
        unimplemented!()
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let _ = name;
        unimplemented!()
    }

    /// Filters: `name_contains`; `tenant_id` restricts to that one tenant.
    pub async fn list_tenants(&self, q: &ListQuery) -> Result<Page<Tenant>> {
        let _ = q;
        unimplemented!()
    }

    /// Invalid for config-seeded tenants.
    pub async fn update_tenant(&self, by: &Actor, id: &str, p: TenantPatch) -> Result<Tenant> {
        let _ = (by, id, p);
        unimplemented!()
    }

    /// Soft-deletes the tenant and its apps, revokes their keys. Invalid for
    /// config-seeded tenants.
    pub async fn delete_tenant(&self, by: &Actor, id: &str) -> Result<()> {
        let _ = (by, id);
        unimplemented!()
    }

    /// Creates or updates a config-seeded tenant (source = config) by name;
    /// audited as actor `config` only when something changed. Tenants seeded
    /// earlier but no longer in the config are left alone.
    pub async fn seed_tenant(&self, t: NewTenant) -> Result<Tenant> {
        let _ = t;
        unimplemented!()
    }
}
