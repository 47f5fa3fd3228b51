//! Shared harness of the admin API suites: a real gateway (admin listener,
//! `admin_key`, a store) on a fresh database (`common::db`) — plus an HTTP client that records every answer, and a
//! two-tenant world of users, apps, keys and subscriptions.
#![allow(dead_code, reason = "each admin suite uses a different subset")]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::common::{TestGateway, ADMIN_KEY};

/// The public API key of the config (never an admin credential).
pub const PUBLIC_KEY: &str = "sk-test-key-0001";

pub use crate::common::db::Backend;
use crate::common::db::FreshStore;

/// The gateway config for a store URL.
pub fn config(store: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_key: {ADMIN_KEY}
store: "{store}"
providers:
  mock: {{ kind: mock }}
models:
  m1: {{ deployments: [ {{ provider: mock, model: m1 }} ] }}
  m2: {{ deployments: [ {{ provider: mock, model: m2 }} ] }}
policies:
  small: {{ limits: {{ max_output_tokens: 5 }} }}
tenants:
  seeded: {{ tier: gold }}
keys:
  - {{ name: test, key: {PUBLIC_KEY} }}
"#
    )
}

/// Runs `body` against a fresh gateway + database (a Postgres schema is
/// dropped afterwards, also when the body panics).
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    crate::common::db::cleanup_after(async move {
        let db = FreshStore::new(backend).await;
        let gw = TestGateway::start(&config(&db.url)).await;
        body(Env::new(gw)).await;
    })
    .await;
}

/// An HTTP answer: status and body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_owned()
    }
    pub fn ids(&self) -> Vec<String> {
        let data = self.body["data"].as_array().expect("a list");
        data.iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A gateway plus an admin client that keeps every response body.
pub struct Env {
    pub gw: TestGateway,
    pub admin: String,
    pub seen: Mutex<Vec<String>>,
}

impl Env {
    pub fn new(gw: TestGateway) -> Env {
        let admin = gw.admin_url.clone().expect("admin_listen");
        Env {
            gw,
            admin,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Sends a request; `auth` goes in `Authorization: Bearer`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let raw = body.map(|b| b.to_string());
        self.raw(
            method,
            path,
            auth.map(|a| ("authorization", format!("Bearer {a}"))),
            raw,
        )
        .await
    }

    /// Sends a request with any header and a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        header: Option<(&str, String)>,
        body: Option<String>,
    ) -> Answer {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = TestGateway::client().request(method, format!("{}{path}", self.admin));
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("the admin listener answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        self.seen.lock().unwrap().push(text.clone());
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        assert_ne!(status, 500, "{path}: 500 {text}");
        Answer { status, body, text }
    }

    pub async fn get(&self, path: &str, auth: &str) -> Answer {
        self.call("GET", path, Some(auth), None).await
    }
    pub async fn post(&self, path: &str, auth: &str, body: Value) -> Answer {
        self.call("POST", path, Some(auth), Some(body)).await
    }
    pub async fn patch(&self, path: &str, auth: &str, body: Value) -> Answer {
        self.call("PATCH", path, Some(auth), Some(body)).await
    }

    /// POSTs as the config admin and expects `status`.
    pub async fn ok(&self, path: &str, body: Value) -> Answer {
        let a = self.post(path, ADMIN_KEY, body).await;
        assert!(
            a.status == 201 || a.status == 200,
            "{path}: {} {}",
            a.status,
            a.text
        );
        a
    }
}

/// Two tenants and a user of each role, with their credentials; an app,
/// a key and a subscription per developer.
pub struct World {
    pub tenant_a: String,
    pub tenant_b: String,
    /// Name → credential secret (`admin` is the config's admin key).
    pub secrets: HashMap<&'static str, String>,
    /// Name → user id.
    pub users: HashMap<&'static str, String>,
    /// Name → credential id.
    pub creds: HashMap<&'static str, String>,
    /// `a1` (dev_a's), `a2` (dev_a2's), `b` (dev_b's) → app id, key id, subscription id.
    pub apps: HashMap<&'static str, String>,
    pub keys: HashMap<&'static str, String>,
    pub subs: HashMap<&'static str, String>,
    /// `a1`, `a2`, `b` → the key's secret (for calls to the public API).
    pub key_secrets: HashMap<&'static str, String>,
}

/// (name, role, tenant A/B/none)
const PEOPLE: &[(&str, &str, Option<char>)] = &[
    ("admin2", "admin", None),
    ("ta_a", "tenant_admin", Some('A')),
    ("dev_a", "developer", Some('A')),
    ("dev_a2", "developer", Some('A')),
    ("aud", "auditor", None),
    ("aud_a", "auditor", Some('A')),
    ("ta_b", "tenant_admin", Some('B')),
    ("dev_b", "developer", Some('B')),
];

impl World {
    pub async fn build(env: &Env) -> World {
        let tenant_a = env
            .ok("/admin/tenants", json!({"name": "tenant-a"}))
            .await
            .id();
        let tenant_b = env
            .ok("/admin/tenants", json!({"name": "tenant-b"}))
            .await
            .id();
        let mut w = World {
            tenant_a,
            tenant_b,
            secrets: HashMap::from([("admin", ADMIN_KEY.to_owned())]),
            users: HashMap::new(),
            creds: HashMap::new(),
            apps: HashMap::new(),
            keys: HashMap::new(),
            subs: HashMap::new(),
            key_secrets: HashMap::new(),
        };
        for (name, role, tenant) in PEOPLE {
            let tenant_id = tenant.map(|t| w.tenant(t));
            let body = json!({"name": name, "role": role, "tenant_id": tenant_id});
            let id = env.ok("/admin/users", body).await.id();
            let cred = env
                .ok(&format!("/admin/users/{id}/credentials"), json!({}))
                .await;
            w.secrets
                .insert(name, cred.body["secret"].as_str().unwrap().to_owned());
            w.creds.insert(name, cred.id());
            w.users.insert(name, id);
        }
        for (app, dev, tenant) in [
            ("a1", "dev_a", 'A'),
            ("a2", "dev_a2", 'A'),
            ("b", "dev_b", 'B'),
        ] {
            let body = json!({"tenant_id": w.tenant(tenant), "name": format!("app-{app}"), "owner_user_id": w.users[dev]});
            let app_id = env.ok("/admin/apps", body).await.id();
            let key = env
                .ok(
                    "/admin/keys",
                    json!({"app_id": app_id, "name": format!("key-{app}")}),
                )
                .await;
            let sub = env
                .ok(
                    "/admin/subscriptions",
                    json!({"app_id": app_id, "target": "model:m1"}),
                )
                .await;
            w.keys.insert(app, key.id());
            w.key_secrets
                .insert(app, key.body["secret"].as_str().unwrap().to_owned());
            w.subs.insert(app, sub.id());
            w.apps.insert(app, app_id);
        }
        w
    }

    pub fn tenant(&self, t: char) -> String {
        match t {
            'A' => self.tenant_a.clone(),
            _ => self.tenant_b.clone(),
        }
    }

    pub fn secret(&self, who: &str) -> &str {
        &self.secrets[who]
    }
}
