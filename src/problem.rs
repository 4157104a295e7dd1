//! What stands in the way of a ready unit, as its status would say it:
//! each concern recomputes its own, and the worker ranks them into the one
//! status the unit shows.

use std::collections::BTreeMap;

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
    /// The unit waits for its turn in a rolling upgrade (shown as
    /// waiting, and before a held upgrade, which the roll will apply).
    Queued,
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

/// Who found a problem: each concern recomputes its own list, and the
/// status shows the most urgent of all. Declared in the order the status
/// ranks problems of the same urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concern {
    /// What stopped the last hook half-way though the machine is not
    /// broken (a program past its deadline, a full disk), until a hook
    /// gets through.
    Hook,
    /// The resources and snaps, most urgent first.
    Resources,
    /// The options.
    Config,
    /// What stands in the way of a configured, running node.
    Node,
    /// What keeps the COS configuration from being published.
    Cos,
    /// What kept the ingress controller from being applied or removed.
    Ingress,
    /// Where this unit stands in a rolling upgrade ([`crate::roll`]).
    Roll,
    /// What keeps the cloud's integrator from having answered
    /// ([`crate::cloud`]).
    Cloud,
}

/// What each concern last found wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problems(BTreeMap<Concern, Vec<Problem>>);

impl Problems {
    pub fn of(&self, concern: Concern) -> &[Problem] {
        self.0.get(&concern).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn is_clear(&self, concern: Concern) -> bool {
        self.of(concern).is_empty()
    }

    /// Replaces what `concern` found wrong.
    pub fn set(&mut self, concern: Concern, problems: Vec<Problem>) {
        if problems.is_empty() {
            self.0.remove(&concern);
        } else {
            self.0.insert(concern, problems);
        }
    }

    pub fn clear(&mut self, concern: Concern) {
        self.0.remove(&concern);
    }

    /// The one problem the status shows: what the operator must fix (a
    /// blocked one), a turn awaited in a rolling upgrade, a held upgrade,
    /// else what the unit waits for;
    /// among equals, the first concern's first.
    pub fn most_urgent(&self) -> Option<&Problem> {
        let rank = |kind: ProblemKind| match kind {
            ProblemKind::Blocked => 0,
            ProblemKind::Queued => 1,
            ProblemKind::ManualUpgrade => 2,
            ProblemKind::Retry | ProblemKind::Waiting => 3,
        };
        self.0.values().flatten().min_by_key(|p| rank(p.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_sees_what_to_fix_before_what_to_wait_for() {
        let mut problems = Problems::default();
        assert_eq!(problems.most_urgent(), None);
        problems.set(Concern::Hook, vec![Problem::waiting("snap timed out")]);
        problems.set(
            Concern::Node,
            vec![Problem::waiting("certs"), Problem::blocked("relate cni")],
        );
        problems.set(Concern::Config, vec![Problem::blocked("bad labels")]);
        assert_eq!(
            problems.most_urgent().map(|p| p.message.as_str()),
            Some("bad labels")
        );
        problems.clear(Concern::Config);
        assert_eq!(
            problems.most_urgent().map(|p| p.message.as_str()),
            Some("relate cni")
        );
        problems.set(Concern::Node, Vec::new());
        assert!(problems.is_clear(Concern::Node));
        let held = Problem {
            kind: ProblemKind::ManualUpgrade,
            message: "Needs manual upgrade".into(),
        };
        problems.set(Concern::Resources, vec![Problem::waiting("store"), held]);
        assert_eq!(
            problems.most_urgent().map(|p| p.message.as_str()),
            Some("Needs manual upgrade")
        );
        problems.clear(Concern::Resources);
        // Among those waiting, the interrupted hook's comes first.
        problems.set(Concern::Ingress, vec![Problem::waiting("ingress")]);
        assert_eq!(
            problems.most_urgent().map(|p| p.message.as_str()),
            Some("snap timed out")
        );
    }
}
