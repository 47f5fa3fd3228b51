//! The RBAC matrix over real sockets, on SQLite and Postgres: two tenants A
//! and B; each role × each route class answers allowed, 403 (the role may
//! never), or 404 (a foreign id, exactly like a missing one); lists are
//! silently restricted; mass assignment is impossible.

mod admin_support;
mod common;

use admin_support::{run, Backend, Env, World};
use serde_json::{json, Value};

both_backends!(
    reads_by_role,
    writes_a_role_may_never_do_are_403,
    foreign_ids_are_404_for_every_by_id_route,
    tenant_admin_manages_their_tenant,
    developer_manages_own_apps_only,
    lists_are_restricted_to_what_the_caller_may_see,
    mass_assignment_is_impossible,
);

/// (caller, expected status) pairs.
type Expected<'a> = &'a [(&'a str, u16)];

/// Calls `method path` as each named caller and checks the status.
async fn expect(
    env: &Env,
    w: &World,
    who: &[(&str, u16)],
    method: &str,
    path: &str,
    body: Option<Value>,
) {
    for (caller, want) in who {
        let a = env
            .call(method, path, Some(w.secret(caller)), body.clone())
            .await;
        assert_eq!(
            a.status, *want,
            "{caller}: {method} {path} {body:?} → {}",
            a.text
        );
    }
}

async fn reads_by_role(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let (ta, tb) = (&w.tenant_a, &w.tenant_b);
        let u = |n: &str| w.users[n].clone();
        let rows: Vec<(String, Vec<(&str, u16)>)> = vec![
            (
                format!("/admin/tenants/{ta}"),
                vec![
                    ("admin", 200),
                    ("ta_a", 200),
                    ("dev_a", 403),
                    ("aud", 200),
                    ("aud_a", 200),
                    ("ta_b", 404),
                ],
            ),
            (
                format!("/admin/tenants/{tb}"),
                vec![("ta_a", 404), ("aud_a", 404), ("aud", 200), ("dev_a", 403)],
            ),
            (
                format!("/admin/apps/{}", w.apps["a1"]),
                vec![
                    ("ta_a", 200),
                    ("dev_a", 200),
                    ("aud", 200),
                    ("aud_a", 200),
                    ("dev_a2", 404),
                    ("ta_b", 404),
                    ("dev_b", 404),
                ],
            ),
            (
                format!("/admin/apps/{}", w.apps["b"]),
                vec![
                    ("ta_a", 404),
                    ("dev_a", 404),
                    ("aud_a", 404),
                    ("aud", 200),
                    ("ta_b", 200),
                    ("dev_b", 200),
                ],
            ),
            (
                format!("/admin/keys/{}", w.keys["a1"]),
                vec![
                    ("ta_a", 200),
                    ("dev_a", 200),
                    ("dev_a2", 404),
                    ("aud_a", 200),
                    ("ta_b", 404),
                ],
            ),
            (
                format!("/admin/keys/{}", w.keys["b"]),
                vec![("ta_a", 404), ("dev_a", 404), ("aud_a", 404), ("aud", 200)],
            ),
            (
                format!("/admin/subscriptions/{}", w.subs["a1"]),
                vec![
                    ("dev_a", 200),
                    ("dev_a2", 404),
                    ("ta_a", 200),
                    ("ta_b", 404),
                    ("aud_a", 200),
                ],
            ),
            (
                format!("/admin/subscriptions/{}", w.subs["b"]),
                vec![
                    ("ta_a", 404),
                    ("dev_a", 404),
                    ("aud_a", 404),
                    ("admin2", 200),
                ],
            ),
            (
                format!("/admin/users/{}", u("dev_a")),
                vec![
                    ("ta_a", 200),
                    ("dev_a", 200),
                    ("dev_a2", 404),
                    ("aud_a", 200),
                    ("ta_b", 404),
                    ("aud", 200),
                ],
            ),
            (
                format!("/admin/users/{}", u("dev_b")),
                vec![("ta_a", 404), ("aud_a", 404), ("dev_a", 404)],
            ),
            (
                format!("/admin/users/{}", u("admin2")),
                vec![("ta_a", 404), ("aud_a", 404), ("aud", 200)],
            ),
            (
                format!("/admin/users/{}/credentials", u("dev_a")),
                vec![
                    ("ta_a", 200),
                    ("dev_a", 200),
                    ("dev_a2", 404),
                    ("aud_a", 200),
                    ("ta_b", 404),
                ],
            ),
            (
                "/admin/users".into(),
                vec![("dev_a", 403), ("ta_a", 200), ("aud", 200), ("aud_a", 200)],
            ),
            (
                "/admin/users/me".into(),
                vec![
                    ("dev_a", 200),
                    ("ta_a", 200),
                    ("aud", 200),
                    ("aud_a", 200),
                    ("admin2", 200),
                ],
            ),
            (
                "/admin/audit".into(),
                vec![("dev_a", 403), ("ta_a", 200), ("aud", 200), ("aud_a", 200)],
            ),
            (
                "/admin/tenants".into(),
                vec![("dev_a", 403), ("ta_a", 200), ("aud", 200)],
            ),
            (
                "/admin/apps".into(),
                vec![("dev_a", 200), ("ta_a", 200), ("aud_a", 200)],
            ),
            (
                "/admin/status".into(),
                vec![("ta_a", 403), ("dev_a", 403), ("aud", 403), ("admin2", 200)],
            ),
            (
                "/admin/prices".into(),
                vec![("ta_a", 403), ("dev_a", 403), ("aud", 403), ("admin2", 200)],
            ),
        ];
        for (path, who) in rows {
            expect(&env, &w, &who, "GET", &path, None).await;
        }
        let everyone = ["ta_a", "dev_a", "aud", "aud_a", "ta_b"].map(|r| (r, 403));
        expect(&env, &w, &everyone, "POST", "/admin/reload", None).await;
        expect(&env, &w, &[("admin2", 200)], "POST", "/admin/reload", None).await;
    })
    .await
}

async fn writes_a_role_may_never_do_are_403(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let (a1, k1, s1) = (&w.apps["a1"], &w.keys["a1"], &w.subs["a1"]);
        let (dev, cred) = (&w.users["dev_a"], &w.creds["dev_a"]);
        let writes: Vec<(&str, String, Value)> = vec![
            ("POST", "/admin/tenants".into(), json!({"name": "t"})),
            (
                "PATCH",
                format!("/admin/tenants/{}", w.tenant_a),
                json!({"tier": "platinum"}),
            ),
            (
                "DELETE",
                format!("/admin/tenants/{}", w.tenant_b),
                json!({}),
            ),
            ("POST", "/admin/apps".into(), json!({"name": "x"})),
            ("PATCH", format!("/admin/apps/{a1}"), json!({"name": "x"})),
            ("DELETE", format!("/admin/apps/{a1}"), json!({})),
            (
                "POST",
                "/admin/keys".into(),
                json!({"app_id": a1, "name": "x"}),
            ),
            ("PATCH", format!("/admin/keys/{k1}"), json!({"name": "x"})),
            ("POST", format!("/admin/keys/{k1}/rotate"), json!({})),
            ("POST", format!("/admin/keys/{k1}/revoke"), json!({})),
            (
                "POST",
                "/admin/users".into(),
                json!({"name": "x", "role": "developer"}),
            ),
            ("PATCH", format!("/admin/users/{dev}"), json!({"name": "x"})),
            ("POST", format!("/admin/users/{dev}/credentials"), json!({})),
            (
                "POST",
                format!("/admin/credentials/{cred}/revoke"),
                json!({}),
            ),
            (
                "POST",
                "/admin/subscriptions".into(),
                json!({"app_id": a1, "target": "api:chat"}),
            ),
            (
                "POST",
                format!("/admin/subscriptions/{s1}/approve"),
                json!({}),
            ),
            (
                "POST",
                format!("/admin/subscriptions/{s1}/reject"),
                json!({}),
            ),
            (
                "POST",
                format!("/admin/subscriptions/{s1}/revoke"),
                json!({}),
            ),
        ];
        for (method, path, body) in &writes {
            expect(
                &env,
                &w,
                &[("aud", 403), ("aud_a", 403)],
                method,
                path,
                Some(body.clone()),
            )
            .await;
        }
        // Tier and tenant policy are admin-only, even for one's own tenant.
        for (method, path, body) in &writes[..3] {
            expect(
                &env,
                &w,
                &[("ta_a", 403), ("dev_a", 403)],
                method,
                path,
                Some(body.clone()),
            )
            .await;
        }
        // Developers never decide subscriptions nor manage users.
        for i in [10, 11, 12, 15, 16, 17] {
            let (method, path, body) = &writes[i];
            expect(
                &env,
                &w,
                &[("dev_a", 403)],
                method,
                path,
                Some(body.clone()),
            )
            .await;
        }
        let msg = env
            .post(
                &format!("/admin/subscriptions/{s1}/approve"),
                w.secret("dev_a"),
                json!({}),
            )
            .await;
        assert!(msg.message().contains("developer"), "{}", msg.text);
        // Nothing changed.
        let s = env
            .get(&format!("/admin/subscriptions/{s1}"), w.secret("admin"))
            .await;
        assert_eq!(s.body["state"], "pending");
    })
    .await
}

async fn foreign_ids_are_404_for_every_by_id_route(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let (ab, a2, kb, k2, sb) = (
            &w.apps["b"],
            &w.apps["a2"],
            &w.keys["b"],
            &w.keys["a2"],
            &w.subs["b"],
        );
        let (dev_b, cred_b, cred_a2) = (&w.users["dev_b"], &w.creds["dev_b"], &w.creds["dev_a2"]);
        let both = [("ta_a", 404), ("dev_a", 404)];
        let rows: Vec<(&str, String, Value, Expected)> = vec![
            (
                "PATCH",
                format!("/admin/apps/{ab}"),
                json!({"name": "x"}),
                &both,
            ),
            ("DELETE", format!("/admin/apps/{ab}"), json!({}), &both),
            (
                "PATCH",
                format!("/admin/apps/{a2}"),
                json!({"name": "x"}),
                &[("dev_a", 404)],
            ),
            (
                "DELETE",
                format!("/admin/apps/{a2}"),
                json!({}),
                &[("dev_a", 404)],
            ),
            (
                "POST",
                "/admin/keys".into(),
                json!({"app_id": ab, "name": "x"}),
                &both,
            ),
            (
                "POST",
                "/admin/keys".into(),
                json!({"app_id": a2, "name": "x"}),
                &[("dev_a", 404)],
            ),
            (
                "PATCH",
                format!("/admin/keys/{kb}"),
                json!({"name": "x"}),
                &both,
            ),
            ("POST", format!("/admin/keys/{kb}/rotate"), json!({}), &both),
            (
                "POST",
                format!("/admin/keys/{k2}/rotate"),
                json!({}),
                &[("dev_a", 404)],
            ),
            ("POST", format!("/admin/keys/{kb}/revoke"), json!({}), &both),
            (
                "POST",
                format!("/admin/keys/{k2}/revoke"),
                json!({}),
                &[("dev_a", 404)],
            ),
            (
                "POST",
                "/admin/subscriptions".into(),
                json!({"app_id": ab, "target": "api:chat"}),
                &both,
            ),
            (
                "POST",
                "/admin/subscriptions".into(),
                json!({"app_id": a2, "target": "api:chat"}),
                &[("dev_a", 404)],
            ),
            (
                "POST",
                format!("/admin/subscriptions/{sb}/approve"),
                json!({}),
                &[("ta_a", 404)],
            ),
            (
                "POST",
                format!("/admin/subscriptions/{sb}/revoke"),
                json!({}),
                &[("ta_a", 404)],
            ),
            (
                "PATCH",
                format!("/admin/users/{dev_b}"),
                json!({"name": "x"}),
                &[("ta_a", 404)],
            ),
            (
                "POST",
                format!("/admin/users/{dev_b}/credentials"),
                json!({}),
                &[("ta_a", 404)],
            ),
            (
                "GET",
                format!("/admin/users/{dev_b}/credentials"),
                json!(null),
                &both,
            ),
            (
                "POST",
                format!("/admin/credentials/{cred_b}/revoke"),
                json!({}),
                &both,
            ),
            (
                "POST",
                format!("/admin/credentials/{cred_a2}/revoke"),
                json!({}),
                &[("dev_a", 404)],
            ),
            (
                "POST",
                "/admin/apps".into(),
                json!({"tenant_id": w.tenant_b, "name": "x"}),
                &both,
            ),
            (
                "POST",
                "/admin/users".into(),
                json!({"name": "x", "role": "developer", "tenant_id": w.tenant_b}),
                &[("ta_a", 404)],
            ),
        ];
        for (method, path, body, who) in rows {
            let body = (!body.is_null()).then_some(body);
            expect(&env, &w, who, method, &path, body).await;
        }
        // The same answer as for an id that does not exist.
        let foreign = env
            .get(&format!("/admin/apps/{ab}"), w.secret("ta_a"))
            .await;
        let missing = env
            .get(
                "/admin/apps/app_00000000000000000000000000",
                w.secret("ta_a"),
            )
            .await;
        assert_eq!(foreign.body["error"]["code"], missing.body["error"]["code"]);
        assert_eq!(foreign.body["error"]["type"], missing.body["error"]["type"]);
        // Nothing of B changed.
        let k = env
            .get(&format!("/admin/keys/{kb}"), w.secret("admin"))
            .await;
        assert!(
            k.body["revoked_at"].is_null() && k.body["name"] == "key-b",
            "{}",
            k.text
        );
        assert_eq!(
            env.get("/admin/users/me", w.secret("dev_b")).await.status,
            200
        );
    })
    .await
}

async fn tenant_admin_manages_their_tenant(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let ta = w.secret("ta_a");
        let (a2, dev_a2) = (&w.apps["a2"], &w.users["dev_a2"]);
        assert_eq!(
            env.patch(
                &format!("/admin/apps/{a2}"),
                ta,
                json!({"name": "a2-renamed"})
            )
            .await
            .status,
            200
        );
        let k = env
            .post("/admin/keys", ta, json!({"app_id": a2, "name": "by-ta"}))
            .await;
        assert_eq!(k.status, 201, "{}", k.text);
        assert_eq!(
            env.post(
                &format!("/admin/subscriptions/{}/approve", w.subs["a2"]),
                ta,
                json!({})
            )
            .await
            .status,
            200
        );
        let app = env
            .post(
                "/admin/apps",
                ta,
                json!({"name": "ta-app", "owner_user_id": dev_a2}),
            )
            .await;
        assert_eq!(
            (app.status, app.body["tenant_id"].as_str()),
            (201, Some(w.tenant_a.as_str())),
            "{}",
            app.text
        );

        let nu = env
            .post(
                "/admin/users",
                ta,
                json!({"name": "new-dev", "role": "developer"}),
            )
            .await;
        assert_eq!(
            (nu.status, nu.body["tenant_id"].as_str()),
            (201, Some(w.tenant_a.as_str())),
            "{}",
            nu.text
        );
        let aud = env
            .post(
                "/admin/users",
                ta,
                json!({"name": "new-aud", "role": "auditor"}),
            )
            .await;
        assert_eq!(
            aud.body["tenant_id"].as_str(),
            Some(w.tenant_a.as_str()),
            "a tenant admin's auditor is scoped"
        );
        assert_eq!(
            env.post(
                "/admin/users",
                ta,
                json!({"name": "new-ta", "role": "tenant_admin"})
            )
            .await
            .status,
            201
        );
        assert_eq!(
            env.post("/admin/users", ta, json!({"name": "boss", "role": "admin"}))
                .await
                .status,
            403
        );

        let path = format!("/admin/users/{dev_a2}");
        assert_eq!(
            env.patch(&path, ta, json!({"role": "admin"})).await.status,
            403
        );
        assert_eq!(
            env.patch(&path, ta, json!({"tenant_id": w.tenant_b}))
                .await
                .status,
            403
        );
        assert_eq!(
            env.patch(&path, ta, json!({"tenant_id": null}))
                .await
                .status,
            403
        );
        assert_eq!(
            env.patch(&path, ta, json!({"role": "tenant_admin"}))
                .await
                .status,
            200
        );
        assert_eq!(
            env.patch(
                &format!("/admin/users/{}", w.users["ta_a"]),
                ta,
                json!({"role": "developer"})
            )
            .await
            .status,
            403
        );
        assert_eq!(
            env.patch(
                &format!("/admin/users/{}", w.users["ta_a"]),
                ta,
                json!({"disabled": true})
            )
            .await
            .status,
            403
        );
        assert_eq!(
            env.post(&format!("/admin/users/{dev_a2}/credentials"), ta, json!({}))
                .await
                .status,
            201
        );
        let r = env
            .post(
                &format!("/admin/credentials/{}/revoke", w.creds["dev_a2"]),
                ta,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            env.get("/admin/users/me", w.secret("dev_a2")).await.status,
            401
        );
        assert_eq!(
            env.call("DELETE", &format!("/admin/apps/{a2}"), Some(ta), None)
                .await
                .status,
            204
        );
    })
    .await
}

async fn developer_manages_own_apps_only(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let dev = w.secret("dev_a");
        let a1 = &w.apps["a1"];
        let app = env
            .post("/admin/apps", dev, json!({"name": "dev-app"}))
            .await;
        assert_eq!(app.status, 201, "{}", app.text);
        assert_eq!(
            app.body["owner_user_id"].as_str(),
            Some(w.users["dev_a"].as_str()),
            "owner forced to the developer"
        );
        assert_eq!(app.body["tenant_id"].as_str(), Some(w.tenant_a.as_str()));
        let other = env
            .post(
                "/admin/apps",
                dev,
                json!({"name": "x", "owner_user_id": w.users["dev_a2"]}),
            )
            .await;
        assert_eq!(other.status, 403);
        assert_eq!(
            env.patch(
                &format!("/admin/apps/{a1}"),
                dev,
                json!({"owner_user_id": w.users["dev_a2"]})
            )
            .await
            .status,
            403
        );
        assert_eq!(
            env.patch(&format!("/admin/apps/{a1}"), dev, json!({"name": "mine"}))
                .await
                .status,
            200
        );
        let k = env
            .post("/admin/keys", dev, json!({"app_id": a1, "name": "dev-key"}))
            .await;
        assert_eq!(k.status, 201, "{}", k.text);
        assert_eq!(
            env.post(
                &format!("/admin/keys/{}/rotate", k.id()),
                dev,
                json!({"overlap": "5m"})
            )
            .await
            .status,
            201
        );
        assert_eq!(
            env.patch(
                &format!("/admin/keys/{}", k.id()),
                dev,
                json!({"name": "renamed"})
            )
            .await
            .status,
            200
        );
        assert_eq!(
            env.post(&format!("/admin/keys/{}/revoke", k.id()), dev, json!({}))
                .await
                .status,
            200
        );
        let s = env
            .post(
                "/admin/subscriptions",
                dev,
                json!({"app_id": a1, "target": "api:chat"}),
            )
            .await;
        assert_eq!(
            (s.status, s.body["state"].as_str()),
            (201, Some("pending")),
            "{}",
            s.text
        );
        assert_eq!(
            env.post(
                &format!("/admin/subscriptions/{}/approve", s.id()),
                dev,
                json!({})
            )
            .await
            .status,
            403
        );
        assert_eq!(
            env.patch(
                &format!("/admin/users/{}", w.users["dev_a"]),
                dev,
                json!({"role": "tenant_admin"})
            )
            .await
            .status,
            403
        );
        assert_eq!(
            env.call(
                "DELETE",
                &format!("/admin/apps/{}", app.id()),
                Some(dev),
                None
            )
            .await
            .status,
            204
        );
        assert_eq!(
            env.get(
                &format!("/admin/users/{}/credentials", w.users["dev_a"]),
                dev
            )
            .await
            .ids()
            .len(),
            1
        );
        let r = env
            .post(
                &format!("/admin/credentials/{}/revoke", w.creds["dev_a"]),
                dev,
                json!({}),
            )
            .await;
        assert_eq!(
            r.status, 200,
            "a developer may revoke their own credential: {}",
            r.text
        );
        assert_eq!(env.get("/admin/users/me", dev).await.status, 401);
    })
    .await
}

async fn lists_are_restricted_to_what_the_caller_may_see(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let ids = |a: admin_support::Answer| {
            assert_eq!(a.status, 200, "{}", a.text);
            a.ids()
        };
        let (ta, dev, aud_a) = (w.secret("ta_a"), w.secret("dev_a"), w.secret("aud_a"));
        // Extra keys so that a developer's list needs several store pages.
        for i in 0..3 {
            for app in ["a1", "a2"] {
                env.ok(
                    "/admin/keys",
                    json!({"app_id": w.apps[app], "name": format!("k{i}")}),
                )
                .await;
            }
        }
        assert_eq!(
            ids(env.get("/admin/tenants", ta).await),
            vec![w.tenant_a.clone()]
        );
        assert!(ids(env.get("/admin/tenants?name=tenant-b", ta).await).is_empty());
        assert_eq!(
            ids(env.get("/admin/apps", ta).await),
            vec![w.apps["a1"].clone(), w.apps["a2"].clone()]
        );
        assert!(ids(env
            .get(&format!("/admin/apps?tenant_id={}", w.tenant_b), ta)
            .await)
        .is_empty());
        assert_eq!(
            ids(env.get("/admin/apps", dev).await),
            vec![w.apps["a1"].clone()]
        );
        assert!(ids(env
            .get(
                &format!("/admin/apps?owner_user_id={}", w.users["dev_a2"]),
                dev
            )
            .await)
        .is_empty());

        let all_a1 = ids(env
            .get(
                &format!("/admin/keys?app_id={}", w.apps["a1"]),
                w.secret("admin"),
            )
            .await);
        assert_eq!(all_a1.len(), 4);
        let (mut paged, mut after) = (Vec::new(), String::new());
        loop {
            let a = env.get(&format!("/admin/keys?limit=1{after}"), dev).await;
            paged.extend(ids(a.clone()));
            match a.body["next"].as_str() {
                Some(n) => after = format!("&after={n}"),
                None => break,
            }
        }
        assert_eq!(
            paged, all_a1,
            "a developer pages through exactly their apps' keys"
        );
        assert!(ids(env
            .get(&format!("/admin/keys?app_id={}", w.apps["a2"]), dev)
            .await)
        .is_empty());
        assert_eq!(
            ids(env.get("/admin/subscriptions", dev).await),
            vec![w.subs["a1"].clone()]
        );
        assert_eq!(ids(env.get("/admin/keys", aud_a).await).len(), 8);
        assert_eq!(ids(env.get("/admin/keys", w.secret("aud")).await).len(), 9);
        assert_eq!(
            ids(env.get("/admin/keys", w.secret("ta_b")).await),
            vec![w.keys["b"].clone()]
        );

        let users = ids(env.get("/admin/users", ta).await);
        let in_a = ["ta_a", "dev_a", "dev_a2", "aud_a"].map(|n| w.users[n].clone());
        assert_eq!(users, in_a.to_vec());
        assert!(ids(env
            .get(&format!("/admin/users?tenant_id={}", w.tenant_b), ta)
            .await)
        .is_empty());

        for who in [ta, aud_a] {
            let a = env.get("/admin/audit?limit=500", who).await;
            let entries = a.body["data"].as_array().unwrap();
            assert!(!entries.is_empty());
            assert!(
                entries
                    .iter()
                    .all(|e| e["tenant_id"] == w.tenant_a.as_str()),
                "{}",
                a.text
            );
            assert!(ids(env
                .get(&format!("/admin/audit?tenant_id={}", w.tenant_b), who)
                .await)
            .is_empty());
        }
        let all = env.get("/admin/audit?limit=500", w.secret("aud")).await;
        assert!(all.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["tenant_id"] == w.tenant_b.as_str()));
    })
    .await
}

async fn mass_assignment_is_impossible(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        let admin = w.secret("admin");
        let (app, key) = (
            format!("/admin/apps/{}", w.apps["a1"]),
            format!("/admin/keys/{}", w.keys["a1"]),
        );
        let user = format!("/admin/users/{}", w.users["dev_a"]);
        let (approve, creds) = (
            format!("/admin/subscriptions/{}/approve", w.subs["a1"]),
            format!("{user}/credentials"),
        );
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            ("PATCH", &app, json!({"tenant_id": w.tenant_b}), "tenant_id"),
            ("PATCH", &app, json!({"id": "app_mine"}), "id"),
            ("PATCH", &app, json!({"created_at": 1}), "created_at"),
            ("PATCH", &key, json!({"hash": "00"}), "hash"),
            ("PATCH", &key, json!({"prefix": "sk-sluice-XXXX"}), "prefix"),
            ("PATCH", &key, json!({"revoked_at": null}), "revoked_at"),
            ("PATCH", &key, json!({"app_id": w.apps["b"]}), "app_id"),
            ("PATCH", &key, json!({"tenant_id": w.tenant_b}), "tenant_id"),
            (
                "POST",
                "/admin/keys",
                json!({"app_id": w.apps["a1"], "name": "x", "secret": "sk-sluice-chosen"}),
                "secret",
            ),
            (
                "POST",
                "/admin/tenants",
                json!({"name": "x", "source": "config"}),
                "source",
            ),
            (
                "POST",
                "/admin/tenants",
                json!({"name": "x", "id": "ten_mine"}),
                "id",
            ),
            (
                "POST",
                "/admin/users",
                json!({"name": "x", "role": "auditor", "disabled_at": 1}),
                "disabled_at",
            ),
            ("PATCH", &user, json!({"id": "usr_x"}), "id"),
            (
                "POST",
                "/admin/subscriptions",
                json!({"app_id": w.apps["a1"], "target": "api:chat", "state": "approved"}),
                "state",
            ),
            ("POST", &approve, json!({"decided_by": "x"}), "decided_by"),
            (
                "POST",
                &creds,
                json!({"secret": "sa-sluice-chosen"}),
                "secret",
            ),
        ];
        for (method, path, body, field) in cases {
            let a = env.call(method, path, Some(admin), Some(body)).await;
            assert_eq!(a.status, 400, "{method} {path}: {}", a.text);
            assert!(
                a.message().contains(&format!("`{field}`")),
                "{field} not named: {}",
                a.text
            );
        }
        for who in ["dev_a", "ta_a", "aud_a", "admin2"] {
            let me = format!("/admin/users/{}", w.users[who]);
            let a = env
                .patch(&me, w.secret(who), json!({"role": "admin"}))
                .await;
            assert_eq!(a.status, 403, "{who} changing their own role: {}", a.text);
        }
        let s = env
            .get(&format!("/admin/subscriptions/{}", w.subs["a1"]), admin)
            .await;
        assert_eq!(s.body["state"], "pending", "nothing was assigned");
    })
    .await
}
