//! The one bulk read the gateway's key cache is built from.

use crate::{Directory, Result, Store};

impl Store {
    /// Live tenants, apps, non-revoked keys of live apps, all subscriptions
    /// of live apps, enabled approvers, and the revision they were read at
    /// (read in one transaction).
    pub async fn load_directory(&self) -> Result<Directory> {
        unimplemented!()
    }
}
