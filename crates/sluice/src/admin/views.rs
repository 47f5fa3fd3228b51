//! What the admin API answers: one view per entity, built field by field
//! from the store's types, so nothing new (least of all a secret or a hash)
//! reaches a response unless it is added here. The two `Created*` views are
//! the only ones with a `secret`.

use serde::Serialize;
use serde_json::Value;
use sluice_store as st;
use utoipa::ToSchema;

/// One page of a list. Pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// The cursor of the next page; `null` on the last page.
    pub next: Option<String>,
}

impl<T, S: Into<T>> From<st::Page<S>> for ListResponse<T> {
    fn from(p: st::Page<S>) -> Self {
        ListResponse {
            data: p.items.into_iter().map(Into::into).collect(),
            next: p.next,
        }
    }
}

/// `{"error": {...}}`, as everywhere in sluice.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What was wrong and how to fix it.
    pub message: String,
    /// e.g. `invalid_request_error`, `permission_error`, `not_found_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The field at fault, if any.
    pub param: Option<String>,
    /// e.g. `invalid_request`, `permission_denied`, `not_found`, `conflict`.
    pub code: String,
}

/// Copies named fields from a store entity into a view.
macro_rules! view {
    ($(#[$m:meta])* $view:ident from $src:ty { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $view { $($(#[$fm])* pub $f: $t),* }
        impl From<$src> for $view {
            fn from(s: $src) -> Self {
                $view { $($f: s.$f.into()),* }
            }
        }
    };
}

view!(
    /// A tenant. Times are Unix milliseconds.
    TenantView from st::Tenant {
        id: String,
        name: String,
        tier: Option<String>,
        /// A policy reference as in the config file (name, inline, or list).
        #[schema(value_type = Option<serde_json::Value>)]
        policy: Option<Value>,
        /// `config` (seeded from the config file, read-only) or `store`.
        #[schema(value_type = String, example = "store")]
        source: st::Source,
        created_at: i64,
        updated_at: i64,
    }
);

view!(
    /// An app of a tenant.
    AppView from st::App {
        id: String,
        tenant_id: String,
        name: String,
        owner_user_id: Option<String>,
        #[schema(value_type = Option<serde_json::Value>)]
        policy: Option<Value>,
        created_at: i64,
        updated_at: i64,
    }
);

/// What a key may reach; absent = everything its policies allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopesView {
    /// `models:` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// APIs: `chat`, `messages`, `embeddings`, `models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apis: Option<Vec<String>>,
}

impl From<st::Scopes> for ScopesView {
    fn from(s: st::Scopes) -> Self {
        ScopesView {
            models: s.models,
            apis: s.apis,
        }
    }
}

view!(
    /// An API key. The secret is never shown again after creation; `prefix`
    /// identifies the key for humans.
    KeyView from st::ApiKey {
        id: String,
        app_id: String,
        tenant_id: String,
        name: String,
        #[schema(example = "sk-sluice-AbCd")]
        prefix: String,
        scopes: ScopesView,
        #[schema(value_type = Option<serde_json::Value>)]
        policy: Option<Value>,
        expires_at: Option<i64>,
        revoked_at: Option<i64>,
        /// The key this one replaced by rotation.
        rotated_from: Option<String>,
        created_by: String,
        created_at: i64,
    }
);

/// A key just created or rotated, with its secret: shown this once only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    #[schema(example = "sk-sluice-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCD")]
    pub secret: String,
}

view!(
    /// A user of the admin API.
    UserView from st::User {
        id: String,
        name: String,
        #[schema(value_type = String, example = "developer")]
        role: st::Role,
        tenant_id: Option<String>,
        disabled_at: Option<i64>,
        created_at: i64,
        updated_at: i64,
    }
);

view!(
    /// An admin credential of a user (its secret is never shown again).
    CredentialView from st::AdminCredential {
        id: String,
        user_id: String,
        #[schema(example = "sa-sluice-AbCd")]
        prefix: String,
        expires_at: Option<i64>,
        revoked_at: Option<i64>,
        created_at: i64,
    }
);

/// A credential just created, with its secret: shown this once only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredential {
    #[serde(flatten)]
    pub credential: CredentialView,
    #[schema(example = "sa-sluice-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCD")]
    pub secret: String,
}

view!(
    /// An app's access to a model (`model:<name>`) or an API (`api:<name>`).
    SubscriptionView from st::Subscription {
        id: String,
        tenant_id: String,
        app_id: String,
        target: String,
        /// `pending`, `approved`, `rejected` or `revoked`.
        #[schema(value_type = String, example = "pending")]
        state: st::SubState,
        requested_by: String,
        requested_at: i64,
        decided_by: Option<String>,
        decided_at: Option<i64>,
        note: Option<String>,
    }
);

view!(
    /// One admin change: who, what, when, before and after (secrets never included).
    AuditView from st::AuditEntry {
        id: String,
        at: i64,
        actor: String,
        #[schema(value_type = String, example = "admin")]
        actor_role: st::Role,
        tenant_id: Option<String>,
        #[schema(example = "key.rotate")]
        action: String,
        target_type: String,
        target_id: String,
        #[schema(value_type = Option<serde_json::Value>)]
        before: Option<Value>,
        #[schema(value_type = Option<serde_json::Value>)]
        after: Option<Value>,
    }
);
