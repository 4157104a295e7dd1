//! What the charm recorded in earlier hooks about what it did to this
//! machine (what it installed, from which source, what it configured).
//!
//! Kept in a file in the charm dir, not in Juju's server-side state
//! (`state-set`), because it describes the machine: it must survive a hook
//! that changed the machine and then failed, while `state-set` changes are
//! dropped with the failed hook. The agent keeps files it did not deploy in
//! the charm dir across charm upgrades. Reading it costs no tool call.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::files::{self, Change, FileError};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("the charm's record {} cannot be read: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode the charm's state: {0}")]
    Encode(serde_json::Error),
    /// Written by a later revision of the charm (a downgrade): read, it
    /// could be misunderstood.
    #[error("{} is in format {format}, written by a later revision of this charm (this one knows up to {known}); refresh to that revision or later", path.display())]
    Newer {
        path: PathBuf,
        format: u32,
        known: u32,
    },
}

/// A typed record in a JSON file, written atomically and only when it
/// changed.
#[derive(Debug)]
pub struct StateFile<T> {
    path: PathBuf,
    value: T,
    saved: Vec<u8>,
}

impl<T: Serialize + DeserializeOwned + Default> StateFile<T> {
    /// Loads `path`, or starts from `T::default()` when it does not exist.
    pub fn load(path: impl Into<PathBuf>) -> Result<StateFile<T>, StateError> {
        let path = path.into();
        match files::read_optional(&path)? {
            None => Ok(StateFile {
                path,
                value: T::default(),
                saved: Vec::new(),
            }),
            Some(bytes) => {
                let value =
                    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                Ok(StateFile {
                    path,
                    value,
                    saved: bytes,
                })
            }
        }
    }

    /// [`StateFile::load`], but a file that cannot be read is moved aside
    /// to `<path>.corrupt` (kept for a post-mortem, replacing an earlier
    /// one) and the record starts afresh: the charm rebuilds it rather than
    /// failing every hook until an operator acts. The second value says
    /// what happened, for a warning.
    pub fn load_or_set_aside(
        path: impl Into<PathBuf>,
    ) -> Result<(StateFile<T>, Option<String>), StateError> {
        let path = path.into();
        match StateFile::load(&path) {
            Err(StateError::Corrupt { source, .. }) => {
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                let aside = PathBuf::from(aside);
                std::fs::rename(&path, &aside).map_err(|source| {
                    StateError::File(files::FileError {
                        action: "moving aside the unreadable",
                        path: path.clone(),
                        source,
                    })
                })?;
                let why = format!(
                    "{} could not be read ({source}); moved to {}",
                    path.display(),
                    aside.display()
                );
                Ok((StateFile::load(&path)?, Some(why)))
            }
            other => other.map(|file| (file, None)),
        }
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the record if it differs from what is on disk.
    pub fn save(&mut self) -> Result<Change, StateError> {
        let mut bytes = serde_json::to_vec_pretty(&self.value).map_err(StateError::Encode)?;
        bytes.push(b'\n');
        if bytes == self.saved {
            return Ok(Change::Unchanged);
        }
        let change = crate::durable::write_record(&self.path, &bytes, 0o600)?;
        self.saved = bytes;
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Record {
        installed: Vec<String>,
    }

    #[test]
    fn round_trips_and_saves_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".unit-state.json");
        let mut state: StateFile<Record> = StateFile::load(&path).unwrap();
        assert_eq!(state.get(), &Record::default());
        state.get_mut().installed.push("kubelet".into());
        assert_eq!(state.save().unwrap(), Change::Written);
        assert_eq!(state.save().unwrap(), Change::Unchanged);
        let again: StateFile<Record> = StateFile::load(&path).unwrap();
        assert_eq!(again.get().installed, vec!["kubelet".to_string()]);
        let mut again = again;
        assert_eq!(again.save().unwrap(), Change::Unchanged);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".unit-state.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = StateFile::<Record>::load(&path).unwrap_err();
        assert!(err.to_string().contains(".unit-state.json"), "{err}");
    }
}
