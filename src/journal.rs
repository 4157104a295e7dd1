//! The journal: facts about this machine that only the charm knows, and
//! that no later look at Juju can give back: which plugins in
//! `/opt/cni/bin` are its own, and which API server holds its node.
//!
//! Kept apart from the cache of Juju inputs and problems (the unit state
//! file), which may be dropped and re-read at any time, and written ahead:
//! an entry describing a change is saved before the change, and confirmed
//! after it, so that a hook killed or failed in between leaves a record
//! the next hook converges from.
//!
//! The format is versioned: a later revision reads every earlier format
//! (fields are only ever added, each with a default); a format newer than
//! this revision knows is refused rather than misread (a downgrade).

use std::path::Path;

use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

use crate::cni;
use crate::error::Error;

/// The file in the charm dir that holds the [`Journal`].
pub const JOURNAL_FILE: &str = ".kubernetes-worker-journal.json";

/// The format this revision writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    #[serde(default = "first_format")]
    pub format: u32,
    /// The plugins the charm installed, confirmed.
    #[serde(default)]
    pub cni: Option<cni::Installed>,
    /// A plugin install under way: written before the first plugin is
    /// moved into place, cleared once all are.
    #[serde(default)]
    pub cni_pending: Option<cni::Pending>,
    /// The API server this node registered with, and its CA: `stop` runs
    /// after every relation is gone and must still reach it.
    #[serde(default)]
    pub api_server: Option<ApiServer>,
    /// The node whose deletion `stop` sent: a stop retried after a kill
    /// finds it gone, and knows why.
    #[serde(default)]
    pub node_deleted: Option<String>,
}

fn first_format() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiServer {
    pub url: String,
    pub ca: String,
}

/// The journal of the charm in `charm_dir`, or a new one.
pub fn load(charm_dir: &Path) -> Result<StateFile<Journal>, Error> {
    let mut file: StateFile<Journal> = StateFile::load(charm_dir.join(JOURNAL_FILE))?;
    let format = file.get().format;
    if format > FORMAT {
        return Err(Error::State(StateError::Newer {
            path: file.path().to_path_buf(),
            format,
            known: FORMAT,
        }));
    }
    file.get_mut().format = FORMAT;
    Ok(file)
}
