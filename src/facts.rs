//! The facts the journal keeps about the machine, as types: what each
//! concern records of what it did. Defined here, below everything that
//! writes or reads them, so that the journal and the code that converges
//! each concern depend on these and not on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The snaps: where each came from, and a change under way.
pub mod snap {
    use super::*;

    /// Where a snap comes from.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "from", rename_all = "kebab-case")]
    pub enum Source {
        Store {
            channel: String,
        },
        Resource {
            sha256: String,
        },
        /// Found installed when the charm took the machine over, from a file
        /// it cannot match to the attached resource, or from the store on a
        /// channel snapd does not name: `revision` as snapd numbers it.
        Found {
            revision: String,
        },
    }

    impl fmt::Display for Source {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Source::Store { channel } => write!(f, "the store ({channel})"),
                Source::Resource { sha256 } => {
                    write!(
                        f,
                        "the attached resource (sha256 {})",
                        &sha256[..sha256.len().min(12)]
                    )
                }
                Source::Found { revision } => write!(f, "revision {revision} found on the machine"),
            }
        }
    }

    /// What the charm installed.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Installed {
        pub source: Source,
        pub version: String,
        /// Found on the machine rather than installed by this charm: its
        /// daemon's configuration is read from the snap before any change.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub adopted: bool,
    }

    /// A change to a snap the charm is about to make: what it will record,
    /// and the revision the machine had before (`None`: not installed).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Pending {
        pub source: Source,
        pub from_revision: Option<String>,
    }
}

/// The CNI plugins the charm owns in /opt/cni/bin.
pub mod cni {
    use super::*;

    /// What the charm installed into /opt/cni/bin.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Installed {
        pub resource: String,
        pub sha256: String,
        pub plugins: BTreeSet<String>,
    }

    /// A plugin install under way, recorded before the first plugin is moved
    /// into place.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Pending {
        pub resource: String,
        pub sha256: String,
        /// The plugins the charm owns once the install is done: those it owned
        /// before and those it is moving into place (some may be there already
        /// when the install stops half-way).
        pub plugins: BTreeSet<String>,
    }
}

/// A daemon's snap options as the charm set them, and a fingerprint of
/// everything it was last (re)started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub keys: BTreeMap<String, String>,
    pub fingerprint: String,
}

/// Written ahead: the paths of every object an apply may create, with an
/// empty fingerprint until all are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRecord {
    pub fingerprint: String,
    pub paths: Vec<String>,
}

/// An upgrade the `upgrade` action began on this node: written before it
/// cordons the node, cleared once the node is Ready on the new kubelet and
/// uncordoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The kubelet version the node must post before it is uncordoned
    /// (`None`: only kube-proxy changes, Ready is enough).
    pub to: Option<String>,
    /// The action cordoned the node (it drains unless told not to).
    pub cordoned: bool,
    /// Why it stopped, for the status (blocked) until the action is run
    /// again; `None` while it runs.
    pub stopped: Option<String>,
}

/// The drain before the node's removal, recorded before it begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopDrain {
    /// The node drained.
    pub node: String,
    /// When the drain must end (seconds since the epoch): a stop killed
    /// mid-drain and run again keeps the bound the operator set.
    pub deadline: u64,
}

/// The API server that holds the node, and its CA: `stop` runs after every
/// relation is gone and must still reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiServer {
    pub url: String,
    pub ca: String,
}

/// What the `cis-benchmark` action applied, so that later hooks keep it
/// and `reset` undoes exactly it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CisApplied {
    /// kubelet flags, merged under `kubelet-extra-args` (which wins).
    #[serde(default)]
    pub kubelet_flags: BTreeMap<String, String>,
    /// Files whose mode or owner it changed: what each had, and what it
    /// was given. Written before the change.
    #[serde(default)]
    pub files: BTreeMap<String, FileChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub before: FileMode,
    pub after: FileMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
