//! Users (roles and tenants), the admin count, and admin credentials: live
//! lookup by hash, expiry, revocation, disabled users.

use serde_json::json;
use sluice_store::ids::{hash_secret, now_ms};
use sluice_store::{AuditQuery, ListQuery, NewUser, Role, Store, User, UserPatch};

use crate::common::*;

both!(
    create_get_update,
    role_and_tenant_must_agree,
    names_are_unique_and_valid,
    lists_page_and_filter,
    count_admins_counts_enabled_admins,
    credentials_are_live_only_while_valid,
    credential_secrets_are_never_stored,
    credential_errors,
    hostile_strings_are_literal,
);

fn new_user(name: &str, role: Role, tenant: Option<&str>) -> NewUser {
    NewUser {
        name: name.to_owned(),
        role,
        tenant_id: tenant.map(str::to_owned),
    }
}

async fn user(s: &Store, name: &str, role: Role, tenant: Option<&str>) -> User {
    s.create_user(&admin(), new_user(name, role, tenant))
        .await
        .unwrap_or_else(|e| panic!("creating user {name}: {e}"))
}

async fn create_get_update(s: Store) {
    let t = tenant(&s, "acme").await;
    let u = user(&s, "alice", Role::Developer, Some(&t.id)).await;
    assert!(u.id.starts_with("usr_"));
    assert_eq!(
        (u.role, u.tenant_id.as_deref(), u.disabled_at),
        (Role::Developer, Some(t.id.as_str()), None)
    );
    assert_eq!(s.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.get_user("usr_missing").await.unwrap(), None);

    let promoted = s
        .update_user(
            &admin(),
            &u.id,
            UserPatch {
                name: Some("alice2".into()),
                role: Some(Role::TenantAdmin),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (promoted.name.as_str(), promoted.role),
        ("alice2", Role::TenantAdmin)
    );
    let disabled = s
        .update_user(
            &admin(),
            &u.id,
            UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let at = disabled.disabled_at.expect("disabled");
    // Disabling twice keeps the first time and changes nothing.
    let rev = s.revision().await.unwrap();
    let again = s
        .update_user(
            &admin(),
            &u.id,
            UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.disabled_at, Some(at));
    assert_eq!(s.revision().await.unwrap(), rev);
    let enabled = s
        .update_user(
            &admin(),
            &u.id,
            UserPatch {
                disabled: Some(false),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(enabled.disabled_at, None);
    let to_admin = s
        .update_user(
            &admin(),
            &u.id,
            UserPatch {
                role: Some(Role::Admin),
                tenant_id: Some(None),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (to_admin.role, to_admin.tenant_id.as_deref()),
        (Role::Admin, None)
    );
    assert_eq!(s.get_user(&u.id).await.unwrap(), Some(to_admin.clone()));
    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(
        (entry.action.as_str(), entry.target_id.as_str()),
        ("user.update", u.id.as_str())
    );
    assert_eq!(
        entry.before.as_ref().unwrap()["role"],
        json!("tenant_admin")
    );
    assert_eq!(entry.after.as_ref().unwrap()["role"], json!("admin"));
    expect_not_found(
        s.update_user(&admin(), "usr_missing", UserPatch::default())
            .await,
        "user",
    );
}

async fn role_and_tenant_must_agree(s: Store) {
    let t = tenant(&s, "acme").await;
    expect_invalid(
        s.create_user(&admin(), new_user("a", Role::Admin, Some(&t.id)))
            .await,
        "admin",
    );
    expect_invalid(
        s.create_user(&admin(), new_user("b", Role::TenantAdmin, None))
            .await,
        "tenant_id is required",
    );
    expect_invalid(
        s.create_user(&admin(), new_user("c", Role::Developer, None))
            .await,
        "tenant_id is required",
    );
    expect_not_found(
        s.create_user(
            &admin(),
            new_user("d", Role::Developer, Some("ten_missing")),
        )
        .await,
        "tenant `ten_missing`",
    );
    let gone = tenant(&s, "gone").await;
    s.delete_tenant(&admin(), &gone.id).await.unwrap();
    expect_not_found(
        s.create_user(&admin(), new_user("e", Role::Developer, Some(&gone.id)))
            .await,
        "tenant",
    );
    user(&s, "global-auditor", Role::Auditor, None).await;
    user(&s, "acme-auditor", Role::Auditor, Some(&t.id)).await;
    let dev = user(&s, "dev", Role::Developer, Some(&t.id)).await;
    expect_invalid(
        s.update_user(
            &admin(),
            &dev.id,
            UserPatch {
                tenant_id: Some(None),
                ..UserPatch::default()
            },
        )
        .await,
        "tenant_id is required",
    );
    expect_invalid(
        s.update_user(
            &admin(),
            &dev.id,
            UserPatch {
                role: Some(Role::Admin),
                ..UserPatch::default()
            },
        )
        .await,
        "admin",
    );
    expect_not_found(
        s.update_user(
            &admin(),
            &dev.id,
            UserPatch {
                tenant_id: Some(Some("ten_x".into())),
                ..UserPatch::default()
            },
        )
        .await,
        "tenant",
    );
    assert_eq!(s.get_user(&dev.id).await.unwrap(), Some(dev));
    assert_eq!(count(&s, "users").await, 3);
}

async fn names_are_unique_and_valid(s: Store) {
    user(&s, "alice", Role::Admin, None).await;
    expect_conflict(
        s.create_user(&admin(), new_user("alice", Role::Auditor, None))
            .await,
        "user name `alice` is already taken",
    );
    let bob = user(&s, "bob", Role::Admin, None).await;
    expect_conflict(
        s.update_user(
            &admin(),
            &bob.id,
            UserPatch {
                name: Some("alice".into()),
                ..UserPatch::default()
            },
        )
        .await,
        "already taken",
    );
    for bad in ["", "a b", "al'ice", &"u".repeat(65)] {
        expect_invalid(
            s.create_user(&admin(), new_user(bad, Role::Admin, None))
                .await,
            "user name",
        );
    }
}

async fn lists_page_and_filter(s: Store) {
    let t = tenant(&s, "acme").await;
    let mut devs = Vec::new();
    for i in 0..7 {
        devs.push(
            user(&s, &format!("Dev{i}"), Role::Developer, Some(&t.id))
                .await
                .id,
        );
    }
    let root = user(&s, "root", Role::Admin, None).await;
    s.update_user(
        &admin(),
        &devs[0],
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    for expected in [3, 3, 1] {
        let page = s
            .list_users(&ListQuery {
                tenant_id: Some(t.id.clone()),
                include_inactive: true,
                limit: 3,
                after: after.clone(),
                ..q()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), expected);
        seen.extend(page.items.into_iter().map(|u| u.id));
        after = page.next;
    }
    assert_eq!((seen, after), (devs.clone(), None));
    let enabled = s
        .list_users(&ListQuery {
            tenant_id: Some(t.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(enabled.items.len(), 6);
    let admins = s
        .list_users(&ListQuery {
            state: Some("admin".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(
        admins.items.into_iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![root.id]
    );
    let named = s
        .list_users(&ListQuery {
            name_contains: Some("dev3".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    expect_invalid(
        s.list_users(&ListQuery {
            state: Some("superuser".into()),
            ..q()
        })
        .await,
        "role",
    );
}

async fn count_admins_counts_enabled_admins(s: Store) {
    assert_eq!(s.count_admins().await.unwrap(), 0);
    let a = user(&s, "a", Role::Admin, None).await;
    user(&s, "b", Role::Admin, None).await;
    user(&s, "c", Role::Auditor, None).await;
    assert_eq!(s.count_admins().await.unwrap(), 2);
    s.update_user(
        &admin(),
        &a.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.count_admins().await.unwrap(), 1);
}

async fn credentials_are_live_only_while_valid(s: Store) {
    let t = tenant(&s, "acme").await;
    let u = user(&s, "ops", Role::TenantAdmin, Some(&t.id)).await;
    let (cred, secret) = s.create_credential(&admin(), &u.id, None).await.unwrap();
    assert!(cred.id.starts_with("cred_"));
    let body = secret.strip_prefix("sa-sluice-").expect("prefix");
    assert_eq!(body.len(), 40);
    assert_eq!(
        (cred.prefix.as_str(), cred.hash.clone()),
        (&secret[..14], hash_secret(&secret))
    );
    let (found, who) = s
        .credential_by_hash(&hash_secret(&secret))
        .await
        .unwrap()
        .expect("live");
    assert_eq!((found, who), (cred.clone(), u.clone()));
    assert_eq!(
        s.credential_by_hash(&hash_secret("sa-sluice-wrong"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.credential_by_hash(&secret).await.unwrap(),
        None,
        "the secret is not the hash"
    );

    // Disabled user: no access; enabled again: access again.
    s.update_user(
        &admin(),
        &u.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.credential_by_hash(&cred.hash).await.unwrap(), None);
    s.update_user(
        &admin(),
        &u.id,
        UserPatch {
            disabled: Some(false),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(s.credential_by_hash(&cred.hash).await.unwrap().is_some());

    // Revoked.
    let revoked = s.revoke_credential(&admin(), &cred.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(s.credential_by_hash(&cred.hash).await.unwrap(), None);
    let rev = s.revision().await.unwrap();
    assert_eq!(
        s.revoke_credential(&admin(), &cred.id).await.unwrap(),
        revoked
    );
    assert_eq!(
        s.revision().await.unwrap(),
        rev,
        "revoking twice is a no-op"
    );

    // Expired, and one that expires later.
    let (old, _) = s
        .create_credential(&admin(), &u.id, Some(now_ms() - 1))
        .await
        .unwrap();
    assert_eq!(s.credential_by_hash(&old.hash).await.unwrap(), None);
    let (later, _) = s
        .create_credential(&admin(), &u.id, Some(now_ms() + 60_000))
        .await
        .unwrap();
    assert!(s.credential_by_hash(&later.hash).await.unwrap().is_some());

    let listed = s.list_credentials(&u.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![cred.id.as_str(), old.id.as_str(), later.id.as_str()]
    );
    assert!(s.list_credentials("usr_missing").await.unwrap().is_empty());

    let audit = s
        .list_audit(&AuditQuery {
            target_id: Some(cred.id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items;
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["credential.revoke", "credential.create"]);
    assert!(audit
        .iter()
        .all(|e| e.tenant_id.as_deref() == Some(t.id.as_str())));
}

async fn credential_secrets_are_never_stored(s: Store) {
    let u = user(&s, "root", Role::Admin, None).await;
    let (cred, secret) = s.create_credential(&admin(), &u.id, None).await.unwrap();
    s.revoke_credential(&admin(), &cred.id).await.unwrap();
    let everything = all_text(&s).await;
    assert!(
        everything.iter().any(|v| v.contains(&cred.hash)),
        "the scan sees the hash column"
    );
    assert!(
        !everything.iter().any(|v| v.contains(&secret[10..])),
        "secret stored"
    );
    assert!(
        !everything
            .iter()
            .any(|v| v.starts_with("audit_log.") && v.contains(&cred.hash)),
        "hash in the audit log"
    );
}

async fn credential_errors(s: Store) {
    expect_not_found(
        s.create_credential(&admin(), "usr_missing", None).await,
        "user `usr_missing`",
    );
    expect_not_found(
        s.revoke_credential(&admin(), "cred_missing").await,
        "credential `cred_missing`",
    );
    let u = user(&s, "off", Role::Admin, None).await;
    s.update_user(
        &admin(),
        &u.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    expect_invalid(s.create_credential(&admin(), &u.id, None).await, "disabled");
    assert_eq!(count(&s, "admin_credentials").await, 0);
}

async fn hostile_strings_are_literal(s: Store) {
    let u = user(&s, "root", Role::Admin, None).await;
    s.create_credential(&admin(), &u.id, None).await.unwrap();
    for nasty in NASTY {
        assert_eq!(s.credential_by_hash(nasty).await.unwrap(), None);
        assert_eq!(s.get_user(nasty).await.unwrap(), None);
        assert!(s.list_credentials(nasty).await.unwrap().is_empty());
        let page = s
            .list_users(&ListQuery {
                tenant_id: Some((*nasty).to_owned()),
                name_contains: Some((*nasty).to_owned()),
                ..q()
            })
            .await
            .unwrap();
        assert!(page.items.is_empty());
        expect_not_found(
            s.create_user(&admin(), new_user("x", Role::Developer, Some(nasty)))
                .await,
            "tenant",
        );
    }
    assert_eq!(s.credential_by_hash("' OR '1'='1' --").await.unwrap(), None);
    tables_survive(&s).await;
    assert_eq!(count(&s, "users").await, 1);
}
