//! Conditional routes (`routes:`), compiled when the snapshot is built: an
//! ordered list of rules; the first whose conditions all hold picks the
//! model that serves the request — one model (`to`), or one of several by
//! weight (`split`: canaries, blue/green), sticky per key or end user by a
//! stable hash, so a caller stays on its side across requests, instances
//! and reloads that keep the weights.
//!
//! Evaluation is a hash lookup of the requested model's rules (those that
//! name it, and those that name no model, in config order) and plain
//! comparisons: no allocation, no regex, no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::config::raw::{RouteConfig, Sticky};

/// The compiled `routes:`.
#[derive(Debug, Default)]
pub struct Routes {
    rules: Vec<Rule>,
    /// Per requested model: the indices of the rules that may match it.
    by_model: HashMap<Arc<str>, Box<[usize]>>,
    /// The rules that name no model (for models no rule names).
    generic: Box<[usize]>,
    /// The `x-sluice-tag-*` headers some rule reads.
    tag_headers: Vec<HeaderName>,
}

#[derive(Debug)]
pub struct Rule {
    /// `name`, else `routes[i]`: the metric label and log field.
    pub label: Arc<str>,
    cond: Cond,
    target: Target,
    /// A stable salt, so each split draws independently of the others.
    salt: u64,
}

#[derive(Debug, Default)]
struct Cond {
    tenants: Option<Box<[Arc<str>]>>,
    tiers: Option<Box<[Arc<str>]>>,
    apps: Option<Box<[Arc<str>]>>,
    /// (index into `Routes::tag_headers`, value).
    tags: Box<[(usize, HeaderValue)]>,
    tokens_over: Option<u64>,
    tokens_under: Option<u64>,
    tools: Option<bool>,
    images: Option<bool>,
    stream: Option<bool>,
}

#[derive(Debug)]
enum Target {
    To(Arc<str>),
    /// Cumulative weights, the total, and what keeps a caller on a side.
    Split(Box<[(u64, Arc<str>)]>, u64, Sticky),
}

/// What the conditions look at.
pub struct Request<'a> {
    pub tenant: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub app: Option<&'a str>,
    /// The values of [`Routes::tag_headers`], in that order.
    pub tags: &'a [Option<HeaderValue>],
    /// Estimated prompt tokens (counted when [`Routes::counts_tokens`]).
    pub input_tokens: u64,
    pub tools: bool,
    pub images: bool,
    pub stream: bool,
    /// The caller's stable hash (`KeyInfo::sticky`).
    pub key: u64,
    pub user: Option<&'a str>,
}

impl Routes {
    /// Compiles validated `routes:`.
    pub fn build(cfg: &[RouteConfig]) -> Routes {
        let mut routes = Routes::default();
        let mut named: HashMap<Arc<str>, Vec<usize>> = HashMap::new();
        let mut generic = Vec::new();
        for (i, r) in cfg.iter().enumerate() {
            let label: Arc<str> = r
                .name
                .clone()
                .unwrap_or_else(|| format!("routes[{i}]"))
                .into();
            let cond = routes.cond(r);
            let target = target(r);
            routes.rules.push(Rule {
                salt: stable_hash(&label),
                label,
                cond,
                target,
            });
            match &r.matches.model {
                Some(models) => {
                    for m in models.iter() {
                        named.entry(m.into()).or_default().push(i);
                    }
                }
                None => generic.push(i),
            }
        }
        // A named model's list holds the generic rules too, in config order.
        for list in named.values_mut() {
            list.extend(&generic);
            list.sort_unstable();
            list.dedup();
        }
        routes.by_model = named.into_iter().map(|(k, v)| (k, v.into())).collect();
        routes.generic = generic.into();
        routes
    }

    fn cond(&mut self, r: &RouteConfig) -> Cond {
        let m = &r.matches;
        let names = |n: &Option<crate::config::raw::Names>| {
            n.as_ref()
                .map(|n| n.iter().map(Arc::from).collect::<Box<[_]>>())
        };
        let mut tags = Vec::new();
        for (name, value) in &m.tags {
            let (Ok(header), Ok(value)) = (
                HeaderName::from_bytes(format!("x-sluice-tag-{name}").as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                continue; // refused by validation
            };
            let at = match self.tag_headers.iter().position(|h| *h == header) {
                Some(at) => at,
                None => {
                    self.tag_headers.push(header);
                    self.tag_headers.len() - 1
                }
            };
            tags.push((at, value));
        }
        Cond {
            tenants: names(&m.tenant),
            tiers: names(&m.tenant_tier),
            apps: names(&m.app),
            tags: tags.into(),
            tokens_over: m.input_tokens_over,
            tokens_under: m.input_tokens_under,
            tools: m.tools,
            images: m.images,
            stream: m.stream,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The headers whose values [`Request::tags`] holds.
    pub fn tag_headers(&self) -> &[HeaderName] {
        &self.tag_headers
    }

    fn candidates(&self, model: &str) -> &[usize] {
        self.by_model.get(model).map_or(&self.generic, |v| v)
    }

    /// Whether a rule for `model` looks at the prompt's size.
    pub fn counts_tokens(&self, model: &str) -> bool {
        self.candidates(model).iter().any(|&i| {
            let c = &self.rules[i].cond;
            c.tokens_over.is_some() || c.tokens_under.is_some()
        })
    }

    /// The first rule for `model` that `req` matches, and the model it
    /// picks.
    pub fn pick(&self, model: &str, req: &Request<'_>) -> Option<(&Rule, &Arc<str>)> {
        let rule = self
            .candidates(model)
            .iter()
            .map(|&i| &self.rules[i])
            .find(|r| r.cond.holds(req))?;
        Some((rule, rule.target.pick(rule.salt, req)))
    }
}

impl Cond {
    fn holds(&self, r: &Request<'_>) -> bool {
        let within = |set: &Option<Box<[Arc<str>]>>, v: Option<&str>| {
            set.as_ref()
                .is_none_or(|s| v.is_some_and(|v| s.iter().any(|x| &**x == v)))
        };
        let flag = |want: Option<bool>, is: bool| want.is_none_or(|w| w == is);
        within(&self.tenants, r.tenant)
            && within(&self.tiers, r.tier)
            && within(&self.apps, r.app)
            && self
                .tags
                .iter()
                .all(|(at, v)| r.tags.get(*at).and_then(Option::as_ref) == Some(v))
            && self.tokens_over.is_none_or(|n| r.input_tokens > n)
            && self.tokens_under.is_none_or(|n| r.input_tokens <= n)
            && flag(self.tools, r.tools)
            && flag(self.images, r.images)
            && flag(self.stream, r.stream)
    }
}

impl Target {
    fn pick(&self, salt: u64, r: &Request<'_>) -> &Arc<str> {
        let (cuts, total, sticky) = match self {
            Target::To(m) => return m,
            Target::Split(cuts, total, sticky) => (cuts, *total, *sticky),
        };
        let h = match (sticky, r.user) {
            (Sticky::Key, _) | (Sticky::User, None) => mix(r.key ^ salt),
            (Sticky::User, Some(u)) => mix(stable_hash(u) ^ salt),
            (Sticky::None, _) => fastrand::u64(..),
        };
        let at = h % total.max(1);
        cuts.iter()
            .find(|(cut, _)| at < *cut)
            .or(cuts.last())
            .map(|(_, m)| m)
            .expect("a split has a model with a weight (validated)")
    }
}

fn target(r: &RouteConfig) -> Target {
    if let Some(split) = &r.split {
        let mut cum = 0;
        let cuts: Box<[(u64, Arc<str>)]> = split
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(m, w)| {
                cum += u64::from(*w);
                (cum, Arc::from(m.as_str()))
            })
            .collect();
        return Target::Split(cuts, cum, r.sticky.unwrap_or_default());
    }
    Target::To(r.to.as_deref().unwrap_or_default().into())
}

/// A hash of `s` that is the same in every process and version: the first
/// 8 bytes of its SHA-256.
pub fn stable_hash(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
}

/// SplitMix64's finalizer: spreads a combined hash over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(yaml: &str) -> Routes {
        let text = format!(
            "providers: {{ p: {{ kind: mock }} }}\nmodels:\n  smart: {{ deployments: [ {{ provider: p, model: s }} ] }}\n  cheap: {{ deployments: [ {{ provider: p, model: c }} ] }}\n  long: {{ deployments: [ {{ provider: p, model: l }} ] }}\n  next: {{ deployments: [ {{ provider: p, model: n }} ] }}\nroutes:\n{yaml}"
        );
        let cfg = crate::config::load_str(&text, std::path::Path::new("r.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        Routes::build(&cfg.routes)
    }

    fn req() -> Request<'static> {
        Request {
            tenant: Some("acme"),
            tier: Some("premium"),
            app: None,
            tags: &[],
            input_tokens: 100,
            tools: false,
            images: false,
            stream: false,
            key: 42,
            user: None,
        }
    }

    fn pick<'r>(r: &'r Routes, model: &str, q: &Request<'_>) -> Option<(&'r str, &'r str)> {
        r.pick(model, q).map(|(rule, m)| (&*rule.label, &**m))
    }

    #[test]
    fn the_first_matching_rule_wins_in_config_order() {
        let r = routes(
            "  - { name: free, match: { model: smart, tenant_tier: free }, to: cheap }\n  - { name: big, match: { model: smart, input_tokens_over: 50000 }, to: long }\n  - { name: tools, match: { tools: true }, to: next }\n  - { name: rest, match: { model: smart }, to: next }\n",
        );
        let premium = req();
        assert_eq!(pick(&r, "smart", &premium), Some(("rest", "next")));
        let free = Request {
            tier: Some("free"),
            input_tokens: 90_000,
            ..req()
        };
        assert_eq!(pick(&r, "smart", &free), Some(("free", "cheap")));
        let long = Request {
            input_tokens: 90_000,
            ..req()
        };
        assert_eq!(pick(&r, "smart", &long), Some(("big", "long")));
        // A rule naming no model applies to every model, in its place.
        let tools = Request {
            tools: true,
            ..req()
        };
        assert_eq!(pick(&r, "smart", &tools), Some(("tools", "next")));
        assert_eq!(pick(&r, "cheap", &tools), Some(("tools", "next")));
        assert_eq!(pick(&r, "cheap", &premium), None);
        assert!(r.counts_tokens("smart") && !r.counts_tokens("cheap"));
    }

    #[test]
    fn tags_tenants_apps_and_request_shape_must_all_hold() {
        let r = routes(
            "  - match: { tenant: [acme, initech], app: web, tags: { team: search }, stream: true, images: false, input_tokens_under: 500 }\n    to: cheap\n",
        );
        assert_eq!(r.tag_headers(), ["x-sluice-tag-team"]);
        let tags = [Some(HeaderValue::from_static("search"))];
        let ok = Request {
            app: Some("web"),
            tags: &tags,
            stream: true,
            ..req()
        };
        assert_eq!(pick(&r, "smart", &ok), Some(("routes[0]", "cheap")));
        let wrong_tag = [Some(HeaderValue::from_static("ads"))];
        for miss in [
            Request {
                tags: &wrong_tag,
                ..ok
            },
            Request {
                tags: &[None],
                ..ok
            },
            Request {
                app: Some("mobile"),
                ..ok
            },
            Request { app: None, ..ok },
            Request {
                tenant: Some("globex"),
                ..ok
            },
            Request {
                stream: false,
                ..ok
            },
            Request { images: true, ..ok },
            Request {
                input_tokens: 501,
                ..ok
            },
        ] {
            assert_eq!(pick(&r, "smart", &miss), None);
        }
    }

    #[test]
    fn a_split_keeps_each_caller_on_its_side_and_follows_the_weights() {
        let r = routes(
            "  - { name: canary, match: { model: smart }, split: { smart: 90, next: 10 } }\n",
        );
        let mut to_next = 0;
        for key in 0..10_000u64 {
            let q = Request {
                key: stable_hash(&key.to_string()),
                ..req()
            };
            let first = pick(&r, "smart", &q).unwrap().1;
            for _ in 0..3 {
                assert_eq!(pick(&r, "smart", &q).unwrap().1, first, "sticky per key");
            }
            to_next += usize::from(first == "next");
        }
        assert!(
            (800..=1_200).contains(&to_next),
            "{to_next} of 10,000 keys on the canary"
        );
    }

    #[test]
    fn a_split_sticky_per_user_follows_the_user_across_keys() {
        let r = routes(
            "  - { match: { model: smart }, split: { smart: 50, next: 50 }, sticky: user }\n",
        );
        let sides: std::collections::HashSet<&str> = (0..50u64)
            .map(|k| {
                pick(
                    &r,
                    "smart",
                    &Request {
                        key: k,
                        user: Some("u-17"),
                        ..req()
                    },
                )
                .unwrap()
                .1
            })
            .collect();
        assert_eq!(sides.len(), 1, "one user, one side, whatever the key");
        let users: std::collections::HashSet<&str> = (0..50)
            .map(|u| {
                let user = format!("user-{u}");
                let q = Request {
                    user: Some(&user),
                    ..req()
                };
                let side = pick(&r, "smart", &q).unwrap().1;
                if side == "smart" {
                    "smart"
                } else {
                    "next"
                }
            })
            .collect();
        assert_eq!(users.len(), 2, "users spread over both sides");
    }
}
