//! From the marked YAML tree to a typed [`RawConfig`], reporting every problem
//! at once with its line and column.
//!
//! Steps: interpolate and type each scalar while building a `serde_json::Value`
//! and an index `key path → mark`; then deserialize each named-map entry
//! (`providers.x`), each list item (`keys[0]`) and each other top-level key on
//! its own, so one bad entry does not hide the next; finally deserialize the
//! whole value once everything passed.
//!
//! Scalar typing (YAML 1.2 core schema): plain `~`/`null`/empty → null,
//! `true`/`false` → bool, integers (also `0x`, `0o`) and floats → numbers;
//! `yes`/`no`/`on`/`off` stay strings; quoted and block scalars are always
//! strings. A plain scalar containing `${…}` is typed *after* interpolation,
//! but only as bool or number, never null (`port: ${PORT}` is a number,
//! `api_key: ${KEY:-}` is an empty string). Quote it (`"${KEY}"`) to force a
//! string. Null top-level values (`providers:` with nothing under it) mean
//! "absent"; an empty named-map entry (`tenants: { acme: }`) means `{}`.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use serde_path_to_error::Segment;

use super::raw::{PolicyConfig, RawConfig};
use super::yaml::{interpolate, is_null, join_key, Mark, Node, NodeKind};

/// Top-level maps whose entries are checked one by one.
const NAMED_MAPS: &[&str] = &["providers", "models", "policies", "tenants", "apis"];
/// Top-level lists whose items are checked one by one.
const LISTS: &[&str] = &["keys", "routes"];

/// An issue before it gets a file name: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub mark: Mark,
    pub path: String,
    pub message: String,
}

/// Where each key path was written.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Scalars: the value; maps and lists: their key (or list item start).
    marks: HashMap<String, Mark>,
    /// Map keys themselves (for "unknown field" errors).
    keys: HashMap<String, Mark>,
    /// Plain scalars typed after `${…}` interpolation.
    interpolated: HashSet<String>,
}

impl Index {
    /// The mark of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &str) -> Mark {
        let mut p = path;
        loop {
            if let Some(m) = self.marks.get(p) {
                return *m;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None if !p.is_empty() => p = "",
                None => return Mark { line: 1, col: 1 },
            }
        }
    }

    fn key(&self, path: &str) -> Mark {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.locate(path))
    }
}

/// Builds the JSON value and its index; interpolation problems go to `issues`.
pub(crate) fn to_json(
    root: &Node,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Vec<Located>,
) -> (Value, Index) {
    let mut index = Index::default();
    index.marks.insert(String::new(), root.mark);
    let v = convert(root, "", env, &mut index, issues);
    (v, index)
}

fn convert(
    node: &Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    index: &mut Index,
    issues: &mut Vec<Located>,
) -> Value {
    match &node.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Scalar { value, plain } => {
            index.marks.insert(path.to_string(), node.mark);
            if !value.contains('$') {
                return if *plain {
                    resolve_plain(value)
                } else {
                    Value::String(value.clone())
                };
            }
            let out = interpolate(value, env);
            for message in out.errors {
                issues.push(Located {
                    mark: node.mark,
                    path: path.to_string(),
                    message,
                });
            }
            if *plain && out.replaced {
                index.interpolated.insert(path.to_string());
                match resolve_plain(&out.value) {
                    v @ (Value::Bool(_) | Value::Number(_)) => v,
                    _ => Value::String(out.value),
                }
            } else if *plain {
                resolve_plain(&out.value)
            } else {
                Value::String(out.value)
            }
        }
        NodeKind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                index.marks.entry(p.clone()).or_insert(item.mark);
                out.push(convert(item, &p, env, index, issues));
            }
            Value::Array(out)
        }
        NodeKind::Map(entries) => {
            let mut out = Map::new();
            for (k, kmark, v) in entries {
                let p = join_key(path, k);
                index.keys.insert(p.clone(), *kmark);
                if !matches!(v.kind, NodeKind::Scalar { .. }) {
                    index.marks.insert(p.clone(), *kmark);
                }
                out.insert(k.clone(), convert(v, &p, env, index, issues));
            }
            Value::Object(out)
        }
    }
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(s: &str) -> Value {
    if is_null(s) {
        return Value::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(h) = s.strip_prefix("0x").filter(|h| digits(h, 16)) {
        if let Ok(n) = u64::from_str_radix(h, 16) {
            return Value::Number(n.into());
        }
    }
    if let Some(o) = s.strip_prefix("0o").filter(|o| digits(o, 8)) {
        if let Ok(n) = u64::from_str_radix(o, 8) {
            return Value::Number(n.into());
        }
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        if let Ok(n) = s.parse::<i64>() {
            return Value::Number(n.into());
        }
        if let Ok(n) = s.trim_start_matches('+').parse::<u64>() {
            return Value::Number(n.into());
        }
    }
    let float_chars = unsigned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if float_chars && unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        if let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_string())
}

/// What deserialization produced: the config built from every entry that
/// deserialized (so semantic checks can still run on them), the issues, and
/// the names of the named-map entries that failed.
pub(crate) struct Deserialized {
    pub cfg: Option<RawConfig>,
    pub issues: Vec<Located>,
    pub failed_names: Vec<String>,
}

/// Deserializes `root` into a [`RawConfig`], collecting every error. Each
/// named-map entry, list item and other top-level key is checked on its own;
/// the ones that fail are left out of the partial config.
pub(crate) fn deserialize(root: &Value, index: &Index) -> Deserialized {
    let fail = |issues| Deserialized {
        cfg: None,
        issues,
        failed_names: Vec::new(),
    };
    let top = match root {
        Value::Null => Map::new(),
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), empty_entries(k, v)))
            .collect(),
        _ => {
            let message =
                "the config file must be a mapping of settings (`listen:`, `providers:`, …)";
            return fail(vec![Located {
                mark: index.locate(""),
                path: String::new(),
                message: message.into(),
            }]);
        }
    };
    let mut issues = Vec::new();
    let mut failed_names = Vec::new();
    let mut good = Map::new();
    for (k, v) in &top {
        match v {
            Value::Object(entries) if NAMED_MAPS.contains(&k.as_str()) => {
                let mut kept = Map::new();
                for (name, entry) in entries {
                    let wrapped = Value::Object(Map::from_iter([(k.clone(), single(name, entry))]));
                    if check::<RawConfig>(&wrapped, &[], index, &mut issues) {
                        kept.insert(name.clone(), entry.clone());
                    } else {
                        failed_names.push(name.clone());
                    }
                }
                good.insert(k.clone(), Value::Object(kept));
            }
            Value::Array(items) if LISTS.contains(&k.as_str()) => {
                let mut kept = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let wrapped = Value::Object(Map::from_iter([(
                        k.clone(),
                        Value::Array(vec![item.clone()]),
                    )]));
                    if check::<RawConfig>(&wrapped, &[(1, i)], index, &mut issues) {
                        kept.push(item.clone());
                    }
                }
                good.insert(k.clone(), Value::Array(kept));
            }
            _ => {
                if check::<RawConfig>(&single(k, v), &[], index, &mut issues) {
                    good.insert(k.clone(), v.clone());
                }
            }
        }
    }
    match serde_path_to_error::deserialize::<_, RawConfig>(&Value::Object(good)) {
        Ok(cfg) => Deserialized {
            cfg: Some(cfg),
            issues,
            failed_names,
        },
        Err(e) => {
            let segs = segments(e.path(), &[]);
            issues.push(locate_error(segs, e.inner().to_string(), index));
            Deserialized {
                cfg: None,
                issues,
                failed_names,
            }
        }
    }
}

/// In named maps an entry with nothing under it (`acme:`) means `acme: {}`.
fn empty_entries(k: &str, v: &Value) -> Value {
    match v {
        Value::Object(entries) if NAMED_MAPS.contains(&k) => {
            let fill = |e: &Value| {
                if e.is_null() {
                    Value::Object(Map::new())
                } else {
                    e.clone()
                }
            };
            Value::Object(entries.iter().map(|(n, e)| (n.clone(), fill(e))).collect())
        }
        _ => v.clone(),
    }
}

fn single(k: &str, v: &Value) -> Value {
    Value::Object(Map::from_iter([(k.to_string(), v.clone())]))
}

/// A key path segment.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Idx(usize),
}

fn render(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => s = join_key(&s, k),
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Converts a serde path; `remap` replaces the index at segment position `.0` by `.1`.
fn segments(path: &serde_path_to_error::Path, remap: &[(usize, usize)]) -> Vec<Seg> {
    let mut out = Vec::new();
    for (pos, seg) in path.iter().enumerate() {
        match seg {
            Segment::Seq { index } => {
                let i = remap
                    .iter()
                    .find(|(p, _)| *p == pos)
                    .map_or(*index, |(_, i)| *i);
                out.push(Seg::Idx(i));
            }
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    out
}

fn check<T: DeserializeOwned>(
    v: &Value,
    remap: &[(usize, usize)],
    index: &Index,
    issues: &mut Vec<Located>,
) -> bool {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(v) {
        let segs = segments(e.path(), remap);
        let mut unmapped = segments(e.path(), &[]);
        unmapped.truncate(segs.len());
        let sub = navigate(v, &unmapped).unwrap_or(&Value::Null);
        let (extra, message) = explain(sub, e.inner().to_string());
        let mut full = segs;
        full.extend(extra);
        issues.push(locate_error(full, message, index));
        return false;
    }
    true
}

/// Replaces serde's opaque "did not match any variant of untagged enum
/// PolicyRef" by the real problem inside the inline policy.
fn explain(v: &Value, message: String) -> (Vec<Seg>, String) {
    if !message.contains("untagged enum Policy") {
        return (Vec::new(), message);
    }
    let inline = |v: &Value, mut at: Vec<Seg>| match serde_path_to_error::deserialize::<
        _,
        PolicyConfig,
    >(v)
    {
        Ok(_) => None,
        Err(e) => {
            at.extend(segments(e.path(), &[]));
            Some((at, e.inner().to_string()))
        }
    };
    let expected = "expected a policy name, an inline policy, or a list of those";
    match v {
        Value::Object(_) => inline(v, Vec::new()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| match item {
            Value::String(_) => None,
            Value::Object(_) => inline(item, vec![Seg::Idx(i)]),
            _ => Some((
                vec![Seg::Idx(i)],
                "expected a policy name or an inline policy".to_string(),
            )),
        }),
        _ => None,
    }
    .unwrap_or_else(|| (Vec::new(), expected.to_string()))
}

fn navigate<'a>(mut v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    for seg in segs {
        v = match seg {
            Seg::Key(k) => v.get(k)?,
            Seg::Idx(i) => v.get(i)?,
        };
    }
    Some(v)
}

/// Picks the mark for a serde error: an unknown field points at that key.
fn locate_error(segs: Vec<Seg>, message: String, index: &Index) -> Located {
    let base = render(&segs);
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let path = if segs
            .last()
            .is_some_and(|s| matches!(s, Seg::Key(k) if k == field))
        {
            base
        } else {
            join_key(&base, field)
        };
        return Located {
            mark: index.key(&path),
            path,
            message,
        };
    }
    let mut message = message;
    if message.starts_with("invalid type") {
        if index.interpolated.contains(&base) {
            message.push_str(" (this value came from `${…}`; quote the scalar, e.g. \"${NAME}\", to keep it a string)");
        } else if message.contains("expected a string") || message.contains("expected a sequence") {
            message.push_str(hint_for(&message));
        }
    }
    Located {
        mark: index.locate(&base),
        path: base,
        message,
    }
}

fn hint_for(message: &str) -> &'static str {
    if message.contains("expected a string") {
        " (quote the value to make it a string)"
    } else {
        " (write a list, e.g. `[a, b]`)"
    }
}
