//! JWT bearer authentication for the public API: the alternative to sluice
//! API keys for callers that hold a token from an identity provider.
//!
//! [`JwtVerifier::load`] reads the provider's JWKS (a file, or an `http(s)`
//! URL) when the config is loaded; [`JwtVerifier::verify`] is the per-request
//! hot path: synchronous, no I/O, a handful of small allocations.
//!
//! Security rules, all enforced here rather than left to the caller:
//! - only asymmetric algorithms are accepted (RS256/384/512, PS256,
//!   ES256/384) — never `none` or HMAC, whatever the token header says;
//! - a key verifies only the algorithms of its own type and curve (and its
//!   JWK `alg`, if given), so an RSA public key can never act as an HMAC
//!   secret and an EC kid cannot be used for an RSA token (no algorithm
//!   confusion);
//! - key-locating headers in the token (`jku`, `jwk`, `x5u`) are ignored —
//!   keys only come from the configured JWKS — and a `crit` header is refused;
//! - the signature is checked before any claim: then `exp` (required), `nbf`,
//!   `iss`, `aud`, and finally the configured tenant/app/user claims are
//!   mapped into a [`JwtIdentity`].
//!
//! Key rotation: [`JwtVerifier::spawn_refresher`] re-fetches the JWKS every
//! `refresh`; a token with an unknown `kid` makes [`JwtVerifier::wants_refresh`]
//! true (at most once per 30s) so the caller can run an early
//! [`JwtVerifier::refresh`] ([`JwtVerifier::verify_refreshing`] does both). A
//! failed fetch keeps the previous key set.
//!
//! Module map: `token` (base64url, header and claim parsing), `jwks` (fetching
//! and parsing key sets), `tests`.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Dur;

mod jwks;
mod token;

#[cfg(test)]
mod tests;

use jwks::{Family, Key, KeySet, Source};
use token::{Claims, Val};

/// Default for [`JwtConfig::refresh`].
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Default for [`JwtConfig::leeway`].
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Least time between two fetches triggered by unknown `kid`s.
const EARLY_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// Longest token `verify` looks at.
const MAX_TOKEN_LEN: usize = 32 * 1024;

/// `jwt:` in the config: accept bearer JWTs signed by an identity provider.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// JWKS source: a file path (relative paths resolve against the config
    /// file's directory) or an `https://` / `http://` URL.
    pub jwks: String,
    /// Required `iss`, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values, if set (one must match; a token without `aud`
    /// is refused). When unset, `aud` is not checked.
    #[serde(default)]
    pub audience: Option<Vec<String>>,
    /// Accepted algorithms; default [RS256, ES256]. Only RS256, RS384, RS512,
    /// PS256, ES256 and ES384 are allowed — never `none` or HS*.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Claim names mapped to the caller: defaults tenant → `tenant`,
    /// app → `app`, user → `sub`.
    #[serde(default)]
    pub claims: ClaimNames,
    /// How often the JWKS is re-fetched (URL) or re-read (file); default 5m.
    /// A token with an unknown `kid` triggers an early refresh at most every
    /// 30s.
    #[serde(default)]
    pub refresh: Option<Dur>,
    /// Clock skew tolerated on `exp` and `nbf`; default 30s.
    #[serde(default)]
    pub leeway: Option<Dur>,
}

/// Which token claims carry the caller's identity. Values may be strings or
/// numbers (stringified).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    /// Claim naming the tenant. Default `tenant`.
    #[serde(default = "default_tenant_claim")]
    pub tenant: String,
    /// Claim naming the app. Default `app`.
    #[serde(default = "default_app_claim")]
    pub app: String,
    /// Claim naming the end user. Default `sub`.
    #[serde(default = "default_user_claim")]
    pub user: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            tenant: default_tenant_claim(),
            app: default_app_claim(),
            user: default_user_claim(),
        }
    }
}

fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_app_claim() -> String {
    "app".into()
}
fn default_user_claim() -> String {
    "sub".into()
}

impl JwtConfig {
    /// Problems found without any I/O, as `(field, message)` pairs (field
    /// relative to `jwt:`, e.g. `algorithms`). [`JwtVerifier::load`] refuses
    /// a config with any; config validation can report them with locations.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.jwks.trim().is_empty() {
            out.push(("jwks", "give a JWKS file path or an https:// URL".into()));
        } else if let Err(e) = Source::check_syntax(&self.jwks) {
            out.push(("jwks", e));
        }
        if self.issuer.as_deref().is_some_and(str::is_empty) {
            out.push(("issuer", "must not be empty; omit it to accept any".into()));
        }
        if let Some(aud) = &self.audience {
            if aud.is_empty() {
                out.push((
                    "audience",
                    "list at least one audience, or omit the key to skip the check".into(),
                ));
            } else if aud.iter().any(String::is_empty) {
                out.push(("audience", "audiences must not be empty".into()));
            }
        }
        if let Err(e) = self.algorithm_set() {
            out.push(("algorithms", e));
        }
        for (field, name) in [
            ("claims.tenant", &self.claims.tenant),
            ("claims.app", &self.claims.app),
            ("claims.user", &self.claims.user),
        ] {
            if name.is_empty() {
                out.push((field, "claim name must not be empty".into()));
            }
        }
        if self.refresh.is_some_and(|d| d.0 < Duration::from_secs(1)) {
            out.push(("refresh", "must be at least 1s".into()));
        }
        out
    }

    fn algorithm_set(&self) -> Result<AlgSet, String> {
        let Some(names) = &self.algorithms else {
            return Ok(AlgSet::EMPTY.with(Alg::RS256).with(Alg::ES256));
        };
        if names.is_empty() {
            return Err(format!(
                "list at least one of {}, or omit the key for RS256 and ES256",
                AlgSet::ALL
            ));
        }
        let mut set = AlgSet::EMPTY;
        for name in names {
            match Alg::parse(name) {
                Some(alg) => set = set.with(alg),
                None => {
                    return Err(format!(
                        "`{name}` is not allowed; use {} (never `none` or HS*)",
                        AlgSet::ALL
                    ))
                }
            }
        }
        Ok(set)
    }
}

/// Who a verified token speaks for. Missing (or empty, or null) mapped claims
/// are `None`; the integration decides which are required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The tenant claim (default `tenant`).
    pub tenant: Option<String>,
    /// The app claim (default `app`).
    pub app: Option<String>,
    /// The user claim (default `sub`).
    pub user: Option<String>,
    /// The standard `sub` claim, whatever `claims.user` says.
    pub subject: Option<String>,
    /// `exp`, in Unix seconds.
    pub expires_at: i64,
}

/// Why a token was refused. `Display` gives a client-safe message: it never
/// contains the token, key material or claim values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url segments, header or payload not a JSON object, a
    /// duplicated claim, an unsupported `crit` header, or an oversized token.
    Malformed,
    /// No key in the JWKS has the token's `kid` (or, without a `kid`, there is
    /// not exactly one key of the token's type).
    UnknownKey,
    /// The key named by `kid` is of another type than the token's algorithm
    /// (e.g. an ES256 token naming an RSA key).
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The header's `alg` is not accepted (a sanitized copy of it; `?` when
    /// it is not a short alphanumeric name).
    AlgorithmNotAllowed(String),
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// No `aud` value is a configured audience.
    WrongAudience,
    /// A required claim is absent: `exp`, or `iss`/`aud` when configured.
    MissingClaim(&'static str),
    /// A claim has the wrong type: `exp`/`nbf` not a number, or a mapped
    /// claim (named by role: `tenant`, `app`, `user`, `sub`) not a string or
    /// number.
    BadClaim(&'static str),
}

impl JwtError {
    /// A stable short code for logs and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::UnknownKey => "unknown_key",
            JwtError::KeyMismatch => "key_mismatch",
            JwtError::BadSignature => "bad_signature",
            JwtError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::BadClaim(_) => "bad_claim",
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed => f.write_str("malformed token"),
            JwtError::UnknownKey => f.write_str("token is signed by an unknown key"),
            JwtError::KeyMismatch => f.write_str("token algorithm does not match its key"),
            JwtError::BadSignature => f.write_str("invalid token signature"),
            JwtError::AlgorithmNotAllowed(alg) => {
                write!(f, "token algorithm `{alg}` is not accepted")
            }
            JwtError::Expired => f.write_str("token has expired"),
            JwtError::NotYetValid => f.write_str("token is not valid yet"),
            JwtError::WrongIssuer => f.write_str("token issuer is not accepted"),
            JwtError::WrongAudience => f.write_str("token audience is not accepted"),
            JwtError::MissingClaim(c) => write!(f, "token lacks the `{c}` claim"),
            JwtError::BadClaim(c) => write!(f, "token's `{c}` claim has an invalid value"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Cheap check telling JWTs from sluice API keys (`sk-sluice-…`): three
/// base64url segments (the signature may be empty), the first starting with
/// `eyJ` (base64 of `{"`). Nothing is decoded or verified.
pub fn looks_like_jwt(token: &str) -> bool {
    let Some(parts) = token::split(token) else {
        return false;
    };
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    parts.header.starts_with("eyJ")
        && b64url(parts.header)
        && b64url(parts.payload)
        && b64url(parts.signature)
}

/// The algorithms sluice accepts at all. HMAC and `none` are deliberately
/// absent: they cannot be named in the config nor chosen by a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    ES256,
    ES384,
}

impl Alg {
    const ALL: [Alg; 6] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::ES256,
        Alg::ES384,
    ];

    fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
        }
    }

    fn family(self) -> Family {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 => Family::Rsa,
            Alg::ES256 | Alg::ES384 => Family::Ec,
        }
    }

    fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::RS256 => jsonwebtoken::Algorithm::RS256,
            Alg::RS384 => jsonwebtoken::Algorithm::RS384,
            Alg::RS512 => jsonwebtoken::Algorithm::RS512,
            Alg::PS256 => jsonwebtoken::Algorithm::PS256,
            Alg::ES256 => jsonwebtoken::Algorithm::ES256,
            Alg::ES384 => jsonwebtoken::Algorithm::ES384,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Alg`]s as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AlgSet(u8);

impl AlgSet {
    const EMPTY: AlgSet = AlgSet(0);
    const ALL: AlgSet = AlgSet(0b11_1111);

    fn with(self, alg: Alg) -> AlgSet {
        AlgSet(self.0 | alg.bit())
    }
    fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }
    fn and(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn of_family(family: Family) -> AlgSet {
        Alg::ALL
            .into_iter()
            .filter(|a| a.family() == family)
            .fold(AlgSet::EMPTY, AlgSet::with)
    }
}

impl fmt::Display for AlgSet {
    /// `RS256, ES256`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for alg in Alg::ALL.into_iter().filter(|a| self.contains(*a)) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(alg.name())?;
            first = false;
        }
        Ok(())
    }
}

/// What `verify` checks besides the signature; fixed at load.
#[derive(Debug)]
struct Policy {
    algs: AlgSet,
    issuer: Option<String>,
    audience: Option<Vec<String>>,
    claims: ClaimNames,
    leeway_secs: i64,
}

/// Verifies bearer JWTs against a JWKS. Cheap to share behind an `Arc`; the
/// key set is swapped atomically on refresh.
pub struct JwtVerifier {
    source: Source,
    policy: Policy,
    keys: ArcSwap<KeySet>,
    /// Built once for URL sources.
    client: Option<reqwest::Client>,
    refresh_every: Duration,
    early_refresh_every: Duration,
    /// Time base for `last_fetch_ms`.
    epoch: Instant,
    /// When the last fetch (load, refresh, or granted early refresh) began,
    /// in ms since `epoch`.
    last_fetch_ms: AtomicU64,
    /// A token named a `kid` the current set lacks.
    unknown_kid: AtomicBool,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source.label())
            .field("keys", &self.keys.load().len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Loads the JWKS (file read or URL fetch); called at config load and
    /// reload. Errors name the source and the problem, never key material.
    pub async fn load(cfg: &JwtConfig, base_dir: &Path) -> Result<JwtVerifier, String> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .into_iter()
                .map(|(field, msg)| format!("jwt.{field}: {msg}"))
                .collect();
            return Err(list.join("; "));
        }
        let algs = cfg.algorithm_set()?;
        let source = Source::parse(&cfg.jwks, base_dir)?;
        let client = match &source {
            Source::Url { url, label } => {
                if url.scheme() == "http" {
                    tracing::warn!(source = %label, "JWKS fetched over plain http; anyone on the path can swap the keys, use https");
                }
                Some(jwks::http_client()?)
            }
            Source::File(_) => None,
        };
        let keys = jwks::load(&source, client.as_ref(), algs).await?;
        Ok(JwtVerifier {
            source,
            policy: Policy {
                algs,
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                claims: cfg.claims.clone(),
                leeway_secs: secs_i64(cfg.leeway.map_or(DEFAULT_LEEWAY, |d| d.0)),
            },
            keys: ArcSwap::from_pointee(keys),
            client,
            refresh_every: cfg.refresh.map_or(DEFAULT_REFRESH, |d| d.0),
            early_refresh_every: EARLY_REFRESH_EVERY,
            epoch: Instant::now(),
            last_fetch_ms: AtomicU64::new(0),
            unknown_kid: AtomicBool::new(false),
        })
    }

    /// The hot path: synchronous, no I/O. Checks, in order: token shape,
    /// `alg` accepted, key (by `kid`; without one, the single key of the
    /// token's type) and its type matching `alg`, signature, `exp` (required),
    /// `nbf`, `iss`, `aud`; then maps the identity claims.
    pub fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let parts = token::split(token).ok_or(JwtError::Malformed)?;

        let mut header_buf = Vec::new();
        let header = token::parse_header(parts.header, &mut header_buf)?;
        let alg = Alg::parse(&header.alg)
            .filter(|a| self.policy.algs.contains(*a))
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(token::sanitize_alg(&header.alg)))?;

        // Structural payload errors are cheap to find; do it before the
        // signature. Claim *values* are only trusted after it.
        let mut payload_buf = Vec::new();
        let claims = token::parse_claims(parts.payload, &mut payload_buf, &self.policy.claims)?;

        let keys = self.keys.load();
        let key = self.pick_key(&keys, header.kid.as_deref(), alg)?;
        match jsonwebtoken::crypto::verify(
            parts.signature,
            parts.message.as_bytes(),
            &key.key,
            alg.to_jsonwebtoken(),
        ) {
            Ok(true) => {}
            Ok(false) => return Err(JwtError::BadSignature),
            Err(_) => return Err(JwtError::Malformed),
        }

        self.check_claims(claims, unix_now())
    }

    /// [`verify`](Self::verify), and when it fails for an unknown `kid` and
    /// an early refresh is due ([`wants_refresh`](Self::wants_refresh)),
    /// refresh the JWKS and verify once more. Only this path waits on I/O.
    pub async fn verify_refreshing(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        match self.verify(token) {
            Err(JwtError::UnknownKey) if self.wants_refresh() => {
                if let Err(error) = self.refresh_now().await {
                    tracing::warn!(%error, "JWKS refresh for an unknown kid failed; keeping the current keys");
                }
                self.verify(token)
            }
            other => other,
        }
    }

    /// Re-reads the file or re-fetches the URL. On failure the current key
    /// set stays in use and the error (naming the source) is returned.
    pub async fn refresh(&self) -> Result<(), String> {
        self.last_fetch_ms.store(self.now_ms(), Ordering::Release);
        self.refresh_now().await
    }

    async fn refresh_now(&self) -> Result<(), String> {
        self.unknown_kid.store(false, Ordering::Relaxed);
        let keys = jwks::load(&self.source, self.client.as_ref(), self.policy.algs).await?;
        tracing::debug!(source = %self.source.label(), keys = keys.len(), "JWKS refreshed");
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// True when a `verify` failed for an unknown `kid` since the last fetch
    /// and no fetch began in the last 30s. Answers true to one caller at a
    /// time (it claims the slot): that caller should then run
    /// [`refresh`](Self::refresh).
    pub fn wants_refresh(&self) -> bool {
        if !self.unknown_kid.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.now_ms();
        let last = self.last_fetch_ms.load(Ordering::Acquire);
        let min_gap = u64::try_from(self.early_refresh_every.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < min_gap {
            return false;
        }
        self.last_fetch_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Spawns a task re-fetching the JWKS every `refresh` (failures are logged
    /// and keep the current keys). It ends when aborted through the returned
    /// handle or once the last `Arc` of this verifier is dropped (dropping a
    /// tokio `JoinHandle` alone does not stop a task).
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.refresh_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(verifier) = weak.upgrade() else {
                    break;
                };
                if let Err(error) = verifier.refresh().await {
                    tracing::warn!(%error, "JWKS refresh failed; keeping the current keys");
                }
            }
        })
    }

    /// Number of usable keys in the current set.
    pub fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn pick_key<'k>(
        &self,
        keys: &'k KeySet,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<&'k Key, JwtError> {
        match kid {
            Some(kid) => {
                // Several keys may share a kid (e.g. one RSA, one EC).
                let mut named = keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    self.unknown_kid.store(true, Ordering::Relaxed);
                    return Err(JwtError::UnknownKey);
                }
                named
                    .find(|k| k.algs.contains(alg))
                    .ok_or(JwtError::KeyMismatch)
            }
            None => {
                let mut same_type = keys.iter().filter(|k| k.family == alg.family());
                match (same_type.next(), same_type.next()) {
                    (Some(only), None) if only.algs.contains(alg) => Ok(only),
                    (Some(_), None) => Err(JwtError::KeyMismatch),
                    _ => Err(JwtError::UnknownKey),
                }
            }
        }
    }

    fn check_claims(&self, claims: Claims<'_>, now: i64) -> Result<JwtIdentity, JwtError> {
        let p = &self.policy;
        let exp = match claims.exp {
            None | Some(Val::Null) => return Err(JwtError::MissingClaim("exp")),
            Some(v) => v.numeric_date().ok_or(JwtError::BadClaim("exp"))?,
        };
        if now >= exp.saturating_add(p.leeway_secs) {
            return Err(JwtError::Expired);
        }
        match claims.nbf {
            None | Some(Val::Null) => {}
            Some(v) => {
                let nbf = v.numeric_date().ok_or(JwtError::BadClaim("nbf"))?;
                if nbf > now.saturating_add(p.leeway_secs) {
                    return Err(JwtError::NotYetValid);
                }
            }
        }
        if let Some(issuer) = &p.issuer {
            match &claims.iss {
                None | Some(Val::Null) => return Err(JwtError::MissingClaim("iss")),
                Some(Val::Str(iss)) if iss == issuer => {}
                Some(_) => return Err(JwtError::WrongIssuer),
            }
        }
        if let Some(accepted) = &p.audience {
            let ok = |s: &str| accepted.iter().any(|a| a == s);
            match &claims.aud {
                None | Some(Val::Null) => return Err(JwtError::MissingClaim("aud")),
                Some(Val::Str(aud)) if ok(aud) => {}
                Some(Val::List(list))
                    if list.iter().any(|v| matches!(v, Val::Str(aud) if ok(aud))) => {}
                Some(_) => return Err(JwtError::WrongAudience),
            }
        }
        Ok(JwtIdentity {
            tenant: token::identity_claim(claims.tenant, "tenant")?,
            app: token::identity_claim(claims.app, "app")?,
            user: token::identity_claim(claims.user, "user")?,
            subject: token::identity_claim(claims.sub, "sub")?,
            expires_at: exp,
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, secs_i64)
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
