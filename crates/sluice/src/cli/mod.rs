//! The admin CLI: `sluice tenants|apps|keys|users|subscriptions|audit …`.
//! Every command is one admin API call, so the CLI obeys exactly the same
//! validation, RBAC and audit log as the HTTP API. It either talks to a
//! running gateway's admin listener (`--url` + `--admin-key`), or — for
//! scripts and first set-up, before any admin exists — opens the store
//! itself (`--config FILE` or `--store URL`) and serves the call in-process
//! as the bootstrap admin (recorded in the audit log as `cli:<user>`).

mod call;
mod commands;

pub use call::{run, Target};
pub use commands::Command;

/// One admin API request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: http::Method,
    /// Path and query, e.g. `/admin/keys?app_id=app_…`.
    pub path: String,
    pub body: Option<serde_json::Value>,
}
