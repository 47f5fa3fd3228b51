//! Apps within a tenant. Deleting an app revokes its keys.

use crate::{Actor, App, AppPatch, ListQuery, NewApp, Page, Result, Store};

impl Store {
    /// NotFound when the tenant is missing; Conflict when the name is taken
    /// within the tenant.
    pub async fn create_app(&self, by: &Actor, a: NewApp) -> Result<App> {
        let _ = (by, a);
        unimplemented!()
    }

    pub async fn get_app(&self, id: &str) -> Result<Option<App>> {
        let _ = id;
        unimplemented!()
    }

    /// Filters: `tenant_id`, `owner_user_id`, `name_contains`.
    pub async fn list_apps(&self, q: &ListQuery) -> Result<Page<App>> {
        let _ = q;
        unimplemented!()
    }

    pub async fn update_app(&self, by: &Actor, id: &str, p: AppPatch) -> Result<App> {
        let _ = (by, id, p);
        unimplemented!()
    }

    /// Soft-deletes the app and revokes its keys.
    pub async fn delete_app(&self, by: &Actor, id: &str) -> Result<()> {
        let _ = (by, id);
        unimplemented!()
    }
}
