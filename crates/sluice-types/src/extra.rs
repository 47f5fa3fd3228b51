//! `Deserialize` for the hot request structs that keep unknown keys in an
//! `extra` map, without `#[serde(flatten)]`.
//!
//! serde's `flatten` first copies the whole object — nested arrays and
//! objects included — into an intermediate tree, then deserializes every
//! field again from that copy. For `ChatRequest` that is every message twice
//! and an allocation per node, on every request. The visitor generated here
//! reads each key once (borrowed from the input when it has no escapes),
//! deserializes known fields straight into their types and only unknown ones
//! into `serde_json::Value`. It behaves as the derive did: required fields
//! missing → "missing field `x`", a known key twice → "duplicate field `x`",
//! `null` for an `Option` field → `None`, unknown keys kept in `extra`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// An object key, borrowed from the input when it can be.
pub(crate) struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Implements `Deserialize` for struct `$ty` whose field `extra` (a
/// `serde_json::Map`) takes every key not listed. Each listed field is
/// `req` (an error when missing) or `opt` (its `Default` when missing).
macro_rules! deserialize_with_extra {
    ($ty:ident { $($field:ident : $key:literal $kind:ident),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        use serde::de::Error;
                        $(let mut $field = None;)*
                        let mut extra = serde_json::Map::new();
                        while let Some(key) = map.next_key::<$crate::extra::Key<'de>>()? {
                            match &*key.0 {
                                $($key => {
                                    if $field.is_some() {
                                        return Err(A::Error::duplicate_field($key));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value = map.next_value()?;
                                    extra.insert(key.0.into_owned(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: deserialize_with_extra!(@take $kind $field $key),)*
                            extra,
                        })
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
    (@take req $field:ident $key:literal) => {
        $field.ok_or_else(|| A::Error::missing_field($key))?
    };
    (@take opt $field:ident $key:literal) => {
        $field.unwrap_or_default()
    };
}

pub(crate) use deserialize_with_extra;

#[cfg(test)]
mod tests {
    use crate::{ChatRequest, Content, Message, Role};

    #[test]
    fn known_fields_typed_unknown_ones_kept() {
        let r: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi","x_m":1}],
                "max_tokens":5,"tool_choice":null,"seed":7,"n\u0061me":"esc"}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m");
        assert_eq!(r.max_tokens, Some(5));
        assert_eq!(r.tool_choice, None);
        assert_eq!(r.extra["seed"], 7);
        // A key with an escape is decoded, then kept like any other.
        assert_eq!(r.extra["name"], "esc");
        assert_eq!(r.messages[0].role, Role::User);
        assert_eq!(r.messages[0].content, Some(Content::Text("hi".into())));
        assert_eq!(r.messages[0].extra["x_m"], 1);
    }

    #[test]
    fn errors_read_as_the_derive_did() {
        let missing = serde_json::from_str::<ChatRequest>(r#"{"model":"m"}"#).unwrap_err();
        assert!(
            missing.to_string().starts_with("missing field `messages`"),
            "{missing}"
        );
        let twice =
            serde_json::from_str::<ChatRequest>(r#"{"model":"m","model":"n"}"#).unwrap_err();
        assert!(
            twice.to_string().starts_with("duplicate field `model`"),
            "{twice}"
        );
        let no_role = serde_json::from_str::<Message>(r#"{"content":"x"}"#).unwrap_err();
        assert!(
            no_role.to_string().starts_with("missing field `role`"),
            "{no_role}"
        );
        let bad =
            serde_json::from_str::<ChatRequest>(r#"{"model":"m","messages":[],"max_tokens":"x"}"#)
                .unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("invalid type: string \"x\", expected u32"),
            "{bad}"
        );
        let not_obj = serde_json::from_str::<ChatRequest>("[1]").unwrap_err();
        assert!(
            not_obj.to_string().contains("expected struct ChatRequest"),
            "{not_obj}"
        );
    }

    #[test]
    fn round_trips_through_value_as_through_text() {
        let text = r#"{"model":"m","messages":[{"role":"tool","tool_call_id":"c1","content":"42"}],"stream":true,"user":"u","extra_body":{"a":[1,2]}}"#;
        let from_text: ChatRequest = serde_json::from_str(text).unwrap();
        let value = serde_json::to_value(&from_text).unwrap();
        let from_value: ChatRequest = serde_json::from_value(value).unwrap();
        assert_eq!(from_text, from_value);
        assert_eq!(from_value.extra["extra_body"]["a"][1], 2);
    }
}
