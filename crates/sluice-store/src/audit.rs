//! The audit log: append-only (the database refuses UPDATE and DELETE on it).
//! Entity mutations write their entries themselves, in their transaction.

use serde_json::Value;

use crate::db::{append_audit, Change, List, Order};
use crate::rows::{self, AUDIT_COLUMNS};
use crate::{Actor, AuditEntry, AuditQuery, Page, Result, Store, StoreError};

impl Store {
    /// Records an admin action that is not an entity change (e.g. a config
    /// reload through the admin API), under the actor's tenant. It changes
    /// no entity, so the revision stays as it is.
    pub async fn record_audit(
        &self,
        by: &Actor,
        action: &str,
        target_type: &str,
        target_id: &str,
        after: Option<Value>,
    ) -> Result<AuditEntry> {
        if action.is_empty() || target_type.is_empty() {
            return Err(StoreError::Invalid(
                "audit action and target type must not be empty".to_owned(),
            ));
        }
        let mut change = Change::new(action, target_type, target_id, by.tenant_id.as_deref());
        change.after = after;
        let mut tx = self.begin_write().await?;
        let (id, at) = append_audit(&mut tx, by, &change).await?;
        tx.commit().await?;
        Ok(AuditEntry {
            id,
            at,
            actor: by.id.clone(),
            actor_role: by.role,
            tenant_id: by.tenant_id.clone(),
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            before: None,
            after: change.after,
        })
    }

    /// Newest first; `after` is the last id of the previous page. `since` is
    /// inclusive, `until` exclusive.
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditEntry>> {
        let mut list = List::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log"));
        list.eq("tenant_id", q.tenant_id.as_deref())
            .eq("actor", q.actor.as_deref())
            .eq("action", q.action.as_deref())
            .eq("target_id", q.target_id.as_deref())
            .compare("at", ">=", q.since)
            .compare("at", "<", q.until);
        list.page(
            &self.pool,
            Order::Newest,
            q.after.as_deref(),
            q.limit,
            rows::audit,
        )
        .await
    }
}
