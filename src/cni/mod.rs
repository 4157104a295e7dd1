//! The CNI plugins in `/opt/cni/bin`, from the `cni-<arch>` resource of
//! this machine's architecture, or, where that one is missing or empty,
//! today's charm's `cni-plugins` (whose binaries must be this
//! architecture's too).
//!
//! A new tarball is unpacked into a staging directory beside `bin` (same
//! filesystem), checked whole, and only then renamed into place plugin by
//! plugin: a refused tarball leaves the installed plugins exactly as they
//! were. The charm records in its journal which plugins it installed from
//! which tarball (sha256), so it replaces and removes only its own files; a
//! CNI subordinate's binaries in the same directory are left alone. The
//! record is written ahead of the moves, so a hook stopped among them
//! still knows every plugin it may have placed.

pub mod archive;

use std::collections::BTreeSet;
use std::path::Path;

use charm::files;
use charm::resources::{self, Resource};
use charm::root::MachineRoot;
use charm::HookTools;

use crate::arch::Arch;
use crate::error::Error;
use crate::facts::cni::{Installed, Pending};
use crate::journal::{Journal, JournalFile};

pub const CNI_DIR: &str = "/opt/cni";
pub const CNI_BIN: &str = "/opt/cni/bin";

/// The result of a convergence that did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Installed {
        added: usize,
        removed: usize,
    },
    /// The operator must attach a (better) resource: a blocked message.
    Blocked(String),
    /// The resource could not be fetched now: why, for a waiting message.
    Unavailable(String),
    /// Found in place, the same as the tarball's: taken as the charm's
    /// without a change.
    Adopted(usize),
}

/// The prefix of the charm's staging directories under /opt/cni.
const STAGING_PREFIX: &str = ".kubernetes-worker-staging.";

/// Today's charm's resource: one tarball, its architecture fixed when it
/// was published. Used where `cni-<arch>` is missing or empty, its
/// binaries checked for this machine's architecture like any.
pub const LEGACY: &str = "cni-plugins";

pub fn resource_name(arch: Arch) -> String {
    format!("cni-{arch}")
}

/// Brings /opt/cni/bin in line with the `cni-<arch>` resource, recording
/// in the journal which plugins are the charm's: what it is about to move
/// into place before the first move, what it moved after the last.
pub fn converge(
    (tools, root, arch): (&HookTools, &MachineRoot, Arch),
    journal: &mut Journal,
    file: &mut JournalFile,
    fingerprints: &mut resources::FingerprintCache,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Outcome, Error> {
    let own = resource_name(arch);
    let (name, path, len) = match resources::fetch(tools, &own).map_err(Error::Resource)? {
        Resource::File { path, len } => (own, path, len),
        Resource::Unavailable(why) => return Ok(Outcome::Unavailable(why)),
        // Today's charm's one tarball, where this architecture's is not
        // given: a unit switched from it keeps what it had.
        absent => match resources::fetch(tools, LEGACY).map_err(Error::Resource)? {
            Resource::File { path, len } => {
                log::debug!("{own} is not given; using {LEGACY}");
                (LEGACY.to_string(), path, len)
            }
            Resource::Unavailable(why) => return Ok(Outcome::Unavailable(why)),
            Resource::Missing(_) | Resource::Empty(_) => {
                return Ok(Outcome::Blocked(match absent {
                    Resource::Empty(_) => format!(
                        "{own} resource is empty (zero bytes); attach the CNI plugins tarball for {arch}"
                    ),
                    _ => format!("Missing {own} resource."),
                }))
            }
        },
    };
    let sha256 = fingerprints
        .fingerprint(&name, &path)
        .map_err(|source| Error::Io {
            doing: format!("reading resource {name} at {}", path.display()),
            source,
        })?;
    sweep_staging(root)?;
    if let Some(pending) = journal.cni_pending.take() {
        // Stopped between the first move and the record of the last: every
        // plugin it meant to place is the charm's, whether or not it got
        // there, and the install is done again.
        log::warn!(
            "installing the CNI plugins from {} did not finish; doing it again",
            pending.resource
        );
        let mut owned = journal.cni.clone().map(|i| i.plugins).unwrap_or_default();
        owned.extend(pending.plugins);
        journal.cni = Some(Installed {
            resource: pending.resource,
            sha256: String::new(),
            plugins: owned,
        });
    }
    let bin = root.path(CNI_BIN);
    if let Some(current) = &journal.cni {
        if current.resource == name
            && current.sha256 == sha256
            && current
                .plugins
                .iter()
                .all(|p| bin.join(p).symlink_metadata().is_ok())
        {
            return Ok(Outcome::Unchanged);
        }
    }
    // No record at all: the machine was set up by another charm (the
    // Python charms untarred straight into /opt/cni/bin) or the journal
    // was lost. The plugins the tarball holds are taken as the charm's.
    let adopting = journal.cni.is_none();
    if !adopting {
        announce(&format!("Unpacking {name} resource."))?;
    }
    log::debug!("unpacking {name} ({len} bytes, sha256 {sha256})");
    files::ensure_dir(&bin, 0o755)?;
    charm::intent::before_change()?;
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(root.path(CNI_DIR))
        .map_err(|source| Error::Io {
            doing: format!(
                "creating a staging directory in {}",
                root.path(CNI_DIR).display()
            ),
            source,
        })?;
    let unpacked = match archive::unpack(&path, staging.path(), arch.name()) {
        Ok(Ok(unpacked)) => unpacked,
        Ok(Err(refusal)) => return Ok(Outcome::Blocked(refusal.message(&name))),
        Err((doing, source)) => return Err(Error::Io { doing, source }),
    };
    if !unpacked.skipped.is_empty() {
        log::debug!(
            "{name}: not plugins, left out: {}",
            unpacked.skipped.join(", ")
        );
    }
    let previous: BTreeSet<String> = match &journal.cni {
        Some(installed) => installed.plugins.clone(),
        None => {
            let found: BTreeSet<String> = unpacked
                .plugins
                .iter()
                .filter(|p| bin.join(p).symlink_metadata().is_ok_and(|m| m.is_file()))
                .cloned()
                .collect();
            if !found.is_empty() {
                log::info!("adopted {} CNI plugins", found.len());
            }
            found
        }
    };
    let ours: BTreeSet<String> = unpacked
        .plugins
        .iter()
        .filter(|plugin| {
            let foreign =
                bin.join(plugin).symlink_metadata().is_ok() && !previous.contains(*plugin);
            if foreign {
                log::warn!(
                    "not replacing {}: this charm did not install it (a CNI subordinate may own it)",
                    bin.join(plugin).display()
                );
            }
            !foreign
        })
        .cloned()
        .collect();
    // A plugin already there with the same bytes, mode and owner is left
    // in place: adopting or reinstalling an unchanged set moves nothing.
    let to_place: BTreeSet<String> = ours
        .iter()
        .filter(|p| !same_file(&staging.path().join(p), &bin.join(p)))
        .cloned()
        .collect();
    let to_remove: Vec<&String> = previous
        .difference(&ours)
        .filter(|gone| bin.join(gone).symlink_metadata().is_ok())
        .collect();
    if to_place.is_empty() && to_remove.is_empty() {
        let count = ours.len();
        journal.cni = Some(Installed {
            resource: name,
            sha256,
            plugins: ours,
        });
        return Ok(if adopting {
            Outcome::Adopted(count)
        } else {
            Outcome::Unchanged
        });
    }
    if adopting {
        announce(&format!("Unpacking {name} resource."))?;
    }
    // Written ahead: from here on, a kill or a failure leaves a record
    // that owns every plugin this install may have moved.
    journal.cni_pending = Some(Pending {
        resource: name.clone(),
        sha256: sha256.clone(),
        plugins: previous.union(&ours).cloned().collect(),
    });
    file.persist(journal)?;
    place(staging.path(), &bin, &to_place)?;
    let mut removed = 0;
    for gone in previous.difference(&ours) {
        if files::remove_if_present(&bin.join(gone))? == files::Change::Written {
            removed += 1;
        }
    }
    sync_dir(&bin)?;
    log::info!(
        "installed {} CNI plugins from {name} into {CNI_BIN}{}",
        to_place.len(),
        if removed > 0 {
            format!(", removed {removed} it no longer has")
        } else {
            String::new()
        }
    );
    let added = to_place.len();
    journal.cni = Some(Installed {
        resource: name,
        sha256,
        plugins: ours,
    });
    journal.cni_pending = None;
    file.persist(journal)?;
    Ok(Outcome::Installed { added, removed })
}

/// Whether `installed` is a regular file with `staged`'s content, mode and
/// owner.
fn same_file(staged: &Path, installed: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (staged.symlink_metadata(), installed.symlink_metadata()) else {
        return false;
    };
    if !b.is_file() || a.len() != b.len() || a.mode() != b.mode() || a.uid() != b.uid() {
        return false;
    }
    match (std::fs::read(staged), std::fs::read(installed)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Removes staging directories an earlier hook left when it was killed.
fn sweep_staging(root: &MachineRoot) -> Result<(), Error> {
    let dir = root.path(CNI_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(STAGING_PREFIX) {
            continue;
        }
        charm::intent::before_change()?;
        log::info!(
            "removing {} left by an earlier hook",
            entry.path().display()
        );
        std::fs::remove_dir_all(entry.path()).map_err(|source| Error::Io {
            doing: format!("removing {}", entry.path().display()),
            source,
        })?;
    }
    Ok(())
}

/// Renames each staged plugin into `bin`.
fn place(staging: &Path, bin: &Path, plugins: &BTreeSet<String>) -> Result<(), Error> {
    // One sync of the staging filesystem makes every staged file durable
    // before any rename, cheaper than a sync per file.
    sync_fs(staging)?;
    for plugin in plugins {
        std::fs::rename(staging.join(plugin), bin.join(plugin)).map_err(|source| Error::Io {
            doing: format!("moving plugin {plugin} into {}", bin.display()),
            source,
        })?;
    }
    Ok(())
}
fn sync_fs(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io {
        doing: format!("syncing {}", dir.display()),
        source,
    };
    let handle = std::fs::File::open(dir).map_err(io)?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&handle))
        .map_err(|e| io(std::io::Error::from_raw_os_error(e as i32)))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            doing: format!("syncing {}", dir.display()),
            source,
        })
}
