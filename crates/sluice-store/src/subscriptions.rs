//! Subscriptions: an app's request for a model (`model:<name>`) or an API
//! (`api:<name>`): pending → approved | rejected; approved → revoked. A
//! rejected or revoked subscription may be requested again (back to pending).
//! One row per (app, target); a deleted app's subscriptions are gone with it.

use sqlx::{Any, Executor};

use crate::db::{conflict_on_unique, Change, List, Order, Sql, Tx};
use crate::ids::{new_id, now_ms};
use crate::rows::{self, SUBSCRIPTION_COLUMNS};
use crate::{validate, Actor, ListQuery, Page, Result, Store, StoreError, SubState, Subscription};

/// Subscriptions whose app is live.
pub(crate) const OF_LIVE_APP: &str = "EXISTS (SELECT 1 FROM apps a \
     WHERE a.id = subscriptions.app_id AND a.deleted_at IS NULL)";

impl Store {
    /// Creates a pending subscription, or returns the existing one when it is
    /// pending or approved; re-opens a rejected or revoked one as pending.
    pub async fn request_subscription(
        &self,
        by: &Actor,
        app_id: &str,
        target: &str,
        note: Option<String>,
    ) -> Result<Subscription> {
        validate::target(target)?;
        validate::note(note.as_deref())?;
        let mut tx = self.begin_write().await?;
        let app = self.lock_app(&mut tx, app_id).await?;
        let existing = Sql::new(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE app_id = $1 AND target = $2{}",
            self.for_update()
        ))
        .bind(app_id)
        .bind(target)
        .fetch_optional(&mut *tx, rows::subscription)
        .await?;
        let requested = Subscription {
            id: new_id("sub"),
            tenant_id: app.tenant_id,
            app_id: app.id,
            target: target.to_owned(),
            state: SubState::Pending,
            requested_by: by.id.clone(),
            requested_at: now_ms(),
            decided_by: None,
            decided_at: None,
            note,
        };
        let Some(before) = existing else {
            insert(&mut tx, &requested).await?;
            let change = Change::new(
                "subscription.request",
                "subscription",
                &requested.id,
                Some(&requested.tenant_id),
            );
            self.commit_change(tx, by, change.after(&requested)).await?;
            return Ok(requested);
        };
        if matches!(before.state, SubState::Pending | SubState::Approved) {
            return Ok(before);
        }
        let after = Subscription {
            id: before.id.clone(),
            ..requested
        };
        update(&mut tx, &after).await?;
        let change = Change::new(
            "subscription.request",
            "subscription",
            &after.id,
            Some(&after.tenant_id),
        );
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// `to` is Approved or Rejected (from pending) or Revoked (from approved);
    /// anything else is Invalid. Records who decided and when; `note`, when
    /// given, replaces the request's note.
    pub async fn decide_subscription(
        &self,
        by: &Actor,
        id: &str,
        to: SubState,
        note: Option<String>,
    ) -> Result<Subscription> {
        validate::note(note.as_deref())?;
        let mut tx = self.begin_write().await?;
        let before = self.lock_subscription(&mut tx, id).await?;
        let action = transition(before.state, to).ok_or_else(|| {
            StoreError::Invalid(format!(
                "subscription `{id}` is {}; it cannot become {}",
                before.state.as_str(),
                to.as_str()
            ))
        })?;
        let after = Subscription {
            state: to,
            decided_by: Some(by.id.clone()),
            decided_at: Some(now_ms()),
            note: note.or_else(|| before.note.clone()),
            ..before.clone()
        };
        update(&mut tx, &after).await?;
        let change = Change::new(action, "subscription", id, Some(&after.tenant_id));
        self.commit_change(tx, by, change.before(&before).after(&after))
            .await?;
        Ok(after)
    }

    /// `None` when missing or when its app was deleted.
    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>> {
        subscription_by_id(&self.pool, id, "").await
    }

    /// Filters: `tenant_id`, `app_id`, `state`.
    pub async fn list_subscriptions(&self, q: &ListQuery) -> Result<Page<Subscription>> {
        let state = q.state.as_deref().map(parse_state).transpose()?;
        let mut list = List::new(format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"));
        list.condition(OF_LIVE_APP)
            .eq("tenant_id", q.tenant_id.as_deref())
            .eq("app_id", q.app_id.as_deref())
            .eq("state", state.map(SubState::as_str));
        list.page(
            &self.pool,
            Order::Oldest,
            q.after.as_deref(),
            q.limit,
            rows::subscription,
        )
        .await
    }

    async fn lock_subscription(&self, tx: &mut Tx, id: &str) -> Result<Subscription> {
        subscription_by_id(&mut **tx, id, self.for_update())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("subscription `{id}`")))
    }
}

/// The audit action of an allowed transition.
fn transition(from: SubState, to: SubState) -> Option<&'static str> {
    match (from, to) {
        (SubState::Pending, SubState::Approved) => Some("subscription.approve"),
        (SubState::Pending, SubState::Rejected) => Some("subscription.reject"),
        (SubState::Approved, SubState::Revoked) => Some("subscription.revoke"),
        _ => None,
    }
}

fn parse_state(s: &str) -> Result<SubState> {
    SubState::parse(s).ok_or_else(|| {
        StoreError::Invalid(
            "state filter must be one of: pending, approved, rejected, revoked".to_owned(),
        )
    })
}

async fn subscription_by_id<'c, E>(ex: E, id: &str, lock: &str) -> Result<Option<Subscription>>
where
    E: Executor<'c, Database = Any>,
{
    Sql::new(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1 AND {OF_LIVE_APP}{lock}"
    ))
    .bind(id)
    .fetch_optional(ex, rows::subscription)
    .await
}

async fn insert(tx: &mut Tx, s: &Subscription) -> Result<()> {
    Sql::new(format!(
        "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&s.id)
    .bind(&s.tenant_id)
    .bind(&s.app_id)
    .bind(&s.target)
    .bind(s.state.as_str())
    .bind(&s.requested_by)
    .bind(s.requested_at)
    .bind(&s.decided_by)
    .bind(s.decided_at)
    .bind(&s.note)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        conflict_on_unique(e, || {
            format!(
                "app `{}` already has a subscription to `{}`",
                s.app_id, s.target
            )
        })
    })?;
    Ok(())
}

/// Writes the mutable fields of a subscription.
async fn update(tx: &mut Tx, s: &Subscription) -> Result<()> {
    Sql::new(
        "UPDATE subscriptions SET state = $2, requested_by = $3, requested_at = $4, \
         decided_by = $5, decided_at = $6, note = $7 WHERE id = $1",
    )
    .bind(&s.id)
    .bind(s.state.as_str())
    .bind(&s.requested_by)
    .bind(s.requested_at)
    .bind(&s.decided_by)
    .bind(s.decided_at)
    .bind(&s.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
