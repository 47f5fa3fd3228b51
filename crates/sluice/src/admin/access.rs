//! The shared get/list/authorize helpers every entity route goes through,
//! so no handler repeats the RBAC dance:
//! - [`load`]: fetch by id; 403 when the role can never do the action, 404
//!   when the id is missing *or* outside the caller's reach (no leak);
//! - [`list`]: a page restricted to what the caller may see (filters that
//!   point elsewhere give an empty page, never an error).

use std::collections::HashSet;
use std::future::Future;

use sluice_store::{self as st, ListQuery, Page, Store};

use super::auth::Ctx;
use super::error::{ApiError, ApiResult};
use super::extract::plausible_id;
use super::params::MAX_LIMIT;
use super::rbac::{self, Action, Owner, Resource, Scope};

pub type StoreResult<T> = Result<T, st::StoreError>;

/// A store entity as the access rules see it.
pub trait Entity: Sized + Send {
    const RES: Resource;
    /// For messages: `tenant`, `app`, …
    const NAME: &'static str;
    fn fetch(store: &Store, id: &str) -> impl Future<Output = StoreResult<Option<Self>>> + Send;
    fn list(store: &Store, q: &ListQuery) -> impl Future<Output = StoreResult<Page<Self>>> + Send;
    fn owner(&self, store: &Store) -> impl Future<Output = StoreResult<Owner>> + Send;
    fn id(&self) -> &str;
    /// The app an entity belongs to (keys, subscriptions).
    fn app_id(&self) -> Option<&str> {
        None
    }
}

/// Fetches an entity the caller may act on (see the module docs).
pub async fn load<E: Entity>(ctx: &Ctx, id: &str, act: Action) -> ApiResult<E> {
    Ok(load_owned::<E>(ctx, id, act).await?.0)
}

/// [`load`], also returning the entity's owner.
pub async fn load_owned<E: Entity>(ctx: &Ctx, id: &str, act: Action) -> ApiResult<(E, Owner)> {
    let act_scope = ctx.require(E::RES, act)?;
    let found = match plausible_id(id) {
        true => E::fetch(&ctx.store, id).await?,
        false => None,
    };
    let entity = found.ok_or_else(|| ApiError::not_found(E::NAME, id))?;
    let owner = entity.owner(&ctx.store).await?;
    let read_scope = rbac::scope(&ctx.actor, E::RES, Action::Read);
    if rbac::covers(&ctx.actor, read_scope, &owner) && rbac::covers(&ctx.actor, act_scope, &owner) {
        Ok((entity, owner))
    } else {
        Err(ApiError::not_found(E::NAME, id))
    }
}

/// Checks that the caller may `act` on `res` under a parent they can see
/// (e.g. create a key for an app): 403 for a role that never may, else
/// 404 naming the parent when it lies outside the caller's reach.
pub fn permit_under(
    ctx: &Ctx,
    res: Resource,
    act: Action,
    parent: &Owner,
    what: (&str, &str),
) -> ApiResult<()> {
    let scope = ctx.require(res, act)?;
    match rbac::covers(&ctx.actor, scope, parent) {
        true => Ok(()),
        false => Err(ApiError::not_found(what.0, what.1)),
    }
}

/// A page of `E` restricted to what the caller may list.
pub async fn list<E: Entity>(ctx: &Ctx, mut q: ListQuery) -> ApiResult<Page<E>> {
    let empty = Page {
        items: Vec::new(),
        next: None,
    };
    let scope = ctx.require(E::RES, Action::List)?;
    if scope == Scope::Everything {
        return Ok(E::list(&ctx.store, &q).await?);
    }
    if !narrow(&mut q.tenant_id, &ctx.actor.tenant_id) {
        return Ok(empty);
    }
    if scope == Scope::Tenant {
        return Ok(E::list(&ctx.store, &q).await?);
    }
    // Own: the caller's apps, and the keys and subscriptions of those.
    if E::RES == Resource::App {
        let me = Some(ctx.actor.id.clone());
        return match narrow(&mut q.owner_user_id, &me) {
            true => Ok(E::list(&ctx.store, &q).await?),
            false => Ok(empty),
        };
    }
    let owned = owned_apps(ctx).await?;
    match &q.app_id {
        Some(a) if owned.contains(a) => Ok(E::list(&ctx.store, &q).await?),
        Some(_) => Ok(empty),
        None if owned.is_empty() => Ok(empty),
        None => {
            scan(&ctx.store, q, |e: &E| {
                e.app_id().is_some_and(|a| owned.contains(a))
            })
            .await
        }
    }
}

/// Sets `filter` to `only`; false when the caller asked for something else.
pub fn narrow(filter: &mut Option<String>, only: &Option<String>) -> bool {
    if only.is_none() || filter.as_ref().is_some_and(|f| Some(f) != only.as_ref()) {
        return false;
    }
    filter.clone_from(only);
    true
}

/// The ids of the caller's own apps.
pub async fn owned_apps(ctx: &Ctx) -> ApiResult<HashSet<String>> {
    let q = ListQuery {
        tenant_id: ctx.actor.tenant_id.clone(),
        owner_user_id: Some(ctx.actor.id.clone()),
        limit: MAX_LIMIT,
        ..Default::default()
    };
    let page = scan(&ctx.store, q, |_: &st::App| true).await?;
    Ok(page.items.into_iter().map(|a| a.id).collect())
}

/// Reads the store's pages in order, keeping the items `keep` accepts,
/// until a page of the requested size is full. The cursor stays the
/// store's (the id of the last item returned).
async fn scan<E: Entity>(
    store: &Store,
    q: ListQuery,
    keep: impl Fn(&E) -> bool,
) -> ApiResult<Page<E>> {
    let want = if q.limit == 0 { 50 } else { q.limit as usize };
    let mut q = ListQuery {
        limit: MAX_LIMIT,
        ..q
    };
    let mut out: Vec<E> = Vec::new();
    loop {
        let Page { items, next } = E::list(store, &q).await?;
        let n = items.len();
        for (i, item) in items.into_iter().enumerate() {
            if !keep(&item) {
                continue;
            }
            out.push(item);
            if out.len() == want {
                let more = i + 1 < n || next.is_some();
                let next = more.then(|| out[want - 1].id().to_owned());
                return Ok(Page { items: out, next });
            }
        }
        match next {
            Some(c) if n > 0 => q.after = Some(c),
            _ => {
                return Ok(Page {
                    items: out,
                    next: None,
                })
            }
        }
    }
}
