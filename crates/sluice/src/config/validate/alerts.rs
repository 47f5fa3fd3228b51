//! Checks of `alerts.rules` and `alerts.evaluate_every`: unique, label-safe
//! names, known models, thresholds in range, windows long enough to hold
//! several evaluations.

use std::collections::HashSet;
use std::time::Duration;

use super::Out;
use crate::config::raw::{AlertRule, AlertsConfig, RawConfig};

/// Shortest and longest accepted `evaluate_every`.
const MIN_EVALUATE_EVERY: Duration = Duration::from_millis(100);
const MAX_EVALUATE_EVERY: Duration = Duration::from_secs(3600);
/// Shortest accepted rule window.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Longest accepted rule window.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);
/// Longest accepted rule name (it is a metric label value).
const MAX_NAME_LEN: usize = 64;

/// Every check of the rules; paths are `alerts.rules[i].field`.
pub(super) fn rules(cfg: &RawConfig, a: &AlertsConfig, out: &mut Out) {
    let every = a.evaluate_every();
    if !(MIN_EVALUATE_EVERY..=MAX_EVALUATE_EVERY).contains(&every) {
        out.push(
            "alerts.evaluate_every",
            format!("must be between 100ms and 1h (got {every:?})"),
        );
    }
    let mut seen = HashSet::new();
    for (i, rule) in a.rules.iter().enumerate() {
        let path = format!("alerts.rules[{i}]");
        name(&path, rule.name(), &mut seen, out);
        if let Some(r) = rule.repeat_every() {
            if r < every {
                out.push(
                    format!("{path}.repeat_every"),
                    format!("must be at least evaluate_every ({every:?}); got {r:?}"),
                );
            }
        }
        kind(cfg, &path, rule, every, out);
    }
}

fn name(path: &str, name: &str, seen: &mut HashSet<String>, out: &mut Out) {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if !ok {
        out.push(
            format!("{path}.name"),
            format!("`{name}` must be 1 to {MAX_NAME_LEN} characters of letters, digits, `-`, `_`, `.`, `:`"),
        );
    } else if !seen.insert(name.to_string()) {
        out.push(
            format!("{path}.name"),
            format!("`{name}` is used by another rule; rule names must be unique"),
        );
    }
}

fn kind(cfg: &RawConfig, path: &str, rule: &AlertRule, every: Duration, out: &mut Out) {
    match rule {
        AlertRule::ErrorRate {
            model,
            above,
            window,
            ..
        } => {
            model_ref(cfg, path, model.as_deref(), out);
            if !(above.is_finite() && *above > 0.0 && *above < 1.0) {
                out.push(
                    format!("{path}.above"),
                    format!("must be a fraction between 0 and 1, e.g. 0.05 for 5% (got {above})"),
                );
            }
            window_len(path, window.0, every, out);
        }
        AlertRule::LatencyP99 {
            model,
            above,
            window,
            ..
        } => {
            model_ref(cfg, path, model.as_deref(), out);
            if above.0.is_zero() || above.0 > Duration::from_secs(3600) {
                out.push(
                    format!("{path}.above"),
                    format!("must be more than 0 and at most 1h (got {:?})", above.0),
                );
            }
            window_len(path, window.0, every, out);
        }
        AlertRule::BreakerOpen { model, .. } => model_ref(cfg, path, model.as_deref(), out),
        AlertRule::SpendAnomaly {
            z,
            window,
            warmup,
            alpha,
            ..
        } => {
            if !(z.is_finite() && *z > 0.0 && *z <= 100.0) {
                out.push(
                    format!("{path}.z"),
                    format!("must be more than 0 and at most 100, e.g. 3 (got {z})"),
                );
            }
            window_len(path, window.0, every, out);
            if !(2..=1000).contains(warmup) {
                out.push(
                    format!("{path}.warmup"),
                    format!("must be between 2 and 1000 intervals (got {warmup})"),
                );
            }
            if let Some(a) = alpha {
                if !(a.is_finite() && *a > 0.0 && *a <= 1.0) {
                    out.push(
                        format!("{path}.alpha"),
                        format!("must be in (0, 1], e.g. 0.3 (got {a})"),
                    );
                }
            }
        }
    }
}

fn model_ref(cfg: &RawConfig, path: &str, model: Option<&str>, out: &mut Out) {
    if let Some(m) = model {
        if !cfg.models.contains_key(m) {
            out.push(
                format!("{path}.model"),
                format!(
                    "unknown model `{m}`; {}",
                    super::known(&cfg.models, "models")
                ),
            );
        }
    }
}

/// A window of at least 1s (at most 7 days) spanning two evaluations.
fn window_len(path: &str, window: Duration, every: Duration, out: &mut Out) {
    if window < MIN_WINDOW || window > MAX_WINDOW {
        out.push(
            format!("{path}.window"),
            format!("must be between 1s and 7d (got {window:?})"),
        );
    } else if window < every * 2 {
        out.push(
            format!("{path}.window"),
            format!("is too short: at least twice evaluate_every ({every:?}); got {window:?}"),
        );
    }
}
