//! Flattening a policy reference — a name, an inline policy, or a list —
//! into the one policy it means: items merge left to right, field by field
//! (a later `limits.timeout` overrides an earlier one without replacing the
//! whole `limits`; `rate_limit` merges the same way, see `policy::rate`).
//! Used by validation and the snapshot, so both see the same result.

use super::raw::{
    BudgetConfig, ConcurrencyConfig, LimitsConfig, PolicyConfig, PolicyItem, PolicyRef,
    RateLimitConfig, RawConfig,
};

/// One item of a level's policy reference: its name (when named) and body.
pub type Item<'a> = (Option<&'a str>, &'a PolicyConfig);

/// The items of `r` in order; names that do not resolve are left out
/// (validation reports them).
pub fn items<'a>(cfg: &'a RawConfig, r: Option<&'a PolicyRef>) -> Vec<Item<'a>> {
    let named = |n: &str| {
        cfg.policies
            .get_key_value(n)
            .map(|(name, p)| (Some(name.as_str()), p))
    };
    match r {
        None => Vec::new(),
        Some(PolicyRef::Name(n)) => named(n).into_iter().collect(),
        Some(PolicyRef::Inline(p)) => vec![(None, &**p)],
        Some(PolicyRef::List(list)) => list
            .iter()
            .filter_map(|item| match item {
                PolicyItem::Name(n) => named(n),
                PolicyItem::Inline(p) => Some((None, &**p)),
            })
            .collect(),
    }
}

/// Merges `r` left to right into one policy (guards, allow-list; rate
/// limits are resolved per item's `mode` and `rollout` by `policy::rate`).
pub fn flatten(cfg: &RawConfig, r: Option<&PolicyRef>) -> PolicyConfig {
    let mut flat = PolicyConfig::default();
    for (_, p) in items(cfg, r) {
        flat.merge(p);
    }
    flat
}

impl PolicyConfig {
    /// Applies `later` over `self`, field by field.
    pub fn merge(&mut self, later: &PolicyConfig) {
        self.mode = later.mode.or(self.mode);
        self.rollout = later.rollout.or(self.rollout);
        if let Some(r) = &later.rate_limit {
            self.rate_limit.get_or_insert_default().merge(r);
        }
        if let Some(l) = &later.limits {
            self.limits.get_or_insert_default().merge(l);
        }
        if let Some(c) = &later.concurrency {
            self.concurrency.get_or_insert_default().merge(c);
        }
        if let Some(b) = &later.budget {
            self.budget.get_or_insert_default().merge(b);
        }
        self.priority = later.priority.or(self.priority);
        if later.models.is_some() {
            self.models.clone_from(&later.models);
        }
        if later.log_bodies.is_some() {
            self.log_bodies.clone_from(&later.log_bodies);
        }
    }
}

impl RateLimitConfig {
    /// Applies `later` over `self`, field by field.
    pub fn merge(&mut self, later: &RateLimitConfig) {
        let l = later;
        self.requests_per_second = l.requests_per_second.or(self.requests_per_second);
        self.requests_per_minute = l.requests_per_minute.or(self.requests_per_minute);
        self.requests_per_hour = l.requests_per_hour.or(self.requests_per_hour);
        self.requests_per_day = l.requests_per_day.or(self.requests_per_day);
        self.tokens_per_minute = l.tokens_per_minute.or(self.tokens_per_minute);
        self.tokens_per_day = l.tokens_per_day.or(self.tokens_per_day);
        self.burst = l.burst.or(self.burst);
        self.per = l.per.or(self.per);
    }

    /// The request counts by interval: second, minute, hour, day.
    pub fn request_counts(&self) -> [Option<u32>; 4] {
        [
            self.requests_per_second,
            self.requests_per_minute,
            self.requests_per_hour,
            self.requests_per_day,
        ]
    }

    /// The token counts by interval: second, minute, hour, day (only
    /// minute and day can be set; validation refuses counts over `u32`).
    pub fn token_counts(&self) -> [Option<u32>; 4] {
        let t = |n: Option<u64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        [
            None,
            t(self.tokens_per_minute),
            None,
            t(self.tokens_per_day),
        ]
    }
}

impl BudgetConfig {
    /// Applies `later` over `self`, field by field.
    pub fn merge(&mut self, later: &BudgetConfig) {
        self.usd_per_day = later.usd_per_day.or(self.usd_per_day);
        self.usd_per_week = later.usd_per_week.or(self.usd_per_week);
        self.usd_per_month = later.usd_per_month.or(self.usd_per_month);
        if later.alert_at.is_some() {
            self.alert_at.clone_from(&later.alert_at);
        }
        if later.on_exceed.is_some() {
            self.on_exceed.clone_from(&later.on_exceed);
        }
    }

    /// The limits by period: day, week, month.
    pub fn limits(&self) -> [Option<f64>; 3] {
        [self.usd_per_day, self.usd_per_week, self.usd_per_month]
    }
}

impl ConcurrencyConfig {
    /// Applies `later` over `self`, field by field.
    pub fn merge(&mut self, later: &ConcurrencyConfig) {
        self.max_in_flight = later.max_in_flight.or(self.max_in_flight);
        self.queue = later.queue.or(self.queue);
        self.queue_timeout = later.queue_timeout.or(self.queue_timeout);
    }
}

impl LimitsConfig {
    /// Applies `later` over `self`, field by field.
    pub fn merge(&mut self, later: &LimitsConfig) {
        self.max_body_bytes = later.max_body_bytes.or(self.max_body_bytes);
        self.max_input_tokens = later.max_input_tokens.or(self.max_input_tokens);
        self.max_output_tokens = later.max_output_tokens.or(self.max_output_tokens);
        self.on_max_output = later.on_max_output.or(self.on_max_output);
        self.timeout = later.timeout.or(self.timeout);
    }
}
