//! What the admin API accepts: one dedicated struct per request body, each
//! with `deny_unknown_fields`, so fields a caller may not set (`id`,
//! `tenant_id` on an app PATCH, `source`, `hash`, `prefix`, `revoked_at`, …)
//! are a 400 naming the field — mass assignment is impossible. In PATCH
//! bodies an absent field is left alone and `null` clears it.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

use super::time::TimeArg;
use super::views::ScopesView;

/// For PATCH fields: absent → `None`, `null` → `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    pub name: String,
    #[serde(default)]
    pub tier: Option<String>,
    /// A policy reference: a `policies:` name, an inline policy, or a list.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tier: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Option<Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppBody {
    /// Defaults to the caller's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    pub name: String,
    /// The developer owning the app; a developer's apps are always their own.
    #[serde(default)]
    pub owner_user_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub owner_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Option<Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub app_id: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Option<ScopesView>,
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Value>,
    /// RFC 3339 or Unix milliseconds, in the future.
    #[serde(default)]
    pub expires_at: Option<TimeArg>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Option<ScopesView>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<TimeArg>)]
    pub expires_at: Option<Option<TimeArg>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working: a duration like `1h` (default
    /// `24h`, at most `30d`).
    #[serde(default)]
    #[schema(example = "1h")]
    pub overlap: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub name: String,
    /// `admin`, `tenant_admin`, `developer` or `auditor`.
    #[schema(example = "developer")]
    pub role: String,
    /// Required for `tenant_admin` and `developer`; for a tenant admin's
    /// call, defaults to their tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<Option<String>>,
    /// `true` disables the user and so all their credentials.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredentialBody {
    /// Lifetime, e.g. `90d`; absent = no expiry.
    #[serde(default)]
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriptionBody {
    pub app_id: String,
    /// `model:<models: name>` or `api:<chat|messages|embeddings|models>`.
    #[schema(example = "model:gpt-4o")]
    pub target: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_fields_distinguish_absent_and_null() {
        let p: AppPatchBody = serde_json::from_str(r#"{"policy": null}"#).unwrap();
        assert_eq!(p.policy, Some(None));
        assert_eq!(p.owner_user_id, None);
        let p: KeyPatchBody = serde_json::from_str(r#"{"expires_at": 5}"#).unwrap();
        assert_eq!(p.expires_at, Some(Some(TimeArg::Millis(5))));
    }

    #[test]
    fn forbidden_fields_are_named() {
        for (body, field) in [
            (r#"{"name": "x", "tenant_id": "ten_b"}"#, "tenant_id"),
            (r#"{"id": "app_x"}"#, "id"),
            (r#"{"created_at": 1}"#, "created_at"),
        ] {
            let e = serde_json::from_str::<AppPatchBody>(body).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        let e = serde_json::from_str::<KeyPatchBody>(r#"{"revoked_at": null}"#).unwrap_err();
        assert!(e.to_string().contains("`revoked_at`"), "{e}");
        let e = serde_json::from_str::<NewTenantBody>(r#"{"name":"x","source":"config"}"#);
        assert!(e.unwrap_err().to_string().contains("`source`"));
    }
}
