//! Why a request got no slot, and the answer that says so: 429 when the
//! queue is full, 503 when the wait ran out, both with `Retry-After`.

use std::time::Duration;

use crate::error::{ErrorKind, GatewayError};

/// Why a request got no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRefusal {
    /// The queue was full (or `queue` is 0 and no slot was free): 429.
    Full { retry_after: Duration },
    /// The deadline passed before a slot came: 503.
    Timeout {
        retry_after: Duration,
        waited: Duration,
    },
}

impl QueueRefusal {
    /// The hint for `Retry-After`, 1 s ..= 60 s.
    pub fn retry_after(&self) -> Duration {
        match *self {
            QueueRefusal::Full { retry_after } | QueueRefusal::Timeout { retry_after, .. } => {
                retry_after
            }
        }
    }

    /// The metric label value: `queue_full` or `queue_timeout`.
    pub fn reason(&self) -> &'static str {
        match self {
            QueueRefusal::Full { .. } => "queue_full",
            QueueRefusal::Timeout { .. } => "queue_timeout",
        }
    }

    /// The answer: 429 for a full queue, 503 for a timeout, both with
    /// `Retry-After`. `label` names the scope ("tenant `acme`").
    pub fn to_error(&self, label: &str) -> GatewayError {
        let secs = self.retry_after().as_secs_f64().ceil().max(1.0) as u64;
        let (kind, what) = match *self {
            QueueRefusal::Full { .. } => (
                ErrorKind::QueueFull,
                format!("the concurrency queue of {label} is full"),
            ),
            QueueRefusal::Timeout { waited, .. } => (
                ErrorKind::QueueTimeout,
                format!(
                    "no concurrency slot of {label} came free within {:.1} s",
                    waited.as_secs_f64()
                ),
            ),
        };
        let mut e = GatewayError::new(kind, format!("{what}; retry in {secs} s"));
        e.retry_after = Some(Duration::from_secs(secs));
        e
    }
}
