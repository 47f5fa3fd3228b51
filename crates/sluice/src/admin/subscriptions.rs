//! `/admin/subscriptions`: an app asks for a model or an API (`pending`);
//! an admin or a tenant admin of the app's tenant approves or rejects it,
//! and may later revoke it. Developers request and read for their own apps.

use axum::http::StatusCode;
use axum::Json;
use sluice_store::{App, SubState, Subscription};

use super::access;
use super::auth::Ctx;
use super::bodies::{DecisionBody, NewSubscriptionBody};
use super::checks;
use super::error::ApiResult;
use super::extract::{Body, Id, OptionalBody, Params};
use super::params::SubscriptionParams;
use super::rbac::{Action, Resource};
use super::views::{ListResponse, SubscriptionView};

/// List subscriptions.
#[utoipa::path(get, path = "/admin/subscriptions", tag = "subscriptions", params(SubscriptionParams),
    responses((status = 200, description = "A page of subscriptions", body = ListResponse<SubscriptionView>)))]
pub async fn list(
    ctx: Ctx,
    Params(p): Params<SubscriptionParams>,
) -> ApiResult<Json<ListResponse<SubscriptionView>>> {
    Ok(Json(
        access::list::<Subscription>(&ctx, p.query()?).await?.into(),
    ))
}

/// Read a subscription.
#[utoipa::path(get, path = "/admin/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, description = "The subscription", body = SubscriptionView)))]
pub async fn get(ctx: Ctx, Id(id): Id) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(
        access::load::<Subscription>(&ctx, &id, Action::Read)
            .await?
            .into(),
    ))
}

/// Request access for an app (pending; an existing pending or approved
/// request is returned as it is, a rejected or revoked one re-opened).
#[utoipa::path(post, path = "/admin/subscriptions", tag = "subscriptions", request_body = NewSubscriptionBody,
    responses((status = 201, description = "Requested", body = SubscriptionView)))]
pub async fn create(
    ctx: Ctx,
    Body(b): Body<NewSubscriptionBody>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    ctx.require(Resource::Subscription, Action::Create)?;
    let (app, owner) = access::load_owned::<App>(&ctx, &b.app_id, Action::Read).await?;
    access::permit_under(
        &ctx,
        Resource::Subscription,
        Action::Create,
        &owner,
        ("app", &app.id),
    )?;
    checks::target(&ctx.snap.config, &b.target)?;
    let note = checks::note(b.note)?;
    let sub = ctx
        .store
        .request_subscription(&ctx.actor, &app.id, &b.target, note)
        .await?;
    ctx.changed();
    Ok((StatusCode::CREATED, Json(sub.into())))
}

async fn decide(
    ctx: Ctx,
    id: String,
    to: SubState,
    b: DecisionBody,
) -> ApiResult<Json<SubscriptionView>> {
    access::load::<Subscription>(&ctx, &id, Action::Decide).await?;
    let note = checks::note(b.note)?;
    let sub = ctx
        .store
        .decide_subscription(&ctx.actor, &id, to, note)
        .await?;
    ctx.changed();
    Ok(Json(sub.into()))
}

/// Approve a pending subscription.
#[utoipa::path(post, path = "/admin/subscriptions/{id}/approve", tag = "subscriptions", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>, description = "Optional"),
    responses((status = 200, description = "Approved", body = SubscriptionView)))]
pub async fn approve(
    ctx: Ctx,
    Id(id): Id,
    OptionalBody(b): OptionalBody<DecisionBody>,
) -> ApiResult<Json<SubscriptionView>> {
    decide(ctx, id, SubState::Approved, b).await
}

/// Reject a pending subscription.
#[utoipa::path(post, path = "/admin/subscriptions/{id}/reject", tag = "subscriptions", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>, description = "Optional"),
    responses((status = 200, description = "Rejected", body = SubscriptionView)))]
pub async fn reject(
    ctx: Ctx,
    Id(id): Id,
    OptionalBody(b): OptionalBody<DecisionBody>,
) -> ApiResult<Json<SubscriptionView>> {
    decide(ctx, id, SubState::Rejected, b).await
}

/// Revoke an approved subscription.
#[utoipa::path(post, path = "/admin/subscriptions/{id}/revoke", tag = "subscriptions", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>, description = "Optional"),
    responses((status = 200, description = "Revoked", body = SubscriptionView)))]
pub async fn revoke(
    ctx: Ctx,
    Id(id): Id,
    OptionalBody(b): OptionalBody<DecisionBody>,
) -> ApiResult<Json<SubscriptionView>> {
    decide(ctx, id, SubState::Revoked, b).await
}
