//! What the worker recorded in earlier hooks: what it installed, from
//! where, and what stood in the way, so that hooks that cannot change those
//! (update-status, most relation hooks) need not look again.

use std::collections::BTreeMap;
use std::path::Path;

use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

use charm::tools::Databag;

use crate::relations::EndpointData;
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
    /// The options the resources were last looked at with (`channel`,
    /// `require-manual-upgrade`): config-changed looks again only when
    /// they changed, since new resources come with upgrade-charm.
    #[serde(default)]
    pub resources_for: Option<(String, bool)>,
    /// Resource fingerprints by file identity.
    #[serde(default)]
    pub fingerprints: charm::resources::FingerprintCache,
    /// The options that shape the node, as last read (config-get runs only
    /// in hooks where config can have changed).
    #[serde(default)]
    pub options: Option<NodeOptions>,
    /// What is wrong with the options.
    #[serde(default)]
    pub config_problems: Vec<Problem>,
    /// Remote data per endpoint, as last read. Holds tokens and keys: this
    /// file is 0600, like the files they end up in.
    #[serde(default)]
    pub relations: BTreeMap<String, EndpointData>,
    /// What this unit wrote to each relation (by relation id). Like Juju's
    /// own record, it is rolled back when the hook fails.
    #[serde(default)]
    pub published: BTreeMap<String, Databag>,
    /// This unit's (public, private) address, for certificate requests.
    #[serde(default)]
    pub addresses: Option<(String, String)>,
    /// What stands in the way of a configured, running node.
    #[serde(default)]
    pub node_problems: Vec<Problem>,
    /// Per daemon snap: the snap config keys set, and a fingerprint of
    /// everything it was last (re)started with.
    #[serde(default)]
    pub daemons: BTreeMap<String, DaemonRecord>,
    /// Labels this charm applied to the node.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether applying labels failed and must be retried.
    #[serde(default)]
    pub labels_pending: bool,
    /// Whether the ingress ports are open, as this unit last set them;
    /// rolled back with a failed hook, as Juju rolls back the ports.
    #[serde(default)]
    pub ingress_open: Option<bool>,
    /// The unit is stopping: nothing restarts the daemons any more.
    #[serde(default)]
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOptions {
    pub allow_privileged: bool,
    pub kubelet_extra_args: BTreeMap<String, String>,
    pub proxy_extra_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub ingress: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub keys: BTreeMap<String, String>,
    pub fingerprint: String,
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
