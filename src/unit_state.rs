//! What the worker recorded in earlier hooks.

use std::path::Path;

use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

/// The file in the charm dir that holds [`Recorded`].
pub const STATE_FILE: &str = ".kubernetes-worker-state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recorded {
    /// The last status this charm set, so that a converged hook need not set
    /// it again (status-set is a tool call; nothing else changes it but the
    /// agent before install and stop, when the charm sets it anyway).
    #[serde(default)]
    pub status: Option<(String, String)>,
}

pub fn load(charm_dir: &Path) -> Result<StateFile<Recorded>, StateError> {
    StateFile::load(charm_dir.join(STATE_FILE))
}
