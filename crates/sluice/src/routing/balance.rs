//! The balancer: a model's deployments in the order a request tries them —
//! the strategy's pick first, then the others (as fallbacks within the
//! model), each strategy breaking ties by rotation so equals share load.
//!
//! | strategy | first | then |
//! |---|---|---|
//! | `round_robin` | the next in turn | the rest in config order |
//! | `weighted` | by weight (a position on the cumulative weight line) | the rest in config order |
//! | `least_busy` | fewest requests in flight | by requests in flight |
//! | `least_latency` | power of two choices: of two at random, the lower peak-EWMA latency (time to first token for streams) × (in flight + 1) | by that cost |
//! | `lowest_cost` | the cheapest (input + output price per token) | by price |
//! | `usage_aware` | the most room left under its caps and the provider's learned limits | by room |
//!
//! Circuit breakers are asked later, by the dispatcher, as it tries each
//! candidate (asking admits a half-open trial, so only the one tried asks).

use std::sync::atomic::Ordering;

use crate::config::raw::Strategy;
use crate::snapshot::Model;

use super::Upstreams;

/// Deployment indices of `model`, in the order to try them.
pub fn order(model: &Model, ups: &Upstreams) -> Vec<usize> {
    let n = model.deployments.len();
    if n <= 1 {
        return (0..n).collect();
    }
    let tick = model.cursor.fetch_add(1, Ordering::Relaxed);
    match model.strategy {
        Strategy::RoundRobin => first_then_rest(tick % n, n),
        Strategy::Weighted => first_then_rest(weighted(model, tick), n),
        Strategy::LeastBusy => by_cost(rotated(tick, n), |i| {
            f64::from(model.deployments[i].live(ups).in_flight())
        }),
        Strategy::LeastLatency => least_latency(model, ups, tick),
        Strategy::LowestCost => by_cost(rotated(tick, n), |i| {
            model.deployments[i]
                .price
                .map_or(f64::MAX, |p| p.input + p.output)
        }),
        Strategy::UsageAware => {
            let now = std::time::Instant::now();
            by_cost(rotated(tick, n), |i| {
                let d = &model.deployments[i];
                -d.live(ups).usage.headroom(&d.caps, now)
            })
        }
    }
}

fn first_then_rest(first: usize, n: usize) -> Vec<usize> {
    std::iter::once(first)
        .chain((0..n).filter(|i| *i != first))
        .collect()
}

/// The weighted pick: position `tick` on the cumulative weight line.
fn weighted(model: &Model, tick: usize) -> usize {
    let total = model.total_weight.max(1);
    let mut at = (tick as u64 % total) as u32;
    for (i, d) in model.deployments.iter().enumerate() {
        if at < d.weight {
            return i;
        }
        at -= d.weight;
    }
    0
}

/// 0..n starting at `tick % n`, so ties go round robin.
fn rotated(tick: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (i + tick) % n).collect()
}

/// `idx` stably sorted by `cost`, lowest first.
fn by_cost(mut idx: Vec<usize>, cost: impl Fn(usize) -> f64) -> Vec<usize> {
    // `idx` is a permutation of 0..n.
    let costs: Vec<f64> = (0..idx.len()).map(&cost).collect();
    idx.sort_by(|a, b| costs[*a].total_cmp(&costs[*b]));
    idx
}

/// Power of two choices over peak-EWMA latency × (in flight + 1); the
/// others follow by that cost.
fn least_latency(model: &Model, ups: &Upstreams, tick: usize) -> Vec<usize> {
    let n = model.deployments.len();
    let cost = |i: usize| {
        let live = model.deployments[i].live(ups);
        live.latency.micros() * f64::from(live.in_flight() + 1)
    };
    let a = fastrand::usize(..n);
    let b = (a + 1 + fastrand::usize(..n - 1)) % n;
    let first = if cost(b) < cost(a) { b } else { a };
    let mut rest = by_cost(rotated(tick, n), cost);
    rest.retain(|i| *i != first);
    std::iter::once(first).chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn model(weights: &[u32]) -> std::sync::Arc<Model> {
        let deps: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{{ provider: p, model: d{i}, weight: {w} }}"))
            .collect();
        let yaml = format!(
            "providers: {{ p: {{ kind: mock }} }}\nmodels:\n  m: {{ strategy: weighted, deployments: [ {} ] }}\n",
            deps.join(", ")
        );
        let cfg = crate::config::load_str(&yaml, std::path::Path::new("w.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let snap = crate::snapshot::Snapshot::build(&cfg, 1).unwrap();
        snap.models.get("m").unwrap().clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Over whole turns of the weight line, each deployment is first
        /// exactly as often as its weight says, and every order holds
        /// every deployment once.
        #[test]
        fn weighted_picks_converge_to_the_weights(weights in prop::collection::vec(1u32..20, 2..6), turns in 1usize..4) {
            let m = model(&weights);
            let ups = Upstreams::default();
            let total: u32 = weights.iter().sum();
            let mut firsts = vec![0u32; weights.len()];
            for _ in 0..(total as usize * turns) {
                let order = order(&m, &ups);
                let mut sorted = order.clone();
                sorted.sort_unstable();
                prop_assert_eq!(sorted, (0..weights.len()).collect::<Vec<_>>());
                firsts[order[0]] += 1;
            }
            let want: Vec<u32> = weights.iter().map(|w| w * turns as u32).collect();
            prop_assert_eq!(firsts, want);
        }
    }
}
