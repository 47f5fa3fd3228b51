//! The analytics API over real sockets, on SQLite and Postgres, fed by real
//! requests through the gateway: usage grouped and bucketed, top
//! consumers, CSV export, request logs with filters and paging — and each
//! role sees exactly its reach (tenant admins and tenant auditors their
//! tenant, developers their own apps), never a secret.

mod admin_support;
mod common;

use std::time::Duration;

use admin_support::{run, Backend, Env, World, PUBLIC_KEY};
use serde_json::{json, Value};

both_backends!(
    usage_groups_and_tops_what_was_served,
    each_role_sees_its_reach,
    request_logs_filter_and_page,
    bad_parameters_are_explained
);

/// Calls the public API with a key.
async fn call_model(env: &Env, key: &str, model: &str, id: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", env.gw.url))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&json!({"model": model, "user": format!("user-{id}"),
                      "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{id}: {}", r.text().await.unwrap());
}

/// a1: 3 × m1, a2: 2 × m2, b: 4 × m1, the static key: 1 × m2; then waits
/// until the request log holds all ten.
async fn traffic(env: &Env, w: &World) {
    let plan = [("a1", "m1", 3), ("a2", "m2", 2), ("b", "m1", 4)];
    for (app, model, n) in plan {
        for i in 0..n {
            call_model(env, &w.key_secrets[app], model, &format!("{app}-{i}")).await;
        }
    }
    call_model(env, PUBLIC_KEY, "m2", "static-0").await;
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = env.get("/admin/usage", w.secret("admin")).await;
        let n = a.body["data"][0]["requests"].as_i64().unwrap_or(0);
        if n >= 10 || tokio::time::Instant::now() > end {
            assert_eq!(n, 10, "{}", a.text);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(group value, requests)` of each row, for one grouped dimension.
fn counts(a: &Value, dim: &str) -> Vec<(Option<String>, i64)> {
    a["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[dim].as_str().map(str::to_owned),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

async fn usage_groups_and_tops_what_was_served(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        traffic(&env, &w).await;
        let admin = w.secret("admin");
        let by_tenant = env.get("/admin/usage?group_by=tenant", admin).await;
        assert_eq!(by_tenant.status, 200, "{}", by_tenant.text);
        assert_eq!(
            counts(&by_tenant.body, "tenant"),
            [(None, 1), (s("tenant-a"), 5), (s("tenant-b"), 4)]
        );
        let row = &by_tenant.body["data"][1];
        assert!(row["input_tokens"].as_i64().unwrap() > 0, "{row}");
        assert!(row["output_tokens"].as_i64().unwrap() > 0, "{row}");
        assert_eq!(row["errors_5xx"], 0);
        assert!(row["latency_ms_p50"].as_f64().unwrap() >= 0.0, "{row}");
        assert!(row["latency_ms_p99"].as_f64().unwrap() >= row["latency_ms_p50"].as_f64().unwrap());
        let by_model = env
            .get("/admin/usage?group_by=model,tenant&interval=hour", admin)
            .await;
        let rows = by_model.body["data"].as_array().unwrap();
        assert_eq!(rows.len(), 4, "{}", by_model.text);
        assert!(rows
            .iter()
            .all(|r| r["period"].as_i64().unwrap() % 3_600_000 == 0));
        let top = env
            .get("/admin/usage/top?dimension=app&by=requests&limit=2", admin)
            .await;
        assert_eq!(
            counts(&top.body, "app"),
            [
                (Some(w.apps["b"].clone()), 4),
                (Some(w.apps["a1"].clone()), 3)
            ]
        );
        // CSV: a header and one line per group.
        let csv = env
            .get("/admin/usage?group_by=tenant&format=csv", admin)
            .await;
        let lines: Vec<&str> = csv.text.lines().collect();
        assert!(
            lines[0].starts_with("tenant,requests,errors_4xx,"),
            "{}",
            csv.text
        );
        assert_eq!(lines.len(), 4, "{}", csv.text);
        assert!(lines[2].starts_with("tenant-a,5,0,"), "{}", csv.text);
    })
    .await
}

async fn each_role_sees_its_reach(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        traffic(&env, &w).await;
        let total = |who: &'static str, query: &'static str| {
            let (env, w) = (&env, &w);
            async move {
                let a = env
                    .get(&format!("/admin/usage{query}"), w.secret(who))
                    .await;
                assert_eq!(a.status, 200, "{who}: {}", a.text);
                a.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["requests"].as_i64().unwrap())
                    .sum::<i64>()
            }
        };
        assert_eq!(total("admin", "").await, 10);
        assert_eq!(total("aud", "").await, 10);
        assert_eq!(total("ta_a", "").await, 5);
        assert_eq!(total("aud_a", "").await, 5);
        assert_eq!(total("ta_b", "").await, 4);
        assert_eq!(total("dev_a", "").await, 3);
        assert_eq!(total("dev_a2", "").await, 2);
        // Asking for another tenant gives nothing, not an error.
        assert_eq!(total("ta_b", "?tenant=tenant-a").await, 0);
        assert_eq!(total("dev_a", "?tenant=tenant-b").await, 0);
        let a2 = format!("?app={}", w.apps["a2"]);
        let a2: &'static str = Box::leak(a2.into_boxed_str());
        assert_eq!(total("dev_a", a2).await, 0);
        assert_eq!(total("ta_a", a2).await, 2);
        // The tenant admin's groups are its own apps only.
        let apps = env.get("/admin/usage?group_by=app", w.secret("ta_a")).await;
        let mut seen: Vec<String> = counts(&apps.body, "app")
            .into_iter()
            .map(|(a, _)| a.unwrap())
            .collect();
        seen.sort();
        let mut want = vec![w.apps["a1"].clone(), w.apps["a2"].clone()];
        want.sort();
        assert_eq!(seen, want);
        // Logs follow the same reach and never carry a secret.
        let logs = env.get("/admin/logs", w.secret("ta_b")).await;
        let data = logs.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 4, "{}", logs.text);
        assert!(data.iter().all(|r| r["app"] == w.apps["b"].as_str()));
        for secret in w.key_secrets.values() {
            assert!(!logs.text.contains(secret.as_str()));
        }
        let dev = env.get("/admin/logs", w.secret("dev_a")).await;
        assert_eq!(dev.body["data"].as_array().unwrap().len(), 3);
    })
    .await
}

async fn request_logs_filter_and_page(b: Backend) {
    run(b, |env| async move {
        let w = World::build(&env).await;
        traffic(&env, &w).await;
        let admin = w.secret("admin");
        let mut ids = Vec::new();
        let mut path = "/admin/logs?limit=4".to_owned();
        loop {
            let page = env.get(&path, admin).await;
            assert_eq!(page.status, 200, "{}", page.text);
            let data = page.body["data"].as_array().unwrap();
            ids.extend(
                data.iter()
                    .map(|r| r["request_id"].as_str().unwrap().to_owned()),
            );
            match page.body["next"].as_str() {
                Some(next) => path = format!("/admin/logs?limit=4&before={next}"),
                None => break,
            }
        }
        assert_eq!(ids.len(), 10, "{ids:?}");
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        // Newest first.
        assert_eq!(ids[0], "static-0");
        let one = env.get("/admin/logs?request_id=b-2", admin).await;
        let rec = &one.body["data"][0];
        assert_eq!(rec["end_user"], "user-b-2");
        assert_eq!(rec["model"], "m1");
        assert_eq!(rec["provider"], "mock");
        assert_eq!(rec["key_id"], w.keys["b"].as_str());
        assert_eq!(rec["tenant"], "tenant-b");
        assert_eq!(rec["status"], 200);
        let by_user = env.get("/admin/logs?user=user-a1-1", admin).await;
        assert_eq!(by_user.body["data"].as_array().unwrap().len(), 1);
        let ok = env.get("/admin/logs?status=2xx&model=m2", admin).await;
        assert_eq!(ok.body["data"].as_array().unwrap().len(), 3);
        let none = env.get("/admin/logs?status=500", admin).await;
        assert!(none.body["data"].as_array().unwrap().is_empty());
        let csv = env.get("/admin/logs?format=csv&limit=2", admin).await;
        let lines: Vec<&str> = csv.text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", csv.text);
        assert!(
            lines[0].starts_with("id,ts,request_id,tenant,"),
            "{}",
            csv.text
        );
        assert!(lines[0].ends_with(",cost_usd"), "{}", csv.text);
        let cols = lines[0].split(',').count();
        assert!(
            lines[1..].iter().all(|l| l.split(',').count() == cols),
            "{}",
            csv.text
        );
        // No records: still the header.
        let empty = env.get("/admin/logs?format=csv&status=500", admin).await;
        assert_eq!(empty.text.lines().count(), 1, "{}", empty.text);
    })
    .await
}

async fn bad_parameters_are_explained(b: Backend) {
    run(b, |env| async move {
        let admin = sluice_admin();
        for (path, param) in [
            ("/admin/usage?group_by=user", "group_by"),
            ("/admin/usage?interval=week", "interval"),
            ("/admin/usage?group_by=key&interval=hour", "interval"),
            (
                "/admin/usage?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
                "to",
            ),
            ("/admin/usage?from=yesterday", "from"),
            ("/admin/usage?format=xml", "format"),
            ("/admin/usage/top?by=latency", "by"),
            ("/admin/usage/top?limit=0", "limit"),
            ("/admin/logs?status=9xx", "status"),
            ("/admin/logs?before=garbage", "before"),
            ("/admin/logs?limit=5000", "limit"),
        ] {
            let a = env.get(path, admin).await;
            assert_eq!(a.status, 400, "{path}: {}", a.text);
            assert_eq!(a.body["error"]["param"], param, "{path}: {}", a.text);
        }
        let a = env.get("/admin/usage?color=blue", admin).await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert!(a.message().contains("color"), "{}", a.text);
    })
    .await
}

fn sluice_admin() -> &'static str {
    common::ADMIN_KEY
}
