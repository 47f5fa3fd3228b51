//! API keys: secrets (format, hash, never stored), update, rotation with an
//! overlap, revocation, paging and filters, hostile input.

use serde_json::json;
use sluice_store::ids::{hash_secret, now_ms};
use sluice_store::{AuditQuery, KeyPatch, ListQuery, NewKey, Scopes, Store};

use crate::common::*;

both!(
    create_returns_a_secret_that_is_stored_only_hashed,
    missing_or_deleted_apps_are_not_found,
    names_and_scopes_are_validated,
    update_changes_fields_but_not_revoked_keys,
    rotation_creates_a_successor_and_shortens_the_old_key,
    rotation_keeps_an_earlier_expiry_and_refuses_dead_keys,
    revoke_is_immediate_and_idempotent,
    lists_page_and_filter,
    hostile_strings_are_literal,
);

fn new_key(app_id: &str, name: &str) -> NewKey {
    NewKey {
        app_id: app_id.to_owned(),
        name: name.to_owned(),
        ..NewKey::default()
    }
}

async fn create_returns_a_secret_that_is_stored_only_hashed(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let by = actor("usr_dev", sluice_store::Role::Developer, Some(&t.id));
    let (k, secret) = s
        .create_key(
            &by,
            NewKey {
                app_id: a.id.clone(),
                name: "ci key".into(),
                scopes: Scopes {
                    models: Some(vec!["m1".into()]),
                    apis: Some(vec!["chat".into()]),
                },
                policy: Some(json!({"rpm": 1})),
                expires_at: Some(now_ms() + 86_400_000),
            },
        )
        .await
        .unwrap();
    let body = secret.strip_prefix("sk-sluice-").expect("secret prefix");
    assert_eq!(body.len(), 40);
    assert!(body.chars().all(|c| c.is_ascii_alphanumeric()), "{secret}");
    assert_eq!(k.prefix, secret[..14]);
    assert_eq!(k.hash, hash_secret(&secret));
    assert_eq!(k.hash.len(), 64);
    assert_eq!(
        (k.tenant_id.as_str(), k.created_by.as_str()),
        (t.id.as_str(), "usr_dev")
    );
    assert!(k.id.starts_with("key_"));
    assert_eq!(s.get_key(&k.id).await.unwrap(), Some(k.clone()));
    let serialized = serde_json::to_string(&k).unwrap();
    assert!(
        !serialized.contains(&k.hash) && !serialized.contains("hash"),
        "{serialized}"
    );

    // A second key gets a different secret.
    let (k2, secret2) = key(&s, &a.id, "other").await;
    assert_ne!(secret, secret2);
    assert_ne!(k.hash, k2.hash);

    // The secret is nowhere in the database; the hash is nowhere in the audit log.
    let everything = all_text(&s).await;
    assert!(
        everything.iter().any(|v| v.contains(&k.hash)),
        "the scan sees api_keys.hash"
    );
    for secret in [&secret, &secret2] {
        let leaks: Vec<_> = everything
            .iter()
            .filter(|v| v.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "secret stored: {leaks:?}");
        let body = &secret[14..];
        assert!(
            !everything.iter().any(|v| v.contains(body)),
            "secret body stored"
        );
    }
    let audit_leaks: Vec<_> = everything
        .iter()
        .filter(|v| v.starts_with("audit_log.") && (v.contains(&k.hash) || v.contains(&k2.hash)))
        .collect();
    assert!(audit_leaks.is_empty(), "{audit_leaks:?}");
    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[1];
    assert_eq!(
        (entry.action.as_str(), entry.actor.as_str()),
        ("key.create", "usr_dev")
    );
    assert_eq!(entry.after.as_ref().unwrap()["prefix"], json!(k.prefix));
}

async fn missing_or_deleted_apps_are_not_found(s: Store) {
    expect_not_found(
        s.create_key(&admin(), new_key("app_missing", "k")).await,
        "app `app_missing`",
    );
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    s.delete_app(&admin(), &a.id).await.unwrap();
    expect_not_found(s.create_key(&admin(), new_key(&a.id, "k")).await, "app");
    assert_eq!(s.get_key("key_missing").await.unwrap(), None);
    expect_not_found(
        s.revoke_key(&admin(), "key_missing").await,
        "key `key_missing`",
    );
    expect_not_found(s.rotate_key(&admin(), "key_missing", 0).await, "key");
    expect_not_found(
        s.update_key(&admin(), "key_missing", KeyPatch::default())
            .await,
        "key",
    );
    assert_eq!(count(&s, "api_keys").await, 0);
}

async fn names_and_scopes_are_validated(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    for bad in [
        "",
        " lead",
        "trail ",
        "semi;colon",
        NASTY[0],
        &"k".repeat(65),
    ] {
        expect_invalid(
            s.create_key(&admin(), new_key(&a.id, bad)).await,
            "key name",
        );
    }
    let mut k = new_key(&a.id, "ok");
    k.scopes.apis = Some(vec!["chat".into(), "sql".into()]);
    expect_invalid(s.create_key(&admin(), k.clone()).await, "scopes.apis");
    k.scopes = Scopes {
        models: Some(vec![String::new()]),
        apis: None,
    };
    expect_invalid(s.create_key(&admin(), k).await, "scopes.models");
    let (ok, _) = key(&s, &a.id, "with inner spaces").await;
    expect_invalid(
        s.update_key(
            &admin(),
            &ok.id,
            KeyPatch {
                name: Some("x/y".into()),
                ..KeyPatch::default()
            },
        )
        .await,
        "key name",
    );
    assert_eq!(count(&s, "api_keys").await, 1);
}

async fn update_changes_fields_but_not_revoked_keys(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let (k, _) = key(&s, &a.id, "k").await;
    let patch = KeyPatch {
        name: Some("renamed".into()),
        scopes: Some(Scopes {
            models: None,
            apis: Some(vec!["embeddings".into()]),
        }),
        policy: Some(Some(json!("strict"))),
        expires_at: Some(Some(123)),
    };
    let u = s.update_key(&admin(), &k.id, patch).await.unwrap();
    assert_eq!(u.name, "renamed");
    assert_eq!(u.scopes.apis, Some(vec!["embeddings".to_owned()]));
    assert_eq!(
        (u.policy.clone(), u.expires_at),
        (Some(json!("strict")), Some(123))
    );
    assert_eq!(
        (u.hash.as_str(), u.prefix.as_str()),
        (k.hash.as_str(), k.prefix.as_str())
    );
    assert_eq!(s.get_key(&k.id).await.unwrap(), Some(u.clone()));
    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(entry.action, "key.update");
    assert_eq!(entry.before.as_ref().unwrap()["name"], json!("k"));
    assert_eq!(entry.after.as_ref().unwrap()["name"], json!("renamed"));

    let cleared = s
        .update_key(
            &admin(),
            &k.id,
            KeyPatch {
                expires_at: Some(None),
                policy: Some(None),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((cleared.expires_at, cleared.policy), (None, None));
    s.revoke_key(&admin(), &k.id).await.unwrap();
    expect_invalid(
        s.update_key(
            &admin(),
            &k.id,
            KeyPatch {
                name: Some("again".into()),
                ..KeyPatch::default()
            },
        )
        .await,
        "revoked",
    );
}

async fn rotation_creates_a_successor_and_shortens_the_old_key(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let far = now_ms() + 30 * 86_400_000;
    let (old, old_secret) = s
        .create_key(
            &admin(),
            NewKey {
                app_id: a.id.clone(),
                name: "prod".into(),
                scopes: Scopes {
                    models: Some(vec!["m".into()]),
                    apis: None,
                },
                policy: Some(json!({"rpm": 3})),
                expires_at: Some(far),
            },
        )
        .await
        .unwrap();
    let rev = s.revision().await.unwrap();
    let before = now_ms();
    let by = actor("usr_ops", sluice_store::Role::TenantAdmin, Some(&t.id));
    let (new, secret) = s.rotate_key(&by, &old.id, 60_000).await.unwrap();
    let after = now_ms();
    assert_eq!(s.revision().await.unwrap(), rev + 1);

    assert_ne!(new.id, old.id);
    assert_ne!(secret, old_secret);
    assert_eq!(new.hash, hash_secret(&secret));
    assert_eq!(new.rotated_from.as_deref(), Some(old.id.as_str()));
    assert_eq!(
        (new.app_id.as_str(), new.tenant_id.as_str()),
        (a.id.as_str(), t.id.as_str())
    );
    assert_eq!(
        (new.name.as_str(), &new.scopes, &new.policy),
        ("prod", &old.scopes, &old.policy)
    );
    assert_eq!(new.expires_at, Some(far));
    assert_eq!(new.created_by, "usr_ops");
    assert_eq!(s.get_key(&new.id).await.unwrap(), Some(new.clone()));

    let retired = s.get_key(&old.id).await.unwrap().unwrap();
    let exp = retired.expires_at.expect("old key expires");
    assert!(exp >= before + 60_000 && exp <= after + 60_000, "{exp}");
    assert_eq!(retired.revoked_at, None, "still works during the overlap");
    let dir = s.load_directory().await.unwrap();
    assert_eq!(
        dir.keys.len(),
        2,
        "both keys work until the old one expires"
    );

    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(
        (entry.action.as_str(), entry.target_id.as_str()),
        ("key.rotate", old.id.as_str())
    );
    assert_eq!(entry.actor, "usr_ops");
    assert_eq!(entry.tenant_id.as_deref(), Some(t.id.as_str()));
    assert_eq!(entry.before.as_ref().unwrap()["expires_at"], json!(far));
    assert_eq!(entry.after.as_ref().unwrap()["expires_at"], json!(exp));
    assert_eq!(entry.after.as_ref().unwrap()["rotated_to"], json!(new.id));
    let text = serde_json::to_string(entry).unwrap();
    assert!(!text.contains(&secret) && !text.contains(&new.hash) && !text.contains(&old.hash));
    let leaks: Vec<_> = all_text(&s)
        .await
        .into_iter()
        .filter(|v| v.contains(&secret[10..]))
        .collect();
    assert!(leaks.is_empty(), "{leaks:?}");

    // The successor can itself be rotated.
    let (third, _) = s.rotate_key(&admin(), &new.id, 0).await.unwrap();
    assert_eq!(third.rotated_from.as_deref(), Some(new.id.as_str()));
}

async fn rotation_keeps_an_earlier_expiry_and_refuses_dead_keys(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let soon = now_ms() + 10_000;
    let (k, _) = s
        .create_key(
            &admin(),
            NewKey {
                expires_at: Some(soon),
                ..new_key(&a.id, "k")
            },
        )
        .await
        .unwrap();
    s.rotate_key(&admin(), &k.id, 3_600_000).await.unwrap();
    assert_eq!(
        s.get_key(&k.id).await.unwrap().unwrap().expires_at,
        Some(soon)
    );

    let (no_expiry, _) = key(&s, &a.id, "forever").await;
    expect_invalid(s.rotate_key(&admin(), &no_expiry.id, -1).await, "overlap");
    let rev = s.revision().await.unwrap();
    s.revoke_key(&admin(), &no_expiry.id).await.unwrap();
    expect_invalid(s.rotate_key(&admin(), &no_expiry.id, 1000).await, "revoked");
    let (expired, _) = s
        .create_key(
            &admin(),
            NewKey {
                expires_at: Some(now_ms() - 1),
                ..new_key(&a.id, "old")
            },
        )
        .await
        .unwrap();
    expect_invalid(s.rotate_key(&admin(), &expired.id, 1000).await, "expired");
    assert_eq!(
        s.revision().await.unwrap(),
        rev + 2,
        "failed rotations change nothing"
    );
}

async fn revoke_is_immediate_and_idempotent(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let (k, _) = key(&s, &a.id, "k").await;
    let (other, _) = key(&s, &a.id, "other").await;
    let r = s.revoke_key(&admin(), &k.id).await.unwrap();
    let at = r.revoked_at.expect("revoked");
    assert!(at <= now_ms());
    assert_eq!(s.get_key(&k.id).await.unwrap(), Some(r.clone()));
    let rev = s.revision().await.unwrap();
    let again = s.revoke_key(&admin(), &k.id).await.unwrap();
    assert_eq!(again.revoked_at, Some(at));
    assert_eq!(s.revision().await.unwrap(), rev, "no-op");
    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(
        (entry.action.as_str(), entry.target_id.as_str()),
        ("key.revoke", k.id.as_str())
    );
    assert_eq!(entry.before.as_ref().unwrap()["revoked_at"], json!(null));
    assert_eq!(entry.after.as_ref().unwrap()["revoked_at"], json!(at));
    let dir = s.load_directory().await.unwrap();
    assert_eq!(
        dir.keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
        vec![&other.id]
    );
}

async fn lists_page_and_filter(s: Store) {
    let t = tenant(&s, "acme").await;
    let t2 = tenant(&s, "beta").await;
    let a = app(&s, &t.id, "svc").await;
    let b = app(&s, &t.id, "svc2").await;
    let c = app(&s, &t2.id, "svc").await;
    let mut of_a = Vec::new();
    for i in 0..7 {
        of_a.push(key(&s, &a.id, &format!("Key {i}")).await.0.id);
    }
    let (kb, _) = key(&s, &b.id, "bee").await;
    key(&s, &c.id, "see").await;
    s.revoke_key(&admin(), &of_a[6]).await.unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    for expected in [3, 3, 1] {
        let page = s
            .list_keys(&ListQuery {
                app_id: Some(a.id.clone()),
                include_inactive: true,
                limit: 3,
                after: after.clone(),
                ..q()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), expected);
        seen.extend(page.items.into_iter().map(|k| k.id));
        after = page.next;
    }
    assert_eq!((seen, after), (of_a.clone(), None));

    let live = s
        .list_keys(&ListQuery {
            app_id: Some(a.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(live.items.len(), 6, "revoked keys only on request");
    let tenant_keys = s
        .list_keys(&ListQuery {
            tenant_id: Some(t.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(tenant_keys.items.len(), 7);
    let named = s
        .list_keys(&ListQuery {
            name_contains: Some("KEY 1".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let named = s
        .list_keys(&ListQuery {
            name_contains: Some("ee".into()),
            tenant_id: Some(t.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(
        named.items.into_iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![kb.id]
    );
}

async fn hostile_strings_are_literal(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let models: Vec<String> = NASTY.iter().map(|n| (*n).to_owned()).collect();
    let (k, _) = s
        .create_key(
            &admin(),
            NewKey {
                scopes: Scopes {
                    models: Some(models.clone()),
                    apis: None,
                },
                policy: Some(json!({ "q": NASTY })),
                ..new_key(&a.id, "k")
            },
        )
        .await
        .unwrap();
    let got = s.get_key(&k.id).await.unwrap().unwrap();
    assert_eq!(got.scopes.models, Some(models));
    assert_eq!(got.policy, Some(json!({ "q": NASTY })));
    for nasty in NASTY {
        assert_eq!(s.get_key(nasty).await.unwrap(), None);
        let page = s
            .list_keys(&ListQuery {
                tenant_id: Some((*nasty).to_owned()),
                app_id: Some((*nasty).to_owned()),
                name_contains: Some((*nasty).to_owned()),
                after: Some((*nasty).to_owned()),
                ..q()
            })
            .await
            .unwrap();
        assert!(page.items.is_empty());
        expect_not_found(s.create_key(&admin(), new_key(nasty, "k")).await, "app");
    }
    tables_survive(&s).await;
    assert_eq!(count(&s, "api_keys").await, 1);
}
