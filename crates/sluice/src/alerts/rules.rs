//! Alert rules (`alerts.rules`): error rate, p99 latency, breaker open and
//! spend anomaly, evaluated by one task off the request path.
//!
//! The request path does O(1) work: [`observe`] (from the access log's
//! `complete`) `try_send`s a small [`Outcome`] into a bounded queue — and
//! only when the snapshot has rules. A full queue drops the outcome and
//! counts it (`sluice_alert_samples_dropped_total`); no lock, no await.
//!
//! The [`Evaluator`] task folds outcomes into per-rule state (per-model
//! windows of fixed time slots, per-subject spend series) and every
//! `alerts.evaluate_every` judges each rule ([`Rules::evaluate`]): one
//! verdict per subject, passed through the rule and subject's [`Dedup`]
//! so an alert emits `firing` once and `resolved` once. Events go out
//! through [`super::Alerts::emit`] (log, metric, signed webhook).
//!
//! Rules are read from the snapshot at every evaluation: a reload that
//! keeps a rule unchanged keeps its state; a changed rule starts afresh; a
//! removed rule is forgotten without a `resolved` event.
//!
//! One evaluator per file: `error_rate.rs`, `latency.rs`, `breaker.rs`,
//! `spend.rs`; `window.rs` (slots and histogram), `dedup.rs`.

mod breaker;
mod dedup;
mod error_rate;
mod latency;
mod spend;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

pub use dedup::Dedup;
pub use error_rate::is_error;
pub use spend::{judge, Ewma, Verdict};

use super::{AlertEvent, AlertKind, RuleFields, RuleState, Subject};
use crate::config::raw::{AlertRule, SpendScope};
use crate::routing::breaker::Phase;
use crate::routing::Upstreams;
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::{Label, Metrics, RuleLabels};
use window::Window;

/// Outcomes waiting for the evaluator, at most.
pub const FEED_CAPACITY: usize = 65_536;
/// Models (per rule) with a window at most.
const MAX_MODELS: usize = 1000;

/// One finished request, as the rules see it.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The `models:` name it was for, when it reached one.
    pub model: Option<Arc<str>>,
    pub tenant: Option<Arc<str>>,
    pub status: u16,
    /// Arrival to the last byte.
    pub latency: Duration,
    pub cost_micro_usd: u64,
}

/// The request side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::Sender<Outcome>,
    dropped: Counter,
}

impl Feed {
    /// Queues `o` for the evaluator, or counts it dropped.
    pub fn send(&self, o: Outcome) {
        if self.tx.try_send(o).is_err() {
            self.dropped.inc();
        }
    }
}

/// The feed and its evaluator (run it with [`Evaluator::spawn`]).
pub fn feed(metrics: &Metrics) -> (Feed, Evaluator) {
    let (tx, rx) = mpsc::channel(FEED_CAPACITY);
    let feed = Feed {
        tx,
        dropped: metrics.alert_samples_dropped.clone(),
    };
    let rules = Rules::new(metrics.alert_rules_firing.clone());
    (feed, Evaluator { rx, rules })
}

/// Sends the finished request to the rules, when the snapshot has any.
pub fn observe(ctx: &crate::pipeline::RequestCtx, latency: Duration) {
    let Some(a) = &ctx.snap.config.alerts else {
        return;
    };
    if a.rules.is_empty() {
        return;
    }
    // A request refused before a deployment was tried (every breaker
    // open) still counts for the model it asked for — a known one only.
    let model = ctx.attempts.model.clone().or_else(|| {
        let asked = ctx.requested_model.as_deref()?;
        ctx.snap.models.get_key_value(asked).map(|(k, _)| k.clone())
    });
    ctx.app.alert_feed.send(Outcome {
        model,
        tenant: ctx.key.as_ref().and_then(|k| k.tenant.clone()),
        status: ctx.status,
        latency,
        cost_micro_usd: ctx.cost_micro_usd.unwrap_or(0),
    });
}

/// The evaluator task.
pub struct Evaluator {
    rx: mpsc::Receiver<Outcome>,
    rules: Rules,
}

impl Evaluator {
    /// Runs until `stop` turns true (or its sender is gone).
    pub fn spawn(
        self,
        app: crate::state::App,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(app, stop))
    }

    async fn run(mut self, app: crate::state::App, mut stop: watch::Receiver<bool>) {
        let mut buf = Vec::with_capacity(256);
        let mut open = true;
        let mut last = Instant::now();
        self.rules.sync(&app.snapshot.load(), last);
        loop {
            let snap = app.snapshot.load_full();
            let every = snap
                .config
                .alerts
                .as_ref()
                .map_or(Duration::from_secs(10), |a| a.evaluate_every());
            let next = tokio::time::Instant::from_std(last + every);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                n = self.rx.recv_many(&mut buf, 256), if open => {
                    open = n > 0;
                    let now = Instant::now();
                    for o in buf.drain(..) {
                        self.rules.observe(&o, now);
                    }
                }
                () = tokio::time::sleep_until(next) => {
                    last = Instant::now();
                    for ev in self.rules.evaluate(&snap, &app.dispatcher.upstreams, last) {
                        app.alerts.emit(ev);
                    }
                }
            }
        }
    }
}

/// Every rule's state, by rule.
pub struct Rules {
    rules: Vec<Rule>,
    firing: Family<RuleLabels, Gauge>,
}

struct Rule {
    def: AlertRule,
    data: Data,
    dedup: HashMap<Subject, Dedup>,
}

enum Data {
    /// Per-model windows (`error_rate`, `latency_p99`).
    Windows {
        origin: Instant,
        models: HashMap<Arc<str>, Window>,
    },
    Breaker(breaker::Watch),
    Spend(spend::Spend),
}

/// One subject's verdict in an evaluation.
#[derive(Debug)]
struct Obs {
    subject: Subject,
    firing: bool,
    value: Option<f64>,
    requests: Option<u64>,
    spend: Option<(f64, f64)>,
    phase: Option<&'static str>,
}

impl Obs {
    fn new(subject: Subject, firing: bool, value: Option<f64>) -> Obs {
        Obs {
            subject,
            firing,
            value,
            requests: None,
            spend: None,
            phase: None,
        }
    }
}

impl Rules {
    pub fn new(firing: Family<RuleLabels, Gauge>) -> Rules {
        Rules {
            rules: Vec::new(),
            firing,
        }
    }

    /// Takes the snapshot's rules: unchanged ones keep their state.
    pub fn sync(&mut self, snap: &Snapshot, now: Instant) {
        let defs = snap.config.alerts.as_ref().map_or(&[][..], |a| &a.rules);
        let mut old: HashMap<String, Rule> = (self.rules.drain(..))
            .map(|r| (r.def.name().to_string(), r))
            .collect();
        for def in defs {
            let rule = match old.remove(def.name()) {
                Some(r) if r.def == *def => r,
                _ => Rule::new(def.clone(), now),
            };
            self.rules.push(rule);
        }
        for gone in old.keys() {
            self.gauge(gone).set(0);
        }
    }

    fn gauge(&self, rule: &str) -> Gauge {
        self.firing
            .get_or_create(&RuleLabels {
                rule: Label(rule.into()),
            })
            .clone()
    }

    /// Folds one finished request into every rule it concerns.
    pub fn observe(&mut self, o: &Outcome, now: Instant) {
        for r in &mut self.rules {
            r.observe(o, now);
        }
    }

    /// Syncs with the snapshot, judges every rule, and returns the events
    /// to emit (after deduplication).
    pub fn evaluate(
        &mut self,
        snap: &Snapshot,
        upstreams: &Upstreams,
        now: Instant,
    ) -> Vec<AlertEvent> {
        self.sync(snap, now);
        let mut events = Vec::new();
        for i in 0..self.rules.len() {
            let r = &mut self.rules[i];
            let obs = r.judge(snap, upstreams, now);
            events.extend(r.dedup(obs, now));
            let firing = r.dedup.len() as i64;
            let name = r.def.name().to_string();
            self.gauge(&name).set(firing);
        }
        events
    }
}

impl Rule {
    fn new(def: AlertRule, now: Instant) -> Rule {
        let data = match &def {
            AlertRule::ErrorRate { .. } | AlertRule::LatencyP99 { .. } => Data::Windows {
                origin: now,
                models: HashMap::new(),
            },
            AlertRule::BreakerOpen { .. } => Data::Breaker(breaker::Watch::default()),
            AlertRule::SpendAnomaly {
                z,
                window,
                warmup,
                alpha,
                ..
            } => Data::Spend(spend::Spend::new(
                now,
                window.0,
                *z,
                *warmup,
                alpha.unwrap_or(spend::DEFAULT_ALPHA),
            )),
        };
        Rule {
            def,
            data,
            dedup: HashMap::new(),
        }
    }

    fn observe(&mut self, o: &Outcome, now: Instant) {
        match (&self.def, &mut self.data) {
            (
                AlertRule::ErrorRate { model, window, .. }
                | AlertRule::LatencyP99 { model, window, .. },
                Data::Windows { origin, models },
            ) => {
                let Some(m) = &o.model else { return };
                if model.as_deref().is_some_and(|want| want != &**m) {
                    return;
                }
                if !models.contains_key(m) && models.len() >= MAX_MODELS {
                    return;
                }
                let w = (models.entry(m.clone())).or_insert_with(|| Window::new(window.0, *origin));
                w.record(now, is_error(o.status), o.latency);
            }
            (AlertRule::SpendAnomaly { scope, .. }, Data::Spend(s)) => {
                let subject = match scope {
                    SpendScope::Global => Subject::Global,
                    SpendScope::Tenant => match &o.tenant {
                        Some(t) => Subject::Tenant(t.to_string()),
                        None => return,
                    },
                    SpendScope::Model => match &o.model {
                        Some(m) => Subject::Model(m.to_string()),
                        None => return,
                    },
                };
                s.record(now, subject, o.cost_micro_usd as f64 / 1e6);
            }
            _ => {}
        }
    }

    /// Every subject's verdict now.
    fn judge(&mut self, snap: &Snapshot, upstreams: &Upstreams, now: Instant) -> Vec<Obs> {
        let mut out = Vec::new();
        match (&self.def, &mut self.data) {
            (
                AlertRule::ErrorRate {
                    above,
                    min_requests,
                    ..
                },
                Data::Windows { models, .. },
            ) => {
                models.retain(|_, w| !w.is_empty(now));
                for (m, w) in models.iter_mut() {
                    let t = w.totals(now);
                    let (value, firing) = match error_rate::verdict(&t, *above, *min_requests) {
                        Some((v, f)) => (Some(v), f),
                        None => (None, false),
                    };
                    let mut o = Obs::new(Subject::Model(m.to_string()), firing, value);
                    o.requests = Some(t.requests);
                    out.push(o);
                }
            }
            (
                AlertRule::LatencyP99 {
                    above,
                    min_requests,
                    ..
                },
                Data::Windows { models, .. },
            ) => {
                models.retain(|_, w| !w.is_empty(now));
                for (m, w) in models.iter_mut() {
                    let t = w.totals(now);
                    let (value, firing) = match latency::verdict(&t, above.0, *min_requests) {
                        Some((v, f)) => (Some(v.as_secs_f64()), f),
                        None => (None, false),
                    };
                    let mut o = Obs::new(Subject::Model(m.to_string()), firing, value);
                    o.requests = Some(t.requests);
                    out.push(o);
                }
            }
            (AlertRule::BreakerOpen { model, .. }, Data::Breaker(watch)) => {
                let mut keep = HashSet::new();
                for (name, m) in &snap.models {
                    if model.as_deref().is_some_and(|want| want != &**name) {
                        continue;
                    }
                    for d in &m.deployments {
                        let live = d.live(upstreams);
                        let phase = live.breaker.phase(now);
                        let firing = watch.judge(&d.key, phase, live.breaker.opens());
                        keep.insert(d.key.clone());
                        let mut o = Obs::new(Subject::Deployment(d.key.to_string()), firing, None);
                        o.phase = Some(phase_str(phase));
                        out.push(o);
                    }
                }
                watch.retain(&keep);
            }
            (AlertRule::SpendAnomaly { .. }, Data::Spend(s)) => {
                for (subject, v) in s.verdicts(now) {
                    let mut o = Obs::new(subject, v.firing, Some(v.z));
                    o.spend = Some((v.spend, v.mean));
                    out.push(o);
                }
            }
            _ => {}
        }
        out
    }

    /// Passes verdicts through each subject's [`Dedup`]; a firing subject
    /// without a verdict now resolves. Keeps only firing subjects.
    fn dedup(&mut self, obs: Vec<Obs>, now: Instant) -> Vec<AlertEvent> {
        let repeat = self.def.repeat_every();
        let mut events = Vec::new();
        let mut seen = HashSet::new();
        for o in obs {
            let d = self.dedup.entry(o.subject.clone()).or_default();
            if let Some(state) = d.step(o.firing, now, repeat) {
                events.push(self.event(&o, state));
            }
            seen.insert(o.subject);
        }
        let gone: Vec<Subject> = (self.dedup.keys())
            .filter(|s| !seen.contains(*s))
            .cloned()
            .collect();
        for s in gone {
            let o = Obs::new(s, false, None);
            if let Some(state) = self
                .dedup
                .entry(o.subject.clone())
                .or_default()
                .step(false, now, repeat)
            {
                events.push(self.event(&o, state));
            }
        }
        self.dedup.retain(|_, d| d.firing());
        events
    }

    fn event(&self, o: &Obs, state: RuleState) -> AlertEvent {
        let secs = |d: Duration| Some(d.as_secs_f64());
        let (kind, threshold, unit, window) = match &self.def {
            AlertRule::ErrorRate { above, window, .. } => {
                (AlertKind::ErrorRate, Some(*above), "ratio", secs(window.0))
            }
            AlertRule::LatencyP99 { above, window, .. } => (
                AlertKind::LatencyP99,
                secs(above.0),
                "seconds",
                secs(window.0),
            ),
            AlertRule::BreakerOpen { .. } => (AlertKind::BreakerOpen, None, "state", None),
            AlertRule::SpendAnomaly { z, window, .. } => {
                (AlertKind::SpendAnomaly, Some(*z), "z", secs(window.0))
            }
        };
        let fields = RuleFields {
            rule: self.def.name().to_string(),
            state,
            value: o.value,
            threshold,
            unit,
            window_secs: window,
            requests: o.requests,
            interval_usd: o.spend.map(|s| s.0),
            mean_usd: o.spend.map(|s| s.1),
            phase: o.phase,
        };
        AlertEvent::rule(kind, &o.subject, fields)
    }
}

fn phase_str(p: Phase) -> &'static str {
    p.as_str()
}

#[cfg(test)]
mod tests;
