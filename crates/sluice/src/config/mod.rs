//! The config file: YAML → `${VAR}` interpolation → typed [`RawConfig`] →
//! semantic validation, with every problem reported at once as
//! `file:line:col: key.path: message`. Also the JSON Schema of the file
//! (`sluice schema`) and the file watcher used for hot reload.
//!
//! Module map: `yaml` (marked tree, interpolation), `load` (typing, per-entry
//! deserialization, error locations), `validate` (cross references, ranges,
//! unsupported features), `merge` (policy lists merged field by field),
//! `watch` (debounced file watcher), `raw`/`units` (the serde structs).

use std::fmt;
use std::path::{Path, PathBuf};

pub mod merge;
pub mod raw;
pub mod units;
pub mod validate;
pub mod watch;

mod load;
mod yaml;

#[cfg(test)]
mod tests;

pub use raw::RawConfig;
pub use units::{ByteSize, Dur};
pub use watch::{spawn_watcher, spawn_watcher_with, WatcherHandle};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not about a place (file unreadable).
    pub line: usize,
    /// 1-based; 0 when `line` is 0.
    pub col: usize,
    /// Key path such as `policies.standard.rate_limit` or `keys[0].name`;
    /// empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    /// `{file}:{line}:{col}: {path}: {message}`; the path part is left out
    /// when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    /// One issue per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads, interpolates (real environment), parses and validates a config file.
pub fn load_file(path: &Path) -> Result<RawConfig, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, path, &|name| std::env::var(name).ok()),
        Err(e) => Err(ConfigErrors(vec![ConfigIssue {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }])),
    }
}

/// Parses and validates config text; `file` only names it in issues and `env`
/// answers `${NAME}` lookups.
pub fn load_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, ConfigErrors> {
    let to_issue = |l: load::Located| ConfigIssue {
        file: file.to_path_buf(),
        line: l.mark.line,
        col: l.mark.col,
        path: l.path,
        message: l.message,
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(found) => {
            let located = found.into_iter().map(|y| load::Located {
                mark: y.mark,
                path: y.path,
                message: y.message,
            });
            return Err(finish(located.map(to_issue).collect()));
        }
    };
    let mut found = Vec::new();
    let (value, index) = load::to_json(&root, env, &mut found);
    let parsed = load::deserialize(&value, &index);
    let failed_shape = !parsed.issues.is_empty();
    found.extend(parsed.issues);
    let Some(cfg) = parsed.cfg else {
        return Err(finish(found.into_iter().map(to_issue).collect()));
    };
    // Semantic checks run on what did deserialize, so every issue shows at
    // once; a value that failed interpolation, or a reference to an entry
    // that failed to deserialize, would only cause follow-on noise.
    let seen: std::collections::HashSet<String> = found.iter().map(|l| l.path.clone()).collect();
    let follow_on = |i: &validate::PathIssue| {
        seen.contains(&i.path)
            || (i.message.starts_with("unknown ")
                && parsed
                    .failed_names
                    .iter()
                    .any(|n| i.message.contains(&format!("`{n}`"))))
    };
    for issue in validate::validate(&cfg)
        .into_iter()
        .filter(|i| !follow_on(i))
    {
        found.push(load::Located {
            mark: index.locate(&issue.path),
            path: issue.path,
            message: issue.message,
        });
    }
    if found.is_empty() && !failed_shape {
        Ok(cfg)
    } else {
        Err(finish(found.into_iter().map(to_issue).collect()))
    }
}

fn finish(mut issues: Vec<ConfigIssue>) -> ConfigErrors {
    issues.sort_by_key(|i| (i.line, i.col));
    ConfigErrors(issues)
}

/// The JSON Schema of the config file, pretty-printed (for `sluice schema` and
/// editor completion).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RawConfig);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The directory relative paths in the config are resolved against: the
/// config file's directory (`.` for a bare file name).
pub fn config_dir(config_file: &Path) -> PathBuf {
    match config_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` if absolute, otherwise `path` under [`config_dir`] of `config_file`.
pub fn resolve_path(config_file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        config_dir(config_file).join(path)
    }
}
