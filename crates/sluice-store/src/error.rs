//! The store's one error type.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such entity (or it was deleted).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule was broken, e.g. a tenant name already in use.
    #[error("{0}")]
    Conflict(String),
    /// The change is not allowed in the entity's state (e.g. approving a
    /// revoked subscription, editing a config-seeded tenant).
    #[error("{0}")]
    Invalid(String),
    #[error("store error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}
