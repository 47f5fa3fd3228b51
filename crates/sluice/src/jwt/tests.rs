//! Tests with real keys generated at test time: RSA by the `openssl` CLI, EC
//! P-256 by ring. No private key is checked in.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

// ---- keys and tokens ----------------------------------------------------

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-jwt-{tag}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        unix_now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

struct Rsa {
    pem: Vec<u8>,
    public_pem: Vec<u8>,
    n: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// RSA 2048 key `i` (0..3), generated once per test run.
fn rsa(i: usize) -> &'static Rsa {
    static KEYS: [OnceLock<Rsa>; 3] = [const { OnceLock::new() }; 3];
    KEYS[i].get_or_init(|| {
        let dir = temp_dir("rsa");
        let file = dir.join("key.pem");
        let path = file.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path,
        ]);
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", path, "-noout", "-modulus"])).unwrap();
        let hex_n = modulus.trim().strip_prefix("Modulus=").unwrap();
        let key = Rsa {
            pem: std::fs::read(&file).unwrap(),
            public_pem: openssl(&["rsa", "-in", path, "-pubout"]),
            n: b64(&hex::decode(hex_n).unwrap()),
        };
        std::fs::remove_dir_all(&dir).unwrap();
        key
    })
}

struct Ec {
    pkcs8: Vec<u8>,
    x: String,
    y: String,
}

fn ec(i: usize) -> &'static Ec {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    static KEYS: [OnceLock<Ec>; 2] = [const { OnceLock::new() }; 2];
    KEYS[i].get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        assert_eq!((public.len(), public[0]), (65, 0x04));
        Ec {
            pkcs8: pkcs8.as_ref().to_vec(),
            x: b64(&public[1..33]),
            y: b64(&public[33..]),
        }
    })
}

fn rsa_jwk(k: &Rsa, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": k.n, "e": "AQAB"})
}

fn ec_jwk(k: &Ec, kid: &str) -> Value {
    json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": k.x, "y": k.y})
}

fn header(alg: Algorithm, kid: Option<&str>) -> Header {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    h
}

fn sign_rsa(k: &Rsa, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&k.pem).unwrap();
    encode(&header(alg, kid), claims, &key).unwrap()
}

fn rs256(k: &Rsa, kid: &str, claims: &Value) -> String {
    sign_rsa(k, Algorithm::RS256, Some(kid), claims)
}

fn es256(k: &Ec, kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_der(&k.pkcs8);
    encode(&header(Algorithm::ES256, kid), claims, &key).unwrap()
}

/// A token from raw header and payload JSON with the given signature text.
fn raw_token(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}

fn now() -> i64 {
    unix_now()
}

fn claims() -> Value {
    json!({
        "sub": "user-1",
        "tenant": "acme",
        "app": "chat",
        "iss": "https://idp.example",
        "aud": "sluice",
        "iat": now(),
        "exp": now() + 600,
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// Writes `jwks` next to a fake config file and loads it by relative path.
async fn verifier(jwks: Value, cfg: Value) -> JwtVerifier {
    try_verifier(jwks, cfg).await.unwrap()
}

async fn try_verifier(jwks: Value, cfg: Value) -> Result<JwtVerifier, String> {
    let dir = temp_dir("jwks");
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let cfg = with(json!({"jwks": "jwks.json"}), cfg);
    let cfg: JwtConfig = serde_json::from_value(cfg).unwrap();
    JwtVerifier::load(&cfg, &dir).await
}

fn both_keys() -> Value {
    json!({"keys": [rsa_jwk(rsa(0), "r1"), ec_jwk(ec(0), "e1")]})
}

// ---- valid tokens ----------------------------------------------------------

#[tokio::test]
async fn rs256_and_es256_tokens_map_the_identity() {
    let v = verifier(both_keys(), json!({})).await;
    assert_eq!(v.key_count(), 2);
    let exp = now() + 600;
    let c = with(claims(), json!({"exp": exp}));
    let want = JwtIdentity {
        tenant: Some("acme".into()),
        app: Some("chat".into()),
        user: Some("user-1".into()),
        subject: Some("user-1".into()),
        expires_at: exp,
    };
    assert_eq!(v.verify(&rs256(rsa(0), "r1", &c)).unwrap(), want);
    assert_eq!(v.verify(&es256(ec(0), Some("e1"), &c)).unwrap(), want);
}

#[tokio::test]
async fn custom_claim_names_numbers_and_missing_claims() {
    let cfg = json!({"claims": {"tenant": "org_id", "app": "azp", "user": "email"}});
    let v = verifier(both_keys(), cfg).await;
    let c = with(
        claims(),
        json!({"org_id": 42, "azp": "client\u{e9}\"x", "email": "a@b.example", "exp": now() as f64 + 60.5}),
    );
    let id = v.verify(&es256(ec(0), Some("e1"), &c)).unwrap();
    assert_eq!(id.tenant.as_deref(), Some("42"));
    assert_eq!(id.app.as_deref(), Some("client\u{e9}\"x"));
    assert_eq!(id.user.as_deref(), Some("a@b.example"));
    assert_eq!(id.subject.as_deref(), Some("user-1"));

    // Missing, null and empty mapped claims are None; the token is still valid.
    let c = with(
        claims(),
        json!({"org_id": "", "azp": null, "email": null, "sub": null}),
    );
    let id = v.verify(&rs256(rsa(0), "r1", &c)).unwrap();
    assert_eq!(
        (id.tenant, id.app, id.user, id.subject),
        (None, None, None, None)
    );

    // A mapped claim that is neither string nor number is refused.
    let c = with(claims(), json!({"org_id": {"id": 1}}));
    assert_eq!(
        v.verify(&rs256(rsa(0), "r1", &c)),
        Err(JwtError::BadClaim("tenant"))
    );
    let c = with(claims(), json!({"email": true}));
    assert_eq!(
        v.verify(&rs256(rsa(0), "r1", &c)),
        Err(JwtError::BadClaim("user"))
    );
}

#[tokio::test]
async fn no_kid_uses_the_single_key_of_that_type() {
    let v = verifier(both_keys(), json!({})).await;
    let c = claims();
    assert!(v
        .verify(&sign_rsa(rsa(0), Algorithm::RS256, None, &c))
        .is_ok());
    assert!(v.verify(&es256(ec(0), None, &c)).is_ok());

    let two_rsa = json!({"keys": [rsa_jwk(rsa(0), "r1"), rsa_jwk(rsa(1), "r2")]});
    let v = verifier(two_rsa, json!({})).await;
    assert_eq!(
        v.verify(&sign_rsa(rsa(0), Algorithm::RS256, None, &c)),
        Err(JwtError::UnknownKey)
    );
    assert!(!v.unknown_kid.load(Ordering::Relaxed), "no kid, no refresh");
}

// ---- time claims -----------------------------------------------------------

#[tokio::test]
async fn expiry_and_leeway() {
    let v = verifier(both_keys(), json!({})).await;
    let token = |exp: Value| rs256(rsa(0), "r1", &with(claims(), json!({"exp": exp})));
    assert_eq!(v.verify(&token(json!(now() - 120))), Err(JwtError::Expired));
    assert!(v.verify(&token(json!(now() - 10))).is_ok(), "within 30s");
    assert_eq!(v.verify(&token(json!(-5))), Err(JwtError::Expired));

    let strict = verifier(both_keys(), json!({"leeway": "2s"})).await;
    assert_eq!(
        strict.verify(&token(json!(now() - 10))),
        Err(JwtError::Expired)
    );

    assert_eq!(
        v.verify(&rs256(rsa(0), "r1", &with(claims(), json!({"exp": null})))),
        Err(JwtError::MissingClaim("exp"))
    );
    assert_eq!(
        v.verify(&token(json!("tomorrow"))),
        Err(JwtError::BadClaim("exp"))
    );
}

#[tokio::test]
async fn not_before() {
    let v = verifier(both_keys(), json!({})).await;
    let token = |nbf: i64| rs256(rsa(0), "r1", &with(claims(), json!({"nbf": nbf})));
    assert_eq!(v.verify(&token(now() + 300)), Err(JwtError::NotYetValid));
    assert!(v.verify(&token(now() + 10)).is_ok(), "within leeway");
    assert!(v.verify(&token(now() - 10)).is_ok());
}

// ---- issuer and audience ---------------------------------------------------

#[tokio::test]
async fn issuer() {
    let v = verifier(both_keys(), json!({"issuer": "https://idp.example"})).await;
    let token = |iss: Value| rs256(rsa(0), "r1", &with(claims(), json!({"iss": iss})));
    assert!(v.verify(&token(json!("https://idp.example"))).is_ok());
    assert_eq!(
        v.verify(&token(json!("https://evil.example"))),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(
        v.verify(&token(json!(["https://idp.example"]))),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(
        v.verify(&token(Value::Null)),
        Err(JwtError::MissingClaim("iss"))
    );
}

#[tokio::test]
async fn audience() {
    let v = verifier(both_keys(), json!({"audience": ["sluice", "gateway"]})).await;
    let token = |aud: Value| rs256(rsa(0), "r1", &with(claims(), json!({"aud": aud})));
    assert!(v.verify(&token(json!("gateway"))).is_ok());
    assert!(v.verify(&token(json!(["other", "sluice"]))).is_ok());
    assert_eq!(
        v.verify(&token(json!("other"))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(
        v.verify(&token(json!(["other", 7]))),
        Err(JwtError::WrongAudience)
    );
    assert_eq!(v.verify(&token(json!([]))), Err(JwtError::WrongAudience));
    assert_eq!(
        v.verify(&token(Value::Null)),
        Err(JwtError::MissingClaim("aud"))
    );

    // Without `audience`, `aud` is not checked (unlike jsonwebtoken's
    // Validation, which refuses any token carrying `aud` then).
    let open = verifier(both_keys(), json!({})).await;
    assert!(open.verify(&token(json!("anything"))).is_ok());
    assert!(open.verify(&token(Value::Null)).is_ok());
}

// ---- signatures, keys and algorithms ---------------------------------------

#[tokio::test]
async fn tampered_payload_and_foreign_signatures_are_refused() {
    let v = verifier(both_keys(), json!({})).await;
    let token = rs256(rsa(0), "r1", &claims());
    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = with(claims(), json!({"tenant": "evil"}));
    let tampered = format!("{head}.{}.{sig}", b64(forged.to_string().as_bytes()));
    assert_eq!(v.verify(&tampered), Err(JwtError::BadSignature));

    // Signed by another RSA key, claiming r1's kid.
    let other = rs256(rsa(1), "r1", &claims());
    assert_eq!(v.verify(&other), Err(JwtError::BadSignature));
    // Signed by another EC key.
    let other = es256(ec(1), Some("e1"), &claims());
    assert_eq!(v.verify(&other), Err(JwtError::BadSignature));
    // No signature at all.
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        v.verify(&format!("{message}.")),
        Err(JwtError::BadSignature)
    );
}

/// Moves the verifier's clock base back, as if `by` had passed.
fn age(v: &mut JwtVerifier, by: Duration) {
    v.epoch = v.epoch.checked_sub(by).unwrap();
}

#[tokio::test]
async fn unknown_kid_and_rate_limited_refresh_wish() {
    let token = rs256(rsa(1), "r9", &claims());
    let mut v = verifier(both_keys(), json!({})).await;
    assert!(!v.wants_refresh());
    assert_eq!(v.verify(&token), Err(JwtError::UnknownKey));
    assert!(!v.wants_refresh(), "a fetch just happened (the load)");

    age(&mut v, Duration::from_secs(31));
    assert!(v.wants_refresh());
    assert!(!v.wants_refresh(), "granted once per 30s");
    age(&mut v, Duration::from_secs(31));
    v.refresh().await.unwrap();
    age(&mut v, Duration::from_secs(31));
    assert!(!v.wants_refresh(), "the refresh answered the unknown kid");
    assert_eq!(v.verify(&token), Err(JwtError::UnknownKey));
    assert!(v.wants_refresh());
}

#[tokio::test]
async fn alg_none_and_hmac_confusion_are_refused() {
    let v = verifier(both_keys(), json!({})).await;
    let none = raw_token(&json!({"alg": "none", "kid": "r1"}), &claims(), "");
    assert!(looks_like_jwt(&none));
    assert_eq!(
        v.verify(&none),
        Err(JwtError::AlgorithmNotAllowed("none".into()))
    );
    let none = raw_token(&json!({"alg": "None"}), &claims(), "");
    assert_eq!(
        v.verify(&none),
        Err(JwtError::AlgorithmNotAllowed("None".into()))
    );

    // The classic attack: HS256 keyed with the RSA public key.
    for secret in [&rsa(0).public_pem[..], rsa(0).n.as_bytes()] {
        let hs = encode(
            &header(Algorithm::HS256, Some("r1")),
            &claims(),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(
            v.verify(&hs),
            Err(JwtError::AlgorithmNotAllowed("HS256".into()))
        );
    }

    let weird = raw_token(&json!({"alg": "RS256\n<script>"}), &claims(), "x");
    assert_eq!(
        v.verify(&weird),
        Err(JwtError::AlgorithmNotAllowed("?".into()))
    );
}

#[tokio::test]
async fn a_key_never_verifies_another_types_algorithm() {
    let cfg = json!({"algorithms": ["RS256", "PS256", "ES256"]});
    let v = verifier(both_keys(), cfg).await;
    // ES256 token naming the RSA key, and the reverse.
    assert_eq!(
        v.verify(&es256(ec(0), Some("r1"), &claims())),
        Err(JwtError::KeyMismatch)
    );
    assert_eq!(
        v.verify(&rs256(rsa(0), "e1", &claims())),
        Err(JwtError::KeyMismatch)
    );
    // PS256 with the RSA key is fine when accepted...
    assert!(v
        .verify(&sign_rsa(rsa(0), Algorithm::PS256, Some("r1"), &claims()))
        .is_ok());
    // ...unless the JWK pins `alg`.
    let mut pinned = rsa_jwk(rsa(0), "r1");
    pinned["alg"] = json!("RS256");
    let v = verifier(json!({"keys": [pinned]}), cfg_ps()).await;
    assert_eq!(
        v.verify(&sign_rsa(rsa(0), Algorithm::PS256, Some("r1"), &claims())),
        Err(JwtError::KeyMismatch)
    );
}

fn cfg_ps() -> Value {
    json!({"algorithms": ["RS256", "PS256"]})
}

#[tokio::test]
async fn algorithms_outside_the_config_are_refused() {
    let v = verifier(both_keys(), json!({})).await;
    assert_eq!(
        v.verify(&sign_rsa(rsa(0), Algorithm::RS384, Some("r1"), &claims())),
        Err(JwtError::AlgorithmNotAllowed("RS384".into()))
    );
    let es_only = verifier(both_keys(), json!({"algorithms": ["ES256"]})).await;
    assert_eq!(es_only.key_count(), 1, "the RSA key is unusable");
    assert_eq!(
        es_only.verify(&rs256(rsa(0), "r1", &claims())),
        Err(JwtError::AlgorithmNotAllowed("RS256".into()))
    );
    assert!(es_only.verify(&es256(ec(0), Some("e1"), &claims())).is_ok());
    let rs384 = verifier(both_keys(), json!({"algorithms": ["RS384"]})).await;
    assert!(rs384
        .verify(&sign_rsa(rsa(0), Algorithm::RS384, Some("r1"), &claims()))
        .is_ok());
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_panicking() {
    let v = verifier(both_keys(), json!({})).await;
    let good = rs256(rsa(0), "r1", &claims());
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let enc = |s: &str| b64(s.as_bytes());
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.x"),
        format!(".{p}.{s}"),
        format!("{h}..{s}"),
        format!("{h}!.{p}.{s}"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}*.{s}"),
        format!("{}.{p}.{s}", enc("not json")),
        format!("{}.{p}.{s}", enc(r#"["RS256"]"#)),
        format!("{}.{p}.{s}", enc(r#"{"alg":"RS256","alg":"RS256"}"#)),
        format!("{}.{p}.{s}", enc(r#"{"kid":"r1"}"#)),
        format!(
            "{}.{p}.{s}",
            enc(r#"{"alg":"RS256","kid":"r1","crit":["b64"]}"#)
        ),
        format!("{h}.{}.{s}", enc("nope")),
        format!("{h}.{}.{s}", enc("[1,2]")),
        format!("{h}.{}.{s}", enc(r#"{"exp":1,"exp":2}"#)),
        format!("{h}.{}.{s}", enc(r#"{"exp":1} trailing"#)),
        format!("{h}.{p}.{s}!"),
        format!("{h}.{p}.{}", "A".repeat(MAX_TOKEN_LEN)),
        "\u{e9}\u{e9}.\u{e9}.\u{e9}".into(),
    ];
    for token in &cases {
        assert_eq!(v.verify(token), Err(JwtError::Malformed), "{token:?}");
    }
    assert!(v.verify(&good).is_ok());
}

#[test]
fn base64url_decoding() {
    let mut out = Vec::new();
    for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd\x00"] {
        token::b64url_decode(&b64(input), &mut out).unwrap();
        assert_eq!(out, input);
    }
    for bad in ["A", "Zm9=", "Zm9v+", "Zm/v", "Zh", "Zm9"] {
        assert!(token::b64url_decode(bad, &mut out).is_none(), "{bad}");
    }
}

// ---- JWKS loading ----------------------------------------------------------

#[tokio::test]
async fn jwks_files_resolve_against_the_base_dir() {
    let dir = temp_dir("base");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/idp.json"), both_keys().to_string()).unwrap();
    let cfg: JwtConfig = serde_json::from_value(json!({"jwks": "keys/idp.json"})).unwrap();
    let v = JwtVerifier::load(&cfg, &dir).await.unwrap();
    assert!(v.verify(&rs256(rsa(0), "r1", &claims())).is_ok());

    let abs = dir.join("keys/idp.json");
    let cfg: JwtConfig = serde_json::from_value(json!({"jwks": abs})).unwrap();
    assert!(JwtVerifier::load(&cfg, Path::new("/nonexistent"))
        .await
        .is_ok());

    let cfg: JwtConfig = serde_json::from_value(json!({"jwks": "missing.json"})).unwrap();
    let err = JwtVerifier::load(&cfg, &dir).await.unwrap_err();
    assert!(
        err.contains("missing.json") && err.contains("cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn jwks_without_usable_keys_is_an_error() {
    let mut short = rsa_jwk(rsa(0), "short");
    short["n"] = json!(b64(&[0xC5; 128])); // 1024 bits
    let set = json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa(0).n, "e": "AQAB"},
        {"kty": "RSA", "kid": "bad-n", "n": "***", "e": "AQAB"},
        {"kty": "EC", "kid": "short-x", "crv": "P-256", "x": "AAAA", "y": ec(0).y},
        short,
        "not an object",
    ]});
    let err = try_verifier(set, json!({})).await.unwrap_err();
    assert!(err.contains("no usable key"), "{err}");
    for why in [
        "unsupported key type `oct`",
        "unsupported curve `P-521`",
        "unsupported key type `OKP`",
        "`use` is `enc`",
        "`n` is not base64url",
        "must be 32 bytes",
        "RSA key of 1024 bits",
        "#7: not a JWK object",
    ] {
        assert!(err.contains(why), "{why} not in {err}");
    }
    assert!(!err.contains(&rsa(0).n), "no key material in errors");

    for (doc, want) in [
        (json!({"keys": []}), "no usable key"),
        (json!({"keys": {}}), "`keys` must be an array"),
        (json!([1]), "expected an object with `keys`"),
    ] {
        let err = try_verifier(doc, json!({})).await.unwrap_err();
        assert!(err.contains(want) && err.contains("jwks.json"), "{err}");
    }

    // Usable keys survive next to unusable ones; a bare JWK works too.
    let mixed = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}, rsa_jwk(rsa(0), "r1")]});
    assert_eq!(verifier(mixed, json!({})).await.key_count(), 1);
    assert_eq!(
        verifier(ec_jwk(ec(0), "e1"), json!({})).await.key_count(),
        1
    );
}

#[tokio::test]
async fn config_problems_refuse_loading() {
    for (cfg, want) in [
        (
            json!({"algorithms": ["HS256"]}),
            "jwt.algorithms: `HS256` is not allowed",
        ),
        (json!({"algorithms": ["none"]}), "`none` is not allowed"),
        (
            json!({"algorithms": []}),
            "jwt.algorithms: list at least one",
        ),
        (json!({"audience": []}), "jwt.audience"),
        (json!({"issuer": ""}), "jwt.issuer"),
        (json!({"claims": {"tenant": ""}}), "jwt.claims.tenant"),
        (json!({"refresh": "10ms"}), "jwt.refresh"),
        (
            json!({"jwks": "ftp://idp/jwks"}),
            "unsupported JWKS scheme `ftp://`",
        ),
        (json!({"jwks": ""}), "jwt.jwks"),
    ] {
        let err = try_verifier(both_keys(), cfg.clone()).await.unwrap_err();
        assert!(err.contains(want), "{cfg}: {err}");
    }
}

// ---- JWKS over HTTP ----------------------------------------------------------

/// A one-route HTTP/1.1 server: 200 with `body`, or 500 while it is `None`.
struct JwksServer {
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(jwks: Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://user:pw@{}/.well-known/jwks.json?token=secret",
            listener.local_addr().unwrap()
        );
        let body = Arc::new(Mutex::new(Some(jwks.to_string())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (body, hits) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let current = body.lock().unwrap().clone();
                    let resp = match current {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                            b.len()
                        ),
                        None => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                    };
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        JwksServer {
            body,
            hits,
            url,
            task,
        }
    }

    fn set(&self, jwks: Option<Value>) {
        *self.body.lock().unwrap() = jwks.map(|j| j.to_string());
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn url_verifier(server: &JwksServer) -> Result<JwtVerifier, String> {
    let cfg: JwtConfig = serde_json::from_value(json!({"jwks": server.url})).unwrap();
    JwtVerifier::load(&cfg, Path::new("/nonexistent")).await
}

#[tokio::test]
async fn url_jwks_refresh_rotates_and_survives_failures() {
    let server = JwksServer::start(json!({"keys": [rsa_jwk(rsa(0), "r1")]})).await;
    let v = url_verifier(&server).await.unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let old = rs256(rsa(0), "r1", &claims());
    let new = rs256(rsa(1), "r2", &claims());
    assert!(v.verify(&old).is_ok());
    assert_eq!(v.verify(&new), Err(JwtError::UnknownKey));

    // Rotation: r1 retired, r2 published.
    server.set(Some(json!({"keys": [rsa_jwk(rsa(1), "r2")]})));
    v.refresh().await.unwrap();
    assert!(v.verify(&new).is_ok());
    assert_eq!(v.verify(&old), Err(JwtError::UnknownKey));

    // The server fails: the error names the source (without credentials or
    // query) and the current keys stay.
    server.set(None);
    let err = v.refresh().await.unwrap_err();
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("/.well-known/jwks.json"), "{err}");
    assert!(!err.contains("pw") && !err.contains("secret"), "{err}");
    assert!(v.verify(&new).is_ok());

    // A body that is not a usable JWKS is a failure too.
    server.set(Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})));
    assert!(v.refresh().await.unwrap_err().contains("no usable key"));
    assert!(v.verify(&new).is_ok());

    // And loading from a failing server fails.
    server.set(None);
    let err = url_verifier(&server).await.unwrap_err();
    assert!(err.starts_with("JWKS http://127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn unknown_kid_triggers_an_early_refresh() {
    let new = rs256(rsa(2), "r3", &claims());
    let bogus = rs256(rsa(1), "nobody", &claims());
    let server = JwksServer::start(json!({"keys": [rsa_jwk(rsa(0), "r1")]})).await;
    let mut v = url_verifier(&server).await.unwrap();
    server.set(Some(
        json!({"keys": [rsa_jwk(rsa(0), "r1"), rsa_jwk(rsa(2), "r3")]}),
    ));

    // Within 30s of the load: no fetch, the token fails.
    assert_eq!(v.verify_refreshing(&new).await, Err(JwtError::UnknownKey));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    age(&mut v, Duration::from_secs(31));
    assert!(v.verify_refreshing(&new).await.is_ok());
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // A kid nobody knows: at most one fetch per 30s, however many tokens.
    for _ in 0..3 {
        assert_eq!(v.verify_refreshing(&bogus).await, Err(JwtError::UnknownKey));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    age(&mut v, Duration::from_secs(31));
    for _ in 0..5 {
        assert_eq!(v.verify_refreshing(&bogus).await, Err(JwtError::UnknownKey));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn background_refresher_picks_up_rotation_and_stops_with_the_verifier() {
    let server = JwksServer::start(json!({"keys": [rsa_jwk(rsa(0), "r1")]})).await;
    let mut v = url_verifier(&server).await.unwrap();
    v.refresh_every = Duration::from_millis(50);
    let v = Arc::new(v);
    let handle = v.spawn_refresher();

    server.set(Some(json!({"keys": [rsa_jwk(rsa(1), "r2")]})));
    let new = rs256(rsa(1), "r2", &claims());
    let mut ok = false;
    for _ in 0..100 {
        if v.verify(&new).is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the refresher did not pick up the rotated key");

    drop(v);
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("refresher still running after the verifier was dropped")
        .unwrap();
}

// ---- helpers and config ------------------------------------------------------

#[tokio::test]
async fn looks_like_jwt_tells_tokens_from_api_keys() {
    assert!(looks_like_jwt(&rs256(rsa(0), "r1", &claims())));
    assert!(looks_like_jwt(&es256(ec(0), None, &claims())));
    for not in [
        "",
        "Bearer",
        "sk-sluice-abc",
        "sk-sluice-abc.def.ghi",
        "eyJ.eyJ",
        "eyJ..sig",
        "eyJhbGciOi.eyJ.a+b",
        "eyJ a.b.c",
    ] {
        assert!(!looks_like_jwt(not), "{not}");
    }
}

#[test]
fn config_deserializes_with_defaults_and_rejects_unknown_keys() {
    let cfg: JwtConfig = serde_json::from_value(json!({
        "jwks": "https://idp.example/.well-known/jwks.json",
        "issuer": "https://idp.example",
        "audience": ["sluice"],
        "algorithms": ["RS256", "ES384"],
        "claims": {"tenant": "org"},
        "refresh": "10m",
        "leeway": "1m",
    }))
    .unwrap();
    assert_eq!(cfg.claims.tenant, "org");
    assert_eq!(cfg.claims.app, "app");
    assert_eq!(cfg.claims.user, "sub");
    assert_eq!(cfg.refresh, Some(Dur(Duration::from_secs(600))));
    assert_eq!(cfg.leeway, Some(Dur(Duration::from_secs(60))));
    assert!(cfg.problems().is_empty());

    let min: JwtConfig = serde_json::from_value(json!({"jwks": "jwks.json"})).unwrap();
    assert_eq!(min.claims, ClaimNames::default());
    assert_eq!(
        min.algorithm_set().unwrap(),
        AlgSet::EMPTY.with(Alg::RS256).with(Alg::ES256)
    );

    let err = serde_json::from_value::<JwtConfig>(json!({"jwks": "x", "isuser": "y"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `isuser`"), "{err}");
    assert!(
        serde_json::from_value::<JwtConfig>(json!({"jwks": "x", "claims": {"org": "o"}})).is_err()
    );
    assert!(serde_json::from_value::<JwtConfig>(json!({"jwks": "x", "leeway": 30})).is_err());

    let schema = serde_json::to_string(&schemars::schema_for!(JwtConfig)).unwrap();
    assert!(schema.contains("JWKS source") && schema.contains("Duration"));
}

#[test]
fn errors_are_client_safe() {
    let all = [
        JwtError::Malformed,
        JwtError::UnknownKey,
        JwtError::KeyMismatch,
        JwtError::BadSignature,
        JwtError::AlgorithmNotAllowed("HS256".into()),
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::WrongIssuer,
        JwtError::WrongAudience,
        JwtError::MissingClaim("exp"),
        JwtError::BadClaim("tenant"),
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(JwtError::code).collect();
    assert_eq!(codes.len(), all.len());
    assert_eq!(
        JwtError::MissingClaim("exp").to_string(),
        "token lacks the `exp` claim"
    );
    assert_eq!(
        JwtError::AlgorithmNotAllowed("HS256".into()).to_string(),
        "token algorithm `HS256` is not accepted"
    );
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: T) {}
    let cfg: JwtConfig = serde_json::from_value(json!({"jwks": "x"})).unwrap();
    send(JwtVerifier::load(&cfg, Path::new(".")));
    fn verifier_is_shareable<T: Send + Sync>() {}
    verifier_is_shareable::<JwtVerifier>();
    // Compile-time only.
    fn _refreshing(v: &JwtVerifier) {
        send(v.verify_refreshing("x"));
        send(v.refresh());
    }
}
