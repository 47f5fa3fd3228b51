//! Hostile input against the admin API, on SQLite and Postgres: SQL
//! injection strings in every field, query parameter, path id and the
//! Authorization header (4xx or stored literally, tables intact, never a
//! 500); oversized and malformed bodies; public API keys as admin
//! credentials; and canary secrets that must never show up again — not in
//! responses, the audit log, `/metrics` nor the logs.

mod admin_support;
mod common;

use std::io::Write;
use std::sync::{Mutex, Once};

use admin_support::{run, Backend, Env, World, PUBLIC_KEY};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

both_backends!(
    sql_injection_in_bodies_is_stored_literally,
    sql_injection_in_queries_paths_and_headers_is_harmless,
    oversized_and_malformed_bodies,
    api_keys_are_not_admin_credentials,
    canary_secrets_never_reappear,
);

const NASTY: &[&str] = &[
    "' OR '1'='1",
    "x'); DROP TABLE tenants;--",
    "\"; DELETE FROM api_keys; --",
    "100% _match_ \\ back\\slash",
    "1; UPDATE users SET role='admin' WHERE 1=1; --",
    "$1 $$ ${x} \u{202e}",
];

/// Percent-encodes everything but letters and digits.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

async fn sql_injection_in_bodies_is_stored_literally(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let admin = w.secret("admin");
        let tenant = env
            .ok("/admin/tenants", json!({"name": "plain"}))
            .await
            .id();
        let sub = w.subs["a2"].clone();
        let mut literal = Vec::new();
        for (i, nasty) in NASTY.iter().enumerate() {
            let fresh = env
                .ok(
                    "/admin/apps",
                    json!({"tenant_id": w.tenant_a, "name": format!("inj{i}")}),
                )
                .await
                .id();
            // (where to send it, the body, the field to read back, where to read it)
            let tries: Vec<(&str, String, Value, &str)> = vec![
                (
                    "POST",
                    "/admin/tenants".into(),
                    json!({"name": nasty}),
                    "name",
                ),
                (
                    "POST",
                    "/admin/tenants".into(),
                    json!({"name": format!("t{i}"), "tier": nasty}),
                    "tier",
                ),
                (
                    "PATCH",
                    format!("/admin/tenants/{tenant}"),
                    json!({"tier": nasty}),
                    "tier",
                ),
                (
                    "POST",
                    "/admin/apps".into(),
                    json!({"tenant_id": w.tenant_a, "name": nasty}),
                    "name",
                ),
                (
                    "PATCH",
                    format!("/admin/apps/{}", w.apps["a1"]),
                    json!({"name": nasty}),
                    "name",
                ),
                (
                    "POST",
                    "/admin/keys".into(),
                    json!({"app_id": w.apps["a1"], "name": nasty}),
                    "name",
                ),
                (
                    "POST",
                    "/admin/users".into(),
                    json!({"name": nasty, "role": "auditor"}),
                    "name",
                ),
                (
                    "POST",
                    "/admin/subscriptions".into(),
                    json!({"app_id": fresh, "target": "api:chat", "note": nasty}),
                    "note",
                ),
                (
                    "POST",
                    format!("/admin/subscriptions/{sub}/reject"),
                    json!({"note": nasty}),
                    "note",
                ),
            ];
            for (method, path, body, field) in tries {
                let a = env
                    .call(method, &path, Some(admin), Some(body.clone()))
                    .await;
                match a.status {
                    200 | 201 => {
                        assert_eq!(
                            a.body[field].as_str(),
                            Some(*nasty),
                            "{path} {body}: {}",
                            a.text
                        );
                        let kind = path.split('/').nth(2).unwrap();
                        let got = env.get(&format!("/admin/{kind}/{}", a.id()), admin).await;
                        assert_eq!(
                            got.body[field].as_str(),
                            Some(*nasty),
                            "read back: {}",
                            got.text
                        );
                        literal.push(field);
                    }
                    400..=499 => {}
                    s => panic!("{path} {body}: {s} {}", a.text),
                }
            }
            // Re-open the rejected subscription for the next round.
            env.ok(
                "/admin/subscriptions",
                json!({"app_id": w.apps["a2"], "target": "model:m1"}),
            )
            .await;
            let (rotate, creds) = (
                format!("/admin/keys/{}/rotate", w.keys["a2"]),
                format!("/admin/users/{}/credentials", w.users["aud"]),
            );
            let rejected: Vec<(&str, Value)> = vec![
                ("/admin/keys", json!({"app_id": nasty, "name": "x"})),
                ("/admin/apps", json!({"tenant_id": nasty, "name": "x"})),
                ("/admin/users", json!({"name": "x", "role": nasty})),
                (
                    "/admin/users",
                    json!({"name": format!("u{i}"), "role": "developer", "tenant_id": nasty}),
                ),
                (
                    "/admin/subscriptions",
                    json!({"app_id": w.apps["a1"], "target": nasty}),
                ),
                (
                    "/admin/subscriptions",
                    json!({"app_id": nasty, "target": "api:chat"}),
                ),
                (
                    "/admin/keys",
                    json!({"app_id": w.apps["a1"], "name": "x", "scopes": {"models": [nasty]}}),
                ),
                (
                    "/admin/keys",
                    json!({"app_id": w.apps["a1"], "name": "x", "policy": nasty}),
                ),
                (
                    "/admin/keys",
                    json!({"app_id": w.apps["a1"], "name": "x", "expires_at": nasty}),
                ),
                (&rotate, json!({"overlap": nasty})),
                (&creds, json!({"expires_in": nasty})),
            ];
            for (path, body) in rejected {
                let a = env.post(path, admin, body.clone()).await;
                assert!((400..500).contains(&a.status), "{path} {body}: {}", a.text);
            }
        }
        assert!(
            literal.contains(&"note") && literal.contains(&"tier"),
            "free text is stored literally"
        );
        tables_survive(&env, &w).await;
    })
    .await
}

/// Everything the world created is still there, and lists work.
async fn tables_survive(env: &Env, w: &World) {
    let admin = w.secret("admin");
    for path in [
        format!("/admin/tenants/{}", w.tenant_a),
        format!("/admin/apps/{}", w.apps["b"]),
        format!("/admin/keys/{}", w.keys["b"]),
        format!("/admin/users/{}", w.users["dev_b"]),
        format!("/admin/subscriptions/{}", w.subs["b"]),
    ] {
        assert_eq!(env.get(&path, admin).await.status, 200, "{path}");
    }
    for path in [
        "/admin/tenants",
        "/admin/apps",
        "/admin/keys",
        "/admin/users",
        "/admin/subscriptions",
        "/admin/audit",
    ] {
        let a = env.get(&format!("{path}?limit=500"), admin).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(!a.ids().is_empty(), "{path} is empty");
    }
    let me = env.get("/admin/users/me", w.secret("dev_b")).await;
    assert_eq!(me.body["role"], "developer", "no role was changed");
    let admins = env.get("/admin/users?role=admin", admin).await.ids();
    assert_eq!(admins, vec![w.users["admin2"].clone()]);
}

async fn sql_injection_in_queries_paths_and_headers_is_harmless(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let admin = w.secret("admin");
        for nasty in NASTY {
            let e = enc(nasty);
            for path in [
                "/admin/tenants",
                "/admin/apps",
                "/admin/keys",
                "/admin/users",
                "/admin/subscriptions",
                "/admin/audit",
            ] {
                for param in [
                    "tenant_id",
                    "app_id",
                    "owner_user_id",
                    "name",
                    "after",
                    "actor",
                    "action",
                    "target_id",
                ] {
                    let a = env.get(&format!("{path}?{param}={e}"), admin).await;
                    assert!(
                        a.status == 200 || a.status == 400,
                        "{path}?{param}: {}",
                        a.text
                    );
                    if a.status == 200 && param != "name" {
                        assert!(
                            a.ids().is_empty() || param == "after",
                            "{path}?{param}={nasty} matched: {}",
                            a.text
                        );
                    }
                }
                for param in [
                    "limit",
                    "since",
                    "until",
                    "role",
                    "state",
                    "include_revoked",
                    "include_disabled",
                ] {
                    let a = env.get(&format!("{path}?{param}={e}"), admin).await;
                    assert_eq!(a.status, 400, "{path}?{param}={nasty}: {}", a.text);
                }
            }
            let by_name = env.get(&format!("/admin/tenants?name={e}"), admin).await;
            assert_eq!(by_name.status, 200);
            assert!(
                by_name.body["data"].as_array().unwrap().is_empty(),
                "`{nasty}` matched a tenant: {}",
                by_name.text
            );
            for path in [
                "/admin/tenants/{}",
                "/admin/apps/{}",
                "/admin/keys/{}",
                "/admin/users/{}",
                "/admin/subscriptions/{}",
                "/admin/users/{}/credentials",
            ] {
                let a = env.get(&path.replace("{}", &e), admin).await;
                assert_eq!(a.status, 404, "{path} {nasty}: {}", a.text);
            }
            for path in [
                "/admin/keys/{}/revoke",
                "/admin/keys/{}/rotate",
                "/admin/credentials/{}/revoke",
                "/admin/subscriptions/{}/approve",
            ] {
                let a = env.post(&path.replace("{}", &e), admin, json!({})).await;
                assert_eq!(a.status, 404, "{path} {nasty}: {}", a.text);
            }
            for header in ["authorization", "x-api-key"] {
                for value in [
                    nasty.to_string(),
                    format!("Bearer {nasty}"),
                    format!("sa-sluice-{nasty}"),
                ] {
                    let a = env
                        .raw("GET", "/admin/tenants", Some((header, value.clone())), None)
                        .await;
                    assert_eq!(a.status, 401, "{header}: {value}: {}", a.text);
                }
            }
        }
        // LIKE wildcards in a name filter are literal characters.
        for wild in ["%", "_", "%25", "tenant_a"] {
            let a = env
                .get(&format!("/admin/tenants?name={}", enc(wild)), admin)
                .await;
            assert!(a.ids().is_empty(), "name={wild} matched: {}", a.text);
        }
        let long = env
            .raw(
                "GET",
                "/admin/tenants",
                Some((
                    "authorization",
                    format!("Bearer sa-sluice-{}", "A".repeat(8000)),
                )),
                None,
            )
            .await;
        assert!(long.status == 401 || long.status == 431, "{}", long.text);
        tables_survive(&env, &w).await;
    })
    .await
}

async fn oversized_and_malformed_bodies(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let auth = || Some(("authorization", format!("Bearer {}", w.secret("admin"))));
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(65 * 1024));
        let a = env
            .raw("POST", "/admin/tenants", auth(), Some(big.clone()))
            .await;
        assert_eq!(a.status, 413, "{}", a.text);
        assert!(a.message().contains("64 KiB"), "{}", a.text);
        // Without a Content-Length (chunked), the limit holds as well.
        let chunks: Vec<Result<String, std::io::Error>> = big
            .as_bytes()
            .chunks(4096)
            .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
            .collect();
        let resp = common::TestGateway::client()
            .post(format!("{}/admin/tenants", env.admin))
            .bearer_auth(w.secret("admin"))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);

        let cases: &[(&str, &str)] = &[
            ("{\"name\": ", "line 1 column"),
            ("{\n  \"name\": \"x\",\n  ]\n}", "line 3 column"),
            ("{\"name\": 5}", "invalid type"),
            ("[1, 2]", "expected"),
            ("null", "expected"),
            ("", "empty"),
            ("\u{feff}{}", "JSON"),
        ];
        for (body, want) in cases {
            let a = env
                .raw("POST", "/admin/tenants", auth(), Some((*body).to_owned()))
                .await;
            assert_eq!(a.status, 400, "{body:?}: {}", a.text);
            assert!(a.message().contains(want), "{body:?} → {}", a.text);
        }
        let deep = format!("{{\"name\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(
            env.raw("POST", "/admin/tenants", auth(), Some(deep))
                .await
                .status,
            400
        );
        let bytes = reqwest::Body::from(vec![b'{', 0xff, 0xfe, b'}']);
        let resp = common::TestGateway::client()
            .post(format!("{}/admin/apps", env.admin))
            .bearer_auth(w.secret("admin"))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let patch = env
            .raw(
                "PATCH",
                &format!("/admin/keys/{}", w.keys["a1"]),
                auth(),
                Some("{\"name\": [}".into()),
            )
            .await;
        assert_eq!(patch.status, 400);
        let wrong = env
            .raw("PUT", "/admin/tenants", auth(), Some("{}".into()))
            .await;
        assert_eq!(wrong.status, 405);
        tables_survive(&env, &w).await;
    })
    .await
}

async fn api_keys_are_not_admin_credentials(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let key = env
            .ok(
                "/admin/keys",
                json!({"app_id": w.apps["a1"], "name": "pub"}),
            )
            .await;
        let store_key = key.body["secret"].as_str().unwrap().to_owned();
        for secret in [PUBLIC_KEY, store_key.as_str()] {
            for path in [
                "/admin/tenants",
                "/admin/status",
                "/admin/users/me",
                "/admin/audit",
            ] {
                let a = env.get(path, secret).await;
                assert_eq!(a.status, 401, "{path}: {}", a.text);
                assert_eq!(a.body["error"]["code"], "invalid_api_key");
            }
            let r = env.call("POST", "/admin/reload", Some(secret), None).await;
            assert_eq!(r.status, 401);
            let x = env
                .raw(
                    "GET",
                    "/admin/tenants",
                    Some(("x-api-key", secret.to_owned())),
                    None,
                )
                .await;
            assert_eq!(x.status, 401);
        }
        let missing = env.call("GET", "/admin/tenants", None, None).await;
        assert!(
            missing.message().contains("missing admin credential"),
            "{}",
            missing.text
        );
        for who in ["ta_a", "dev_a", "aud", "aud_a"] {
            assert_eq!(
                env.get("/admin/status", w.secret(who)).await.status,
                403,
                "{who}"
            );
            assert_eq!(
                env.call("POST", "/admin/reload", Some(w.secret(who)), None)
                    .await
                    .status,
                403,
                "{who}"
            );
        }
        let x = env
            .raw(
                "GET",
                "/admin/users/me",
                Some(("x-api-key", w.secret("dev_a").to_owned())),
                None,
            )
            .await;
        assert_eq!(x.status, 200, "x-api-key carries admin credentials too");
    })
    .await
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of this test binary (debug and up) to [`LOGS`].
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(|| Capture)
            .try_init();
    });
}

async fn canary_secrets_never_reappear(b: Backend) {
    capture_logs();
    run(b, |env| async move {
        let w = World::build(&env).await;
        let admin = w.secret("admin");
        tracing::error!("canary capture check");
        let key = env
            .ok(
                "/admin/keys",
                json!({"app_id": w.apps["a1"], "name": "canary"}),
            )
            .await;
        let cred = env
            .ok(
                &format!("/admin/users/{}/credentials", w.users["aud"]),
                json!({}),
            )
            .await;
        let rotated = env
            .post(
                &format!("/admin/keys/{}/rotate", key.id()),
                admin,
                json!({"overlap": "1m"}),
            )
            .await;
        let secrets: Vec<String> = [&key, &cred, &rotated]
            .iter()
            .map(|a| a.body["secret"].as_str().unwrap().to_owned())
            .collect();
        let (key_s, cred_s) = (&secrets[0], &secrets[1]);

        // Failures of every kind, with the canaries as credentials.
        for s in [
            key_s.as_str(),
            &format!("{cred_s}x"),
            &format!("Bearer {cred_s}"),
        ] {
            env.get("/admin/tenants", s).await;
            env.raw(
                "POST",
                "/admin/reload",
                Some(("x-api-key", s.to_owned())),
                None,
            )
            .await;
        }
        env.post("/admin/tenants", cred_s, json!({"name": "nope"}))
            .await;
        env.get(&format!("/admin/apps/{}", w.apps["b"]), cred_s)
            .await;
        env.raw(
            "POST",
            "/admin/keys",
            Some(("authorization", format!("Bearer {cred_s}"))),
            Some("{bad".into()),
        )
        .await;
        env.post(
            &format!("/admin/keys/{}/revoke", key.id()),
            admin,
            json!({}),
        )
        .await;
        env.get(&format!("/admin/keys/{}", key.id()), admin).await;
        env.get(
            &format!("/admin/keys?app_id={}&include_revoked=true", w.apps["a1"]),
            admin,
        )
        .await;
        env.get(
            &format!("/admin/users/{}/credentials", w.users["aud"]),
            cred_s,
        )
        .await;
        env.post(
            &format!("/admin/credentials/{}/revoke", cred.id()),
            admin,
            json!({}),
        )
        .await;
        env.get("/admin/users/me", cred_s).await;
        env.get("/admin/tenants", key_s).await;

        let mut audit = String::new();
        let mut after = String::new();
        loop {
            let a = env
                .get(&format!("/admin/audit?limit=100{after}"), admin)
                .await;
            assert_eq!(a.status, 200);
            audit.push_str(&a.text);
            match a.body["next"].as_str() {
                Some(n) => after = format!("&after={n}"),
                None => break,
            }
        }
        assert!(
            audit.contains(&key.id()) && audit.contains(&cred.id()),
            "the audit log records both"
        );
        let metrics = env.call("GET", "/metrics", None, None).await.text;
        let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
        assert!(logs.contains("canary capture check"), "log capture works");
        let seen = env.seen.lock().unwrap().clone();
        for s in &secrets {
            let hash = hex::encode(Sha256::digest(s.as_bytes()));
            let shown = seen.iter().filter(|body| body.contains(s.as_str())).count();
            assert_eq!(shown, 1, "a secret is shown exactly once (at creation)");
            assert!(
                !seen.iter().any(|body| body.contains(&hash)),
                "a secret's hash was in a response"
            );
            for (what, text) in [
                ("audit log", &audit),
                ("metrics", &metrics),
                ("logs", &logs),
            ] {
                assert!(!text.contains(s.as_str()), "a secret is in the {what}");
                assert!(!text.contains(&hash), "a secret's hash is in the {what}");
            }
        }
    })
    .await
}
