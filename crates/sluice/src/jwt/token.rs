//! Taking a compact JWS apart without trusting it: splitting, base64url, the
//! header, and a single-pass claim scan that keeps only the claims `verify`
//! needs (borrowed from the decoded payload where possible).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{ClaimNames, JwtError};

/// The three segments of a compact JWS, plus `header.payload` (the signed
/// message).
pub(super) struct Parts<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    pub message: &'a str,
}

/// Exactly three dot-separated segments, header and payload non-empty.
pub(super) fn split(token: &str) -> Option<Parts<'_>> {
    let (message, signature) = token.rsplit_once('.')?;
    let (header, payload) = message.split_once('.')?;
    if header.is_empty() || payload.is_empty() || payload.contains('.') {
        return None;
    }
    Some(Parts {
        header,
        payload,
        signature,
        message,
    })
}

/// Decodes unpadded base64url (RFC 7515 §2) into `out`, refusing padding,
/// other alphabets and non-zero trailing bits.
pub(super) fn b64url_decode(input: &str, out: &mut Vec<u8>) -> Option<()> {
    fn sextet(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    let bytes = input.as_bytes();
    out.clear();
    out.reserve(bytes.len() / 4 * 3 + 2);
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        let n = sextet(c[0])? << 18 | sextet(c[1])? << 12 | sextet(c[2])? << 6 | sextet(c[3])?;
        out.extend_from_slice(&n.to_be_bytes()[1..]);
    }
    match *chunks.remainder() {
        [] => {}
        [a, b] => {
            let n = sextet(a)? << 18 | sextet(b)? << 12;
            if n & 0xFFFF != 0 {
                return None;
            }
            out.push(n.to_be_bytes()[1]);
        }
        [a, b, c] => {
            let n = sextet(a)? << 18 | sextet(b)? << 12 | sextet(c)? << 6;
            if n & 0xFF != 0 {
                return None;
            }
            out.extend_from_slice(&n.to_be_bytes()[1..3]);
        }
        _ => return None,
    }
    Some(())
}

/// The JOSE header fields sluice reads. Others (`typ`, `jku`, `x5u`, `jwk`,
/// …) are ignored: keys only ever come from the configured JWKS.
#[derive(Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub alg: Str<'a>,
    #[serde(default, borrow)]
    pub kid: Option<Str<'a>>,
    /// Critical extensions; none are supported, so any makes the token
    /// unusable (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Decodes and parses the header segment. `buf` holds the decoded bytes the
/// header borrows from.
pub(super) fn parse_header<'b>(
    segment: &str,
    buf: &'b mut Vec<u8>,
) -> Result<Header<'b>, JwtError> {
    b64url_decode(segment, buf).ok_or(JwtError::Malformed)?;
    if buf.trim_ascii_start().first() != Some(&b'{') {
        return Err(JwtError::Malformed);
    }
    let header: Header<'b> = serde_json::from_slice(buf).map_err(|_| JwtError::Malformed)?;
    if header.crit.is_some() {
        return Err(JwtError::Malformed);
    }
    Ok(header)
}

/// The `alg` of a refused token, safe to echo: short and alphanumeric, else `?`.
pub(super) fn sanitize_alg(alg: &str) -> String {
    let safe = !alg.is_empty()
        && alg.len() <= 16
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        alg.to_owned()
    } else {
        "?".to_owned()
    }
}

/// A string borrowed from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A claim value as far as `verify` cares.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    Float(f64),
    Null,
    /// Only collected for `aud`; elsewhere arrays are `Other`.
    List(Vec<Val<'a>>),
    /// Booleans, objects, and arrays where no list is expected.
    Other,
}

impl Val<'_> {
    /// A NumericDate (RFC 7519 §2): seconds, fractions floored, saturating.
    pub fn numeric_date(&self) -> Option<i64> {
        match *self {
            Val::Int(i) => {
                Some(i64::try_from(i).unwrap_or(if i < 0 { i64::MIN } else { i64::MAX }))
            }
            // `as` saturates for out-of-range floats.
            Val::Float(f) if f.is_finite() => Some(f.floor() as i64),
            _ => None,
        }
    }
}

/// The claims `verify` looks at; everything else in the payload is skipped.
#[derive(Debug, Default)]
pub(super) struct Claims<'a> {
    pub exp: Option<Val<'a>>,
    pub nbf: Option<Val<'a>>,
    pub iss: Option<Val<'a>>,
    pub aud: Option<Val<'a>>,
    pub sub: Option<Val<'a>>,
    pub tenant: Option<Val<'a>>,
    pub app: Option<Val<'a>>,
    pub user: Option<Val<'a>>,
}

const EXP: u8 = 1;
const NBF: u8 = 1 << 1;
const ISS: u8 = 1 << 2;
const AUD: u8 = 1 << 3;
const SUB: u8 = 1 << 4;
const TENANT: u8 = 1 << 5;
const APP: u8 = 1 << 6;
const USER: u8 = 1 << 7;

/// Decodes the payload segment and scans it once. Fails (as `Malformed`) on
/// bad base64, a payload that is not one JSON object, or a claim `verify`
/// reads appearing twice.
pub(super) fn parse_claims<'b>(
    segment: &str,
    buf: &'b mut Vec<u8>,
    names: &ClaimNames,
) -> Result<Claims<'b>, JwtError> {
    b64url_decode(segment, buf).ok_or(JwtError::Malformed)?;
    let mut de = serde_json::Deserializer::from_slice(buf);
    let claims = de
        .deserialize_map(ClaimsVisitor { names })
        .map_err(|_| JwtError::Malformed)?;
    de.end().map_err(|_| JwtError::Malformed)?;
    Ok(claims)
}

struct ClaimsVisitor<'n> {
    names: &'n ClaimNames,
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = Claims<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims<'de>, A::Error> {
        let mut c = Claims::default();
        while let Some(roles) = map.next_key_seed(ClaimKey { names: self.names })? {
            if roles == 0 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let mut value = Some(map.next_value_seed(ValSeed {
                keep_list: roles & AUD != 0,
            })?);
            // One claim can fill several roles (user defaults to `sub`).
            let mut rest = roles;
            for (bit, slot) in [
                (EXP, &mut c.exp),
                (NBF, &mut c.nbf),
                (ISS, &mut c.iss),
                (AUD, &mut c.aud),
                (SUB, &mut c.sub),
                (TENANT, &mut c.tenant),
                (APP, &mut c.app),
                (USER, &mut c.user),
            ] {
                if rest & bit == 0 {
                    continue;
                }
                rest &= !bit;
                if slot.is_some() {
                    return Err(de::Error::custom("duplicate claim"));
                }
                *slot = if rest == 0 {
                    value.take()
                } else {
                    value.clone()
                };
            }
        }
        Ok(c)
    }
}

/// Maps a claim name to the roles it fills, without allocating.
struct ClaimKey<'n> {
    names: &'n ClaimNames,
}

impl<'de> DeserializeSeed<'de> for ClaimKey<'_> {
    type Value = u8;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u8, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ClaimKey<'_> {
    type Value = u8;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<u8, E> {
        let n = self.names;
        let mut roles = match k {
            "exp" => EXP,
            "nbf" => NBF,
            "iss" => ISS,
            "aud" => AUD,
            "sub" => SUB,
            _ => 0,
        };
        for (bit, name) in [(TENANT, &n.tenant), (APP, &n.app), (USER, &n.user)] {
            if k == name {
                roles |= bit;
            }
        }
        Ok(roles)
    }
}

struct ValSeed {
    keep_list: bool,
}

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValSeed {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Int(i128::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(s)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        if !self.keep_list {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Val::Other);
        }
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(16));
        while let Some(v) = seq.next_element_seed(ValSeed { keep_list: false })? {
            items.push(v);
        }
        Ok(Val::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Other)
    }
}

/// A mapped identity claim as a string: strings as-is (empty → `None`),
/// numbers stringified, null/absent → `None`, anything else refused.
pub(super) fn identity_claim(
    v: Option<Val<'_>>,
    role: &'static str,
) -> Result<Option<String>, JwtError> {
    match v {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) if s.is_empty() => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s.into_owned())),
        Some(Val::Int(i)) => Ok(Some(i.to_string())),
        Some(Val::Float(f)) if f.is_finite() => Ok(Some(f.to_string())),
        Some(_) => Err(JwtError::BadClaim(role)),
    }
}
