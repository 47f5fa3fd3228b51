//! Tenants: CRUD, soft-delete cascade, conflicts, validation, paging and
//! filters, hostile input, and seeding from the config file.

use serde_json::json;
use sluice_store::{AuditQuery, ListQuery, NewTenant, Role, Source, Store, Tenant, TenantPatch};

use crate::common::*;

both!(
    create_get_update_delete,
    delete_cascades_to_apps_and_keys,
    names_are_unique_among_live_tenants,
    invalid_names_and_tiers_are_refused,
    lists_page_by_id,
    limits_default_to_50_and_clamp_to_500,
    filters_by_name_and_id,
    name_contains_treats_wildcards_literally,
    hostile_strings_are_stored_and_compared_literally,
    seeding_creates_updates_and_protects_config_tenants,
    seeding_refuses_a_store_managed_name,
    concurrent_seeding_converges_on_one_tenant,
);

async fn create_get_update_delete(s: Store) {
    let t = s
        .create_tenant(
            &admin(),
            NewTenant {
                name: "acme".into(),
                tier: Some("gold".into()),
                policy: Some(json!({"rpm": 100, "models": ["a", "b"]})),
            },
        )
        .await
        .unwrap();
    assert!(t.id.starts_with("ten_"));
    assert_eq!(t.source, Source::Store);
    assert_eq!(t.created_at, t.updated_at);
    assert_eq!(s.get_tenant(&t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(s.tenant_by_name("acme").await.unwrap(), Some(t.clone()));
    assert_eq!(s.tenant_by_name("ACME").await.unwrap(), None);
    assert_eq!(s.get_tenant("ten_nope").await.unwrap(), None);

    let u = s
        .update_tenant(
            &admin(),
            &t.id,
            TenantPatch {
                name: Some("acme2".into()),
                tier: Some(None),
                policy: Some(Some(json!("standard"))),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (u.name.as_str(), u.tier.as_deref(), u.policy.clone()),
        ("acme2", None, Some(json!("standard")))
    );
    assert!(u.updated_at >= t.updated_at);
    assert_eq!(s.get_tenant(&t.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.tenant_by_name("acme").await.unwrap(), None);

    // A patch that changes nothing is not a change.
    let rev = s.revision().await.unwrap();
    let same = s
        .update_tenant(
            &admin(),
            &t.id,
            TenantPatch {
                name: Some("acme2".into()),
                ..TenantPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same, u);
    assert_eq!(s.revision().await.unwrap(), rev);

    s.delete_tenant(&admin(), &t.id).await.unwrap();
    assert_eq!(s.get_tenant(&t.id).await.unwrap(), None);
    assert_eq!(s.tenant_by_name("acme2").await.unwrap(), None);
    assert!(s.list_tenants(&q()).await.unwrap().items.is_empty());
    expect_not_found(s.delete_tenant(&admin(), &t.id).await, &t.id);
    expect_not_found(
        s.update_tenant(&admin(), &t.id, TenantPatch::default())
            .await,
        "tenant",
    );
    // The row stays (soft delete) and the name is free again.
    assert_eq!(count(&s, "tenants").await, 1);
    let again = tenant(&s, "acme2").await;
    assert_ne!(again.id, t.id);
}

async fn delete_cascades_to_apps_and_keys(s: Store) {
    let t = tenant(&s, "acme").await;
    let other = tenant(&s, "other").await;
    let a1 = app(&s, &t.id, "one").await;
    let a2 = app(&s, &t.id, "two").await;
    let keep = app(&s, &other.id, "one").await;
    let (k1, _) = key(&s, &a1.id, "k1").await;
    let (k2, _) = key(&s, &a2.id, "k2").await;
    let (k3, _) = key(&s, &keep.id, "k3").await;
    let dev = s
        .create_user(
            &admin(),
            sluice_store::NewUser {
                name: "dev".into(),
                role: Role::Developer,
                tenant_id: Some(t.id.clone()),
            },
        )
        .await
        .unwrap();

    let rev = s.revision().await.unwrap();
    s.delete_tenant(&admin(), &t.id).await.unwrap();
    assert_eq!(s.revision().await.unwrap(), rev + 1, "one mutation");

    assert_eq!(s.get_app(&a1.id).await.unwrap(), None);
    assert_eq!(s.get_app(&a2.id).await.unwrap(), None);
    assert!(s.get_app(&keep.id).await.unwrap().is_some());
    for k in [&k1, &k2] {
        let got = s.get_key(&k.id).await.unwrap().expect("keys stay readable");
        assert!(got.revoked_at.is_some(), "{} revoked", k.id);
    }
    assert_eq!(s.get_key(&k3.id).await.unwrap().unwrap().revoked_at, None);
    let live: Vec<_> = s
        .list_keys(&q())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(live, vec![k3.id.clone()]);
    let all = s
        .list_keys(&ListQuery {
            include_inactive: true,
            ..q()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 3);
    let apps: Vec<_> = s
        .list_apps(&q())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(apps, vec![keep.id.clone()]);
    // Users are left alone.
    assert!(s.get_user(&dev.id).await.unwrap().is_some());
    // The app name is free again in a new tenant of the same name.
    let t2 = tenant(&s, "acme").await;
    app(&s, &t2.id, "one").await;
}

async fn names_are_unique_among_live_tenants(s: Store) {
    let a = tenant(&s, "acme").await;
    let b = tenant(&s, "beta").await;
    expect_conflict(
        s.create_tenant(
            &admin(),
            NewTenant {
                name: "acme".into(),
                ..NewTenant::default()
            },
        )
        .await,
        "tenant name `acme` is already taken",
    );
    expect_conflict(
        s.update_tenant(
            &admin(),
            &b.id,
            TenantPatch {
                name: Some("acme".into()),
                ..TenantPatch::default()
            },
        )
        .await,
        "tenant name `acme` is already taken",
    );
    // Names are case-sensitive.
    tenant(&s, "ACME").await;
    s.delete_tenant(&admin(), &a.id).await.unwrap();
    s.update_tenant(
        &admin(),
        &b.id,
        TenantPatch {
            name: Some("acme".into()),
            ..TenantPatch::default()
        },
    )
    .await
    .unwrap();
}

async fn invalid_names_and_tiers_are_refused(s: Store) {
    let long = "x".repeat(65);
    for bad in [
        "",
        "has space",
        "slash/no",
        "émoji",
        long.as_str(),
        NASTY[0],
        NASTY[1],
    ] {
        expect_invalid(
            s.create_tenant(
                &admin(),
                NewTenant {
                    name: bad.into(),
                    ..NewTenant::default()
                },
            )
            .await,
            "tenant name",
        );
    }
    tenant(&s, &"x".repeat(64)).await;
    expect_invalid(
        s.create_tenant(
            &admin(),
            NewTenant {
                name: "ok".into(),
                tier: Some("t".repeat(65)),
                policy: None,
            },
        )
        .await,
        "tier",
    );
    let t = tenant(&s, "ok").await;
    expect_invalid(
        s.update_tenant(
            &admin(),
            &t.id,
            TenantPatch {
                name: Some("no good".into()),
                ..TenantPatch::default()
            },
        )
        .await,
        "tenant name",
    );
    expect_invalid(
        s.update_tenant(
            &admin(),
            &t.id,
            TenantPatch {
                tier: Some(Some(String::new())),
                ..TenantPatch::default()
            },
        )
        .await,
        "tier",
    );
    assert_eq!(s.list_tenants(&q()).await.unwrap().items.len(), 2);
}

async fn lists_page_by_id(s: Store) {
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(tenant(&s, &format!("t{i}")).await.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_tenants(&ListQuery {
                limit: 3,
                after: after.clone(),
                ..q()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made, "every tenant once, by id");
    let mut sorted = made.clone();
    sorted.sort();
    assert_eq!(sorted, made, "ids sort by creation");
    // Exactly a full page: no next.
    let page = s
        .list_tenants(&ListQuery { limit: 7, ..q() })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.next), (7, None));
}

async fn limits_default_to_50_and_clamp_to_500(s: Store) {
    // 505 rows in one raw transaction (faster than 505 audited creates).
    let mut tx = s.pool().begin().await.unwrap();
    for i in 0..505 {
        sqlx::query(
            "INSERT INTO tenants (id, name, source, created_at, updated_at) VALUES ($1, $2, 'store', 0, 0)",
        )
        .bind(format!("ten_{i:05}"))
        .bind(format!("bulk{i}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let page = s.list_tenants(&q()).await.unwrap();
    assert_eq!(page.items.len(), 50);
    assert_eq!(page.next.as_deref(), Some("ten_00049"));
    let page = s
        .list_tenants(&ListQuery {
            limit: 10_000,
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert_eq!(page.next.as_deref(), Some("ten_00499"));
    let page = s
        .list_tenants(&ListQuery { limit: 1, ..q() })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

async fn filters_by_name_and_id(s: Store) {
    let acme = tenant(&s, "Acme-Corp").await;
    tenant(&s, "beta").await;
    let acme_eu = tenant(&s, "acme.eu").await;
    let names =
        |p: sluice_store::Page<Tenant>| p.items.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let by_name = s
        .list_tenants(&ListQuery {
            name_contains: Some("ACME".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(names(by_name), vec!["Acme-Corp", "acme.eu"]);
    let by_id = s
        .list_tenants(&ListQuery {
            tenant_id: Some(acme_eu.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(names(by_id), vec!["acme.eu"]);
    let both = s
        .list_tenants(&ListQuery {
            tenant_id: Some(acme.id.clone()),
            name_contains: Some("eu".into()),
            ..q()
        })
        .await
        .unwrap();
    assert!(both.items.is_empty());
}

async fn name_contains_treats_wildcards_literally(s: Store) {
    for n in ["a_b", "axb", "a.b", "plain"] {
        tenant(&s, n).await;
    }
    let find = |needle: &str| {
        let s = s.clone();
        let needle = needle.to_owned();
        async move {
            s.list_tenants(&ListQuery {
                name_contains: Some(needle),
                ..q()
            })
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("_").await, vec!["a_b"]);
    assert_eq!(find("a_b").await, vec!["a_b"]);
    assert!(find("%").await.is_empty());
    assert!(find("a%b").await.is_empty());
    assert!(find("'").await.is_empty());
    assert!(find("\\").await.is_empty());
    assert!(find("\\_").await.is_empty());
    assert_eq!(find(".").await, vec!["a.b"]);
    assert_eq!(find("").await.len(), 4);
}

async fn hostile_strings_are_stored_and_compared_literally(s: Store) {
    for (i, nasty) in NASTY.iter().enumerate() {
        let t = s
            .create_tenant(
                &admin(),
                NewTenant {
                    name: format!("t{i}"),
                    tier: Some((*nasty).to_owned()),
                    policy: Some(json!({ "note": nasty, (*nasty): [nasty] })),
                },
            )
            .await
            .unwrap();
        let got = s.get_tenant(&t.id).await.unwrap().unwrap();
        assert_eq!(got.tier.as_deref(), Some(*nasty));
        assert_eq!(
            got.policy,
            Some(json!({ "note": nasty, (*nasty): [nasty] }))
        );
        assert_eq!(s.tenant_by_name(nasty).await.unwrap(), None);
        assert_eq!(s.get_tenant(nasty).await.unwrap(), None);
        let found = s
            .list_tenants(&ListQuery {
                name_contains: Some((*nasty).to_owned()),
                tenant_id: Some((*nasty).to_owned()),
                ..q()
            })
            .await
            .unwrap();
        assert!(found.items.is_empty());
        expect_not_found(s.delete_tenant(&admin(), nasty).await, "tenant");
    }
    tables_survive(&s).await;
    assert_eq!(s.list_tenants(&q()).await.unwrap().items.len(), NASTY.len());
}

async fn seeding_creates_updates_and_protects_config_tenants(s: Store) {
    let seeded = s
        .seed_tenant(NewTenant {
            name: "cfg".into(),
            tier: Some("gold".into()),
            policy: None,
        })
        .await
        .unwrap();
    assert_eq!(seeded.source, Source::Config);
    assert_eq!(s.revision().await.unwrap(), 1);
    let audit = s.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].actor.as_str(),
            audit[0].action.as_str(),
            audit[0].target_id.as_str()
        ),
        ("config", "tenant.create", seeded.id.as_str())
    );

    // Unchanged: nothing written.
    let again = s
        .seed_tenant(NewTenant {
            name: "cfg".into(),
            tier: Some("gold".into()),
            policy: None,
        })
        .await
        .unwrap();
    assert_eq!(again, seeded);
    assert_eq!(s.revision().await.unwrap(), 1);
    assert_eq!(count(&s, "audit_log").await, 1);

    // Changed: updated in place, audited.
    let changed = s
        .seed_tenant(NewTenant {
            name: "cfg".into(),
            tier: Some("silver".into()),
            policy: Some(json!("p")),
        })
        .await
        .unwrap();
    assert_eq!(changed.id, seeded.id);
    assert_eq!(
        (changed.tier.as_deref(), changed.policy.clone()),
        (Some("silver"), Some(json!("p")))
    );
    assert_eq!(s.revision().await.unwrap(), 2);
    let last = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        ("config", "tenant.update")
    );
    assert_eq!(last.before.as_ref().unwrap()["tier"], json!("gold"));
    assert_eq!(last.after.as_ref().unwrap()["tier"], json!("silver"));

    // Read-only through the API.
    expect_invalid(
        s.update_tenant(
            &admin(),
            &seeded.id,
            TenantPatch {
                tier: Some(None),
                ..TenantPatch::default()
            },
        )
        .await,
        "tenant `cfg` is managed by the config file",
    );
    expect_invalid(
        s.delete_tenant(&admin(), &seeded.id).await,
        "tenant `cfg` is managed by the config file",
    );
    assert!(s.get_tenant(&seeded.id).await.unwrap().is_some());
    // But apps may live in it.
    app(&s, &seeded.id, "svc").await;
    expect_invalid(
        s.seed_tenant(NewTenant {
            name: "bad name".into(),
            ..NewTenant::default()
        })
        .await,
        "tenant name",
    );
}

async fn seeding_refuses_a_store_managed_name(s: Store) {
    let mine = tenant(&s, "dup").await;
    expect_conflict(
        s.seed_tenant(NewTenant {
            name: "dup".into(),
            ..NewTenant::default()
        })
        .await,
        "dup",
    );
    let still = s.get_tenant(&mine.id).await.unwrap().unwrap();
    assert_eq!(still.source, Source::Store);
}

async fn concurrent_seeding_converges_on_one_tenant(s: Store) {
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.seed_tenant(NewTenant {
                    name: "race".into(),
                    tier: Some("x".into()),
                    policy: None,
                })
                .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("every seeder succeeds").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&s, "tenants").await, 1);
    assert_eq!(s.revision().await.unwrap(), 1);
}
