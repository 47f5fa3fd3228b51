//! Opening the store named by `store:` and seeding the config's tenants.

/// Connects the store named by `store:` (a relative SQLite path is relative
/// to the config file's directory), runs its migrations and seeds the
/// config's `tenants:` into it.
pub async fn open_store(
    url: &str,
    config_path: Option<&std::path::Path>,
    cfg: &crate::config::RawConfig,
) -> anyhow::Result<sluice_store::Store> {
    let url = resolve_store_url(url, config_path);
    let store = sluice_store::Store::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("opening the store `{}`: {e}", redact_url(&url)))?;
    seed_tenants(&store, cfg).await?;
    Ok(store)
}

/// Upserts the config's tenants (name and tier; their policies stay in the
/// config and are resolved from it).
pub async fn seed_tenants(
    store: &sluice_store::Store,
    cfg: &crate::config::RawConfig,
) -> anyhow::Result<()> {
    for (name, t) in &cfg.tenants {
        store
            .seed_tenant(sluice_store::NewTenant {
                name: name.clone(),
                tier: t.tier.clone(),
                policy: None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("seeding tenant `{name}` into the store: {e}"))?;
    }
    Ok(())
}

/// `sqlite://rel.db` → `sqlite://<config dir>/rel.db`; other URLs unchanged.
pub fn resolve_store_url(url: &str, config_path: Option<&std::path::Path>) -> String {
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    let (file, query) = path
        .split_once('?')
        .map_or((path, None), |(f, q)| (f, Some(q)));
    let p = std::path::Path::new(file);
    let dir = config_path.and_then(|c| c.parent());
    let full = match dir {
        Some(d) if p.is_relative() && !d.as_os_str().is_empty() => d.join(p),
        _ => p.to_path_buf(),
    };
    match query {
        Some(q) => format!("sqlite://{}?{q}", full.display()),
        None => format!("sqlite://{}", full.display()),
    }
}

/// A URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
