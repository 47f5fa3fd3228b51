//! YAML text → a small tree that remembers where every key and value was
//! written (1-based line and column), built on yaml-rust2's event parser.
//!
//! Rules: one document per file; map keys are scalars and must be unique;
//! anchors and aliases are resolved (bounded, so alias bombs fail cleanly);
//! tags other than `!!str` are rejected. Plain `~`/`null`/empty become
//! [`NodeKind::Null`]; every other scalar keeps its text and whether it was
//! plain (unquoted), so typing happens later in `load.rs`. `${VAR}`
//! interpolation of scalar text lives here too ([`interpolate`]).

use std::collections::HashMap;
use std::str::Chars;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted (protects the recursive builder).
const MAX_DEPTH: usize = 128;
/// Most nodes a document may expand to, aliases included.
const MAX_NODES: usize = 200_000;

/// A position in the file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Self {
        Mark {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub mark: Mark,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// Entries in file order: key, where the key was written, value.
    Map(Vec<(String, Mark, Node)>),
    Seq(Vec<Node>),
    /// `plain` is false for quoted and block (`|`, `>`) scalars.
    Scalar {
        value: String,
        plain: bool,
    },
    Null,
}

/// A problem found while reading the YAML, with its key path (`a.b[0].c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlIssue {
    pub mark: Mark,
    pub path: String,
    pub message: String,
}

/// Parses one YAML document. An empty file gives a `Null` root. A syntax error
/// stops parsing (one issue); duplicate keys are all collected.
pub fn parse(text: &str) -> Result<Node, Vec<YamlIssue>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        issues: Vec::new(),
        nodes: 0,
    };
    match b.document() {
        Ok(root) if b.issues.is_empty() => Ok(root),
        Ok(_) => Err(b.issues),
        Err(fatal) => {
            b.issues.push(fatal);
            Err(b.issues)
        }
    }
}

struct Builder<'a> {
    parser: Parser<Chars<'a>>,
    anchors: HashMap<usize, Node>,
    issues: Vec<YamlIssue>,
    nodes: usize,
}

fn issue(mark: Mark, path: &str, message: impl Into<String>) -> YamlIssue {
    YamlIssue {
        mark,
        path: path.to_string(),
        message: message.into(),
    }
}

/// `parent.key`, or `key` at the top.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Mark), YamlIssue> {
        match self.parser.next_token() {
            Ok((ev, m)) => Ok((ev, m.into())),
            Err(e) => Err(issue(
                (*e.marker()).into(),
                "",
                format!("YAML syntax error: {}", e.info()),
            )),
        }
    }

    fn document(&mut self) -> Result<Node, YamlIssue> {
        let root_mark = Mark { line: 1, col: 1 };
        let mut root = Node {
            kind: NodeKind::Null,
            mark: root_mark,
        };
        let mut docs = 0;
        loop {
            let (ev, mark) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(issue(mark, "", "only one YAML document per config file is supported (remove the extra `---`)"));
                    }
                    let (ev, mark) = self.next()?;
                    root = self.node(ev, mark, "", 0)?;
                }
                other => return Err(issue(mark, "", format!("unexpected YAML event {other:?}"))),
            }
        }
    }

    fn count(&mut self, n: usize, mark: Mark, path: &str) -> Result<(), YamlIssue> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(issue(
                mark,
                path,
                format!("document too large: more than {MAX_NODES} nodes (check aliases)"),
            ));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event, mark: Mark, path: &str, depth: usize) -> Result<Node, YamlIssue> {
        if depth > MAX_DEPTH {
            return Err(issue(
                mark,
                path,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(1, mark, path)?;
        let (node, anchor) = match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let mut plain = style == TScalarStyle::Plain;
                if let Some(tag) = tag {
                    let core = tag.handle == "!!" || tag.handle.starts_with("tag:yaml.org,2002");
                    if core && tag.suffix.ends_with("str") {
                        plain = false;
                    } else {
                        return Err(issue(
                            mark,
                            path,
                            format!("YAML tag `{}{}` is not supported", tag.handle, tag.suffix),
                        ));
                    }
                }
                let kind = if plain && is_null(&value) {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar { value, plain }
                };
                (Node { kind, mark }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag.is_some(), mark, path)?;
                let mut items = Vec::new();
                loop {
                    let (ev, m) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    let item_path = format!("{path}[{}]", items.len());
                    items.push(self.node(ev, m, &item_path, depth + 1)?);
                }
                (
                    Node {
                        kind: NodeKind::Seq(items),
                        mark,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag.is_some(), mark, path)?;
                (self.map(mark, path, depth)?, anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(issue(mark, path, "alias to an unknown anchor"));
                };
                self.count(size(&target), mark, path)?;
                return Ok(Node { mark, ..target });
            }
            other => {
                return Err(issue(
                    mark,
                    path,
                    format!("unexpected YAML event {other:?}"),
                ))
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn map(&mut self, mark: Mark, path: &str, depth: usize) -> Result<Node, YamlIssue> {
        let mut entries: Vec<(String, Mark, Node)> = Vec::new();
        let mut seen: HashMap<String, Mark> = HashMap::new();
        loop {
            let (ev, key_mark) = self.next()?;
            let key =
                match ev {
                    Event::MappingEnd => break,
                    Event::Scalar(value, ..) => value,
                    _ => return Err(issue(
                        key_mark,
                        path,
                        "only plain scalar keys are supported (no lists, maps or aliases as keys)",
                    )),
                };
            let key_path = join_key(path, &key);
            let (ev, m) = self.next()?;
            let value = self.node(ev, m, &key_path, depth + 1)?;
            if let Some(first) = seen.get(&key) {
                let msg = format!(
                    "duplicate key `{key}` (first defined at line {}, column {})",
                    first.line, first.col
                );
                self.issues.push(issue(key_mark, &key_path, msg));
                continue;
            }
            seen.insert(key.clone(), key_mark);
            entries.push((key, key_mark, value));
        }
        Ok(Node {
            kind: NodeKind::Map(entries),
            mark,
        })
    }
}

fn reject_tag(tagged: bool, mark: Mark, path: &str) -> Result<(), YamlIssue> {
    if tagged {
        return Err(issue(
            mark,
            path,
            "YAML tags on lists and maps are not supported",
        ));
    }
    Ok(())
}

fn size(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Map(e) => 1 + e.iter().map(|(_, _, v)| size(v)).sum::<usize>(),
        NodeKind::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core null: `~`, `null`, `Null`, `NULL` or nothing.
pub fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Result of [`interpolate`]: the text, whether any `${…}` or `$${` was
/// replaced, and one message per problem (missing variable, bad syntax).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    pub replaced: bool,
    pub errors: Vec<String>,
}

/// Expands `${NAME}` (error if unset), `${NAME:-default}` (default when unset
/// or empty) and `$${` (a literal `${`) in one pass: values and defaults are
/// not expanded again. A `$` not followed by `{` is kept as is.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Interpolated {
    let mut out = Interpolated::default();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.value.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.value.push_str("${");
            out.replaced = true;
            rest = tail;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let Some(end) = body_start.find('}') else {
                out.errors.push(format!(
                    "unterminated `${{` in `{text}` (write `$${{` for a literal `${{`)"
                ));
                out.value.push_str(&rest[i..]);
                return out;
            };
            let body = &body_start[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            out.replaced = true;
            if !valid_name(name) {
                out.errors.push(format!(
                    "invalid variable reference `${{{body}}}`: use `${{NAME}}` or `${{NAME:-default}}` with NAME made of letters, digits and `_`"
                ));
            } else {
                match (env(name), default) {
                    (Some(v), Some(d)) if v.is_empty() => out.value.push_str(d),
                    (Some(v), _) => out.value.push_str(&v),
                    (None, Some(d)) => out.value.push_str(d),
                    (None, None) => out.errors.push(format!(
                        "environment variable `{name}` is not set (set it, or write `${{{name}:-default}}`)"
                    )),
                }
            }
            rest = &body_start[end + 1..];
        } else {
            out.value.push('$');
            rest = after;
        }
    }
    out.value.push_str(rest);
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
