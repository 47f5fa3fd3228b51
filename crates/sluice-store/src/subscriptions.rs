//! Subscriptions: an app's request for a model (`model:<name>`) or an API
//! (`api:<name>`): pending → approved | rejected; approved → revoked. A
//! rejected or revoked subscription may be requested again (back to pending).

use crate::{Actor, ListQuery, Page, Result, Store, SubState, Subscription};

impl Store {
    /// Creates a pending subscription, or returns the existing one when it is
    /// pending or approved; re-opens a rejected or revoked one as pending.
    pub async fn request_subscription(
        &self,
        by: &Actor,
        app_id: &str,
        target: &str,
        note: Option<String>,
    ) -> Result<Subscription> {
        let _ = (by, app_id, target, note);
        unimplemented!()
    }

    /// `to` is Approved or Rejected (from pending) or Revoked (from approved);
    /// anything else is Invalid.
    pub async fn decide_subscription(
        &self,
        by: &Actor,
        id: &str,
        to: SubState,
        note: Option<String>,
    ) -> Result<Subscription> {
        let _ = (by, id, to, note);
        unimplemented!()
    }

    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>> {
        let _ = id;
        unimplemented!()
    }

    /// Filters: `tenant_id`, `app_id`, `state`.
    pub async fn list_subscriptions(&self, q: &ListQuery) -> Result<Page<Subscription>> {
        let _ = q;
        unimplemented!()
    }
}
