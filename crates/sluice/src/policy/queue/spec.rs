//! What the config sets for a scope's queue: its limits ([`QueueSpec`])
//! and the priority classes requests are queued by ([`Priority`]).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

/// The priority class of a request: waiters of a class are all served
/// before any waiter of the classes below it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
    Batch,
}

impl Priority {
    /// Every class, highest first.
    pub const ALL: [Priority; 5] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
        Priority::Batch,
    ];

    /// The config and metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Batch => "batch",
        }
    }

    /// 0 for the highest class.
    pub(super) fn rank(self) -> usize {
        self as usize
    }
}

/// The limits of one scope's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    /// Slots: requests holding one at once.
    pub max_in_flight: u32,
    /// Requests that may wait for a slot at once; 0 = none ever waits.
    pub queue: u32,
    /// The longest a request waits for a slot.
    pub timeout: Duration,
}
