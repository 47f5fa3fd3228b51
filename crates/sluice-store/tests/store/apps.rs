//! Apps: CRUD within a tenant, owners, delete revoking keys, conflicts,
//! validation, paging and filters.

use serde_json::json;
use sluice_store::{AppPatch, ListQuery, NewApp, NewUser, Role, Store};

use crate::common::*;

both!(
    create_get_update_delete,
    delete_revokes_keys_and_hides_subscriptions,
    names_are_unique_within_a_tenant,
    parents_and_owners_are_checked,
    invalid_names_are_refused,
    lists_page_and_filter,
    hostile_strings_are_literal,
);

fn new_app(tenant_id: &str, name: &str) -> NewApp {
    NewApp {
        tenant_id: tenant_id.to_owned(),
        name: name.to_owned(),
        ..NewApp::default()
    }
}

async fn create_get_update_delete(s: Store) {
    let t = tenant(&s, "acme").await;
    let dev = s
        .create_user(
            &admin(),
            NewUser {
                name: "dev".into(),
                role: Role::Developer,
                tenant_id: Some(t.id.clone()),
            },
        )
        .await
        .unwrap();
    let a = s
        .create_app(
            &admin(),
            NewApp {
                tenant_id: t.id.clone(),
                name: "svc".into(),
                owner_user_id: Some(dev.id.clone()),
                policy: Some(json!({"rpm": 5})),
            },
        )
        .await
        .unwrap();
    assert!(a.id.starts_with("app_"));
    assert_eq!(
        (a.tenant_id.as_str(), a.owner_user_id.as_deref()),
        (t.id.as_str(), Some(dev.id.as_str()))
    );
    assert_eq!(s.get_app(&a.id).await.unwrap(), Some(a.clone()));

    let u = s
        .update_app(
            &admin(),
            &a.id,
            AppPatch {
                name: Some("svc2".into()),
                owner_user_id: Some(None),
                policy: Some(None),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (u.name.as_str(), u.owner_user_id.clone(), u.policy.clone()),
        ("svc2", None, None)
    );
    assert_eq!(s.get_app(&a.id).await.unwrap(), Some(u.clone()));
    let rev = s.revision().await.unwrap();
    assert_eq!(
        s.update_app(&admin(), &a.id, AppPatch::default())
            .await
            .unwrap(),
        u
    );
    assert_eq!(
        s.revision().await.unwrap(),
        rev,
        "empty patch changes nothing"
    );

    s.delete_app(&admin(), &a.id).await.unwrap();
    assert_eq!(s.get_app(&a.id).await.unwrap(), None);
    expect_not_found(s.delete_app(&admin(), &a.id).await, &a.id);
    expect_not_found(
        s.update_app(&admin(), &a.id, AppPatch::default()).await,
        "app",
    );
    assert!(s.list_apps(&q()).await.unwrap().items.is_empty());
    // The name is free again.
    app(&s, &t.id, "svc2").await;
}

async fn delete_revokes_keys_and_hides_subscriptions(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let b = app(&s, &t.id, "other").await;
    let (k1, _) = key(&s, &a.id, "one").await;
    let (k2, _) = key(&s, &a.id, "two").await;
    let (kb, _) = key(&s, &b.id, "b").await;
    let sub = s
        .request_subscription(&admin(), &a.id, "model:m", None)
        .await
        .unwrap();
    s.delete_app(&admin(), &a.id).await.unwrap();
    for k in [&k1, &k2] {
        assert!(s
            .get_key(&k.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some());
    }
    assert_eq!(s.get_key(&kb.id).await.unwrap().unwrap().revoked_at, None);
    assert_eq!(s.get_subscription(&sub.id).await.unwrap(), None);
    assert!(s.list_subscriptions(&q()).await.unwrap().items.is_empty());
    expect_not_found(
        s.create_key(
            &admin(),
            sluice_store::NewKey {
                app_id: a.id.clone(),
                name: "k".into(),
                ..Default::default()
            },
        )
        .await,
        "app",
    );
}

async fn names_are_unique_within_a_tenant(s: Store) {
    let t = tenant(&s, "acme").await;
    let t2 = tenant(&s, "beta").await;
    app(&s, &t.id, "svc").await;
    app(&s, &t2.id, "svc").await;
    expect_conflict(
        s.create_app(&admin(), new_app(&t.id, "svc")).await,
        "app name `svc` is already taken in tenant `acme`",
    );
    let other = app(&s, &t.id, "other").await;
    expect_conflict(
        s.update_app(
            &admin(),
            &other.id,
            AppPatch {
                name: Some("svc".into()),
                ..AppPatch::default()
            },
        )
        .await,
        "app name `svc` is already taken",
    );
}

async fn parents_and_owners_are_checked(s: Store) {
    expect_not_found(
        s.create_app(&admin(), new_app("ten_missing", "svc")).await,
        "tenant `ten_missing`",
    );
    let gone = tenant(&s, "gone").await;
    s.delete_tenant(&admin(), &gone.id).await.unwrap();
    expect_not_found(
        s.create_app(&admin(), new_app(&gone.id, "svc")).await,
        "tenant",
    );

    let t = tenant(&s, "acme").await;
    let t2 = tenant(&s, "beta").await;
    let mut a = new_app(&t.id, "svc");
    a.owner_user_id = Some("usr_missing".into());
    expect_not_found(s.create_app(&admin(), a.clone()).await, "usr_missing");
    let foreign = s
        .create_user(
            &admin(),
            NewUser {
                name: "foreign".into(),
                role: Role::Developer,
                tenant_id: Some(t2.id.clone()),
            },
        )
        .await
        .unwrap();
    a.owner_user_id = Some(foreign.id.clone());
    expect_invalid(
        s.create_app(&admin(), a.clone()).await,
        "belongs to another tenant",
    );
    let svc = app(&s, &t.id, "svc").await;
    expect_invalid(
        s.update_app(
            &admin(),
            &svc.id,
            AppPatch {
                owner_user_id: Some(Some(foreign.id.clone())),
                ..AppPatch::default()
            },
        )
        .await,
        "belongs to another tenant",
    );
    // A user without a tenant (an admin) may own an app anywhere.
    let root = s
        .create_user(
            &admin(),
            NewUser {
                name: "root".into(),
                role: Role::Admin,
                tenant_id: None,
            },
        )
        .await
        .unwrap();
    let owned = s
        .update_app(
            &admin(),
            &svc.id,
            AppPatch {
                owner_user_id: Some(Some(root.id.clone())),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(owned.owner_user_id, Some(root.id));
}

async fn invalid_names_are_refused(s: Store) {
    let t = tenant(&s, "acme").await;
    for bad in ["", "a b", "x;y", NASTY[1], &"n".repeat(65)] {
        expect_invalid(
            s.create_app(&admin(), new_app(&t.id, bad)).await,
            "app name",
        );
    }
    let a = app(&s, &t.id, "ok").await;
    expect_invalid(
        s.update_app(
            &admin(),
            &a.id,
            AppPatch {
                name: Some(String::new()),
                ..AppPatch::default()
            },
        )
        .await,
        "app name",
    );
}

async fn lists_page_and_filter(s: Store) {
    let t = tenant(&s, "acme").await;
    let t2 = tenant(&s, "beta").await;
    let dev = s
        .create_user(
            &admin(),
            NewUser {
                name: "dev".into(),
                role: Role::Developer,
                tenant_id: Some(t.id.clone()),
            },
        )
        .await
        .unwrap();
    let mut mine = Vec::new();
    for i in 0..7 {
        let mut a = new_app(&t.id, &format!("Svc-{i}"));
        if i % 2 == 0 {
            a.owner_user_id = Some(dev.id.clone());
        }
        mine.push(s.create_app(&admin(), a).await.unwrap().id);
    }
    app(&s, &t2.id, "svc-x").await;

    let mut seen = Vec::new();
    let mut after = None;
    for expected in [3, 3, 1] {
        let page = s
            .list_apps(&ListQuery {
                tenant_id: Some(t.id.clone()),
                limit: 3,
                after: after.clone(),
                ..q()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), expected);
        seen.extend(page.items.iter().map(|a| a.id.clone()));
        after = page.next;
    }
    assert_eq!(after, None);
    assert_eq!(seen, mine);

    let owned = s
        .list_apps(&ListQuery {
            owner_user_id: Some(dev.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(owned.items.len(), 4);
    let named = s
        .list_apps(&ListQuery {
            name_contains: Some("SVC-".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(named.items.len(), 8);
    let named = s
        .list_apps(&ListQuery {
            name_contains: Some("svc-x".into()),
            tenant_id: Some(t.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert!(named.items.is_empty());
}

async fn hostile_strings_are_literal(s: Store) {
    let t = tenant(&s, "acme").await;
    for (i, nasty) in NASTY.iter().enumerate() {
        let a = s
            .create_app(
                &admin(),
                NewApp {
                    tenant_id: t.id.clone(),
                    name: format!("a{i}"),
                    owner_user_id: None,
                    policy: Some(json!([nasty])),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            s.get_app(&a.id).await.unwrap().unwrap().policy,
            Some(json!([nasty]))
        );
        assert_eq!(s.get_app(nasty).await.unwrap(), None);
        let found = s
            .list_apps(&ListQuery {
                tenant_id: Some((*nasty).to_owned()),
                owner_user_id: Some((*nasty).to_owned()),
                name_contains: Some((*nasty).to_owned()),
                ..q()
            })
            .await
            .unwrap();
        assert!(found.items.is_empty());
        expect_not_found(s.create_app(&admin(), new_app(nasty, "x")).await, "tenant");
    }
    tables_survive(&s).await;
    assert_eq!(s.list_apps(&q()).await.unwrap().items.len(), NASTY.len());
}
