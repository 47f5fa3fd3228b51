//! The audit log and the revision counter: one entry and one bump per
//! mutation (none for reads or no-ops), actors, tenants, before/after,
//! newest-first paging and filters, free-form entries.

use serde_json::json;
use sluice_store::{
    AppPatch, AuditEntry, AuditQuery, KeyPatch, NewTenant, NewUser, Role, Store, SubState,
    TenantPatch, UserPatch,
};

use crate::common::*;

both!(
    every_mutation_is_audited_once_and_bumps_the_revision,
    reads_do_not_move_the_revision,
    audit_pages_newest_first_and_filters,
    record_audit_appends_a_free_form_entry,
    hostile_strings_in_audit_filters_are_literal,
);

/// Runs one mutation and checks it wrote exactly one audit entry and moved
/// the revision by exactly one; returns the entry.
async fn one_change<F, Fut, T>(s: &Store, f: F) -> AuditEntry
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = sluice_store::Result<T>>,
    T: std::fmt::Debug,
{
    let rev = s.revision().await.unwrap();
    let n = count(s, "audit_log").await;
    f().await.expect("mutation");
    assert_eq!(s.revision().await.unwrap(), rev + 1, "one revision bump");
    assert_eq!(count(s, "audit_log").await, n + 1, "one audit entry");
    s.list_audit(&AuditQuery::default())
        .await
        .unwrap()
        .items
        .remove(0)
}

async fn every_mutation_is_audited_once_and_bumps_the_revision(s: Store) {
    let root = admin();
    let e = one_change(&s, || {
        s.create_tenant(
            &root,
            NewTenant {
                name: "acme".into(),
                tier: Some("gold".into()),
                policy: None,
            },
        )
    })
    .await;
    let t = s.tenant_by_name("acme").await.unwrap().unwrap();
    assert_eq!((e.actor.as_str(), e.actor_role), ("usr_root", Role::Admin));
    assert_eq!(
        (
            e.action.as_str(),
            e.target_type.as_str(),
            e.target_id.as_str()
        ),
        ("tenant.create", "tenant", t.id.as_str())
    );
    assert_eq!(e.tenant_id.as_deref(), Some(t.id.as_str()));
    assert_eq!(
        (e.before.clone(), e.after.clone()),
        (None, Some(serde_json::to_value(&t).unwrap()))
    );

    let ta = actor("usr_ta", Role::TenantAdmin, Some(&t.id));
    let e = one_change(&s, || {
        s.update_tenant(
            &root,
            &t.id,
            TenantPatch {
                tier: Some(Some("silver".into())),
                ..TenantPatch::default()
            },
        )
    })
    .await;
    assert_eq!(e.action, "tenant.update");
    assert_eq!(
        (
            e.before.as_ref().unwrap()["tier"].clone(),
            e.after.as_ref().unwrap()["tier"].clone()
        ),
        (json!("gold"), json!("silver"))
    );

    let e = one_change(&s, || {
        s.create_user(
            &root,
            NewUser {
                name: "dev".into(),
                role: Role::Developer,
                tenant_id: Some(t.id.clone()),
            },
        )
    })
    .await;
    assert_eq!(
        (
            e.action.as_str(),
            e.target_type.as_str(),
            e.tenant_id.as_deref()
        ),
        ("user.create", "user", Some(t.id.as_str()))
    );
    let dev = e.target_id.clone();
    let e = one_change(&s, || {
        s.update_user(
            &root,
            &dev,
            UserPatch {
                name: Some("dev2".into()),
                ..UserPatch::default()
            },
        )
    })
    .await;
    assert_eq!(e.action, "user.update");

    let e = one_change(&s, || {
        s.create_app(
            &ta,
            sluice_store::NewApp {
                tenant_id: t.id.clone(),
                name: "svc".into(),
                ..Default::default()
            },
        )
    })
    .await;
    assert_eq!(
        (e.action.as_str(), e.actor.as_str(), e.actor_role),
        ("app.create", "usr_ta", Role::TenantAdmin)
    );
    assert_eq!(
        (e.target_type.as_str(), e.tenant_id.as_deref()),
        ("app", Some(t.id.as_str()))
    );
    let app_id = e.target_id.clone();
    let e = one_change(&s, || {
        s.update_app(
            &ta,
            &app_id,
            AppPatch {
                name: Some("svc2".into()),
                ..AppPatch::default()
            },
        )
    })
    .await;
    assert_eq!(e.action, "app.update");
    assert_eq!(e.after.as_ref().unwrap()["name"], json!("svc2"));

    let e = one_change(&s, || {
        s.create_key(
            &ta,
            sluice_store::NewKey {
                app_id: app_id.clone(),
                name: "k".into(),
                ..Default::default()
            },
        )
    })
    .await;
    assert_eq!(
        (e.action.as_str(), e.target_type.as_str()),
        ("key.create", "key")
    );
    let key_id = e.target_id.clone();
    let e = one_change(&s, || {
        s.update_key(
            &ta,
            &key_id,
            KeyPatch {
                name: Some("k2".into()),
                ..KeyPatch::default()
            },
        )
    })
    .await;
    assert_eq!(e.action, "key.update");
    let e = one_change(&s, || s.rotate_key(&ta, &key_id, 1000)).await;
    assert_eq!(e.action, "key.rotate");
    let e = one_change(&s, || s.revoke_key(&ta, &key_id)).await;
    assert_eq!(e.action, "key.revoke");

    let e = one_change(&s, || s.create_credential(&root, &dev, None)).await;
    assert_eq!(
        (
            e.action.as_str(),
            e.target_type.as_str(),
            e.tenant_id.as_deref()
        ),
        ("credential.create", "credential", Some(t.id.as_str()))
    );
    let cred = e.target_id.clone();
    let e = one_change(&s, || s.revoke_credential(&root, &cred)).await;
    assert_eq!(e.action, "credential.revoke");

    let e = one_change(&s, || s.request_subscription(&ta, &app_id, "model:m", None)).await;
    assert_eq!(
        (e.action.as_str(), e.target_type.as_str()),
        ("subscription.request", "subscription")
    );
    let sub = e.target_id.clone();
    let e = one_change(&s, || {
        s.decide_subscription(&root, &sub, SubState::Approved, None)
    })
    .await;
    assert_eq!(e.action, "subscription.approve");
    let e = one_change(&s, || {
        s.decide_subscription(&root, &sub, SubState::Revoked, None)
    })
    .await;
    assert_eq!(e.action, "subscription.revoke");
    let sub2 = s
        .request_subscription(&ta, &app_id, "api:chat", None)
        .await
        .unwrap();
    let e = one_change(&s, || {
        s.decide_subscription(&root, &sub2.id, SubState::Rejected, None)
    })
    .await;
    assert_eq!(e.action, "subscription.reject");

    let e = one_change(&s, || s.delete_app(&ta, &app_id)).await;
    assert_eq!((e.action.as_str(), e.after.clone()), ("app.delete", None));
    assert_eq!(e.before.as_ref().unwrap()["id"], json!(app_id));
    let e = one_change(&s, || s.delete_tenant(&root, &t.id)).await;
    assert_eq!(
        (e.action.as_str(), e.target_id.as_str()),
        ("tenant.delete", t.id.as_str())
    );
    let e = one_change(&s, || {
        s.seed_tenant(NewTenant {
            name: "cfg".into(),
            ..NewTenant::default()
        })
    })
    .await;
    assert_eq!(
        (e.actor.as_str(), e.action.as_str()),
        ("config", "tenant.create")
    );
}

async fn reads_do_not_move_the_revision(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let (k, _) = key(&s, &a.id, "k").await;
    let rev = s.revision().await.unwrap();
    assert_eq!(rev, 3);
    s.get_tenant(&t.id).await.unwrap();
    s.tenant_by_name("acme").await.unwrap();
    s.list_tenants(&q()).await.unwrap();
    s.get_app(&a.id).await.unwrap();
    s.list_apps(&q()).await.unwrap();
    s.get_key(&k.id).await.unwrap();
    s.list_keys(&q()).await.unwrap();
    s.list_users(&q()).await.unwrap();
    s.count_admins().await.unwrap();
    s.credential_by_hash(&k.hash).await.unwrap();
    s.list_subscriptions(&q()).await.unwrap();
    s.list_audit(&AuditQuery::default()).await.unwrap();
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.revision, rev);
    s.ping().await.unwrap();
    s.schema_version().await.unwrap();
    assert_eq!(s.revision().await.unwrap(), rev);
    // Failed mutations don't move it either.
    expect_conflict(
        s.create_tenant(
            &admin(),
            NewTenant {
                name: "acme".into(),
                ..NewTenant::default()
            },
        )
        .await,
        "taken",
    );
    expect_invalid(
        s.create_tenant(
            &admin(),
            NewTenant {
                name: "bad name".into(),
                ..NewTenant::default()
            },
        )
        .await,
        "tenant name",
    );
    assert_eq!(s.revision().await.unwrap(), rev);
    assert_eq!(count(&s, "audit_log").await, 3);
}

async fn audit_pages_newest_first_and_filters(s: Store) {
    let t1 = tenant(&s, "one").await;
    let t2 = tenant(&s, "two").await;
    let ops = actor("usr_ops", Role::TenantAdmin, Some(&t1.id));
    for i in 0..5 {
        s.create_app(
            &ops,
            sluice_store::NewApp {
                tenant_id: t1.id.clone(),
                name: format!("a{i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    app(&s, &t2.id, "b").await;
    let all = s.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(all.len(), 8);
    assert!(
        all.windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at),
        "newest first"
    );
    assert_eq!(all[0].target_type, "app");
    assert_eq!(all[7].target_id, t1.id);

    let mut seen = Vec::new();
    let mut after = None;
    for expected in [3, 3, 2] {
        let page = s
            .list_audit(&AuditQuery {
                limit: 3,
                after: after.clone(),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), expected);
        seen.extend(page.items.into_iter().map(|e| e.id));
        after = page.next;
    }
    assert_eq!(after, None);
    assert_eq!(seen, all.iter().map(|e| e.id.clone()).collect::<Vec<_>>());

    let of_t1 = s
        .list_audit(&AuditQuery {
            tenant_id: Some(t1.id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(of_t1.items.len(), 6, "tenant.create + 5 apps");
    let by_ops = s
        .list_audit(&AuditQuery {
            actor: Some("usr_ops".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_ops.items.len(), 5);
    let creates = s
        .list_audit(&AuditQuery {
            action: Some("tenant.create".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(creates.items.len(), 2);
    let target = s
        .list_audit(&AuditQuery {
            target_id: Some(t2.id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(target.items.len(), 1);
    let combined = s
        .list_audit(&AuditQuery {
            tenant_id: Some(t1.id.clone()),
            action: Some("app.create".into()),
            actor: Some("usr_root".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(combined.items.is_empty());

    // Time window: since inclusive, until exclusive.
    let pivot = all[3].at;
    let since = s
        .list_audit(&AuditQuery {
            since: Some(pivot),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert!(!since.is_empty() && since.iter().all(|e| e.at >= pivot));
    let until = s
        .list_audit(&AuditQuery {
            until: Some(pivot),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert!(until.iter().all(|e| e.at < pivot));
    assert_eq!(since.len() + until.len(), 8);
    let none = s
        .list_audit(&AuditQuery {
            since: Some(pivot),
            until: Some(pivot),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

async fn record_audit_appends_a_free_form_entry(s: Store) {
    let by = actor("usr_ops", Role::TenantAdmin, Some("ten_x"));
    let rev = s.revision().await.unwrap();
    let e = s
        .record_audit(
            &by,
            "config.reload",
            "config",
            "sluice.yaml",
            Some(json!({"ok": true})),
        )
        .await
        .unwrap();
    assert_eq!(s.revision().await.unwrap(), rev, "not an entity change");
    assert!(e.id.starts_with("aud_"));
    assert_eq!(
        (e.actor.as_str(), e.actor_role, e.tenant_id.as_deref()),
        ("usr_ops", Role::TenantAdmin, Some("ten_x"))
    );
    assert_eq!(
        s.list_audit(&AuditQuery::default()).await.unwrap().items,
        vec![e]
    );
    expect_invalid(s.record_audit(&by, "", "config", "x", None).await, "action");
}

async fn hostile_strings_in_audit_filters_are_literal(s: Store) {
    tenant(&s, "acme").await;
    for nasty in NASTY {
        let q = AuditQuery {
            tenant_id: Some((*nasty).to_owned()),
            actor: Some((*nasty).to_owned()),
            action: Some((*nasty).to_owned()),
            target_id: Some((*nasty).to_owned()),
            after: Some((*nasty).to_owned()),
            ..AuditQuery::default()
        };
        assert!(s.list_audit(&q).await.unwrap().items.is_empty());
        let e = s
            .record_audit(
                &actor(nasty, Role::Admin, None),
                nasty,
                nasty,
                nasty,
                Some(json!(nasty)),
            )
            .await
            .unwrap();
        let found = s
            .list_audit(&AuditQuery {
                actor: Some((*nasty).to_owned()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.items, vec![e]);
    }
    tables_survive(&s).await;
    assert_eq!(count(&s, "audit_log").await, 1 + NASTY.len() as i64);
}
