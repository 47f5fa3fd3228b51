//! How each store entity plugs into the access helpers: how to fetch and
//! list it, and who owns it (its tenant, and the user it belongs to — for
//! keys and subscriptions, the owner of their app).

use sluice_store::{self as st, ListQuery, Page, Store};

use super::access::{Entity, StoreResult};
use super::rbac::{Owner, Resource};

impl Entity for st::Tenant {
    const RES: Resource = Resource::Tenant;
    const NAME: &'static str = "tenant";
    async fn fetch(store: &Store, id: &str) -> StoreResult<Option<Self>> {
        store.get_tenant(id).await
    }
    async fn list(store: &Store, q: &ListQuery) -> StoreResult<Page<Self>> {
        store.list_tenants(q).await
    }
    async fn owner(&self, _: &Store) -> StoreResult<Owner> {
        Ok(Owner {
            tenant_id: Some(self.id.clone()),
            user_id: None,
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for st::App {
    const RES: Resource = Resource::App;
    const NAME: &'static str = "app";
    async fn fetch(store: &Store, id: &str) -> StoreResult<Option<Self>> {
        store.get_app(id).await
    }
    async fn list(store: &Store, q: &ListQuery) -> StoreResult<Page<Self>> {
        store.list_apps(q).await
    }
    async fn owner(&self, _: &Store) -> StoreResult<Owner> {
        Ok(app_owner(self))
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// An app's owner: its tenant and owning developer.
fn app_owner(a: &st::App) -> Owner {
    Owner {
        tenant_id: Some(a.tenant_id.clone()),
        user_id: a.owner_user_id.clone(),
    }
}

/// The owner of something that belongs to an app: the app's owner (a
/// deleted app has none, so only tenant-wide scopes reach it).
async fn owner_via_app(store: &Store, tenant_id: &str, app_id: &str) -> StoreResult<Owner> {
    let user_id = store.get_app(app_id).await?.and_then(|a| a.owner_user_id);
    Ok(Owner {
        tenant_id: Some(tenant_id.to_owned()),
        user_id,
    })
}

impl Entity for st::ApiKey {
    const RES: Resource = Resource::Key;
    const NAME: &'static str = "key";
    async fn fetch(store: &Store, id: &str) -> StoreResult<Option<Self>> {
        store.get_key(id).await
    }
    async fn list(store: &Store, q: &ListQuery) -> StoreResult<Page<Self>> {
        store.list_keys(q).await
    }
    async fn owner(&self, store: &Store) -> StoreResult<Owner> {
        owner_via_app(store, &self.tenant_id, &self.app_id).await
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn app_id(&self) -> Option<&str> {
        Some(&self.app_id)
    }
}

impl Entity for st::Subscription {
    const RES: Resource = Resource::Subscription;
    const NAME: &'static str = "subscription";
    async fn fetch(store: &Store, id: &str) -> StoreResult<Option<Self>> {
        store.get_subscription(id).await
    }
    async fn list(store: &Store, q: &ListQuery) -> StoreResult<Page<Self>> {
        store.list_subscriptions(q).await
    }
    async fn owner(&self, store: &Store) -> StoreResult<Owner> {
        owner_via_app(store, &self.tenant_id, &self.app_id).await
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn app_id(&self) -> Option<&str> {
        Some(&self.app_id)
    }
}

impl Entity for st::User {
    const RES: Resource = Resource::User;
    const NAME: &'static str = "user";
    async fn fetch(store: &Store, id: &str) -> StoreResult<Option<Self>> {
        store.get_user(id).await
    }
    async fn list(store: &Store, q: &ListQuery) -> StoreResult<Page<Self>> {
        store.list_users(q).await
    }
    async fn owner(&self, _: &Store) -> StoreResult<Owner> {
        Ok(Owner {
            tenant_id: self.tenant_id.clone(),
            user_id: Some(self.id.clone()),
        })
    }
    fn id(&self) -> &str {
        &self.id
    }
}
