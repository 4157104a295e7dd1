//! The CNI plugins in `/opt/cni/bin`, from the `cni-<arch>` resource of
//! this machine's architecture only.
//!
//! A new tarball is unpacked into a staging directory beside `bin` (same
//! filesystem), checked whole, and only then renamed into place plugin by
//! plugin: a refused tarball leaves the installed plugins exactly as they
//! were. The charm records which plugins it installed from which tarball
//! (sha256), so it replaces and removes only its own files; a CNI
//! subordinate's binaries in the same directory are left alone.

pub mod archive;

use std::collections::BTreeSet;
use std::path::Path;

use charm::files;
use charm::resources::{self, Resource};
use charm::root::MachineRoot;
use charm::HookTools;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::error::Error;

pub const CNI_DIR: &str = "/opt/cni";
pub const CNI_BIN: &str = "/opt/cni/bin";

/// What the charm installed into /opt/cni/bin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub resource: String,
    pub sha256: String,
    pub plugins: BTreeSet<String>,
}

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
}

pub fn resource_name(arch: Arch) -> String {
    format!("cni-{arch}")
}

/// Brings /opt/cni/bin in line with the `cni-<arch>` resource.
pub fn converge(
    tools: &HookTools,
    root: &MachineRoot,
    arch: Arch,
    installed: &mut Option<Installed>,
    fingerprints: &mut resources::FingerprintCache,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Outcome, Error> {
    let name = resource_name(arch);
    let (path, len) = match resources::fetch(tools, &name).map_err(Error::Resource)? {
        Resource::Missing(why) => {
            log::debug!("resource-get {name}: {why}");
            return Ok(Outcome::Blocked(format!("Missing {name} resource.")));
        }
        Resource::Empty(_) => {
            return Ok(Outcome::Blocked(format!(
                "{name} resource is empty (zero bytes); attach the CNI plugins tarball for {arch}"
            )))
        }
        Resource::File { path, len } => (path, len),
    };
    let sha256 = fingerprints
        .fingerprint(&name, &path)
        .map_err(|source| Error::Io {
            doing: format!("reading resource {name} at {}", path.display()),
            source,
        })?;
    let bin = root.path(CNI_BIN);
    if let Some(current) = installed {
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
    announce(&format!("Unpacking {name} resource."))?;
    log::debug!("unpacking {name} ({len} bytes, sha256 {sha256})");
    files::ensure_dir(&bin, 0o755)?;
    let staging = tempfile::Builder::new()
        .prefix(".kubernetes-worker-staging.")
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
    let previous = installed.take().map(|i| i.plugins).unwrap_or_default();
    let placed = place(staging.path(), &bin, &unpacked.plugins, &previous)?;
    let mut removed = 0;
    for gone in previous.difference(&placed) {
        if files::remove_if_present(&bin.join(gone))? == files::Change::Written {
            removed += 1;
        }
    }
    sync_dir(&bin)?;
    log::info!(
        "installed {} CNI plugins from {name} into {CNI_BIN}{}",
        placed.len(),
        if removed > 0 {
            format!(", removed {removed} it no longer has")
        } else {
            String::new()
        }
    );
    let added = placed.len();
    *installed = Some(Installed {
        resource: name,
        sha256,
        plugins: placed,
    });
    Ok(Outcome::Installed { added, removed })
}

/// Renames each staged plugin into `bin`, except over a file the charm did
/// not install; returns the plugins now the charm's.
fn place(
    staging: &Path,
    bin: &Path,
    plugins: &BTreeSet<String>,
    previous: &BTreeSet<String>,
) -> Result<BTreeSet<String>, Error> {
    // One sync of the staging filesystem makes every staged file durable
    // before any rename, cheaper than a sync per file.
    sync_fs(staging)?;
    let mut placed = BTreeSet::new();
    for plugin in plugins {
        let dest = bin.join(plugin);
        if dest.symlink_metadata().is_ok() && !previous.contains(plugin) {
            log::warn!(
                "not replacing {}: this charm did not install it (a CNI subordinate may own it)",
                dest.display()
            );
            continue;
        }
        std::fs::rename(staging.join(plugin), &dest).map_err(|source| Error::Io {
            doing: format!("moving plugin {plugin} into {}", bin.display()),
            source,
        })?;
        placed.insert(plugin.clone());
    }
    Ok(placed)
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
