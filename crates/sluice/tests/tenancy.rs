//! Store-managed tenants, apps and keys on the public API, over real sockets
//! against real SQLite and Postgres: keys work once created, stop at
//! revocation, expiry, app deletion and the end of a rotation overlap —
//! on this instance and on another one sharing the store (by polling, and at
//! once through Redis) — scopes and subscriptions gate models and APIs, and
//! JWTs act for an app.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::db::{redis_url, Backend, FreshStore};
use common::TestGateway;
use serde_json::{json, Value};
use sluice_store as st;

fn config(store_url: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
store: "{store_url}"
{extra}
providers: {{ mock: {{ kind: mock }} }}
models:
  m: {{ deployments: [ {{ provider: mock, model: x }} ] }}
  m2: {{ deployments: [ {{ provider: mock, model: y }} ] }}
  gated: {{ requires_approval: true, deployments: [ {{ provider: mock, model: z }} ] }}
apis: {{ embeddings: {{ requires_approval: true }} }}
policies: {{ tiny: {{ limits: {{ max_output_tokens: 5 }} }} }}
"#
    )
}

fn root() -> st::Actor {
    st::Actor {
        id: "test:root".into(),
        role: st::Role::Admin,
        tenant_id: None,
    }
}

struct World {
    gw: TestGateway,
    store: st::Store,
    tenant: st::Tenant,
    app: st::App,
    db: FreshStore,
}

async fn world(backend: Backend, extra: &str) -> World {
    let db = FreshStore::new(backend).await;
    let gw = TestGateway::start(&config(&db.url, extra)).await;
    let store = gw.app.store.clone().expect("store configured");
    let tenant = store
        .create_tenant(
            &root(),
            st::NewTenant {
                name: "acme".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let app = store
        .create_app(
            &root(),
            st::NewApp {
                tenant_id: tenant.id.clone(),
                name: "web".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    World {
        gw,
        store,
        tenant,
        app,
        db,
    }
}

impl World {
    async fn key(&self, k: st::NewKey) -> (st::ApiKey, String) {
        let out = self
            .store
            .create_key(
                &root(),
                st::NewKey {
                    app_id: self.app.id.clone(),
                    ..k
                },
            )
            .await
            .unwrap();
        sluice::directory::notify_changed(&self.gw.app);
        out
    }

    fn changed(&self) {
        sluice::directory::notify_changed(&self.gw.app);
    }
}

async fn chat(url: &str, secret: &str, model: &str) -> (u16, Value) {
    let r = TestGateway::client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `check` holds, at most `within`; returns how long it took.
async fn eventually<F, Fut>(within: Duration, what: &str, check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SECOND: Duration = Duration::from_secs(1);

both_backends!(
    created_keys_work_and_revoked_keys_stop_within_a_second,
    expiry_scopes_and_deleted_apps_are_enforced,
    rotation_keeps_both_keys_during_the_overlap,
    subscriptions_gate_models_and_apis,
    revocation_reaches_another_instance_by_polling,
    revocation_reaches_another_instance_through_redis_at_once,
    jwts_act_for_their_app,
    config_reloads_reseed_tenants_and_re_resolve_policies,
);

async fn created_keys_work_and_revoked_keys_stop_within_a_second(b: Backend) {
    let w = world(b, "").await;
    let (key, secret) = w
        .key(st::NewKey {
            name: "k".into(),
            ..Default::default()
        })
        .await;
    assert!(secret.starts_with("sk-sluice-"));
    let url = w.gw.url.clone();
    eventually(SECOND, "a new key works", || async {
        chat(&url, &secret, "m").await.0 == 200
    })
    .await;
    w.store.revoke_key(&root(), &key.id).await.unwrap();
    w.changed();
    eventually(SECOND, "a revoked key is refused", || async {
        chat(&url, &secret, "m").await.0 == 401
    })
    .await;
    let (_, body) = chat(&url, &secret, "m").await;
    assert_eq!(body["error"]["code"], "invalid_api_key");
}

async fn expiry_scopes_and_deleted_apps_are_enforced(b: Backend) {
    let w = world(b, "").await;
    let url = w.gw.url.clone();
    let soon = sluice::mock::now_ms() + 700;
    let (_, expiring) = w
        .key(st::NewKey {
            name: "e".into(),
            expires_at: Some(soon),
            ..Default::default()
        })
        .await;
    let scopes = st::Scopes {
        models: Some(vec!["m2".into()]),
        apis: Some(vec!["chat".into(), "models".into()]),
    };
    let (_, scoped) = w
        .key(st::NewKey {
            name: "s".into(),
            scopes,
            policy: Some(json!("tiny")),
            ..Default::default()
        })
        .await;
    eventually(SECOND, "keys load", || async {
        chat(&url, &scoped, "m2").await.0 == 200
    })
    .await;
    // A model outside the scopes is unknown to this key, which is told what it may use.
    let (status, body) = chat(&url, &scoped, "m").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("models this key may use: m2"),
        "{body}"
    );
    // An API outside the scopes is forbidden.
    let r = TestGateway::client()
        .post(format!("{url}/v1/embeddings"))
        .bearer_auth(&scoped)
        .json(&json!({"model": "m2", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("scopes do not include the `embeddings` API"));
    // The key's policy applies: max_output_tokens 5 clamps the answer.
    let (_, body) = chat(&url, &scoped, "m2").await;
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() <= 5,
        "{body}"
    );
    // Expiry needs no reload.
    assert_eq!(chat(&url, &expiring, "m").await.0, 200);
    eventually(SECOND, "an expired key is refused", || async {
        chat(&url, &expiring, "m").await.0 == 401
    })
    .await;
    let (_, body) = chat(&url, &expiring, "m").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // Deleting the app ends its keys.
    w.store.delete_app(&root(), &w.app.id).await.unwrap();
    w.changed();
    eventually(SECOND, "a deleted app's key is refused", || async {
        chat(&url, &scoped, "m2").await.0 == 401
    })
    .await;
}

async fn rotation_keeps_both_keys_during_the_overlap(b: Backend) {
    let w = world(b, "").await;
    let url = w.gw.url.clone();
    let (old, old_secret) = w
        .key(st::NewKey {
            name: "r".into(),
            ..Default::default()
        })
        .await;
    eventually(SECOND, "key loads", || async {
        chat(&url, &old_secret, "m").await.0 == 200
    })
    .await;
    let (new, new_secret) = w.store.rotate_key(&root(), &old.id, 800).await.unwrap();
    w.changed();
    assert_eq!(new.rotated_from.as_deref(), Some(old.id.as_str()));
    eventually(SECOND, "the new key works", || async {
        chat(&url, &new_secret, "m").await.0 == 200
    })
    .await;
    assert_eq!(
        chat(&url, &old_secret, "m").await.0,
        200,
        "the old key works during the overlap"
    );
    eventually(2 * SECOND, "the old key ends with the overlap", || async {
        chat(&url, &old_secret, "m").await.0 == 401
    })
    .await;
    assert_eq!(chat(&url, &new_secret, "m").await.0, 200);
}

async fn subscriptions_gate_models_and_apis(b: Backend) {
    let w = world(b, "").await;
    let url = w.gw.url.clone();
    w.store
        .create_user(
            &root(),
            st::NewUser {
                name: "alice".into(),
                role: st::Role::TenantAdmin,
                tenant_id: Some(w.tenant.id.clone()),
            },
        )
        .await
        .unwrap();
    let (_, secret) = w
        .key(st::NewKey {
            name: "k".into(),
            ..Default::default()
        })
        .await;
    eventually(SECOND, "key loads", || async {
        chat(&url, &secret, "m").await.0 == 200
    })
    .await;
    let (status, body) = chat(&url, &secret, "gated").await;
    assert_eq!(status, 403, "{body}");
    let msg = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("needs an approved subscription to model `gated`") && msg.contains("alice"),
        "{msg}"
    );
    let models = |s: String| {
        let url = url.clone();
        async move {
            let v: Value = TestGateway::client()
                .get(format!("{url}/v1/models"))
                .bearer_auth(s)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        models(secret.clone()).await,
        ["m", "m2"],
        "unapproved models are not listed"
    );
    let sub = w
        .store
        .request_subscription(&root(), &w.app.id, "model:gated", None)
        .await
        .unwrap();
    w.changed();
    eventually(SECOND, "the pending state shows", || async {
        let (_, body) = chat(&url, &secret, "gated").await;
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is pending"))
    })
    .await;
    w.store
        .decide_subscription(&root(), &sub.id, st::SubState::Approved, None)
        .await
        .unwrap();
    w.changed();
    eventually(SECOND, "approval opens the model", || async {
        chat(&url, &secret, "gated").await.0 == 200
    })
    .await;
    assert_eq!(models(secret.clone()).await, ["gated", "m", "m2"]);
    // An API marked requires_approval is gated the same way.
    let emb = TestGateway::client()
        .post(format!("{url}/v1/embeddings"))
        .bearer_auth(&secret)
        .json(&json!({"model": "m", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(emb.status(), 403);
    assert!(emb.text().await.unwrap().contains("api `embeddings`"));
}

async fn two_instances(b: Backend, extra: &str) -> (World, TestGateway) {
    let w = world(b, extra).await;
    let other = TestGateway::start(&config(&w.db.url, extra)).await;
    (w, other)
}

async fn revoke_elsewhere_within_a_second(b: Backend, extra: &str) {
    let (w, other) = two_instances(b, extra).await;
    let (key, secret) = w
        .key(st::NewKey {
            name: "k".into(),
            ..Default::default()
        })
        .await;
    let url = other.url.clone();
    eventually(SECOND, "the other instance learns the key", || async {
        chat(&url, &secret, "m").await.0 == 200
    })
    .await;
    w.store.revoke_key(&root(), &key.id).await.unwrap();
    w.changed();
    eventually(
        SECOND,
        "the other instance refuses the revoked key",
        || async { chat(&url, &secret, "m").await.0 == 401 },
    )
    .await;
}

async fn revocation_reaches_another_instance_by_polling(b: Backend) {
    revoke_elsewhere_within_a_second(b, "").await;
}

/// With `shared_state` the store is polled only every 5 s, so a refusal
/// within a second proves the pub/sub notice arrived.
async fn revocation_reaches_another_instance_through_redis_at_once(b: Backend) {
    let (w, other) = two_instances(b, &format!("shared_state: {}", redis_url())).await;
    let url = other.url.clone();
    eventually(SECOND, "shared_state connected", || async {
        other
            .app
            .redis_ok
            .load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    let (key, secret) = w
        .key(st::NewKey {
            name: "k".into(),
            ..Default::default()
        })
        .await;
    eventually(SECOND, "the other instance learns the key", || async {
        chat(&url, &secret, "m").await.0 == 200
    })
    .await;
    w.store.revoke_key(&root(), &key.id).await.unwrap();
    w.changed();
    eventually(
        SECOND,
        "the other instance refuses the revoked key",
        || async { chat(&url, &secret, "m").await.0 == 401 },
    )
    .await;
}

async fn jwts_act_for_their_app(b: Backend) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]});
    let dir = common::temp_dir();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let extra = format!(
        "jwt: {{ jwks: \"{}\", issuer: https://idp.test }}",
        jwks_path.display()
    );
    let w = world(b, &extra).await;
    let sign = |claims: Value, der: &[u8]| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ec_der(der)).unwrap()
    };
    let exp = sluice::mock::now_ms() / 1000 + 600;
    let claims = |app: &str| json!({"iss": "https://idp.test", "sub": "user-7", "tenant": "acme", "app": app, "exp": exp});
    let url = w.gw.url.clone();
    let good = sign(claims("web"), pkcs8.as_ref());
    eventually(SECOND, "a token for a known app works", || async {
        chat(&url, &good, "m").await.0 == 200
    })
    .await;
    let (status, body) = chat(&url, &sign(claims("ghost"), pkcs8.as_ref()), "m").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`ghost`"),
        "{body}"
    );
    let other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    assert_eq!(
        chat(&url, &sign(claims("web"), other.as_ref()), "m")
            .await
            .0,
        401,
        "a foreign signature"
    );
    // The app's subscriptions apply to its tokens too.
    let (status, _) = chat(&url, &good, "gated").await;
    assert_eq!(status, 403);
}

async fn config_reloads_reseed_tenants_and_re_resolve_policies(b: Backend) {
    let w = world(b, "").await;
    let url = w.gw.url.clone();
    let (_, secret) = w
        .key(st::NewKey {
            name: "k".into(),
            policy: Some(json!("tiny")),
            ..Default::default()
        })
        .await;
    eventually(SECOND, "key loads", || async {
        chat(&url, &secret, "m").await.0 == 200
    })
    .await;
    // The reload drops the policy the key names and seeds a tenant.
    let path = &w.gw.config_path;
    let text = std::fs::read_to_string(path).unwrap().replace(
        "policies: { tiny: { limits: { max_output_tokens: 5 } } }",
        "policies: { other: { limits: { max_output_tokens: 5 } } }\ntenants: { globex: { tier: gold } }",
    );
    std::fs::write(path, text).unwrap();
    sluice::reload::reload(&w.gw.app, "test").unwrap();
    eventually(SECOND, "the key fails closed", || async {
        chat(&url, &secret, "m").await.0 == 403
    })
    .await;
    let (_, body) = chat(&url, &secret, "m").await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("policy of key `k`") && msg.contains("tiny"),
        "{msg}"
    );
    let store = w.store.clone();
    eventually(SECOND, "the config tenant is seeded", || {
        let store = store.clone();
        async move {
            store
                .tenant_by_name("globex")
                .await
                .unwrap()
                .is_some_and(|t| {
                    t.source == st::Source::Config && t.tier.as_deref() == Some("gold")
                })
        }
    })
    .await;
    // Config tenants are read-only through the store API.
    let globex = w.store.tenant_by_name("globex").await.unwrap().unwrap();
    let err = w
        .store
        .delete_tenant(&root(), &globex.id)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("managed by the config file"),
        "{err}"
    );
}

/// A store that stops answering makes the instance unready, while the keys
/// it already knows keep working (Postgres: the test drops the schema).
#[tokio::test]
async fn readiness_follows_the_store_and_known_keys_keep_working() {
    common::db::cleanup_after(async {
        let w = world(Backend::Postgres, "").await;
        let url = w.gw.url.clone();
        let (_, secret) = w
            .key(st::NewKey {
                name: "k".into(),
                ..Default::default()
            })
            .await;
        eventually(SECOND, "key loads", || async {
            chat(&url, &secret, "m").await.0 == 200
        })
        .await;
        let ready = |url: String| async move {
            let r = TestGateway::client()
                .get(format!("{url}/readyz"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        assert_eq!(ready(url.clone()).await.0, 200);
        let schema = w.db.url.rsplit("search_path%3D").next().unwrap().to_owned();
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&common::db::postgres_url())
                .await
                .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await
            .unwrap();
        eventually(2 * SECOND, "readyz reports the store", || {
            let url = url.clone();
            async move {
                let (status, body) = ready(url).await;
                status == 503 && body.contains("store_unreachable")
            }
        })
        .await;
        assert_eq!(
            chat(&url, &secret, "m").await.0,
            200,
            "known keys keep serving"
        );
    })
    .await;
}
