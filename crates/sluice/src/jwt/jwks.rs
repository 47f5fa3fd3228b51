//! JWKS sources and parsing: read a file or fetch a URL, keep the keys that
//! can verify one of the accepted algorithms, and skip (with a warning) the
//! rest. A set with no usable key is an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::token::b64url_decode;
use super::{Alg, AlgSet};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// RSA sizes ring verifies (RSA_PKCS1_2048_8192_*, RSA_PSS_2048_8192_*).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Where the JWKS comes from.
#[derive(Debug)]
pub(super) enum Source {
    File(PathBuf),
    /// `label` is the URL without credentials or query, for messages.
    Url {
        url: reqwest::Url,
        label: String,
    },
}

impl Source {
    /// Syntax only, no I/O: a URL must parse; other schemes are refused.
    pub fn check_syntax(jwks: &str) -> Result<(), String> {
        Source::parse(jwks, Path::new(".")).map(|_| ())
    }

    pub fn parse(jwks: &str, base_dir: &Path) -> Result<Source, String> {
        let jwks = jwks.trim();
        let lower = jwks.get(..8).unwrap_or(jwks).to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            let url = reqwest::Url::parse(jwks).map_err(|e| format!("invalid JWKS URL: {e}"))?;
            let mut shown = url.clone();
            // Setting these only fails for URLs without a host, which
            // http(s) URLs always have.
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            shown.set_fragment(None);
            return Ok(Source::Url {
                url,
                label: shown.to_string(),
            });
        }
        if let Some((scheme, _)) = jwks.split_once("://") {
            return Err(format!(
                "unsupported JWKS scheme `{scheme}://`; use a file path, https:// or http://"
            ));
        }
        let path = Path::new(jwks);
        Ok(Source::File(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }))
    }

    /// The source as shown in messages (never with URL credentials).
    pub fn label(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Url { label, .. } => label.clone(),
        }
    }
}

/// The client for URL sources: bounded in time, follows redirects.
pub(super) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot create the HTTP client for JWKS: {}", chain(&e)))
}

/// Key type, which decides the algorithms a key can ever verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Rsa,
    Ec,
}

/// One usable verification key.
pub(super) struct Key {
    pub kid: Option<String>,
    pub family: Family,
    /// Accepted algorithms this key may verify (never empty).
    pub algs: AlgSet,
    pub key: DecodingKey,
}

/// The usable keys of one JWKS document.
pub(super) struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub fn iter(&self) -> std::slice::Iter<'_, Key> {
        self.keys.iter()
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Reads or fetches the source and parses it.
pub(super) async fn load(
    source: &Source,
    client: Option<&reqwest::Client>,
    accepted: AlgSet,
) -> Result<KeySet, String> {
    let label = source.label();
    let bytes = match source {
        Source::File(path) => read_file(path).await,
        Source::Url { url, .. } => match client {
            Some(client) => fetch(client, url).await,
            None => Err("no HTTP client".to_owned()),
        },
    }
    .map_err(|e| format!("JWKS {label}: {e}"))?;
    parse(&bytes, accepted, &label)
}

async fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(bytes)
}

async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("fetch failed: {}", chain(&e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("fetch failed: HTTP {}", status.as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("response larger than {MAX_JWKS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the response failed: {}", chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("response larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let _ = write!(out, ": {cause}");
        next = cause.source();
    }
    out
}

/// The JWK members sluice reads. Private members (`d`, `p`, …) are never
/// read; their presence only earns a warning.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
}

/// Parses a JWKS document (`{"keys": [...]}`, or a single JWK object).
pub(super) fn parse(bytes: &[u8], accepted: AlgSet, label: &str) -> Result<KeySet, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("JWKS {label}: not valid JSON: {e}"))?;
    let entries = match doc {
        serde_json::Value::Object(mut obj) => match obj.remove("keys") {
            Some(serde_json::Value::Array(keys)) => keys,
            Some(_) => return Err(format!("JWKS {label}: `keys` must be an array")),
            None if obj.contains_key("kty") => vec![serde_json::Value::Object(obj)],
            None => return Err(format!("JWKS {label}: expected an object with `keys`")),
        },
        _ => return Err(format!("JWKS {label}: expected an object with `keys`")),
    };

    let mut keys = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let jwk: RawJwk = match serde_json::from_value(entry) {
            Ok(jwk) => jwk,
            Err(e) => {
                let why = format!("not a JWK object: {e}");
                tracing::warn!(source = %label, index = i, reason = %why, "JWKS key skipped");
                skipped.push(format!("#{i}: {why}"));
                continue;
            }
        };
        let name = match &jwk.kid {
            Some(kid) => format!("#{i} (kid `{}`)", shorten(kid)),
            None => format!("#{i}"),
        };
        if jwk.d.is_some() {
            tracing::warn!(source = %label, key = %name, "JWKS contains private key material; publish only public keys");
        }
        match build_key(jwk, accepted) {
            Ok(key) => keys.push(key),
            Err(why) => {
                tracing::warn!(source = %label, key = %name, reason = %why, "JWKS key skipped");
                skipped.push(format!("{name}: {why}"));
            }
        }
    }
    if keys.is_empty() {
        let mut msg = format!("JWKS {label}: no usable key");
        if !skipped.is_empty() {
            let _ = write!(msg, " ({})", skipped.join("; "));
        }
        return Err(msg);
    }
    Ok(KeySet { keys })
}

/// Cuts a JWKS-provided string for messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(64).collect();
        out.push('…');
        out
    }
}

/// Decodes a required base64url member.
fn member(value: Option<&str>, name: &str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing `{name}`"))?;
    let mut out = Vec::new();
    b64url_decode(value, &mut out).ok_or_else(|| format!("`{name}` is not base64url"))?;
    Ok(out)
}

fn build_key(jwk: RawJwk, accepted: AlgSet) -> Result<Key, String> {
    if let Some(usage) = jwk.use_.as_deref().filter(|u| *u != "sig") {
        return Err(format!("`use` is `{}`, not `sig`", shorten(usage)));
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("`key_ops` lacks `verify`".into());
    }
    let (family, algs, key) = match jwk.kty.as_deref() {
        Some("RSA") => {
            let n = member(jwk.n.as_deref(), "n")?;
            let e = member(jwk.e.as_deref(), "e")?;
            let n = strip_zeros(&n);
            let bits = n
                .first()
                .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(format!(
                    "RSA key of {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} supported"
                ));
            }
            let e = strip_zeros(&e);
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent out of range".into());
            }
            (
                Family::Rsa,
                AlgSet::of_family(Family::Rsa),
                DecodingKey::from_rsa_raw_components(n, e),
            )
        }
        Some("EC") => {
            let (alg, len) = match jwk.crv.as_deref() {
                Some("P-256") => (Alg::ES256, 32),
                Some("P-384") => (Alg::ES384, 48),
                Some(crv) => return Err(format!("unsupported curve `{}`", shorten(crv))),
                None => return Err("missing `crv`".into()),
            };
            let x = member(jwk.x.as_deref(), "x")?;
            let y = member(jwk.y.as_deref(), "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!("`x`/`y` must be {len} bytes for this curve"));
            }
            // Uncompressed SEC1 point, the form ring verifies with.
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                Family::Ec,
                AlgSet::EMPTY.with(alg),
                DecodingKey::from_ec_der(&point),
            )
        }
        Some(kty) => return Err(format!("unsupported key type `{}`", shorten(kty))),
        None => return Err("missing `kty`".into()),
    };
    let algs = match jwk.alg.as_deref() {
        None => algs,
        Some(name) => match Alg::parse(name) {
            Some(alg) if algs.contains(alg) => AlgSet::EMPTY.with(alg),
            Some(_) => return Err(format!("`alg` `{name}` does not fit the key type or curve")),
            None => return Err(format!("unsupported `alg` `{}`", shorten(name))),
        },
    };
    let usable = algs.and(accepted);
    if usable.is_empty() {
        return Err(format!(
            "its algorithms ({algs}) are not among the accepted ({accepted})"
        ));
    }
    Ok(Key {
        kid: jwk.kid,
        family,
        algs: usable,
        key,
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}
