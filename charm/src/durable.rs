//! The durable write underneath every file the charm keeps: a temporary
//! file in the same directory, with its final mode and owner from the
//! start, synced, and renamed over the old one; the directory is synced
//! after. A write that fails half-way leaves the previous file intact, and
//! a secret never exists with a wider mode than asked for.
//!
//! This module knows nothing of the hook's intent ([`crate::intent`]):
//! [`crate::files`] marks the intent before a change to the machine, and
//! the intent's own mark is written here, unmarked.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

pub(crate) fn err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The numeric owner a file should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Whether a call changed anything on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Written,
}

/// [`write_atomic`] for the charm's own records, which are not changes to
/// the machine (the state file is the record of them).
pub(crate) fn write_record(path: &Path, contents: &[u8], mode: u32) -> Result<Change, FileError> {
    if is_current(path, contents, mode, None)? {
        return Ok(Change::Unchanged);
    }
    replace(path, contents, mode, None)
}

pub(crate) fn replace(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<Change, FileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    sweep_temporaries(dir, &name);
    // Created 0600 whatever the umask, then set to the exact mode before any
    // byte is written: the content is never readable by more than intended.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .rand_bytes(TEMP_RANDOM_LEN)
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(err("creating a temporary file beside", path))?;
    if let Some(owner) = owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(owner.uid), Some(owner.gid))
            .map_err(err("setting the owner of the new", path))?;
    }
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(err("setting the mode of the new", path))?;
    tmp.write_all(contents).map_err(err("writing", path))?;
    tmp.as_file().sync_all().map_err(err("syncing", path))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .map_err(err("renaming into place", path))?;
    sync_dir(dir).map_err(err("syncing the directory of", path))?;
    Ok(Change::Written)
}

/// Removes the temporary files an earlier write of `name` left when its
/// hook was killed (`.<name>.XXXXXX.tmp`): only this function makes them,
/// and only the write in progress uses one.
pub(crate) fn sweep_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = is_temporary_of(&entry.file_name().to_string_lossy(), name);
        if is_ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            // Best effort: a leftover that cannot be removed harms nothing.
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether `file` is a temporary file a write of `name` makes
/// (`.<name>.XXXXXX.tmp`).
pub(crate) fn is_temporary_of(file: &str, name: &str) -> bool {
    file.strip_prefix(&format!(".{name}."))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|random| {
            random.len() == TEMP_RANDOM_LEN && random.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// Removes what a killed write of `path` left behind, for records a hook
/// may not write again soon.
pub(crate) fn sweep_leftovers_of(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Some(name) = path.file_name() {
        sweep_temporaries(dir, &name.to_string_lossy());
    }
}

/// The length of the random part of a temporary file's name.
pub(crate) const TEMP_RANDOM_LEN: usize = 6;

pub(crate) fn is_current(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<bool, FileError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err("inspecting", path)(e)),
    };
    if !meta.is_file()
        || meta.len() != contents.len() as u64
        || meta.mode() & 0o7777 != mode
        || owner.is_some_and(|o| o.uid != meta.uid() || o.gid != meta.gid())
    {
        return Ok(false);
    }
    Ok(fs::read(path).map_err(err("reading", path))? == contents)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a file that may legitimately be absent.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("reading", path)(e)),
    }
}
