//! What the worker recorded in earlier hooks: what it installed, from
//! where, and what stood in the way, so that hooks that cannot change those
//! (update-status, most relation hooks) need not look again.

use std::collections::BTreeMap;
use std::path::Path;

use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

use crate::{cni, snaps};

/// The file in the charm dir that holds [`Recorded`].
pub const STATE_FILE: &str = ".kubernetes-worker-state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recorded {
    /// The last status this charm set, so that a converged hook need not set
    /// it again (nothing else changes it but the agent before install and
    /// stop, when the charm sets it anyway).
    #[serde(default)]
    pub status: Option<(String, String)>,
    /// The workload version last given to application-version-set.
    #[serde(default)]
    pub workload_version: Option<String>,
    #[serde(default)]
    pub cni: Option<cni::Installed>,
    #[serde(default)]
    pub snaps: BTreeMap<String, snaps::Installed>,
    /// What stood in the way at the last look at the resources.
    #[serde(default)]
    pub problems: Vec<Problem>,
}

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
}

impl Recorded {
    /// Whether the next hook, whatever it is, should look at the resources
    /// again: a store failure is retried on the next hook.
    pub fn wants_retry(&self) -> bool {
        self.problems.iter().any(|p| p.kind == ProblemKind::Retry)
    }
}

pub fn load(charm_dir: &Path) -> Result<StateFile<Recorded>, StateError> {
    StateFile::load(charm_dir.join(STATE_FILE))
}
