//! Validation of request values against the running config: names,
//! policies (the same checks as in the config file), key scopes,
//! subscription targets, times and durations. Each failure is a 400 that
//! names the field.

use std::time::Duration;

use serde_json::Value;
use sluice_store::Scopes;

use super::error::{ApiError, ApiResult};
use super::time::{now_ms, Millis, TimeArg};
use super::views::ScopesView;
use crate::config::raw::PolicyConfig;
use crate::config::units::parse_duration;
use crate::config::validate::{policy_value, API_NAMES};
use crate::config::RawConfig;

const MAX_NAME_CHARS: usize = 200;
const MAX_NOTE_CHARS: usize = 2000;

/// A name: not blank, at most 200 characters, no control characters. This
/// only turns away what no name may hold; the store applies each entity's
/// precise rules (e.g. identifier characters for tenant names) and keeps
/// whatever it accepts literally (values are always bound, never spliced).
pub fn name(field: &str, v: String) -> ApiResult<String> {
    let n = v.chars().count();
    if v.trim().is_empty() || n > MAX_NAME_CHARS || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!(
                "`{field}` must be 1 to {MAX_NAME_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(v)
}

/// An optional free-text note (at most 2000 characters).
pub fn note(v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.chars().count() > MAX_NOTE_CHARS => Err(ApiError::invalid(
            "note",
            format!("`note` is limited to {MAX_NOTE_CHARS} characters"),
        )),
        v => Ok(v),
    }
}

/// A policy reference, checked like one in the config file.
pub fn policy(cfg: &RawConfig, v: Option<Value>) -> ApiResult<Option<Value>> {
    if let Some(p) = &v {
        policy_value(cfg, p).map_err(|e| {
            // For an inline policy, serde's own message names the bad field.
            let detail = match serde_json::from_value::<PolicyConfig>(p.clone()) {
                Err(shape) if p.is_object() => format!("not a valid inline policy: {shape}"),
                _ => e,
            };
            ApiError::invalid("policy", format!("`policy`: {detail}"))
        })?;
    }
    Ok(v)
}

/// A PATCH policy: absent, cleared (`null`), or a new checked value.
pub fn policy_patch(cfg: &RawConfig, v: Option<Option<Value>>) -> ApiResult<Option<Option<Value>>> {
    match v {
        Some(Some(p)) => Ok(Some(policy(cfg, Some(p))?)),
        other => Ok(other),
    }
}

/// Key scopes: configured model names and known APIs.
pub fn scopes(cfg: &RawConfig, s: ScopesView) -> ApiResult<Scopes> {
    for m in s.models.iter().flatten() {
        if !cfg.models.contains_key(m) {
            let known: Vec<&str> = cfg.models.keys().map(String::as_str).collect();
            return Err(ApiError::invalid(
                "scopes.models",
                format!("unknown model `{}` (models: {})", clip(m), known.join(", ")),
            ));
        }
    }
    for a in s.apis.iter().flatten() {
        if !API_NAMES.contains(&a.as_str()) {
            return Err(ApiError::invalid(
                "scopes.apis",
                format!("unknown API `{}` (APIs: {})", clip(a), API_NAMES.join(", ")),
            ));
        }
    }
    Ok(Scopes {
        models: s.models,
        apis: s.apis,
    })
}

/// A subscription target: `model:<configured model>` or `api:<API name>`.
pub fn target(cfg: &RawConfig, t: &str) -> ApiResult<()> {
    let ok = match t.split_once(':') {
        Some(("model", m)) => cfg.models.contains_key(m),
        Some(("api", a)) => API_NAMES.contains(&a),
        _ => false,
    };
    match ok {
        true => Ok(()),
        false => Err(ApiError::invalid(
            "target",
            format!(
                "`{}` is not a target: use model:<name> with a configured model, or api:<{}>",
                clip(t),
                API_NAMES.join("|")
            ),
        )),
    }
}

/// A time that must lie in the future.
pub fn future_time(field: &str, t: &TimeArg) -> ApiResult<Millis> {
    let ms = t
        .millis()
        .map_err(|e| ApiError::invalid(field, format!("`{field}`: {e}")))?;
    if ms <= now_ms() {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be in the future"),
        ));
    }
    Ok(ms)
}

/// A duration string (`90s`, `1h`, `30d`) between zero and `max`.
pub fn duration(field: &str, s: &str, max: Duration) -> ApiResult<Duration> {
    let d = parse_duration(s)
        .map_err(|e| ApiError::invalid(field, format!("`{field}`: {}", clip(&e))))?;
    if d > max {
        let days = max.as_secs() / 86_400;
        return Err(ApiError::invalid(
            field,
            format!("`{field}` may be at most {days}d"),
        ));
    }
    Ok(d)
}

/// At most 64 characters of a caller's value, for messages.
pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert!(name("name", "'; DROP TABLE apps; --".into()).is_ok());
        assert!(name("name", "  ".into()).is_err());
        assert!(name("name", "a\u{0}b".into()).is_err());
        assert!(name("name", "x".repeat(201)).is_err());
        let max = Duration::from_secs(30 * 86_400);
        assert_eq!(
            duration("overlap", "1h", max).unwrap(),
            Duration::from_secs(3600)
        );
        assert!(duration("overlap", "31d", max).is_err());
        assert!(duration("overlap", "soon", max).is_err());
    }

    #[test]
    fn targets_and_scopes() {
        let mut cfg = RawConfig::default();
        cfg.models.insert(
            "m".into(),
            serde_json::from_value(serde_json::json!({"deployments": []})).unwrap(),
        );
        assert!(target(&cfg, "model:m").is_ok());
        assert!(target(&cfg, "api:chat").is_ok());
        for bad in ["model:x", "api:admin", "m", "model:", "model:m' OR 1=1"] {
            assert!(target(&cfg, bad).is_err(), "{bad}");
        }
        let s = |m: &[&str], a: &[&str]| ScopesView {
            models: Some(m.iter().map(|x| x.to_string()).collect()),
            apis: Some(a.iter().map(|x| x.to_string()).collect()),
        };
        assert!(scopes(&cfg, s(&["m"], &["chat"])).is_ok());
        assert_eq!(
            scopes(&cfg, s(&["x"], &[])).unwrap_err().0.param.as_deref(),
            Some("scopes.models")
        );
        assert!(scopes(&cfg, s(&[], &["admin"])).is_err());
    }
}
