//! `GET /admin/openapi.json`: the OpenAPI 3.1 document of the admin API,
//! generated from the handlers' `#[utoipa::path]` annotations and the
//! request/response types, plus the bearer security scheme and the error
//! responses every operation may give.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::views::{ErrorDetail, ErrorResponse};
use super::{apps, audit, credentials, keys, subscriptions, system, tenants, usage, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sluice admin API",
        description = "Tenants, apps, API keys, users, subscriptions and the audit log of a sluice gateway. \
            Authenticate with `Authorization: Bearer <admin_key or sa-sluice-… credential>`."
    ),
    paths(
        system::status, system::prices, system::reload, document,
        tenants::list, tenants::create, tenants::get, tenants::update, tenants::delete,
        apps::list, apps::create, apps::get, apps::update, apps::delete,
        keys::list, keys::create, keys::get, keys::update, keys::rotate, keys::revoke,
        users::list, users::create, users::me, users::get, users::update,
        credentials::create, credentials::list, credentials::revoke,
        subscriptions::list, subscriptions::create, subscriptions::get,
        subscriptions::approve, subscriptions::reject, subscriptions::revoke,
        audit::list,
        usage::usage, usage::top, usage::logs,
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&Security, &Errors, &OperationIds),
    security(("bearer" = [])),
    tags(
        (name = "system", description = "Status and reload"),
        (name = "tenants"), (name = "apps"), (name = "keys"),
        (name = "users", description = "Users, roles and admin credentials"),
        (name = "subscriptions"), (name = "audit"),
        (name = "usage", description = "Usage analytics and request logs"),
    )
)]
pub struct ApiDoc;

/// The document itself (no credential needed).
#[utoipa::path(get, path = "/admin/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "This OpenAPI document", body = Object)))]
pub async fn document() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());
    let mut resp = body.clone().into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The config's `admin_key`, or a user's admin credential (`sa-sluice-…`). `x-api-key` works too."))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Adds the error answers (in the `ErrorResponse` shape) to every operation.
struct Errors;

impl Modify for Errors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let by_id = path.contains('{');
            for op in operations(item) {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(is_empty_requirement));
                if public {
                    continue;
                }
                let body = op.request_body.is_some();
                let mut add = |code: &str, why: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(why).into());
                };
                add("400", "Invalid request: bad JSON (with line and column), an unknown or forbidden field, a bad parameter");
                add("401", "Missing or invalid admin credential");
                add("403", "The caller's role may never do this");
                if by_id || body {
                    add(
                        "404",
                        "No such id, or one outside the caller's reach (the same answer)",
                    );
                }
                if body {
                    add(
                        "409",
                        "Conflicts with existing state (e.g. a name in use, the last admin)",
                    );
                    add("413", "Body over 64 KiB");
                }
                add(
                    "503",
                    "No store configured (`store:`), or the store is unavailable",
                );
            }
        }
    }
}

/// Makes operation ids unique: `<tag>_<handler>` (e.g. `keys_rotate`).
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let tag = op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .unwrap_or_default();
                if let Some(id) = &mut op.operation_id {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

fn is_empty_requirement(r: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorResponse"))),
    )
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mounted_route_is_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let mounted = super::super::mounted_routes();
        assert!(mounted.len() > 30, "{mounted:?}");
        for (method, path) in &mounted {
            let op = &doc["paths"][path][method];
            assert!(
                op.is_object(),
                "{method} {path} is not in the OpenAPI document"
            );
            assert!(op["responses"]["401"].is_object() || path == "/admin/openapi.json");
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            mounted.len(),
            "documented operations that are not mounted"
        );
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids must be unique");
    }
}
