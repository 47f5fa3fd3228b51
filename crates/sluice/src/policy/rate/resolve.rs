//! From one level's policy items to its rate rules. Items merge left to
//! right, field by field, but each keeps its own `mode` and `rollout`:
//!
//! - a `mode: shadow` item is an overlay: the level's enforced limit is the
//!   merge of its other items, and a separate shadow rule is the merge of
//!   all of them (what the level would enforce with the overlay applied);
//! - a `rollout: p` item joins the merges only for callers whose bucket is
//!   under `p`; the others get the level without it.
//!
//! So `[standard, { mode: shadow, rollout: 10, rate_limit: { requests_per_minute: 60 } }]`
//! enforces `standard` for everybody and, for a tenth of the callers, also
//! records what `standard` tightened to 60 a minute would have refused.

use std::ops::Range;

use crate::config::merge::Item;
use crate::config::raw::{PolicyConfig, PolicyMode, RateLimitConfig};
use crate::policy::{rollout_cut, ROLLOUT_BUCKETS};

/// One merged rate limit of a level.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant<'a> {
    /// The rollout buckets it applies to.
    pub buckets: Range<u16>,
    pub shadow: bool,
    pub rate: RateLimitConfig,
    /// The last named item that set a `rate_limit` field in it.
    pub policy: Option<&'a str>,
}

fn is_shadow(p: &PolicyConfig) -> bool {
    p.mode == Some(PolicyMode::Shadow)
}

/// The level's rate limits by bucket range: at most one enforced and one
/// shadow variant per range; adjacent equal variants are joined.
pub fn variants<'a>(items: &[Item<'a>]) -> Vec<Variant<'a>> {
    let rated: Vec<&Item<'a>> = items
        .iter()
        .filter(|(_, p)| p.rate_limit.is_some())
        .collect();
    let mut cuts: Vec<u16> = rated
        .iter()
        .map(|(_, p)| rollout_cut(p.rollout))
        .chain([0, ROLLOUT_BUCKETS])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Variant<'a>> = Vec::new();
    for w in cuts.windows(2) {
        let inside: Vec<&Item<'a>> = rated
            .iter()
            .copied()
            .filter(|(_, p)| rollout_cut(p.rollout) >= w[1])
            .collect();
        let with_shadow = inside.iter().any(|(_, p)| is_shadow(p));
        for shadow in [false, true].into_iter().filter(|s| !s || with_shadow) {
            let merged = merge(
                inside
                    .iter()
                    .copied()
                    .filter(|(_, p)| shadow || !is_shadow(p)),
            );
            if let Some((rate, policy)) = merged {
                let v = Variant {
                    buckets: w[0]..w[1],
                    shadow,
                    rate,
                    policy,
                };
                push_or_join(&mut out, v);
            }
        }
    }
    out
}

/// The field-by-field merge of the items' `rate_limit`s, with the last name.
fn merge<'a: 'b, 'b>(
    items: impl Iterator<Item = &'b Item<'a>>,
) -> Option<(RateLimitConfig, Option<&'a str>)> {
    let mut out: Option<(RateLimitConfig, Option<&'a str>)> = None;
    for (name, p) in items {
        let (rate, policy) = out.get_or_insert_default();
        if let Some(r) = &p.rate_limit {
            rate.merge(r);
        }
        if name.is_some() {
            *policy = *name;
        }
    }
    out
}

/// Extends the previous variant of the same kind when `v` continues it.
fn push_or_join<'a>(out: &mut Vec<Variant<'a>>, v: Variant<'a>) {
    let same = out.iter_mut().rev().find(|o| o.shadow == v.shadow);
    match same {
        Some(o) if o.buckets.end == v.buckets.start && o.rate == v.rate && o.policy == v.policy => {
            o.buckets.end = v.buckets.end;
        }
        _ => out.push(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(json: &str) -> PolicyConfig {
        serde_json::from_str(json).unwrap()
    }

    fn rpm(v: &Variant) -> Option<u32> {
        v.rate.requests_per_minute
    }

    #[test]
    fn plain_lists_merge_into_one_enforced_rule() {
        let (a, b) = (
            p(r#"{"rate_limit": {"requests_per_minute": 600, "burst": 50}}"#),
            p(r#"{"rate_limit": {"requests_per_minute": 60}}"#),
        );
        let v = variants(&[(Some("standard"), &a), (None, &b)]);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (rpm(&v[0]), v[0].rate.burst, v[0].shadow),
            (Some(60), Some(50), false)
        );
        assert_eq!(
            (v[0].buckets.clone(), v[0].policy),
            (0..ROLLOUT_BUCKETS, Some("standard"))
        );
    }

    #[test]
    fn a_shadow_item_is_an_overlay_and_rollout_splits_the_buckets() {
        let standard = p(r#"{"rate_limit": {"requests_per_minute": 600}}"#);
        let trial =
            p(r#"{"mode": "shadow", "rollout": 10, "rate_limit": {"requests_per_minute": 60}}"#);
        let v = variants(&[(Some("standard"), &standard), (Some("trial"), &trial)]);
        let got: Vec<_> = v
            .iter()
            .map(|v| (v.buckets.clone(), v.shadow, rpm(v), v.policy))
            .collect();
        assert_eq!(
            got,
            [
                (0..ROLLOUT_BUCKETS, false, Some(600), Some("standard")),
                (0..1000, true, Some(60), Some("trial")),
            ]
        );
        let new = p(r#"{"rollout": 25, "rate_limit": {"requests_per_minute": 60}}"#);
        let v = variants(&[(Some("standard"), &standard), (None, &new)]);
        let got: Vec<_> = v.iter().map(|v| (v.buckets.clone(), rpm(v))).collect();
        assert_eq!(
            got,
            [(0..2500, Some(60)), (2500..ROLLOUT_BUCKETS, Some(600))]
        );
        assert!(variants(&[(
            None,
            &p(r#"{"rollout": 0, "rate_limit": {"requests_per_day": 1}}"#)
        )])
        .is_empty());
    }
}
