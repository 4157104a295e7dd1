//! The journal: facts about this machine that only the charm knows, and
//! that no later look at Juju can give back: which snaps and plugins it
//! installed and from where, what it set in the snaps and started the
//! daemons with, the kernel tunables it loaded, the labels it applied, the
//! API server that holds its node, and whether it stopped.
//!
//! Kept apart from the cache of Juju inputs and problems (the unit state
//! file, [`crate::unit_state`]), which may be dropped and re-read at any
//! time. Entries that describe a change the charm cannot redo blindly (the
//! plugins it is moving into place, the node it is deleting) are written
//! ahead: saved before the change and confirmed after, so that a hook
//! killed or failed in between leaves a record the next hook converges
//! from.
//!
//! The format is versioned: a later revision reads every earlier format
//! (fields are only ever added, each with a default); a format newer than
//! this revision knows is refused rather than misread (a downgrade).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use charm::files;
use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::facts::{self, ApiServer, DaemonRecord, IngressRecord};

/// The file in the charm dir that holds the [`Journal`].
pub const JOURNAL_FILE: &str = ".kubernetes-worker-journal.json";

/// The cache's file ([`crate::unit_state`]), where revisions before the
/// journal kept these facts too.
pub const STATE_FILE: &str = ".kubernetes-worker-state.json";

/// The format this revision writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    #[serde(default = "first_format")]
    pub format: u32,
    /// The plugins the charm installed, confirmed.
    #[serde(default)]
    pub cni: Option<facts::cni::Installed>,
    /// A plugin install under way: written before the first plugin is
    /// moved into place, cleared once all are.
    #[serde(default)]
    pub cni_pending: Option<facts::cni::Pending>,
    /// The snaps the charm installed, each with its source.
    #[serde(default)]
    pub snaps: BTreeMap<String, facts::snap::Installed>,
    /// A snap install or refresh under way: written before the call, with
    /// the revision the machine had, and cleared once recorded. A hook
    /// stopped in between learns from it whether the change went through,
    /// and does not take its own snap for another's.
    #[serde(default)]
    pub snap_pending: BTreeMap<String, facts::snap::Pending>,
    /// Daemons stopped and disabled ahead of their snap's refresh, so that
    /// snapd does not start the new binary on the old options: each is
    /// started once, on its new configuration (or, if the node cannot be
    /// configured, on the one it has).
    #[serde(default)]
    pub parked: BTreeSet<String>,
    /// Whether `snap refresh --hold` was done (`Some(false)`: snapd too
    /// old to hold).
    #[serde(default)]
    pub snaps_held: Option<bool>,
    /// Per daemon snap: the snap config keys set, and a fingerprint of
    /// everything it was last (re)started with.
    #[serde(default)]
    pub daemons: BTreeMap<String, DaemonRecord>,
    /// Fingerprint of the sysctl file last loaded, and what the kernel
    /// refused of it.
    #[serde(default)]
    pub sysctl_applied: Option<String>,
    #[serde(default)]
    pub sysctl_refused: Option<String>,
    /// Labels this charm applied to the node, and those it removed at the
    /// operator's request (`key-`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub labels_removed: BTreeSet<String>,
    /// Applying labels failed and must be retried.
    #[serde(default)]
    pub labels_pending: bool,
    /// The API server this node registered with, and its CA: `stop` runs
    /// after every relation is gone and must still reach it.
    #[serde(default)]
    pub api_server: Option<ApiServer>,
    /// The name the node was configured under (kubelet's
    /// `--hostname-override`): `stop` deletes that node, whatever the
    /// relations it no longer has would name it.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The node whose deletion `stop` sent: a stop retried after a kill
    /// finds it gone, and knows why.
    #[serde(default)]
    pub node_deleted: Option<String>,
    /// The drain `stop` began before deleting the node.
    #[serde(default)]
    pub stop_drain: Option<facts::StopDrain>,
    /// What the stop's outcome says of the drain (done, skipped and why,
    /// pods left), kept for a stop run again after the deletion.
    #[serde(default)]
    pub stop_drained: Option<String>,
    /// The unit is stopping: nothing restarts the daemons any more.
    #[serde(default)]
    pub stopped: bool,
    /// What the stop hook did about the node (removed, not found, could
    /// not): the status says exactly that.
    #[serde(default)]
    pub stop_outcome: Option<String>,
    /// The ingress controller's objects this unit applied as the leader.
    #[serde(default)]
    pub ingress: Option<IngressRecord>,
    /// An upgrade under way or stopped, with the node cordoned.
    #[serde(default)]
    pub upgrade: Option<facts::UpgradeRecord>,
    /// What the cis-benchmark action applied (kubelet flags, file modes).
    #[serde(default)]
    pub cis: facts::CisApplied,
}

fn first_format() -> u32 {
    1
}

/// The journal's file: read once per hook, saved when an entry must be on
/// disk before a change, and at the end of the hook.
pub struct JournalFile(StateFile<Journal>);

impl Journal {
    /// The kubelet snap's version as last installed or found, if any.
    pub fn kubelet_version(&self) -> Option<&str> {
        self.snaps.get("kubelet").map(|s| s.version.as_str())
    }
}

impl JournalFile {
    /// Writes `journal` if it differs from what is on disk.
    pub fn persist(&mut self, journal: &Journal) -> Result<(), Error> {
        if self.0.get() != journal {
            *self.0.get_mut() = journal.clone();
        }
        self.0.save()?;
        Ok(())
    }
}

/// Why there was no journal to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Afresh {
    /// None on disk: a new unit, a switch from another charm, or one lost.
    Missing,
    /// One that could not be read, moved aside (logged here, with where).
    SetAside,
}

/// The journal of the charm in `charm_dir`. A charm revision that kept
/// these facts in the unit state file (before format 1) left them there
/// under the same names: they are taken from it.
pub fn load(charm_dir: &Path) -> Result<(JournalFile, Journal, Option<Afresh>), Error> {
    let path = charm_dir.join(JOURNAL_FILE);
    let existed = path.exists();
    let (mut file, corrupt) = StateFile::<Journal>::load_or_set_aside(&path)?;
    let mut afresh = None;
    if let Some(why) = corrupt {
        // What the machine holds is adopted again, as after a takeover.
        log::warn!("the charm's journal {why}; taking over what the machine holds");
        afresh = Some(Afresh::SetAside);
    }
    if !existed {
        afresh = Some(Afresh::Missing);
        if let Some(bytes) = files::read_optional(&charm_dir.join(STATE_FILE))? {
            // Today's cache holds none of these facts: only an earlier
            // revision's state file gives a journal that is not empty.
            match serde_json::from_slice::<Journal>(&bytes) {
                Ok(earlier)
                    if earlier
                        != (Journal {
                            format: earlier.format,
                            ..Journal::default()
                        }) =>
                {
                    *file.get_mut() = earlier;
                    afresh = None;
                }
                _ => {}
            }
        }
    }
    let format = file.get().format;
    if format > FORMAT {
        return Err(Error::State(StateError::Newer {
            path: file.path().to_path_buf(),
            format,
            known: FORMAT,
        }));
    }
    file.get_mut().format = FORMAT;
    let journal = file.get().clone();
    Ok((JournalFile(file), journal, afresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_an_earlier_revision_kept_in_the_state_file_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // As that revision wrote it: these facts beside the cache's own.
        let kubelet = facts::snap::Installed {
            source: facts::snap::Source::Store {
                channel: "1.31/stable".into(),
            },
            version: "1.31.2".into(),
            adopted: false,
        };
        let earlier = serde_json::json!({
            "status": ["active", "x"],
            "options": null,
            "snaps": {"kubelet": kubelet},
            "cni": {"resource": "cni-amd64", "sha256": "ab", "plugins": ["bridge"]},
            "labels": {"a": "b"},
            "stopped": false,
            "daemons": {},
        });
        std::fs::write(dir.path().join(STATE_FILE), earlier.to_string()).unwrap();
        let (mut file, journal, afresh) = load(dir.path()).unwrap();
        assert_eq!(afresh, None);
        assert_eq!(journal.format, FORMAT);
        assert!(journal.snaps.contains_key("kubelet"), "{journal:?}");
        assert_eq!(journal.cni.as_ref().unwrap().plugins.len(), 1);
        assert_eq!(journal.labels["a"], "b");
        file.persist(&journal).unwrap();
        // Once the journal exists, it is the record.
        std::fs::write(dir.path().join(STATE_FILE), "{}").unwrap();
        let (_, again, _) = load(dir.path()).unwrap();
        assert_eq!(again, journal);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), r#"{"format": 2}"#).unwrap();
        let err = load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("format 2"), "{err}");
    }
}
