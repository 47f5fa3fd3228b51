//! Directory resolution from store rows, without a database.

use std::sync::Arc;

use serde_json::json;
use sluice_store as st;

use super::*;

fn cfg() -> RawConfig {
    crate::config::load_str(
        "providers: { p: { kind: mock } }\nmodels:\n  a: { deployments: [ { provider: p, model: a } ] }\n  b: { deployments: [ { provider: p, model: b } ] }\n  c: { deployments: [ { provider: p, model: c } ] }\npolicies:\n  small: { limits: { max_output_tokens: 50 } }\nglobal_policy: { limits: { max_output_tokens: 1000 } }\ntenants: { seeded: { policy: { models: [a] } } }\n",
        std::path::Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap()
}

fn tenant(
    id: &str,
    name: &str,
    source: st::Source,
    policy: Option<serde_json::Value>,
) -> st::Tenant {
    st::Tenant {
        id: id.into(),
        name: name.into(),
        tier: None,
        policy,
        source,
        created_at: 0,
        updated_at: 0,
    }
}

fn app(id: &str, tenant_id: &str, name: &str, policy: Option<serde_json::Value>) -> st::App {
    st::App {
        id: id.into(),
        tenant_id: tenant_id.into(),
        name: name.into(),
        owner_user_id: None,
        policy,
        created_at: 0,
        updated_at: 0,
    }
}

fn key(
    app: &st::App,
    secret: &str,
    scopes: st::Scopes,
    policy: Option<serde_json::Value>,
) -> st::ApiKey {
    st::ApiKey {
        id: format!("key_{secret}"),
        app_id: app.id.clone(),
        tenant_id: app.tenant_id.clone(),
        name: secret.into(),
        prefix: "sk-sluice-xxxx".into(),
        hash: hex::encode(crate::snapshot::hash_secret(secret)),
        scopes,
        policy,
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        created_by: "usr_1".into(),
        created_at: 0,
    }
}

fn rows() -> st::Directory {
    let acme = tenant(
        "ten_1",
        "acme",
        st::Source::Store,
        Some(json!({"models": ["a", "b"]})),
    );
    let seeded = tenant("ten_2", "seeded", st::Source::Config, None);
    let gone = tenant("ten_3", "gone", st::Source::Config, None);
    let web = app("app_1", "ten_1", "web", Some(json!("small")));
    let bad = app("app_2", "ten_1", "bad", Some(json!("no-such-policy")));
    let s_app = app("app_3", "ten_2", "svc", None);
    let g_app = app("app_4", "ten_3", "old", None);
    let keys = vec![
        key(
            &web,
            "k-web",
            st::Scopes {
                models: Some(vec!["b".into(), "c".into()]),
                apis: Some(vec!["chat".into()]),
            },
            Some(json!({"limits": {"max_output_tokens": 20}})),
        ),
        key(&bad, "k-bad", st::Scopes::default(), None),
        key(&s_app, "k-seeded", st::Scopes::default(), None),
        key(&g_app, "k-gone", st::Scopes::default(), None),
    ];
    let sub = |id: &str, app: &str, target: &str, state| st::Subscription {
        id: id.into(),
        tenant_id: "ten_1".into(),
        app_id: app.into(),
        target: target.into(),
        state,
        requested_by: "usr_1".into(),
        requested_at: 0,
        decided_by: None,
        decided_at: None,
        note: None,
    };
    let user = |name: &str, role, tenant: Option<&str>| st::User {
        id: format!("usr_{name}"),
        name: name.into(),
        role,
        tenant_id: tenant.map(Into::into),
        disabled_at: None,
        created_at: 0,
        updated_at: 0,
    };
    st::Directory {
        revision: 7,
        tenants: vec![acme, seeded, gone],
        apps: vec![web, bad, s_app, g_app],
        keys,
        subscriptions: vec![
            sub("sub_1", "app_1", "model:a", st::SubState::Pending),
            sub("sub_2", "app_1", "model:b", st::SubState::Approved),
            sub("sub_3", "app_1", "api:embeddings", st::SubState::Revoked),
        ],
        approvers: vec![
            user("root", st::Role::Admin, None),
            user("alice", st::Role::TenantAdmin, Some("ten_1")),
        ],
    }
}

fn build() -> Directory {
    Directory::build(Arc::new(rows()), &cfg())
}

fn by_secret<'a>(d: &'a Directory, secret: &str) -> &'a KeyInfo {
    &d.keys[&crate::snapshot::hash_secret(secret)]
}

#[test]
fn every_level_holds_and_scopes_narrow_models() {
    let d = build();
    assert_eq!(d.revision, 7);
    let k = by_secret(&d, "k-web");
    // global 1000, app `small` 50, key 20: the tightest wins.
    assert_eq!(k.limits.max_output_tokens, Some(20));
    // tenant allows a, b; scopes allow b, c: only b.
    let models: Vec<&str> = k.models.iter().flatten().map(|m| &**m).collect();
    assert_eq!(models, ["b"]);
    let m = k.managed.as_ref().unwrap();
    assert_eq!(
        (&*m.app, &*m.tenant_id, m.key_id.as_deref()),
        ("web", "ten_1", Some("key_k-web"))
    );
    assert_eq!(m.apis.as_ref().unwrap().len(), 1);
    assert!(m.denied.is_none());
    assert_eq!(k.tenant.as_deref(), Some("acme"));
}

#[test]
fn config_tenants_take_their_policy_from_the_config_and_fail_closed_when_gone() {
    let d = build();
    let seeded = by_secret(&d, "k-seeded");
    let models: Vec<&str> = seeded.models.iter().flatten().map(|m| &**m).collect();
    assert_eq!(models, ["a"]);
    assert!(seeded.managed.as_ref().unwrap().denied.is_none());
    let gone = by_secret(&d, "k-gone").managed.as_ref().unwrap();
    assert!(gone.denied.as_deref().unwrap().contains("no longer in it"));
}

#[test]
fn a_policy_that_no_longer_resolves_denies_with_the_reason() {
    let d = build();
    let bad = by_secret(&d, "k-bad").managed.as_ref().unwrap();
    let why = bad.denied.as_deref().unwrap();
    assert!(
        why.contains("app `bad`") && why.contains("no-such-policy"),
        "{why}"
    );
}

#[test]
fn subscriptions_say_their_state_and_who_approves() {
    let d = build();
    let m = by_secret(&d, "k-web").managed.as_ref().unwrap();
    assert!(d.check_subscription(m, "model:b").is_ok());
    let pending = d.check_subscription(m, "model:a").unwrap_err();
    assert_eq!(pending.status(), http::StatusCode::FORBIDDEN);
    assert!(
        pending.message.contains("sub_1 is pending"),
        "{}",
        pending.message
    );
    assert!(pending.message.contains("alice") && pending.message.contains("root"));
    let revoked = d.check_subscription(m, "api:embeddings").unwrap_err();
    assert!(
        revoked.message.contains("was revoked"),
        "{}",
        revoked.message
    );
    let none = d.check_subscription(m, "model:c").unwrap_err();
    assert!(none.message.contains("POST /admin/subscriptions") && none.message.contains("model:c"));
}

#[test]
fn apps_are_found_by_name_or_id_within_their_tenant() {
    let d = build();
    assert_eq!(&*d.find_app(Some("acme"), "web").unwrap().name, "web");
    assert_eq!(&*d.find_app(Some("ten_1"), "web").unwrap().name, "web");
    assert_eq!(&*d.find_app(None, "app_1").unwrap().name, "web");
    assert!(
        d.find_app(Some("seeded"), "web").is_none(),
        "another tenant's app"
    );
    assert!(
        d.find_app(Some("ten_2"), "app_1").is_none(),
        "id of another tenant's app"
    );
    assert!(d.find_app(None, "web").is_none(), "a name needs its tenant");
}

#[test]
fn store_urls_resolve_against_the_config_dir_and_hide_passwords() {
    let cfg = std::path::Path::new("/etc/sluice/sluice.yaml");
    assert_eq!(
        resolve_store_url("sqlite://data/s.db", Some(cfg)),
        "sqlite:///etc/sluice/data/s.db"
    );
    assert_eq!(
        resolve_store_url("sqlite:///abs.db", Some(cfg)),
        "sqlite:///abs.db"
    );
    assert_eq!(
        resolve_store_url("postgres://u@h/db", Some(cfg)),
        "postgres://u@h/db"
    );
    assert_eq!(
        redact_url("postgres://u:secret@h/db"),
        "postgres://u:***@h/db"
    );
    assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
}

/// Rate rules of every level, for static and store keys alike; the tenant
/// level is keyed by name, so both kinds of keys share its counter.
#[test]
fn rate_rules_per_level_and_one_tenant_counter_for_static_and_store_keys() {
    use crate::policy::rate::{LocalRates, RateStore, Who};
    use crate::policy::ScopeKind;

    let cfg = crate::config::load_str(
        "providers: { p: { kind: mock } }\nmodels: { a: { deployments: [ { provider: p, model: a } ], policy: { rate_limit: { requests_per_second: 9 } } } }\npolicies: { standard: { rate_limit: { requests_per_minute: 2 } } }\nglobal_policy: { rate_limit: { requests_per_second: 5000 } }\ntenants: { acme: { policy: standard } }\nkeys: [ { name: ci, key: secret-ci-0001, tenant: acme, policy: [standard, { rate_limit: { requests_per_minute: 60 } }] } ]\n",
        std::path::Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap();
    let snap = crate::snapshot::Snapshot::build(&cfg, 1).unwrap();
    let acme = tenant("ten_9", "acme", st::Source::Config, None);
    let web = app(
        "app_9",
        "ten_9",
        "web",
        Some(json!({"rate_limit": {"requests_per_hour": 100, "per": "user"}})),
    );
    let k = key(
        &web,
        "k-rate",
        st::Scopes::default(),
        Some(json!({"rate_limit": {"requests_per_day": 1000}})),
    );
    let rows = st::Directory {
        revision: 1,
        tenants: vec![acme],
        apps: vec![web],
        keys: vec![k],
        ..Default::default()
    };
    let dir = Directory::build(Arc::new(rows), &cfg);
    let describe = |info: &KeyInfo| -> Vec<(ScopeKind, String, Option<String>)> {
        info.rates
            .iter()
            .map(|r| {
                (
                    r.key.kind,
                    r.label.to_string(),
                    r.policy.as_deref().map(str::to_owned),
                )
            })
            .collect()
    };
    let static_key = &snap.keys[&crate::snapshot::hash_secret("secret-ci-0001")];
    let store_key = by_secret(&dir, "k-rate");
    let std = Some("standard".to_owned());
    assert_eq!(
        describe(static_key),
        [
            (ScopeKind::Global, "the gateway-wide limit".into(), None),
            (ScopeKind::Tenant, "tenant `acme`".into(), std.clone()),
            (ScopeKind::Key, "key `ci`".into(), std.clone()),
        ]
    );
    assert_eq!(&*static_key.rates[2].key.scope, "cfg:ci");
    assert_eq!(
        static_key.rates[2].key.spec.counts,
        [0, 60, 0, 0],
        "merged left to right"
    );
    assert_eq!(
        describe(store_key),
        [
            (ScopeKind::Global, "the gateway-wide limit".into(), None),
            (ScopeKind::Tenant, "tenant `acme`".into(), std),
            (ScopeKind::App, "app `web`".into(), None),
            (ScopeKind::Key, "key `k-rate`".into(), None),
        ]
    );
    assert_eq!(&*store_key.rates[3].key.scope, "key_k-rate");
    assert!(store_key.rates[2].key.per.is_some());
    assert_eq!(static_key.rates[0].key, store_key.rates[0].key);
    assert_eq!(
        static_key.rates[1].key, store_key.rates[1].key,
        "one tenant counter"
    );
    let app_identity = dir.apps.get("app_9").unwrap();
    assert_eq!(app_identity.rates.len(), 3, "a JWT caller has no key level");
    let model = &snap.models["a"];
    assert_eq!(model.rates[0].key.kind, ScopeKind::Model);
    assert_eq!(&*model.rates[0].label, "model `a`");

    // Two requests per minute for tenant acme, whichever key sends them.
    let rates = LocalRates::default();
    let who = Who::default();
    let go = |info: &KeyInfo| rates.acquire([&info.rates, &model.rates], &who).refusal;
    assert!(go(static_key).is_none());
    assert!(go(store_key).is_none());
    let e = go(static_key).expect("the tenant's counter is shared");
    assert!(
        e.message
            .starts_with("rate limit of tenant `acme` (policy `standard`): 2 requests per minute"),
        "{}",
        e.message
    );
}
