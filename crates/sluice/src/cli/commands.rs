//! The CLI's commands and the admin API request each one makes.

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use super::{Request, Target};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Tenants: list, get, create, update, delete.
    Tenants {
        #[command(subcommand)]
        cmd: Tenants,
        #[command(flatten)]
        target: Target,
    },
    /// Apps of tenants.
    Apps {
        #[command(subcommand)]
        cmd: Apps,
        #[command(flatten)]
        target: Target,
    },
    /// API keys of apps: create (secret shown once), rotate, revoke.
    Keys {
        #[command(subcommand)]
        cmd: Keys,
        #[command(flatten)]
        target: Target,
    },
    /// Users, roles and their admin credentials.
    Users {
        #[command(subcommand)]
        cmd: Users,
        #[command(flatten)]
        target: Target,
    },
    /// Subscriptions of apps to models and APIs, and their approval.
    Subscriptions {
        #[command(subcommand)]
        cmd: Subscriptions,
        #[command(flatten)]
        target: Target,
    },
    /// The audit log of admin changes.
    Audit {
        #[command(flatten)]
        args: AuditArgs,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args, Debug, Default)]
pub struct Page {
    /// Page size (1–500).
    #[arg(long)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page.
    #[arg(long)]
    after: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Tenants {
    List {
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    Get {
        id: String,
    },
    Create {
        name: String,
        #[arg(long)]
        tier: Option<String>,
        /// A policy as JSON: a name, an inline policy, or a list.
        #[arg(long)]
        policy: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Apps {
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    Get {
        id: String,
    },
    Create {
        name: String,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Owner user id (a developer).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Keys {
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        include_revoked: bool,
        #[command(flatten)]
        page: Page,
    },
    Get {
        id: String,
    },
    /// Creates a key; prints its secret once.
    Create {
        name: String,
        /// App id.
        #[arg(long)]
        app: String,
        /// Models the key may use (comma separated).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// APIs the key may call (chat, messages, embeddings, models).
        #[arg(long, value_delimiter = ',')]
        apis: Option<Vec<String>>,
        /// RFC 3339 time or Unix ms.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
    /// Replaces a key; the old one keeps working for the overlap.
    Rotate {
        id: String,
        /// e.g. 1h (default 24h).
        #[arg(long)]
        overlap: Option<String>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Users {
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    Get {
        id: String,
    },
    /// Creates a user; with --credential also an admin credential (printed once).
    Create {
        name: String,
        /// admin | tenant_admin | developer | auditor
        #[arg(long)]
        role: String,
        /// Tenant id (tenant_admin, developer, tenant-scoped auditor).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        credential: bool,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        disabled: Option<bool>,
    },
    /// Creates an admin credential for a user; prints its secret once.
    Credential {
        id: String,
        /// e.g. 90d.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revokes an admin credential.
    RevokeCredential {
        credential_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Subscriptions {
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    Get {
        id: String,
    },
    /// Asks for access: TARGET is model:<name> or api:<name>.
    Request {
        target: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        note: Option<String>,
    },
    Approve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    Reject {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    Revoke {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// RFC 3339 time or Unix ms.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    #[command(flatten)]
    page: Page,
}

impl Command {
    /// Where the command acts.
    pub fn target(&self) -> &Target {
        match self {
            Command::Tenants { target, .. }
            | Command::Apps { target, .. }
            | Command::Keys { target, .. }
            | Command::Users { target, .. }
            | Command::Subscriptions { target, .. }
            | Command::Audit { target, .. } => target,
        }
    }

    /// The admin API calls this command makes, in order (a user created
    /// with `--credential` is two calls; the second uses the first's id).
    pub fn requests(&self) -> Result<Vec<Request>, String> {
        Ok(match self {
            Command::Tenants { cmd, .. } => vec![tenants(cmd)?],
            Command::Apps { cmd, .. } => vec![apps(cmd)?],
            Command::Keys { cmd, .. } => vec![keys(cmd)?],
            Command::Users { cmd, .. } => users(cmd),
            Command::Subscriptions { cmd, .. } => vec![subscriptions(cmd)],
            Command::Audit { args: a, .. } => vec![get(
                "/admin/audit",
                &[
                    ("tenant_id", a.tenant.as_deref()),
                    ("actor", a.actor.as_deref()),
                    ("action", a.action.as_deref()),
                    ("target_id", a.target.as_deref()),
                    ("since", a.since.as_deref()),
                    ("until", a.until.as_deref()),
                ],
                &a.page,
            )],
        })
    }
}

fn tenants(c: &Tenants) -> Result<Request, String> {
    Ok(match c {
        Tenants::List { name, page } => get("/admin/tenants", &[("name", name.as_deref())], page),
        Tenants::Get { id } => one(Method::GET, &format!("/admin/tenants/{id}"), None),
        Tenants::Create { name, tier, policy } => post(
            "/admin/tenants",
            body(&[
                ("name", Some(json!(name))),
                ("tier", tier.as_ref().map(|t| json!(t))),
                ("policy", policy_json(policy)?),
            ]),
        ),
        Tenants::Update {
            id,
            name,
            tier,
            policy,
        } => one(
            Method::PATCH,
            &format!("/admin/tenants/{id}"),
            Some(body(&[
                ("name", name.as_ref().map(|n| json!(n))),
                ("tier", tier.as_ref().map(|t| json!(t))),
                ("policy", policy_json(policy)?),
            ])),
        ),
        Tenants::Delete { id } => one(Method::DELETE, &format!("/admin/tenants/{id}"), None),
    })
}

fn apps(c: &Apps) -> Result<Request, String> {
    Ok(match c {
        Apps::List {
            tenant,
            owner,
            name,
            page,
        } => get(
            "/admin/apps",
            &[
                ("tenant_id", tenant.as_deref()),
                ("owner_user_id", owner.as_deref()),
                ("name", name.as_deref()),
            ],
            page,
        ),
        Apps::Get { id } => one(Method::GET, &format!("/admin/apps/{id}"), None),
        Apps::Create {
            name,
            tenant,
            owner,
            policy,
        } => post(
            "/admin/apps",
            body(&[
                ("tenant_id", Some(json!(tenant))),
                ("name", Some(json!(name))),
                ("owner_user_id", owner.as_ref().map(|o| json!(o))),
                ("policy", policy_json(policy)?),
            ]),
        ),
        Apps::Update {
            id,
            name,
            owner,
            policy,
        } => one(
            Method::PATCH,
            &format!("/admin/apps/{id}"),
            Some(body(&[
                ("name", name.as_ref().map(|n| json!(n))),
                ("owner_user_id", owner.as_ref().map(|o| json!(o))),
                ("policy", policy_json(policy)?),
            ])),
        ),
        Apps::Delete { id } => one(Method::DELETE, &format!("/admin/apps/{id}"), None),
    })
}

fn keys(c: &Keys) -> Result<Request, String> {
    Ok(match c {
        Keys::List {
            tenant,
            app,
            include_revoked,
            page,
        } => get(
            "/admin/keys",
            &[
                ("tenant_id", tenant.as_deref()),
                ("app_id", app.as_deref()),
                ("include_revoked", include_revoked.then_some("true")),
            ],
            page,
        ),
        Keys::Get { id } => one(Method::GET, &format!("/admin/keys/{id}"), None),
        Keys::Create {
            name,
            app,
            models,
            apis,
            expires_at,
            policy,
        } => {
            let scopes = match (models, apis) {
                (None, None) => None,
                (m, a) => Some(body(&[
                    ("models", m.as_ref().map(|m| json!(m))),
                    ("apis", a.as_ref().map(|a| json!(a))),
                ])),
            };
            post(
                "/admin/keys",
                body(&[
                    ("app_id", Some(json!(app))),
                    ("name", Some(json!(name))),
                    ("scopes", scopes),
                    ("expires_at", expires_at.as_ref().map(|e| json!(e))),
                    ("policy", policy_json(policy)?),
                ]),
            )
        }
        Keys::Rotate { id, overlap } => post(
            &format!("/admin/keys/{id}/rotate"),
            body(&[("overlap", overlap.as_ref().map(|o| json!(o)))]),
        ),
        Keys::Revoke { id } => one(Method::POST, &format!("/admin/keys/{id}/revoke"), None),
    })
}

fn users(c: &Users) -> Vec<Request> {
    match c {
        Users::List { tenant, role, page } => vec![get(
            "/admin/users",
            &[("tenant_id", tenant.as_deref()), ("role", role.as_deref())],
            page,
        )],
        Users::Get { id } => vec![one(Method::GET, &format!("/admin/users/{id}"), None)],
        Users::Create {
            name,
            role,
            tenant,
            credential,
        } => {
            let mut out = vec![post(
                "/admin/users",
                body(&[
                    ("name", Some(json!(name))),
                    ("role", Some(json!(role))),
                    ("tenant_id", tenant.as_ref().map(|t| json!(t))),
                ]),
            )];
            if *credential {
                // `{id}` is filled from the created user.
                out.push(post("/admin/users/{id}/credentials", json!({})));
            }
            out
        }
        Users::Update {
            id,
            name,
            role,
            disabled,
        } => vec![one(
            Method::PATCH,
            &format!("/admin/users/{id}"),
            Some(body(&[
                ("name", name.as_ref().map(|n| json!(n))),
                ("role", role.as_ref().map(|r| json!(r))),
                ("disabled", disabled.map(|d| json!(d))),
            ])),
        )],
        Users::Credential { id, expires_in } => vec![post(
            &format!("/admin/users/{id}/credentials"),
            body(&[("expires_in", expires_in.as_ref().map(|e| json!(e)))]),
        )],
        Users::RevokeCredential { credential_id } => {
            vec![one(
                Method::POST,
                &format!("/admin/credentials/{credential_id}/revoke"),
                None,
            )]
        }
    }
}

fn subscriptions(c: &Subscriptions) -> Request {
    let decide = |id: &str, verb: &str, note: &Option<String>| {
        post(
            &format!("/admin/subscriptions/{id}/{verb}"),
            body(&[("note", note.as_ref().map(|n| json!(n)))]),
        )
    };
    match c {
        Subscriptions::List {
            tenant,
            app,
            state,
            page,
        } => get(
            "/admin/subscriptions",
            &[
                ("tenant_id", tenant.as_deref()),
                ("app_id", app.as_deref()),
                ("state", state.as_deref()),
            ],
            page,
        ),
        Subscriptions::Get { id } => one(Method::GET, &format!("/admin/subscriptions/{id}"), None),
        Subscriptions::Request { target, app, note } => post(
            "/admin/subscriptions",
            body(&[
                ("app_id", Some(json!(app))),
                ("target", Some(json!(target))),
                ("note", note.as_ref().map(|n| json!(n))),
            ]),
        ),
        Subscriptions::Approve { id, note } => decide(id, "approve", note),
        Subscriptions::Reject { id, note } => decide(id, "reject", note),
        Subscriptions::Revoke { id, note } => decide(id, "revoke", note),
    }
}

fn one(method: Method, path: &str, body: Option<Value>) -> Request {
    Request {
        method,
        path: path.to_owned(),
        body,
    }
}

fn post(path: &str, body: Value) -> Request {
    one(Method::POST, path, Some(body))
}

/// A GET with the given filters and paging, percent-encoded.
fn get(path: &str, filters: &[(&str, Option<&str>)], page: &Page) -> Request {
    let limit = page.limit.map(|l| l.to_string());
    let mut pairs: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    pairs.extend(limit.as_deref().map(|l| ("limit", l)));
    pairs.extend(page.after.as_deref().map(|a| ("after", a)));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    one(Method::GET, &path, None)
}

/// A JSON object of the fields that are set.
fn body(fields: &[(&str, Option<Value>)]) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect();
    Value::Object(map)
}

/// `--policy` takes JSON; a bare word is a policy name.
fn policy_json(p: &Option<String>) -> Result<Option<Value>, String> {
    p.as_deref()
        .map(|s| {
            serde_json::from_str(s).or_else(|e| {
                if s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    Ok(json!(s))
                } else {
                    Err(format!("--policy is not JSON: {e}"))
                }
            })
        })
        .transpose()
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_admin_calls() {
        let t = || Target {
            url: None,
            admin_key: None,
            config: None,
            store: None,
        };
        let c = Command::Keys {
            target: t(),
            cmd: Keys::Create {
                name: "ci".into(),
                app: "app_1".into(),
                models: Some(vec!["a".into(), "b".into()]),
                apis: None,
                expires_at: None,
                policy: Some("small".into()),
            },
        };
        let r = &c.requests().unwrap()[0];
        assert_eq!(
            (r.method.clone(), r.path.as_str()),
            (Method::POST, "/admin/keys")
        );
        assert_eq!(
            r.body,
            Some(
                json!({"app_id": "app_1", "name": "ci", "scopes": {"models": ["a", "b"]}, "policy": "small"})
            )
        );
        let l = Command::Apps {
            target: t(),
            cmd: Apps::List {
                tenant: Some("t 1&x".into()),
                owner: None,
                name: None,
                page: Page {
                    limit: Some(5),
                    after: None,
                },
            },
        };
        assert_eq!(
            l.requests().unwrap()[0].path,
            "/admin/apps?tenant_id=t%201%26x&limit=5"
        );
        let u = Command::Users {
            target: t(),
            cmd: Users::Create {
                name: "root".into(),
                role: "admin".into(),
                tenant: None,
                credential: true,
            },
        };
        let calls = u.requests().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].path, "/admin/users/{id}/credentials");
        let bad = Command::Tenants {
            target: t(),
            cmd: Tenants::Create {
                name: "t".into(),
                tier: None,
                policy: Some("{oops".into()),
            },
        };
        assert!(bad.requests().unwrap_err().contains("--policy is not JSON"));
    }
}
