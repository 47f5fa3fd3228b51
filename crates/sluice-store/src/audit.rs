//! The audit log: append-only (the database refuses UPDATE and DELETE on it).
//! Entity mutations write their entries themselves, in their transaction.

use serde_json::Value;

use crate::{Actor, AuditEntry, AuditQuery, Page, Result, Store};

impl Store {
    /// Records an admin action that is not an entity change (e.g. a config
    /// reload through the admin API).
    pub async fn record_audit(
        &self,
        by: &Actor,
        action: &str,
        target_type: &str,
        target_id: &str,
        after: Option<Value>,
    ) -> Result<AuditEntry> {
        let _ = (by, action, target_type, target_id, after);
        unimplemented!()
    }

    /// Newest first; `after` is the last id of the previous page.
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditEntry>> {
        let _ = q;
        unimplemented!()
    }
}
