//! `load_directory`: what the gateway's key cache sees — live data only,
//! approvers, and the revision it was read at.

use sluice_store::ids::now_ms;
use sluice_store::{NewKey, NewUser, Role, Store, SubState, UserPatch};

use crate::common::*;

both!(
    directory_holds_live_data_and_approvers,
    directory_revision_tracks_changes
);

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

async fn directory_holds_live_data_and_approvers(s: Store) {
    let empty = s.load_directory().await.unwrap();
    assert_eq!(empty.revision, 0);
    assert!(empty.tenants.is_empty() && empty.keys.is_empty() && empty.approvers.is_empty());

    let t = tenant(&s, "acme").await;
    let gone_t = tenant(&s, "gone").await;
    let a = app(&s, &t.id, "svc").await;
    let gone_a = app(&s, &t.id, "old").await;
    let in_gone_t = app(&s, &gone_t.id, "svc").await;
    let (live, _) = key(&s, &a.id, "live").await;
    let (revoked, _) = key(&s, &a.id, "revoked").await;
    let (expired, _) = s
        .create_key(
            &admin(),
            NewKey {
                app_id: a.id.clone(),
                name: "expired".into(),
                expires_at: Some(now_ms() - 1),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
    key(&s, &gone_a.id, "of deleted app").await;
    key(&s, &in_gone_t.id, "of deleted tenant").await;
    let sub = s
        .request_subscription(&admin(), &a.id, "model:m", None)
        .await
        .unwrap();
    s.decide_subscription(&admin(), &sub.id, SubState::Approved, None)
        .await
        .unwrap();
    let pending = s
        .request_subscription(&admin(), &a.id, "api:chat", None)
        .await
        .unwrap();
    s.request_subscription(&admin(), &gone_a.id, "model:m", None)
        .await
        .unwrap();

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
    let boss = s
        .create_user(
            &admin(),
            NewUser {
                name: "boss".into(),
                role: Role::TenantAdmin,
                tenant_id: Some(t.id.clone()),
            },
        )
        .await
        .unwrap();
    let off = s
        .create_user(
            &admin(),
            NewUser {
                name: "off".into(),
                role: Role::Admin,
                tenant_id: None,
            },
        )
        .await
        .unwrap();
    s.update_user(
        &admin(),
        &off.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await
    .unwrap();
    s.create_user(
        &admin(),
        NewUser {
            name: "dev".into(),
            role: Role::Developer,
            tenant_id: Some(t.id.clone()),
        },
    )
    .await
    .unwrap();
    s.create_user(
        &admin(),
        NewUser {
            name: "aud".into(),
            role: Role::Auditor,
            tenant_id: None,
        },
    )
    .await
    .unwrap();

    s.revoke_key(&admin(), &revoked.id).await.unwrap();
    s.delete_app(&admin(), &gone_a.id).await.unwrap();
    s.delete_tenant(&admin(), &gone_t.id).await.unwrap();

    let d = s.load_directory().await.unwrap();
    assert_eq!(d.revision, s.revision().await.unwrap());
    assert_eq!(ids(&d.tenants, |t| &t.id), vec![t.id.clone()]);
    assert_eq!(ids(&d.apps, |a| &a.id), vec![a.id.clone()]);
    assert_eq!(
        ids(&d.keys, |k| &k.id),
        vec![live.id.clone(), expired.id.clone()]
    );
    assert_eq!(
        d.keys[0],
        s.get_key(&live.id).await.unwrap().unwrap(),
        "full keys, hash included"
    );
    assert_eq!(
        ids(&d.subscriptions, |s| &s.id),
        vec![sub.id.clone(), pending.id.clone()]
    );
    assert_eq!(d.subscriptions[0].state, SubState::Approved);
    assert_eq!(ids(&d.approvers, |u| &u.id), vec![root.id, boss.id]);
}

async fn directory_revision_tracks_changes(s: Store) {
    let t = tenant(&s, "acme").await;
    let d1 = s.load_directory().await.unwrap();
    assert_eq!(d1.revision, 1);
    let a = app(&s, &t.id, "svc").await;
    let d2 = s.load_directory().await.unwrap();
    assert_eq!(d2.revision, 2);
    assert_eq!(ids(&d2.apps, |x| &x.id), vec![a.id]);
}
