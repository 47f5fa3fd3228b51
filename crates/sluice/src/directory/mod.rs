//! The identity directory: store-managed keys, apps, tenants and
//! subscriptions as the hot path sees them — immutable maps from key hash to
//! resolved identity, rebuilt aside and swapped (like the config snapshot)
//! whenever the store's revision moves or the config is reloaded.
//!
//! Freshness: a sync task polls `Store::revision` every 500 ms (every 5 s
//! when `shared_state` carries change notices over Redis pub/sub) and is
//! woken at once by [`notify_changed`], so a revoked key is refused by every
//! instance within a second. Expiry needs no reload: it is checked per
//! request. A store outage keeps the last directory serving (and `/readyz`
//! reports it).

use std::collections::HashMap;
use std::sync::Arc;

use sluice_store::SubState;

use crate::config::raw::PolicyRef;
use crate::config::RawConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::policy::concurrency::Flows;
use crate::policy::{rollout_bucket, Scope};
use crate::snapshot::{combine_levels, intersect, DigestMap, KeyInfo, Level, Managed};

mod open;
mod sync;
#[cfg(test)]
mod tests;

pub use open::{open_store, redact_url, resolve_store_url, seed_tenants};
pub use sync::{config_changed, notify_changed, publish_change, refresh, spawn_sync, CHANNEL};

/// Store-managed identities, resolved against the current config.
#[derive(Default)]
pub struct Directory {
    /// The store revision this was read at; -1 before the first load.
    pub revision: i64,
    /// The rows it was built from, kept to rebuild after a config reload.
    rows: Arc<sluice_store::Directory>,
    /// SHA-256 of a key secret → identity.
    pub keys: DigestMap<Arc<KeyInfo>>,
    /// App identities (JWT callers) by app id.
    pub apps: HashMap<String, Arc<KeyInfo>>,
    /// (tenant id, app name) → app id.
    app_names: HashMap<(String, String), String>,
    /// Tenant name → id.
    tenant_ids: HashMap<String, String>,
    /// (app id, target) → subscription state and id.
    subs: HashMap<(String, String), (SubState, String)>,
    /// Tenant id → names of its tenant admins; `""` → admins.
    approvers: HashMap<String, Vec<String>>,
}

impl Directory {
    /// Resolves every row against `cfg`'s policies. Never fails: an entity
    /// whose policy no longer resolves is kept but refused (fail closed).
    pub fn build(rows: Arc<sluice_store::Directory>, cfg: &RawConfig) -> Directory {
        let tenants: HashMap<&str, &sluice_store::Tenant> =
            rows.tenants.iter().map(|t| (t.id.as_str(), t)).collect();
        let mut d = Directory {
            revision: rows.revision,
            ..Directory::default()
        };
        for t in &rows.tenants {
            d.tenant_ids.insert(t.name.clone(), t.id.clone());
        }
        for u in &rows.approvers {
            let scope = u.tenant_id.clone().unwrap_or_default();
            d.approvers.entry(scope).or_default().push(u.name.clone());
        }
        for s in &rows.subscriptions {
            d.subs.insert(
                (s.app_id.clone(), s.target.clone()),
                (s.state, s.id.clone()),
            );
        }
        let mut app_levels = HashMap::new();
        for a in &rows.apps {
            let Some(t) = tenants.get(a.tenant_id.as_str()) else {
                continue;
            };
            let levels = Levels::of(cfg, t, a);
            d.app_names
                .insert((a.tenant_id.clone(), a.name.clone()), a.id.clone());
            let info = levels.identity(cfg, None, None, None, &a.name);
            d.apps.insert(a.id.clone(), Arc::new(info));
            app_levels.insert(a.id.as_str(), levels);
        }
        for k in &rows.keys {
            let (Some(levels), Some(hash)) =
                (app_levels.get(k.app_id.as_str()), decode_hash(&k.hash))
            else {
                continue;
            };
            let info = levels.identity(cfg, Some(k), k.policy.as_ref(), Some(&k.scopes), &k.name);
            d.keys.insert(hash, Arc::new(info));
        }
        d.rows = rows;
        d
    }

    /// Finds an app by tenant and app (each a name or an id), for JWT claims.
    pub fn find_app(&self, tenant: Option<&str>, app: &str) -> Option<&Arc<KeyInfo>> {
        if let Some(a) = self.apps.get(app) {
            let m = a.managed.as_ref()?;
            return tenant
                .is_none_or(|t| *m.tenant_id == *t || a.tenant.as_deref() == Some(t))
                .then_some(a);
        }
        let tenant = tenant?;
        let tid = self.tenant_ids.get(tenant).map_or(tenant, String::as_str);
        let id = self.app_names.get(&(tid.to_owned(), app.to_owned()))?;
        self.apps.get(id)
    }

    /// Refuses an app's call to `target` (`model:<m>` / `api:<a>`) unless it
    /// holds an approved subscription, saying what state it is in and who
    /// can approve it.
    pub fn check_subscription(&self, m: &Managed, target: &str) -> Result<(), GatewayError> {
        let state = self.subs.get(&(m.app_id.to_string(), target.to_owned()));
        let what = match target.split_once(':') {
            Some((kind, name)) => format!("{kind} `{name}`"),
            None => target.to_owned(),
        };
        let who = self.approvers_of(&m.tenant_id);
        let msg = match state {
            Some((SubState::Approved, _)) => return Ok(()),
            Some((SubState::Pending, id)) => format!(
                "app `{}` needs an approved subscription to {what}; its request {id} is pending approval by {who}",
                m.app
            ),
            Some((s, id)) => format!(
                "app `{}` needs an approved subscription to {what}; its subscription {id} was {}; request it again and have it approved by {who}",
                m.app,
                s.as_str()
            ),
            None => format!(
                "app `{}` needs an approved subscription to {what}; request one (POST /admin/subscriptions {{\"app_id\": \"{}\", \"target\": \"{target}\"}}) and have it approved by {who}",
                m.app, m.app_id
            ),
        };
        Err(GatewayError::new(ErrorKind::Forbidden, msg))
    }

    fn approvers_of(&self, tenant_id: &str) -> String {
        let names = |k: &str| self.approvers.get(k).map(|v| v.join(", "));
        match (names(tenant_id), names("")) {
            (Some(t), Some(a)) => format!("a tenant admin of this tenant ({t}) or an admin ({a})"),
            (Some(t), None) => format!("a tenant admin of this tenant ({t})"),
            (None, Some(a)) => format!("an admin ({a})"),
            (None, None) => "an admin".to_owned(),
        }
    }
}

/// The policy levels above a key: global, tenant, app. The tenant scope
/// is keyed by name, so static keys of the same tenant share its counters.
struct Levels<'a> {
    tenant_name: &'a str,
    tenant_tier: Option<&'a str>,
    tenant_id: &'a str,
    app_id: &'a str,
    app_name: &'a str,
    refs: Vec<(Scope, Option<PolicyRef>)>,
    denied: Option<String>,
}

impl<'a> Levels<'a> {
    fn of(cfg: &RawConfig, t: &'a sluice_store::Tenant, a: &'a sluice_store::App) -> Levels<'a> {
        let mut denied = None;
        let tenant_ref = match t.source {
            // Config-seeded tenants keep their policy in the config file.
            sluice_store::Source::Config => match cfg.tenants.get(&t.name) {
                Some(c) => c.policy.clone(),
                None => {
                    denied = Some(format!(
                        "tenant `{}` came from the config file and is no longer in it",
                        t.name
                    ));
                    None
                }
            },
            sluice_store::Source::Store => {
                parse(cfg, t.policy.as_ref(), "tenant", &t.name, &mut denied)
            }
        };
        let app_ref = parse(cfg, a.policy.as_ref(), "app", &a.name, &mut denied);
        Levels {
            tenant_name: &t.name,
            tenant_tier: t.tier.as_deref(),
            tenant_id: &t.id,
            app_id: &a.id,
            app_name: &a.name,
            refs: vec![
                (Scope::global(), cfg.global_policy.clone()),
                (Scope::tenant(&t.name), tenant_ref),
                (Scope::app(&a.id, &a.name), app_ref),
            ],
            denied,
        }
    }

    /// The identity of a key of this app (or of the app itself).
    fn identity(
        &self,
        cfg: &RawConfig,
        key: Option<&sluice_store::ApiKey>,
        key_policy: Option<&serde_json::Value>,
        scopes: Option<&sluice_store::Scopes>,
        name: &str,
    ) -> KeyInfo {
        let mut denied = self.denied.clone();
        let key_ref = parse(cfg, key_policy, "key", name, &mut denied);
        let mut levels: Vec<Level<'_>> = self
            .refs
            .iter()
            .map(|(scope, r)| (scope.clone(), r.as_ref()))
            .collect();
        if let Some(k) = key {
            levels.push((Scope::key(&k.id, name), key_ref.as_ref()));
        }
        let bucket = rollout_bucket(key.map_or(self.app_id, |k| k.id.as_str()));
        let c = combine_levels(cfg, &levels, Some(bucket));
        let allowed = intersect(c.models, scopes.and_then(|s| s.models.clone()));
        KeyInfo {
            name: name.into(),
            tenant: Some(self.tenant_name.into()),
            tier: self.tenant_tier.map(Into::into),
            app: Some(self.app_name.into()),
            sticky: crate::routing::routes::stable_hash(key.map_or(self.app_id, |k| k.id.as_str())),
            models: allowed.map(|v| v.iter().map(|s| s.as_str().into()).collect()),
            limits: c.limits,
            rates: c.rates,
            queues: c.queues,
            priority: c.priority,
            budgets: c.budgets,
            log_bodies: c.log_bodies,
            flows: Flows {
                tenant: Flows::hash(self.tenant_name),
                app: Flows::hash(self.app_id),
                key: Flows::hash(key.map_or(self.app_id, |k| k.id.as_str())),
                user: 0,
            },
            rollout_bucket: bucket,
            managed: Some(Managed {
                key_id: key.map(|k| k.id.as_str().into()),
                app_id: self.app_id.into(),
                app: self.app_name.into(),
                tenant_id: self.tenant_id.into(),
                expires_at: key.and_then(|k| k.expires_at),
                apis: scopes
                    .and_then(|s| s.apis.as_ref())
                    .map(|v| v.iter().map(|s| s.as_str().into()).collect()),
                denied: denied.map(Into::into),
            }),
        }
    }
}

/// A stored policy checked against the config; a failure denies the identity.
fn parse(
    cfg: &RawConfig,
    v: Option<&serde_json::Value>,
    what: &str,
    name: &str,
    denied: &mut Option<String>,
) -> Option<PolicyRef> {
    let v = v.filter(|v| !v.is_null())?;
    match crate::config::validate::policy_value(cfg, v) {
        Ok(r) => Some(r),
        Err(e) => {
            denied.get_or_insert_with(|| format!("the policy of {what} `{name}` no longer matches the config ({e}); an administrator must fix it"));
            None
        }
    }
}

fn decode_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).ok()?;
    Some(out)
}
