//! The built-in price table: what common models cost on their providers'
//! own APIs (USD per million tokens), so a deployment needs no `price` in
//! the config to be charged.
//!
//! The table is `pricing/prices.json`, embedded at compile time and parsed
//! once on first use; each provider's block says when its prices were read
//! (`as_of`) and where (`source`). A deployment's price is resolved, most
//! specific first (see `snapshot.rs`): its own `price`, its model's
//! `price`, then this table's entry for its upstream model — a config
//! price replaces the built-in one whole, never field by field.
//!
//! Lookup is by the upstream model id alone (a model id priced
//! differently by two providers is out of scope): an exact entry first,
//! else the longest listed id of which the name is a dated snapshot
//! (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-sonnet-20241022` →
//! `claude-3-5-sonnet`, `gemini-2.0-flash-001` → `gemini-2.0-flash`,
//! `claude-3-7-sonnet-latest`). Anything else after the id is a different
//! model (`claude-opus-4-6` is not `claude-opus-4`), so it has no price.
//! Azure deployments match only when named like the model.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::config::raw::{Price, ProviderKind};

/// The embedded table.
const PRICES_JSON: &str = include_str!("pricing/prices.json");

/// The parsed table.
#[derive(Debug, Default, Deserialize)]
pub struct Table {
    /// The unit of every figure ("USD per million tokens").
    pub unit: String,
    /// What the figures mean and leave out.
    #[serde(default)]
    pub notes: Vec<String>,
    /// By provider name (`openai`, `anthropic`, …).
    pub providers: BTreeMap<String, ProviderPrices>,
}

/// One provider's prices.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPrices {
    /// When the prices were read off `source` (YYYY-MM-DD).
    pub as_of: String,
    /// The provider's pricing page.
    pub source: String,
    /// By the provider's model id.
    pub models: BTreeMap<String, Price>,
}

/// A built-in price found for an upstream model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Builtin {
    /// The table entry that matched (the model itself, or the id it is a
    /// snapshot of).
    pub key: &'static str,
    /// The provider block it is in.
    pub provider: &'static str,
    /// Its `as_of` date.
    pub as_of: &'static str,
    pub price: Price,
}

/// The table, parsed on first use. A table that does not parse (a test
/// guards against it) is empty: no built-in prices, never a panic.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| match serde_json::from_str(PRICES_JSON) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the built-in price table does not parse; no built-in prices");
            Table::default()
        }
    })
}

/// The built-in price of upstream model `model`, if the table has one.
pub fn lookup(model: &str) -> Option<Builtin> {
    let name = normalize(model);
    let t = table();
    let mut best: Option<Builtin> = None;
    for (provider, p) in &t.providers {
        for (key, price) in &p.models {
            let found = Builtin {
                key,
                provider,
                as_of: &p.as_of,
                price: *price,
            };
            if *key == name {
                return Some(found);
            }
            let longer = best.is_none_or(|b| key.len() > b.key.len());
            if longer && is_snapshot_of(&name, key) {
                best = Some(found);
            }
        }
    }
    best
}

/// The built-in price of a deployment of a provider of `kind` serving
/// upstream model `model`. The built-in `mock` provider is free.
pub fn for_deployment(kind: ProviderKind, model: &str) -> Option<Builtin> {
    match kind {
        ProviderKind::Mock => None,
        _ => lookup(model),
    }
}

/// The name as the table spells ids: trimmed, lower case, without
/// Gemini's `models/` prefix.
fn normalize(model: &str) -> String {
    let m = model.trim().to_ascii_lowercase();
    match m.strip_prefix("models/") {
        Some(rest) => rest.to_owned(),
        None => m,
    }
}

/// `name` is `key` followed by a snapshot suffix: `-latest`, a date
/// (`-2024-08-06`, `-20241022`) or a three-digit version (`-001`).
fn is_snapshot_of(name: &str, key: &str) -> bool {
    let Some(rest) = name.strip_prefix(key).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let dashed_date = rest.len() == 10
        && rest.split('-').map(str::len).eq([4, 2, 2])
        && rest.split('-').all(digits);
    rest == "latest" || dashed_date || (digits(rest) && (rest.len() == 8 || rest.len() == 3))
}

/// The table as text, for `sluice prices`: one line a model, grouped by
/// provider with its date and source.
pub fn render() -> String {
    let t = table();
    let mut out = format!(
        "Built-in prices, {} (- = not priced apart: cache tokens as input, reasoning as output)\n",
        t.unit
    );
    for (provider, p) in &t.providers {
        let _ = write!(
            out,
            "\n{provider} (as of {}, {})\n{:<26} {:>9} {:>9} {:>11} {:>11} {:>10}\n",
            p.as_of, p.source, "model", "input", "output", "cache_read", "cache_write", "reasoning"
        );
        for (model, price) in &p.models {
            let _ = writeln!(out, "{}", line(model, price));
        }
    }
    for n in &t.notes {
        let _ = write!(out, "\n* {n}");
    }
    out.push('\n');
    out
}

/// What `sluice prices MODEL` prints: the entry a model resolves to.
pub fn describe(model: &str) -> String {
    match lookup(model) {
        Some(b) => {
            let via = if b.key == normalize(model) {
                String::new()
            } else {
                format!(" (as `{}`)", b.key)
            };
            format!(
                "{model}: {} built-in price{via}, as of {} (USD per million tokens)\n{:<26} {:>9} {:>9} {:>11} {:>11} {:>10}\n{}\n",
                b.provider,
                b.as_of,
                "model",
                "input",
                "output",
                "cache_read",
                "cache_write",
                "reasoning",
                line(b.key, &b.price)
            )
        }
        None => format!(
            "{model}: no built-in price (give the model or deployment a `price` in the config)\n"
        ),
    }
}

fn line(model: &str, p: &Price) -> String {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "{model:<26} {:>9} {:>9} {:>11} {:>11} {:>10}",
        p.input,
        p.output,
        opt(p.cache_read),
        opt(p.cache_write),
        opt(p.reasoning)
    )
}

#[cfg(test)]
mod tests;
