//! Input rules the store enforces before writing, each failing with
//! [`StoreError::Invalid`] and a message naming the field.

use crate::{Result, Scopes, StoreError};

const NAME_MAX: usize = 64;
const TIER_MAX: usize = 64;
const NOTE_MAX: usize = 2000;
const SCOPE_ITEM_MAX: usize = 256;
const APIS: &[&str] = &["chat", "messages", "embeddings", "models"];

fn invalid(message: String) -> StoreError {
    StoreError::Invalid(message)
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Tenant, app, user and subscription-target names: 1–64 characters of
/// `[A-Za-z0-9._-]`.
pub(crate) fn name(field: &str, value: &str) -> Result<()> {
    let len = value.chars().count();
    if (1..=NAME_MAX).contains(&len) && value.chars().all(name_char) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} must be 1–{NAME_MAX} characters of A–Z, a–z, 0–9, `.`, `_` and `-`"
        )))
    }
}

/// Key names: as [`name`], and spaces inside.
pub(crate) fn key_name(value: &str) -> Result<()> {
    let len = value.chars().count();
    let ok = (1..=NAME_MAX).contains(&len)
        && value.chars().all(|c| name_char(c) || c == ' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "key name must be 1–{NAME_MAX} characters of A–Z, a–z, 0–9, `.`, `_`, `-` \
             and inner spaces"
        )))
    }
}

pub(crate) fn tier(value: Option<&str>) -> Result<()> {
    match value {
        Some(t) if t.is_empty() || t.chars().count() > TIER_MAX => {
            Err(invalid(format!("tier must be 1–{TIER_MAX} characters")))
        }
        _ => Ok(()),
    }
}

pub(crate) fn note(value: Option<&str>) -> Result<()> {
    match value {
        Some(n) if n.chars().count() > NOTE_MAX => Err(invalid(format!(
            "note must be at most {NOTE_MAX} characters"
        ))),
        _ => Ok(()),
    }
}

/// `model:<name>` or `api:<name>`, the API one of the known ones.
pub(crate) fn target(value: &str) -> Result<()> {
    let bad = || {
        invalid(format!(
            "subscription target must be `model:<name>` or `api:<name>` \
             (APIs: {}), not `{}`",
            APIS.join(", "),
            value.chars().take(80).collect::<String>()
        ))
    };
    match value.split_once(':') {
        Some(("model", model)) => name("subscription target model name", model),
        Some(("api", api)) if APIS.contains(&api) => Ok(()),
        _ => Err(bad()),
    }
}

/// Model scopes are names (free text up to 256 characters, matched against
/// the config at request time); API scopes must be known APIs.
pub(crate) fn scopes(s: &Scopes) -> Result<()> {
    for m in s.models.iter().flatten() {
        if m.is_empty() || m.chars().count() > SCOPE_ITEM_MAX {
            return Err(invalid(format!(
                "scopes.models entries must be 1–{SCOPE_ITEM_MAX} characters"
            )));
        }
    }
    for a in s.apis.iter().flatten() {
        if !APIS.contains(&a.as_str()) {
            return Err(invalid(format!(
                "scopes.apis entries must be one of: {}",
                APIS.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("tenant name", "acme-1.prod_x").is_ok());
        assert!(name("tenant name", &"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a/b", "x'; DROP TABLE tenants;--"] {
            let err = name("tenant name", bad).expect_err(bad).to_string();
            assert!(err.contains("tenant name"), "{err}");
        }
        assert!(name("tenant name", &"a".repeat(65)).is_err());
        assert!(key_name("ci key 2").is_ok());
        assert!(key_name(" lead").is_err());
        assert!(key_name("a;b").is_err());
    }

    #[test]
    fn targets() {
        assert!(target("model:gpt-4o").is_ok());
        assert!(target("api:embeddings").is_ok());
        assert!(target("api:nope").is_err());
        assert!(target("model:").is_err());
        assert!(target("gpt-4o").is_err());
        assert!(target("tool:x").is_err());
    }
}
