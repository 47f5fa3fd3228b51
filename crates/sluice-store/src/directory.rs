//! The one bulk read the gateway's key cache is built from.

use crate::db::{read_revision, Sql};
use crate::rows::{
    self, APP_COLUMNS, KEY_COLUMNS, SUBSCRIPTION_COLUMNS, TENANT_COLUMNS, USER_COLUMNS,
};
use crate::subscriptions::OF_LIVE_APP;
use crate::{Directory, Result, Store};

impl Store {
    /// Live tenants, apps, non-revoked keys of live apps, all subscriptions
    /// of live apps, enabled approvers, and the revision they were read at
    /// (read in one transaction). One query per table, each ordered by id.
    pub async fn load_directory(&self) -> Result<Directory> {
        let mut tx = self.begin_read().await?;
        let revision = read_revision(&mut *tx).await?;
        let tenants = Sql::new(format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(&mut *tx, rows::tenant)
        .await?;
        let apps = Sql::new(format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(&mut *tx, rows::app)
        .await?;
        let keys = Sql::new(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE revoked_at IS NULL AND EXISTS \
             (SELECT 1 FROM apps a WHERE a.id = k.app_id AND a.deleted_at IS NULL) ORDER BY id"
        ))
        .fetch_all(&mut *tx, rows::key)
        .await?;
        let subscriptions = Sql::new(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE {OF_LIVE_APP} ORDER BY id"
        ))
        .fetch_all(&mut *tx, rows::subscription)
        .await?;
        let approvers = Sql::new(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE disabled_at IS NULL \
             AND role IN ('admin', 'tenant_admin') ORDER BY id"
        ))
        .fetch_all(&mut *tx, rows::user)
        .await?;
        tx.commit().await?;
        Ok(Directory {
            revision,
            tenants,
            apps,
            keys,
            subscriptions,
            approvers,
        })
    }
}
