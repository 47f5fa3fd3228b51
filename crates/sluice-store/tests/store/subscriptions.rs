//! Subscriptions: the request/decide state machine, one row per (app,
//! target), invalid transitions, targets, paging and filters.

use sluice_store::{AuditQuery, ListQuery, Role, Store, SubState};

use crate::common::*;

both!(
    request_approve_revoke_and_request_again,
    reject_then_request_again,
    invalid_transitions_are_refused,
    targets_and_parents_are_checked,
    lists_page_and_filter,
    hostile_strings_are_literal,
);

async fn request_approve_revoke_and_request_again(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let dev = actor("usr_dev", Role::Developer, Some(&t.id));
    let boss = actor("usr_boss", Role::TenantAdmin, Some(&t.id));

    let p = s
        .request_subscription(&dev, &a.id, "model:gpt-4o", Some("for the chatbot".into()))
        .await
        .unwrap();
    assert!(p.id.starts_with("sub_"));
    assert_eq!(
        (p.state, p.tenant_id.as_str(), p.app_id.as_str()),
        (SubState::Pending, t.id.as_str(), a.id.as_str())
    );
    assert_eq!(
        (p.requested_by.as_str(), p.decided_by.clone(), p.decided_at),
        ("usr_dev", None, None)
    );
    assert_eq!(p.note.as_deref(), Some("for the chatbot"));
    assert_eq!(s.get_subscription(&p.id).await.unwrap(), Some(p.clone()));

    // Asking again while pending: the same row, nothing written.
    let rev = s.revision().await.unwrap();
    let same = s
        .request_subscription(&dev, &a.id, "model:gpt-4o", None)
        .await
        .unwrap();
    assert_eq!(same, p);
    assert_eq!(s.revision().await.unwrap(), rev);

    let approved = s
        .decide_subscription(&boss, &p.id, SubState::Approved, None)
        .await
        .unwrap();
    assert_eq!(approved.state, SubState::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("usr_boss"));
    let decided_at = approved.decided_at.expect("decided_at");
    assert!(decided_at >= p.requested_at);
    assert_eq!(
        approved.note.as_deref(),
        Some("for the chatbot"),
        "kept without a new note"
    );
    assert_eq!(
        s.get_subscription(&p.id).await.unwrap(),
        Some(approved.clone())
    );
    assert_eq!(
        s.request_subscription(&dev, &a.id, "model:gpt-4o", None)
            .await
            .unwrap(),
        approved
    );

    let revoked = s
        .decide_subscription(&boss, &p.id, SubState::Revoked, Some("budget".into()))
        .await
        .unwrap();
    assert_eq!(
        (revoked.state, revoked.note.as_deref()),
        (SubState::Revoked, Some("budget"))
    );

    let reopened = s
        .request_subscription(&dev, &a.id, "model:gpt-4o", None)
        .await
        .unwrap();
    assert_eq!(reopened.id, p.id, "one row per app and target");
    assert_eq!(
        (
            reopened.state,
            reopened.decided_by.clone(),
            reopened.decided_at
        ),
        (SubState::Pending, None, None)
    );
    assert_eq!(count(&s, "subscriptions").await, 1);

    let actions: Vec<_> = s
        .list_audit(&AuditQuery {
            target_id: Some(p.id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    let expected = [
        ("subscription.request", "usr_dev"),
        ("subscription.revoke", "usr_boss"),
        ("subscription.approve", "usr_boss"),
        ("subscription.request", "usr_dev"),
    ];
    assert_eq!(
        actions,
        expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    );
}

async fn reject_then_request_again(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let p = s
        .request_subscription(&admin(), &a.id, "api:embeddings", None)
        .await
        .unwrap();
    let r = s
        .decide_subscription(&admin(), &p.id, SubState::Rejected, Some("no".into()))
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.note.as_deref()),
        (SubState::Rejected, Some("no"))
    );
    let again = s
        .request_subscription(&admin(), &a.id, "api:embeddings", Some("please".into()))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.state, again.note.as_deref()),
        (p.id.as_str(), SubState::Pending, Some("please"))
    );
    let entry = &s.list_audit(&AuditQuery::default()).await.unwrap().items[0];
    assert_eq!(entry.action, "subscription.request");
    assert_eq!(entry.before.as_ref().unwrap()["state"], "rejected");
    assert_eq!(entry.after.as_ref().unwrap()["state"], "pending");
}

async fn invalid_transitions_are_refused(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    let sub = |target: &'static str| {
        let s = s.clone();
        let app_id = a.id.clone();
        async move {
            s.request_subscription(&admin(), &app_id, target, None)
                .await
                .unwrap()
        }
    };
    let pending = sub("model:p").await;
    for to in [SubState::Pending, SubState::Revoked] {
        expect_invalid(
            s.decide_subscription(&admin(), &pending.id, to, None).await,
            "cannot become",
        );
    }
    let approved = sub("model:a").await;
    s.decide_subscription(&admin(), &approved.id, SubState::Approved, None)
        .await
        .unwrap();
    for to in [SubState::Pending, SubState::Approved, SubState::Rejected] {
        expect_invalid(
            s.decide_subscription(&admin(), &approved.id, to, None)
                .await,
            "is approved",
        );
    }
    let rejected = sub("model:r").await;
    s.decide_subscription(&admin(), &rejected.id, SubState::Rejected, None)
        .await
        .unwrap();
    for to in [
        SubState::Pending,
        SubState::Approved,
        SubState::Rejected,
        SubState::Revoked,
    ] {
        expect_invalid(
            s.decide_subscription(&admin(), &rejected.id, to, None)
                .await,
            "is rejected",
        );
    }
    s.decide_subscription(&admin(), &approved.id, SubState::Revoked, None)
        .await
        .unwrap();
    for to in [
        SubState::Pending,
        SubState::Approved,
        SubState::Rejected,
        SubState::Revoked,
    ] {
        expect_invalid(
            s.decide_subscription(&admin(), &approved.id, to, None)
                .await,
            "is revoked",
        );
    }
    expect_not_found(
        s.decide_subscription(&admin(), "sub_missing", SubState::Approved, None)
            .await,
        "sub_missing",
    );
    assert_eq!(
        s.get_subscription(&pending.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        SubState::Pending
    );
}

async fn targets_and_parents_are_checked(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    for bad in [
        "gpt-4o",
        "model:",
        "model:a b",
        "api:sql",
        "tool:x",
        "",
        "model:x'; DROP TABLE apps;--",
    ] {
        expect_invalid(
            s.request_subscription(&admin(), &a.id, bad, None).await,
            "target",
        );
    }
    expect_invalid(
        s.request_subscription(&admin(), &a.id, "model:m", Some("n".repeat(2001)))
            .await,
        "note",
    );
    expect_not_found(
        s.request_subscription(&admin(), "app_missing", "model:m", None)
            .await,
        "app",
    );
    for api in ["chat", "messages", "embeddings", "models"] {
        s.request_subscription(&admin(), &a.id, &format!("api:{api}"), None)
            .await
            .unwrap();
    }
    s.delete_app(&admin(), &a.id).await.unwrap();
    expect_not_found(
        s.request_subscription(&admin(), &a.id, "model:m", None)
            .await,
        "app",
    );
}

async fn lists_page_and_filter(s: Store) {
    let t = tenant(&s, "acme").await;
    let t2 = tenant(&s, "beta").await;
    let a = app(&s, &t.id, "svc").await;
    let b = app(&s, &t2.id, "svc").await;
    let mut of_a = Vec::new();
    for i in 0..7 {
        of_a.push(
            s.request_subscription(&admin(), &a.id, &format!("model:m{i}"), None)
                .await
                .unwrap()
                .id,
        );
    }
    let ob = s
        .request_subscription(&admin(), &b.id, "model:m0", None)
        .await
        .unwrap();
    s.decide_subscription(&admin(), &of_a[1], SubState::Approved, None)
        .await
        .unwrap();
    s.decide_subscription(&admin(), &ob.id, SubState::Approved, None)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    for expected in [3, 3, 1] {
        let page = s
            .list_subscriptions(&ListQuery {
                app_id: Some(a.id.clone()),
                limit: 3,
                after: after.clone(),
                ..q()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), expected);
        seen.extend(page.items.into_iter().map(|x| x.id));
        after = page.next;
    }
    assert_eq!((seen, after), (of_a.clone(), None));
    let approved = s
        .list_subscriptions(&ListQuery {
            state: Some("approved".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(approved.items.len(), 2);
    let approved_here = s
        .list_subscriptions(&ListQuery {
            state: Some("approved".into()),
            tenant_id: Some(t2.id.clone()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(
        approved_here
            .items
            .into_iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        vec![ob.id]
    );
    let pending = s
        .list_subscriptions(&ListQuery {
            state: Some("pending".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 6);
    expect_invalid(
        s.list_subscriptions(&ListQuery {
            state: Some("open".into()),
            ..q()
        })
        .await,
        "state",
    );
}

async fn hostile_strings_are_literal(s: Store) {
    let t = tenant(&s, "acme").await;
    let a = app(&s, &t.id, "svc").await;
    for (i, nasty) in NASTY.iter().enumerate() {
        let sub = s
            .request_subscription(
                &admin(),
                &a.id,
                &format!("model:m{i}"),
                Some((*nasty).to_owned()),
            )
            .await
            .unwrap();
        assert_eq!(
            s.get_subscription(&sub.id)
                .await
                .unwrap()
                .unwrap()
                .note
                .as_deref(),
            Some(*nasty)
        );
        let decided = s
            .decide_subscription(
                &admin(),
                &sub.id,
                SubState::Rejected,
                Some(format!("{nasty}!")),
            )
            .await
            .unwrap();
        assert_eq!(decided.note, Some(format!("{nasty}!")));
        assert_eq!(s.get_subscription(nasty).await.unwrap(), None);
        let page = s
            .list_subscriptions(&ListQuery {
                tenant_id: Some((*nasty).to_owned()),
                app_id: Some((*nasty).to_owned()),
                ..q()
            })
            .await
            .unwrap();
        assert!(page.items.is_empty());
        expect_invalid(
            s.list_subscriptions(&ListQuery {
                state: Some((*nasty).to_owned()),
                ..q()
            })
            .await,
            "state",
        );
    }
    tables_survive(&s).await;
    assert_eq!(count(&s, "subscriptions").await, NASTY.len() as i64);
}
