//! A hook's intent to change the machine, recorded before its first change.
//!
//! A hook can be killed at any instant (a reboot, an agent restart, the
//! OOM killer). Juju then drops the hook's transactional changes (relation
//! data, ports) and runs it again, but the charm itself cannot see the kill.
//! What it can see is a mark left behind: [`before_change`] writes one
//! (durably) before the first change a hook makes, and [`Intent::finish`]
//! removes it once the hook's work is done and recorded. A hook that finds
//! the mark knows the previous one did not finish, and redoes what may
//! have been lost.
//!
//! A converged hook changes nothing, so it writes no mark: no file is
//! touched when there is nothing to do.
//!
//! The crate's own mutating calls ([`crate::files`] writes, `snap`
//! changes, `systemctl` start/restart/stop, `sysctl -p`, `relation-set`,
//! `open-port`/`close-port`) call [`before_change`] themselves; a charm
//! calls it before any change of its own (an API write, an unpack).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::durable::FileError;

struct Armed {
    path: PathBuf,
    hook: String,
    written: bool,
}

thread_local! {
    // Per thread: a hook does its work on its main thread, and tests that
    // run side by side each have their own.
    static ARMED: RefCell<Option<Armed>> = const { RefCell::new(None) };
}

/// What an earlier hook left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The hook that did not finish, as it recorded itself.
    pub hook: String,
}

/// The mark for this process's hook.
#[derive(Debug)]
pub struct Intent {
    path: PathBuf,
    /// Set when an earlier hook had left its mark.
    pub unfinished: Option<Unfinished>,
}

impl Intent {
    /// Reads the mark an earlier hook may have left at `path`, and arms
    /// [`before_change`] to write this hook's (named `hook`) there.
    pub fn arm(path: impl Into<PathBuf>, hook: &str) -> Result<Intent, FileError> {
        let path = path.into();
        // A hook killed while writing its mark left only a temporary file.
        crate::durable::sweep_leftovers_of(&path);
        let unfinished = crate::durable::read_optional(&path)?.map(|bytes| Unfinished {
            hook: String::from_utf8_lossy(&bytes).trim().to_string(),
        });
        ARMED.with_borrow_mut(|armed| {
            *armed = Some(Armed {
                path: path.clone(),
                hook: hook.to_string(),
                // An earlier mark stands for this hook too until it finishes.
                written: unfinished.is_some(),
            })
        });
        Ok(Intent { path, unfinished })
    }

    /// The hook's work is done and recorded: removes the mark (its own, or
    /// an earlier hook's whose work this one redid).
    pub fn finish(self) -> Result<(), FileError> {
        let written = ARMED.with_borrow_mut(|armed| armed.take().is_some_and(|a| a.written));
        if !written {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(FileError {
                    action: "removing the hook mark",
                    path: self.path,
                    source,
                })
            }
        }
        sync_parent(&self.path).map_err(|source| FileError {
            action: "syncing the directory of",
            path: self.path.clone(),
            source,
        })
    }
}

/// Records, once per hook and before the change it precedes, that this
/// hook is changing the machine. Does nothing when no [`Intent`] is armed
/// (a program that is not a hook, a unit test).
pub fn before_change() -> Result<(), FileError> {
    ARMED.with_borrow_mut(|armed| {
        let Some(armed) = armed.as_mut() else {
            return Ok(());
        };
        if armed.written {
            return Ok(());
        }
        write_mark(&armed.path, &armed.hook)?;
        armed.written = true;
        Ok(())
    })
}

/// Whether this hook has recorded an intent (its own or an earlier one's).
pub fn recorded() -> bool {
    ARMED.with_borrow(|armed| armed.as_ref().is_some_and(|a| a.written))
}

fn write_mark(path: &Path, hook: &str) -> Result<(), FileError> {
    crate::durable::write_record(path, format!("{hook}\n").as_bytes(), 0o600).map(|_| ())
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_written_once_before_a_change_and_removed_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join(".hook-running");
        before_change().unwrap();
        assert!(!mark.exists(), "nothing armed, nothing written");

        let intent = Intent::arm(&mark, "config-changed").unwrap();
        assert_eq!(intent.unfinished, None);
        assert!(!recorded());
        assert!(!mark.exists(), "no change yet");
        before_change().unwrap();
        assert_eq!(std::fs::read_to_string(&mark).unwrap(), "config-changed\n");
        let modified = std::fs::metadata(&mark).unwrap().modified().unwrap();
        before_change().unwrap();
        assert_eq!(
            std::fs::metadata(&mark).unwrap().modified().unwrap(),
            modified
        );
        assert!(recorded());

        // Killed here: the next hook sees it, and its mark stands until
        // that hook finishes.
        let next = Intent::arm(&mark, "update-status").unwrap();
        assert_eq!(
            next.unfinished,
            Some(Unfinished {
                hook: "config-changed".into()
            })
        );
        assert!(recorded());
        next.finish().unwrap();
        assert!(!mark.exists());

        // A hook that changes nothing leaves nothing.
        let quiet = Intent::arm(&mark, "update-status").unwrap();
        quiet.finish().unwrap();
        assert!(!mark.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_mark_whose_write_was_killed_leaves_nothing_after_the_next_hook() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join(".hook-running");
        // What a kill between creating the temporary file and the rename
        // leaves (the name durable::write_record gives it).
        let torn = dir.path().join("..hook-running.Ab3xZ9.tmp");
        std::fs::write(&torn, "install").unwrap();
        let next = Intent::arm(&mark, "install").unwrap();
        assert_eq!(next.unfinished, None);
        next.finish().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
