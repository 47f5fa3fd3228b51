//! The admin API end to end over real sockets, on SQLite and on Postgres:
//! CRUD, pagination and filters of every entity; key secrets shown once;
//! rotation and revocation; admin credentials; subscriptions; the audit
//! log; status and reload; the OpenAPI document; the store-less gateway.

mod admin_support;
mod common;

use admin_support::{run, Backend, Env, World};
use common::{TestGateway, ADMIN_KEY};
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;

both_backends!(
    tenants_crud_pagination_and_filters,
    apps_crud_and_filters,
    keys_show_the_secret_once_rotate_and_revoke,
    users_and_credentials,
    subscriptions_flow,
    audit_log_records_changes,
    last_admin_and_self_changes,
);

async fn tenants_crud_pagination_and_filters(b: Backend) {
    run(b, |env| async move {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                env.ok(
                    "/admin/tenants",
                    json!({"name": format!("acme-{i}"), "tier": "gold"}),
                )
                .await
                .id(),
            );
        }
        // Pages of 2 walk all of them in order, then `next` is null.
        let (mut seen, mut after) = (Vec::new(), String::new());
        loop {
            let a = env
                .get(&format!("/admin/tenants?limit=2&name=acme{after}"), ADMIN)
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            assert!(a.body["data"].as_array().unwrap().len() <= 2);
            seen.extend(a.ids());
            match a.body["next"].as_str() {
                Some(n) => after = format!("&after={n}"),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        let a = env.get("/admin/tenants?name=ACME-3", ADMIN).await;
        assert_eq!(
            a.ids(),
            vec![ids[3].clone()],
            "name filter is a case-insensitive substring"
        );
        assert_eq!(env.get("/admin/tenants?limit=0", ADMIN).await.status, 400);
        assert_eq!(env.get("/admin/tenants?limit=501", ADMIN).await.status, 400);
        assert_eq!(env.get("/admin/tenants?bogus=1", ADMIN).await.status, 400);

        let t = env.get(&format!("/admin/tenants/{}", ids[0]), ADMIN).await;
        assert_eq!(
            (t.status, t.body["name"].as_str(), t.body["source"].as_str()),
            (200, Some("acme-0"), Some("store"))
        );
        let p = env
            .patch(
                &format!("/admin/tenants/{}", ids[0]),
                ADMIN,
                json!({"name": "renamed", "tier": null, "policy": "small"}),
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text);
        assert_eq!(
            (p.body["name"].as_str(), &p.body["tier"], &p.body["policy"]),
            (Some("renamed"), &Value::Null, &json!("small"))
        );
        let bad = env
            .patch(
                &format!("/admin/tenants/{}", ids[0]),
                ADMIN,
                json!({"policy": "no-such-policy"}),
            )
            .await;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.message().contains("no-such-policy"), "{}", bad.text);
        let inline = json!({"limits": {"max_output_tokens": 7}});
        assert_eq!(
            env.patch(
                &format!("/admin/tenants/{}", ids[1]),
                ADMIN,
                json!({"policy": inline})
            )
            .await
            .status,
            200
        );
        let dup = env
            .post("/admin/tenants", ADMIN, json!({"name": "acme-1"}))
            .await;
        assert_eq!(dup.status, 409, "{}", dup.text);
        assert_eq!(
            env.post("/admin/tenants", ADMIN, json!({"name": ""}))
                .await
                .status,
            400
        );

        // The config-seeded tenant is read-only here.
        let seeded = env.get("/admin/tenants?name=seeded", ADMIN).await;
        let seeded_id = &seeded.ids()[0];
        assert_eq!(seeded.body["data"][0]["source"], "config");
        let a = env
            .patch(
                &format!("/admin/tenants/{seeded_id}"),
                ADMIN,
                json!({"tier": "x"}),
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.text);

        let d = env
            .call(
                "DELETE",
                &format!("/admin/tenants/{}", ids[4]),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(d.status, 204);
        assert_eq!(
            env.get(&format!("/admin/tenants/{}", ids[4]), ADMIN)
                .await
                .status,
            404
        );
        assert_eq!(env.get("/admin/tenants/ten_nope", ADMIN).await.status, 404);
    })
    .await
}

async fn apps_crud_and_filters(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let all = env.get("/admin/apps", ADMIN).await;
        assert_eq!(all.ids().len(), 3);
        let a = env
            .get(&format!("/admin/apps?tenant_id={}", w.tenant_a), ADMIN)
            .await;
        assert_eq!(a.ids(), vec![w.apps["a1"].clone(), w.apps["a2"].clone()]);
        let a = env
            .get(
                &format!("/admin/apps?owner_user_id={}", w.users["dev_b"]),
                ADMIN,
            )
            .await;
        assert_eq!(a.ids(), vec![w.apps["b"].clone()]);
        assert_eq!(
            env.get("/admin/apps?name=APP-A2", ADMIN).await.ids(),
            vec![w.apps["a2"].clone()]
        );
        let page = env.get("/admin/apps?limit=1", ADMIN).await;
        let next = page.body["next"].as_str().unwrap();
        assert_eq!(
            env.get(&format!("/admin/apps?limit=5&after={next}"), ADMIN)
                .await
                .ids()
                .len(),
            2
        );

        let path = format!("/admin/apps/{}", w.apps["a1"]);
        let p = env
            .patch(
                &path,
                ADMIN,
                json!({"name": "renamed", "policy": {"limits": {"max_output_tokens": 3}}}),
            )
            .await;
        assert_eq!(
            (p.status, p.body["name"].as_str()),
            (200, Some("renamed")),
            "{}",
            p.text
        );
        let moved = env
            .patch(&path, ADMIN, json!({"tenant_id": w.tenant_b}))
            .await;
        assert_eq!(moved.status, 400);
        assert!(moved.message().contains("tenant_id"), "{}", moved.text);
        let foreign_owner = env
            .patch(&path, ADMIN, json!({"owner_user_id": w.users["dev_b"]}))
            .await;
        assert_eq!(
            foreign_owner.status, 400,
            "an owner must belong to the app's tenant"
        );
        let dup = env
            .post(
                "/admin/apps",
                ADMIN,
                json!({"tenant_id": w.tenant_a, "name": "app-a2"}),
            )
            .await;
        assert_eq!(dup.status, 409, "{}", dup.text);
        let no_tenant = env.post("/admin/apps", ADMIN, json!({"name": "x"})).await;
        assert_eq!(no_tenant.status, 400, "an admin names the tenant");
        let missing = env
            .post(
                "/admin/apps",
                ADMIN,
                json!({"tenant_id": "ten_missing", "name": "x"}),
            )
            .await;
        assert_eq!(missing.status, 404, "{}", missing.text);

        assert_eq!(
            env.call("DELETE", &path, Some(ADMIN), None).await.status,
            204
        );
        assert_eq!(env.get(&path, ADMIN).await.status, 404);
        let key = env
            .get(&format!("/admin/keys/{}", w.keys["a1"]), ADMIN)
            .await;
        assert!(
            key.body["revoked_at"].is_i64(),
            "deleting an app revokes its keys: {}",
            key.text
        );
    })
    .await
}

async fn keys_show_the_secret_once_rotate_and_revoke(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let body = json!({"app_id": w.apps["a1"], "name": "ci", "scopes": {"models": ["m1"], "apis": ["chat"]},
            "policy": "small", "expires_at": "2999-01-01T00:00:00Z"});
        let k = env.post("/admin/keys", ADMIN, body).await;
        assert_eq!(k.status, 201, "{}", k.text);
        let secret = k.body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("sk-sluice-"));
        assert!(secret.starts_with(k.body["prefix"].as_str().unwrap()));
        assert_eq!(k.body["expires_at"], json!(32_472_144_000_000_i64));
        assert!(k.body.get("hash").is_none());
        let id = k.id();
        let got = env.get(&format!("/admin/keys/{id}"), ADMIN).await;
        let listed = env.get(&format!("/admin/keys?app_id={}", w.apps["a1"]), ADMIN).await;
        for a in [&got, &listed] {
            assert_eq!(a.status, 200);
            assert!(!a.text.contains(&secret) && !a.text.contains("\"secret\"") && !a.text.contains("hash"), "{}", a.text);
        }
        assert_eq!(listed.ids().len(), 2);
        assert_eq!(env.get(&format!("/admin/keys?tenant_id={}", w.tenant_b), ADMIN).await.ids(), vec![w.keys["b"].clone()]);

        for (bad, field) in [
            (json!({"app_id": w.apps["a1"], "name": "x", "scopes": {"models": ["nope"]}}), "nope"),
            (json!({"app_id": w.apps["a1"], "name": "x", "scopes": {"apis": ["admin"]}}), "admin"),
            (json!({"app_id": w.apps["a1"], "name": "x", "expires_at": 1000}), "future"),
            (json!({"app_id": w.apps["a1"], "name": "x", "expires_at": "tomorrow"}), "RFC 3339"),
            (json!({"app_id": w.apps["a1"], "name": "x", "policy": {"limits": {"bogus": 1}}}), "bogus"),
        ] {
            let a = env.post("/admin/keys", ADMIN, bad).await;
            assert_eq!(a.status, 400, "{}", a.text);
            assert!(a.message().contains(field), "{field}: {}", a.text);
        }
        let p = env.patch(&format!("/admin/keys/{id}"), ADMIN, json!({"name": "ci2", "scopes": {"models": ["m2"]}, "expires_at": null})).await;
        assert_eq!((p.status, &p.body["expires_at"], &p.body["scopes"]), (200, &Value::Null, &json!({"models": ["m2"]})), "{}", p.text);

        // Rotation: a new secret once, the old key expires after the overlap.
        assert_eq!(env.post(&format!("/admin/keys/{id}/rotate"), ADMIN, json!({"overlap": "31d"})).await.status, 400);
        assert_eq!(env.post(&format!("/admin/keys/{id}/rotate"), ADMIN, json!({"overlap": "soon"})).await.status, 400);
        let r = env.post(&format!("/admin/keys/{id}/rotate"), ADMIN, json!({"overlap": "1h"})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let new_secret = r.body["secret"].as_str().unwrap();
        assert!(new_secret.starts_with("sk-sluice-") && new_secret != secret);
        assert_eq!(r.body["rotated_from"].as_str(), Some(id.as_str()));
        let old = env.get(&format!("/admin/keys/{id}"), ADMIN).await;
        let left = old.body["expires_at"].as_i64().unwrap() - now_ms();
        assert!((3_500_000..=3_600_000).contains(&left), "old key expires in 1h: {left}");
        let default = env.call("POST", &format!("/admin/keys/{}/rotate", w.keys["a2"]), Some(ADMIN), None).await;
        assert_eq!(default.status, 201, "no body = 24h overlap: {}", default.text);

        let v = env.post(&format!("/admin/keys/{}/revoke", r.id()), ADMIN, json!({})).await;
        assert!(v.status == 200 && v.body["revoked_at"].is_i64(), "{}", v.text);
        let active = env.get(&format!("/admin/keys?app_id={}", w.apps["a1"]), ADMIN).await.ids();
        assert!(!active.contains(&r.id()));
        let all = env.get(&format!("/admin/keys?app_id={}&include_revoked=true", w.apps["a1"]), ADMIN).await.ids();
        assert!(all.contains(&r.id()));
        let again = env.post(&format!("/admin/keys/{}/rotate", r.id()), ADMIN, json!({})).await;
        assert_eq!(again.status, 400, "a revoked key cannot be rotated: {}", again.text);
        assert_eq!(env.post("/admin/keys/key_nope/revoke", ADMIN, json!({})).await.status, 404);
    })
    .await
}

async fn users_and_credentials(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let me = env.get("/admin/users/me", w.secret("dev_a")).await;
        assert_eq!(
            (me.status, me.body["id"].as_str()),
            (200, Some(w.users["dev_a"].as_str()))
        );
        assert_eq!(me.body["role"], "developer");
        assert_eq!(
            env.get("/admin/users/me", ADMIN).await.status,
            404,
            "the config admin_key is not a user"
        );
        let x = env.call("GET", "/admin/users/me", None, None).await;
        assert_eq!(x.status, 401);

        assert_eq!(
            env.get("/admin/users?role=auditor", ADMIN)
                .await
                .ids()
                .len(),
            2
        );
        assert_eq!(
            env.get(&format!("/admin/users?tenant_id={}", w.tenant_b), ADMIN)
                .await
                .ids()
                .len(),
            2
        );
        assert_eq!(env.get("/admin/users?role=king", ADMIN).await.status, 400);
        let bad_role = env
            .post("/admin/users", ADMIN, json!({"name": "x", "role": "king"}))
            .await;
        assert_eq!(bad_role.status, 400);
        let no_tenant = env
            .post(
                "/admin/users",
                ADMIN,
                json!({"name": "x", "role": "developer"}),
            )
            .await;
        assert_eq!(no_tenant.status, 400, "{}", no_tenant.text);
        let dup = env
            .post(
                "/admin/users",
                ADMIN,
                json!({"name": "dev_a", "role": "auditor"}),
            )
            .await;
        assert_eq!(dup.status, 409, "{}", dup.text);

        // Credentials: secret once, listed by prefix, expiring, revocable.
        let uid = &w.users["aud"];
        let c = env
            .post(
                &format!("/admin/users/{uid}/credentials"),
                ADMIN,
                json!({"expires_in": "90d"}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text);
        let secret = c.body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("sa-sluice-"));
        assert!(c.body["expires_at"].as_i64().unwrap() > now_ms() + 89 * 86_400_000);
        assert_eq!(env.get("/admin/users/me", &secret).await.status, 200);
        let list = env
            .get(&format!("/admin/users/{uid}/credentials"), ADMIN)
            .await;
        assert_eq!((list.status, list.ids().len()), (200, 2));
        assert!(!list.text.contains(&secret) && !list.text.contains("\"secret\""));
        assert_eq!(
            env.post(
                &format!("/admin/users/{uid}/credentials"),
                ADMIN,
                json!({"expires_in": "0s"})
            )
            .await
            .status,
            400
        );
        let r = env
            .post(
                &format!("/admin/credentials/{}/revoke", c.id()),
                ADMIN,
                json!({}),
            )
            .await;
        assert!(
            r.status == 200 && r.body["revoked_at"].is_i64(),
            "{}",
            r.text
        );
        let after = env.get("/admin/users/me", &secret).await;
        assert_eq!(
            (after.status, after.message()),
            (401, "invalid admin credential")
        );
        let unknown = env
            .get(
                "/admin/users/me",
                "sa-sluice-0000000000000000000000000000000000000000",
            )
            .await;
        assert_eq!(
            (unknown.status, unknown.message()),
            (401, "invalid admin credential")
        );

        // A disabled user's credentials stop working; re-enabling restores them.
        let path = format!("/admin/users/{}", w.users["dev_a2"]);
        let d = env.patch(&path, ADMIN, json!({"disabled": true})).await;
        assert!(
            d.status == 200 && d.body["disabled_at"].is_i64(),
            "{}",
            d.text
        );
        assert_eq!(
            env.get("/admin/users/me", w.secret("dev_a2")).await.status,
            401
        );
        assert!(!env
            .get("/admin/users", ADMIN)
            .await
            .ids()
            .contains(&w.users["dev_a2"]));
        assert!(env
            .get("/admin/users?include_disabled=true", ADMIN)
            .await
            .ids()
            .contains(&w.users["dev_a2"]));
        assert_eq!(
            env.patch(&path, ADMIN, json!({"disabled": false}))
                .await
                .status,
            200
        );
        assert_eq!(
            env.get("/admin/users/me", w.secret("dev_a2")).await.status,
            200
        );
        let promoted = env
            .patch(
                &path,
                ADMIN,
                json!({"role": "tenant_admin", "name": "lead"}),
            )
            .await;
        assert_eq!(
            (promoted.status, promoted.body["role"].as_str()),
            (200, Some("tenant_admin"))
        );
    })
    .await
}

async fn subscriptions_flow(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let sub = &w.subs["a1"];
        let s = env.get(&format!("/admin/subscriptions/{sub}"), ADMIN).await;
        assert_eq!(
            (s.body["state"].as_str(), s.body["target"].as_str()),
            (Some("pending"), Some("model:m1"))
        );
        let a = env
            .post(
                &format!("/admin/subscriptions/{sub}/approve"),
                ADMIN,
                json!({"note": "ok"}),
            )
            .await;
        assert_eq!(
            (a.status, a.body["state"].as_str(), a.body["note"].as_str()),
            (200, Some("approved"), Some("ok"))
        );
        let twice = env
            .post(
                &format!("/admin/subscriptions/{sub}/reject"),
                ADMIN,
                json!({}),
            )
            .await;
        assert_eq!(
            twice.status, 400,
            "an approved subscription cannot be rejected: {}",
            twice.text
        );
        let r = env
            .call(
                "POST",
                &format!("/admin/subscriptions/{sub}/revoke"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!((r.status, r.body["state"].as_str()), (200, Some("revoked")));
        let rej = env
            .post(
                &format!("/admin/subscriptions/{}/reject", w.subs["b"]),
                ADMIN,
                json!({}),
            )
            .await;
        assert_eq!(rej.body["state"], "rejected");

        let api = env
            .post(
                "/admin/subscriptions",
                ADMIN,
                json!({"app_id": w.apps["a2"], "target": "api:embeddings", "note": "pls"}),
            )
            .await;
        assert_eq!(
            (api.status, api.body["state"].as_str()),
            (201, Some("pending")),
            "{}",
            api.text
        );
        for bad in ["model:nope", "api:admin", "m1", "model:"] {
            let a = env
                .post(
                    "/admin/subscriptions",
                    ADMIN,
                    json!({"app_id": w.apps["a2"], "target": bad}),
                )
                .await;
            assert_eq!(a.status, 400, "{bad}: {}", a.text);
        }
        let pending = env
            .get("/admin/subscriptions?state=pending", ADMIN)
            .await
            .ids();
        assert_eq!(pending, vec![w.subs["a2"].clone(), api.id()]);
        assert_eq!(
            env.get(
                &format!("/admin/subscriptions?app_id={}", w.apps["a2"]),
                ADMIN
            )
            .await
            .ids()
            .len(),
            2
        );
        assert_eq!(
            env.get(
                &format!("/admin/subscriptions?tenant_id={}", w.tenant_b),
                ADMIN
            )
            .await
            .ids(),
            vec![w.subs["b"].clone()]
        );
        assert_eq!(
            env.get("/admin/subscriptions?state=maybe", ADMIN)
                .await
                .status,
            400
        );
    })
    .await
}

async fn audit_log_records_changes(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        // The world's last audit row may share a millisecond with `start`
        // (`since` is inclusive): start on the next one.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let start = now_ms();
        env.post(
            &format!("/admin/keys/{}/rotate", w.keys["a1"]),
            w.secret("dev_a"),
            json!({}),
        )
        .await;
        let reload = env.call("POST", "/admin/reload", Some(ADMIN), None).await;
        assert_eq!(reload.status, 200, "{}", reload.text);

        let rot = env.get("/admin/audit?action=key.rotate", ADMIN).await;
        assert_eq!(rot.status, 200, "{}", rot.text);
        let e = &rot.body["data"][0];
        assert_eq!(
            (e["actor"].as_str(), e["actor_role"].as_str()),
            (Some(w.users["dev_a"].as_str()), Some("developer"))
        );
        assert_eq!(e["tenant_id"].as_str(), Some(w.tenant_a.as_str()));
        let rel = env.get("/admin/audit?action=config.reload", ADMIN).await;
        assert_eq!(
            rel.body["data"][0]["actor"], "config:admin_key",
            "{}",
            rel.text
        );

        let by_target = env
            .get(&format!("/admin/audit?target_id={}", w.apps["b"]), ADMIN)
            .await;
        assert!(!by_target.ids().is_empty());
        assert!(by_target.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["target_id"] == w.apps["b"].as_str()));
        let by_actor = env
            .get(&format!("/admin/audit?actor={}", w.users["dev_a"]), ADMIN)
            .await;
        assert_eq!(by_actor.ids(), rot.ids());
        let since = env.get(&format!("/admin/audit?since={start}"), ADMIN).await;
        assert_eq!(since.ids().len(), 2, "rotate and reload: {}", since.text);
        let rfc = env
            .get("/admin/audit?until=2000-01-01T00:00:00Z", ADMIN)
            .await;
        assert_eq!((rfc.status, rfc.ids().len()), (200, 0));
        assert_eq!(
            env.get("/admin/audit?since=yesterday", ADMIN).await.status,
            400
        );
        // Newest first, paged.
        let p1 = env.get("/admin/audit?limit=3", ADMIN).await;
        let next = p1.body["next"].as_str().unwrap();
        let p2 = env
            .get(&format!("/admin/audit?limit=3&after={next}"), ADMIN)
            .await;
        assert!(p1.ids()[0] > p1.ids()[2] && p1.ids()[2] > p2.ids()[0]);
    })
    .await
}

async fn last_admin_and_self_changes(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let admin2 = w.secret("admin2");
        let me = format!("/admin/users/{}", w.users["admin2"]);
        assert_eq!(
            env.patch(&me, admin2, json!({"role": "auditor"}))
                .await
                .status,
            403
        );
        assert_eq!(
            env.patch(&me, admin2, json!({"disabled": true}))
                .await
                .status,
            403
        );
        assert_eq!(
            env.patch(&me, admin2, json!({"name": "boss"})).await.status,
            200
        );
        let last = env.patch(&me, ADMIN, json!({"role": "auditor"})).await;
        assert_eq!(
            last.status, 409,
            "the last enabled admin stays: {}",
            last.text
        );
        assert_eq!(
            env.patch(&me, ADMIN, json!({"disabled": true}))
                .await
                .status,
            409
        );
        let third = env
            .post(
                "/admin/users",
                ADMIN,
                json!({"name": "admin3", "role": "admin"}),
            )
            .await
            .id();
        assert_eq!(
            env.patch(&me, ADMIN, json!({"role": "auditor"}))
                .await
                .status,
            200
        );
        let path = format!("/admin/users/{third}");
        assert_eq!(
            env.patch(&path, ADMIN, json!({"disabled": true}))
                .await
                .status,
            409
        );
    })
    .await
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    run(Backend::Sqlite, |env| async move {
        let doc = env.call("GET", "/admin/openapi.json", None, None).await;
        assert_eq!(doc.status, 200);
        assert!(
            doc.body["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            doc.body["openapi"]
        );
        assert!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
        let mounted = sluice::admin::mounted_routes();
        for (method, path) in &mounted {
            let op = &doc.body["paths"][path][method];
            assert!(
                op.is_object(),
                "{method} {path} is missing from the document"
            );
            // And it is really mounted: not the listener's fallback.
            let concrete = path.replace("{id}", "x_1");
            let a = env
                .call(
                    &method.to_uppercase(),
                    &concrete,
                    Some(ADMIN),
                    Some(json!({})),
                )
                .await;
            assert!(
                !a.message().contains("no admin endpoint") && a.status != 405,
                "{method} {path}: {}",
                a.text
            );
        }
        for (path, ops) in doc.body["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                assert!(
                    mounted.contains(&(method.clone(), path.clone())),
                    "{method} {path} documented, not mounted"
                );
            }
        }
        let unknown = env.get("/admin/nothing", ADMIN).await;
        assert_eq!(unknown.status, 404);
        assert!(unknown.message().contains("openapi.json"));
    })
    .await
}

#[tokio::test]
async fn status_reload_and_metrics_stay_available() {
    run(Backend::Sqlite, |env| async move {
        let s = env.get("/admin/status", ADMIN).await;
        assert_eq!(
            (s.status, s.body["store"]["ok"].is_boolean()),
            (200, true),
            "{}",
            s.text
        );
        assert_eq!(
            env.call("GET", "/admin/status", None, None).await.status,
            401
        );
        let m = env.call("GET", "/metrics", None, None).await;
        assert_eq!(m.status, 200);
        assert_eq!(env.call("GET", "/healthz", None, None).await.status, 200);
    })
    .await
}

#[tokio::test]
async fn without_a_store_entity_routes_answer_503() {
    let yaml = admin_support::config("x")
        .replace("store: \"x\"\n", "")
        .replace("tenants:\n  seeded: { tier: gold }\n", "");
    let env = Env::new(TestGateway::start(&yaml).await);
    let a = env.get("/admin/tenants", ADMIN).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(a.message().contains("`store:`"), "{}", a.text);
    assert_eq!(
        env.call("GET", "/admin/tenants", None, None).await.status,
        401
    );
    assert_eq!(env.get("/admin/status", ADMIN).await.status, 200);
    let r = env.call("POST", "/admin/reload", Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        env.get("/admin/users/me", "sa-sluice-whatever")
            .await
            .status,
        401
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
