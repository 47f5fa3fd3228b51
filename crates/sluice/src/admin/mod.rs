//! The admin API: tenants, apps, keys, users and credentials,
//! subscriptions, the audit log, status/reload and the OpenAPI document.
//!
//! How a request goes: [`auth`] turns the credential into an `Actor` (401
//! otherwise); `extract` reads the body/query (400/413); the handler asks
//! `access` to load or list entities (see `entities` for how each kind
//! is fetched and who owns it), which asks [`rbac`] — the one table
//! of who may do what (403 for never, 404 for out of reach); `checks`
//! validates values against the config; the store does the change and
//! writes the audit entry; the handler tells the key directory. Every route
//! is mounted from its `#[utoipa::path]` (method and path), so the router
//! and `openapi` cannot drift apart.

mod access;
mod apps;
mod audit;
pub mod auth;
mod bodies;
mod checks;
mod credentials;
mod entities;
pub mod error;
mod extract;
mod keys;
mod openapi;
mod params;
pub mod rbac;
mod subscriptions;
mod system;
mod tenants;
pub mod time;
mod usage;
mod users;
pub mod views;

use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;
use utoipa::openapi::path::HttpMethod;

use crate::state::App;

/// A router that records what it mounts: each route's method and path
/// come from its OpenAPI annotation.
#[derive(Default)]
struct Routes {
    router: Router<App>,
    mounted: Vec<(String, String)>,
}

impl Routes {
    fn add<P: utoipa::Path, H: Handler<T, App>, T: 'static>(mut self, handler: H) -> Self {
        let path = P::path();
        for m in P::methods() {
            let (filter, name) = match m {
                HttpMethod::Get => (MethodFilter::GET, "get"),
                HttpMethod::Post => (MethodFilter::POST, "post"),
                HttpMethod::Patch => (MethodFilter::PATCH, "patch"),
                HttpMethod::Put => (MethodFilter::PUT, "put"),
                HttpMethod::Delete => (MethodFilter::DELETE, "delete"),
                HttpMethod::Options => (MethodFilter::OPTIONS, "options"),
                HttpMethod::Head => (MethodFilter::HEAD, "head"),
                HttpMethod::Trace => (MethodFilter::TRACE, "trace"),
            };
            self.router = self.router.route(&path, on(filter, handler.clone()));
            self.mounted.push((name.to_owned(), path.clone()));
        }
        self
    }
}

fn routes() -> Routes {
    use self::{
        apps as a, credentials as c, keys as k, subscriptions as s, tenants as t, users as u,
    };
    Routes::default()
        .add::<system::__path_status, _, _>(system::status)
        .add::<system::__path_reload, _, _>(system::reload)
        .add::<system::__path_prices, _, _>(system::prices)
        .add::<openapi::__path_document, _, _>(openapi::document)
        .add::<t::__path_list, _, _>(t::list)
        .add::<t::__path_create, _, _>(t::create)
        .add::<t::__path_get, _, _>(t::get)
        .add::<t::__path_update, _, _>(t::update)
        .add::<t::__path_delete, _, _>(t::delete)
        .add::<a::__path_list, _, _>(a::list)
        .add::<a::__path_create, _, _>(a::create)
        .add::<a::__path_get, _, _>(a::get)
        .add::<a::__path_update, _, _>(a::update)
        .add::<a::__path_delete, _, _>(a::delete)
        .add::<k::__path_list, _, _>(k::list)
        .add::<k::__path_create, _, _>(k::create)
        .add::<k::__path_get, _, _>(k::get)
        .add::<k::__path_update, _, _>(k::update)
        .add::<k::__path_rotate, _, _>(k::rotate)
        .add::<k::__path_revoke, _, _>(k::revoke)
        .add::<u::__path_list, _, _>(u::list)
        .add::<u::__path_create, _, _>(u::create)
        .add::<u::__path_me, _, _>(u::me)
        .add::<u::__path_get, _, _>(u::get)
        .add::<u::__path_update, _, _>(u::update)
        .add::<c::__path_create, _, _>(c::create)
        .add::<c::__path_list, _, _>(c::list)
        .add::<c::__path_revoke, _, _>(c::revoke)
        .add::<s::__path_list, _, _>(s::list)
        .add::<s::__path_create, _, _>(s::create)
        .add::<s::__path_get, _, _>(s::get)
        .add::<s::__path_approve, _, _>(s::approve)
        .add::<s::__path_reject, _, _>(s::reject)
        .add::<s::__path_revoke, _, _>(s::revoke)
        .add::<audit::__path_list, _, _>(audit::list)
        .add::<usage::__path_usage, _, _>(usage::usage)
        .add::<usage::__path_top, _, _>(usage::top)
        .add::<usage::__path_logs, _, _>(usage::logs)
}

/// Every admin route (to be merged into the admin listener's router).
pub fn router() -> Router<App> {
    routes().router
}

/// `(method, path)` of every mounted admin route, as in the OpenAPI document.
pub fn mounted_routes() -> Vec<(String, String)> {
    routes().mounted
}
