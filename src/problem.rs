//! What stands in the way of a ready unit, as its status would say it:
//! each concern recomputes its own, and the worker ranks them into the one
//! status the unit shows.

use serde::{Deserialize, Serialize};

/// Something that keeps the unit from being ready, as its status would say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The operator must act (attach a resource, fix config).
    Blocked,
    /// An upgrade waits for the `upgrade` action.
    ManualUpgrade,
    /// It will be retried on the next hook (the store failed).
    Retry,
    /// Waiting for something another unit will provide.
    Waiting,
}

impl Problem {
    pub fn blocked(message: impl Into<String>) -> Problem {
        Problem {
            kind: ProblemKind::Blocked,
            message: message.into(),
        }
    }
    pub fn waiting(message: impl Into<String>) -> Problem {
        Problem {
            kind: ProblemKind::Waiting,
            message: message.into(),
        }
    }
}
