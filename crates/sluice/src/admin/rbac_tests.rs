//! The permission table, tested as a table: every role × resource × action.

use super::*;
use Action::*;
use Resource as R;
use Scope::*;

fn actor(role: Role, tenant: Option<&str>) -> Actor {
    Actor {
        id: "usr_me".into(),
        role,
        tenant_id: tenant.map(Into::into),
    }
}

/// A caller: role and tenant.
type Who = (Role, Option<&'static str>);

const ADMIN: Who = (Role::Admin, None);
const TA: Who = (Role::TenantAdmin, Some("ten_a"));
const DEV: Who = (Role::Developer, Some("ten_a"));
const AUD: Who = (Role::Auditor, None);
const AUD_A: Who = (Role::Auditor, Some("ten_a"));

/// (who, resource, [List, Read, Create, Update, Delete, Decide])
const TABLE: &[(Who, Resource, [Scope; 6])] = &[
    (ADMIN, R::Tenant, [Everything; 6]),
    (ADMIN, R::System, [Everything; 6]),
    (ADMIN, R::Audit, [Everything; 6]),
    (TA, R::Tenant, [Tenant, Tenant, Deny, Deny, Deny, Deny]),
    (TA, R::App, [Tenant; 6]),
    (TA, R::Key, [Tenant; 6]),
    (TA, R::Subscription, [Tenant; 6]),
    (TA, R::User, [Tenant, Tenant, Tenant, Tenant, Deny, Tenant]),
    (TA, R::Credential, [Tenant; 6]),
    (TA, R::Audit, [Tenant, Tenant, Deny, Deny, Deny, Deny]),
    (TA, R::System, [Deny; 6]),
    (DEV, R::Tenant, [Deny; 6]),
    (DEV, R::App, [Own; 6]),
    (DEV, R::Key, [Own; 6]),
    (DEV, R::Subscription, [Own, Own, Own, Own, Own, Deny]),
    (DEV, R::User, [Deny, Own, Deny, Deny, Deny, Deny]),
    (DEV, R::Credential, [Own, Own, Deny, Own, Deny, Deny]),
    (DEV, R::Audit, [Deny; 6]),
    (DEV, R::System, [Deny; 6]),
    (
        AUD,
        R::Tenant,
        [Everything, Everything, Deny, Deny, Deny, Deny],
    ),
    (
        AUD,
        R::Key,
        [Everything, Everything, Deny, Deny, Deny, Deny],
    ),
    (
        AUD,
        R::Audit,
        [Everything, Everything, Deny, Deny, Deny, Deny],
    ),
    (AUD, R::System, [Deny; 6]),
    (AUD_A, R::App, [Tenant, Tenant, Deny, Deny, Deny, Deny]),
    (AUD_A, R::User, [Tenant, Tenant, Deny, Deny, Deny, Deny]),
    (AUD_A, R::Audit, [Tenant, Tenant, Deny, Deny, Deny, Deny]),
];

#[test]
fn the_permission_table() {
    let acts = [List, Read, Create, Update, Delete, Decide];
    for ((role, tenant), res, want) in TABLE {
        let a = actor(*role, *tenant);
        for (act, want) in acts.iter().zip(want) {
            assert_eq!(
                scope(&a, *res, *act),
                *want,
                "{role:?} {tenant:?} {res:?} {act:?}"
            );
            assert_eq!(require(&a, *res, *act).is_err(), *want == Deny);
        }
    }
}

#[test]
fn denials_are_403() {
    let e = require(&actor(Role::Auditor, None), R::App, Create).unwrap_err();
    assert_eq!(e.status().as_u16(), 403);
    assert!(e.0.message.contains("auditor"), "{}", e.0.message);
}

#[test]
fn covers_tenants_and_owners() {
    let own = |t: Option<&str>, u: Option<&str>| Owner {
        tenant_id: t.map(Into::into),
        user_id: u.map(Into::into),
    };
    let dev = actor(Role::Developer, Some("ten_a"));
    let cases = [
        (Everything, own(Some("ten_b"), None), true),
        (Tenant, own(Some("ten_a"), None), true),
        (Tenant, own(Some("ten_b"), None), false),
        (Tenant, own(None, None), false),
        (Own, own(Some("ten_a"), Some("usr_me")), true),
        (Own, own(Some("ten_a"), Some("usr_other")), false),
        (Own, own(Some("ten_b"), Some("usr_me")), false),
        (Own, own(Some("ten_a"), None), false),
        (Deny, own(Some("ten_a"), Some("usr_me")), false),
    ];
    for (scope, owner, want) in cases {
        assert_eq!(covers(&dev, scope, &owner), want, "{scope:?} {owner:?}");
    }
    // A tenant scope never matches for a caller without a tenant.
    let lost = actor(Role::TenantAdmin, None);
    assert!(!covers(&lost, Tenant, &own(None, None)));
}

fn user(id: &str, role: Role, tenant: Option<&str>) -> User {
    User {
        id: id.into(),
        name: id.into(),
        role,
        tenant_id: tenant.map(Into::into),
        disabled_at: None,
        created_at: 0,
        updated_at: 0,
    }
}

#[test]
fn new_user_rules() {
    let ta = actor(Role::TenantAdmin, Some("ten_a"));
    assert_eq!(
        check_new_user(&ta, Role::Developer, None).unwrap(),
        Some("ten_a".into())
    );
    assert_eq!(
        check_new_user(&ta, Role::Admin, None).unwrap_err().status(),
        403
    );
    let foreign = check_new_user(&ta, Role::Developer, Some("ten_b".into()));
    assert_eq!(foreign.unwrap_err().status(), 404);
    let dev = actor(Role::Developer, Some("ten_a"));
    assert_eq!(
        check_new_user(&dev, Role::Developer, None)
            .unwrap_err()
            .status(),
        403
    );
    let admin = actor(Role::Admin, None);
    assert_eq!(
        check_new_user(&admin, Role::Admin, None).unwrap(),
        None,
        "admins pass through (the store checks role/tenant consistency)"
    );
}

#[test]
fn user_patch_rules() {
    let admin = actor(Role::Admin, None);
    let ta = actor(Role::TenantAdmin, Some("ten_a"));
    let me_admin = user("usr_me", Role::Admin, None);
    let me_ta = user("usr_me", Role::TenantAdmin, Some("ten_a"));
    let dev = user("usr_dev", Role::Developer, Some("ten_a"));
    let role = |r| UserPatch {
        role: Some(r),
        ..Default::default()
    };
    let disable = UserPatch {
        disabled: Some(true),
        ..Default::default()
    };
    let moved = |t: Option<&str>| UserPatch {
        tenant_id: Some(t.map(Into::into)),
        ..Default::default()
    };
    let status = |r: ApiResult<()>| r.map(|_| 200).unwrap_or_else(|e| e.status().as_u16());
    let cases = [
        (&admin, &me_admin, role(Role::Auditor), 403),
        (&admin, &me_admin, disable.clone(), 403),
        (&admin, &dev, role(Role::Admin), 200),
        (&admin, &dev, moved(Some("ten_b")), 200),
        (&ta, &me_ta, role(Role::Developer), 403),
        (&ta, &me_ta, disable.clone(), 403),
        (&ta, &dev, role(Role::TenantAdmin), 200),
        (&ta, &dev, role(Role::Admin), 403),
        (&ta, &dev, moved(Some("ten_b")), 403),
        (&ta, &dev, moved(None), 403),
        (&ta, &dev, moved(Some("ten_a")), 200),
        (&ta, &dev, disable.clone(), 200),
    ];
    for (who, target, patch, want) in cases {
        assert_eq!(
            status(check_user_patch(who, target, &patch)),
            want,
            "{:?} → {} {patch:?}",
            who.role,
            target.id
        );
    }
    let auditor = actor(Role::Auditor, None);
    assert_eq!(status(check_user_patch(&auditor, &dev, &disable)), 403);
}

#[test]
fn last_admin_detection() {
    let a = user("usr_a", Role::Admin, None);
    let demote = UserPatch {
        role: Some(Role::Developer),
        ..Default::default()
    };
    let rename = UserPatch {
        name: Some("x".into()),
        ..Default::default()
    };
    let disable = UserPatch {
        disabled: Some(true),
        ..Default::default()
    };
    assert!(removes_admin(&a, &demote));
    assert!(removes_admin(&a, &disable));
    assert!(!removes_admin(&a, &rename));
    let dev = user("usr_d", Role::Developer, Some("ten_a"));
    assert!(!removes_admin(&dev, &disable));
}
