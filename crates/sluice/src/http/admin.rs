//! The admin listener: the admin API (`/admin/…`, see [`crate::admin`]:
//! status, reload, tenants, apps, keys, users, subscriptions, audit, the
//! OpenAPI document), `GET /metrics` and `GET /healthz`. `/metrics` is open
//! on this listener (keep the admin listener private).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, StatusCode};

use crate::admin::error::ApiError;
use crate::error::ErrorKind;
use crate::state::App;

pub fn router(app: App) -> Router {
    crate::admin::router()
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::http::health::healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// `/metrics` alone, served on the public listener when there is no admin listener.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> Response {
    let totals: Vec<(&'static str, u64, u64)> = app
        .queues
        .totals()
        .into_iter()
        .map(|(k, f, w)| (k.as_str(), f, w))
        .collect();
    app.metrics.set_queue_totals(&totals);
    set_deployment_gauges(&app);
    app.metrics.cache.set_size(app.cache.size());
    let mut resp = app.metrics.render().into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// Breaker phase and requests in flight of each deployment of the config.
fn set_deployment_gauges(app: &App) {
    use crate::telemetry::metrics::{DeploymentLabels, Label};
    let snap = app.snapshot.load();
    let now = std::time::Instant::now();
    for model in snap.models.values() {
        for d in &model.deployments {
            let live = d.live(&app.dispatcher.upstreams);
            let labels = DeploymentLabels {
                model: Label(model.name.clone()),
                provider: Label(d.provider.name.clone()),
                deployment: Label(d.target.model.as_str().into()),
            };
            let m = &app.metrics;
            m.deployment_in_flight
                .get_or_create(&labels)
                .set(i64::from(live.in_flight()));
            if model.breaker.is_some() {
                let phase = live.breaker.phase(now).gauge();
                m.breaker_state.get_or_create(&labels).set(phase);
            }
        }
    }
}

async fn not_found(uri: http::Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::new(
        ErrorKind::NotFound,
        format!("no admin endpoint at `{path}`; see GET /admin/openapi.json"),
    )
    .into_response()
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    let mut resp = ApiError::new(
        ErrorKind::InvalidRequest,
        format!("method {method} is not allowed on `{path}`; see GET /admin/openapi.json"),
    )
    .into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}
