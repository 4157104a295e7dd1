//! kubectl, kubelet and kube-proxy: from the attached snap resource, or from
//! the store on the configured channel when the resource is a zero-byte
//! file (or missing).
//!
//! The charm records per snap where the installed one came from (a store
//! channel, or the resource's sha256) and does nothing while that holds.
//! A different source on a unit that has the snap already is an upgrade,
//! which waits for the `upgrade` action when `require-manual-upgrade` is
//! set. A snap file is checked before snapd sees it (a squashfs image,
//! naming this snap, built for this machine). Store failures are retried a
//! few times in the hook, then left for the next hook.

use std::path::PathBuf;
use std::time::Duration;

use charm::resources::{self, Resource};
use charm::root::MachineRoot;
use charm::snap::{self, SnapCli, SnapError};
use charm::HookTools;

use crate::arch::Arch;
use crate::error::Error;
use crate::facts::snap::{Installed, Pending, Source};

pub const SNAPS: [&str; 3] = ["kubectl", "kubelet", "kube-proxy"];
/// The snaps whose daemon the node runs (`snap.<name>.daemon`).
pub const DAEMONS: [&str; 2] = ["kubelet", "kube-proxy"];

/// Pauses between store attempts within one hook (the attempts are one
/// more than these).
const STORE_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// What the charm records of a snap it finds installed and has no record
/// of (a machine taken over from the Python charm, a lost journal): the
/// source snapd reports, matched to what is wanted where they agree, so
/// that only a real difference is an upgrade. `None`: not installed.
pub fn adopt(
    name: &str,
    wanted: &Wanted,
    root: &MachineRoot,
    listed: Option<&snap::Listed>,
) -> Result<Option<Installed>, Error> {
    let Some(meta) = snap::installed(root, name)? else {
        return Ok(None);
    };
    let Some(revision) = snap::current_revision(root, name) else {
        return Ok(None);
    };
    let source = if revision.starts_with('x') {
        match &wanted.source {
            Source::Resource { sha256 } if same_file(root, name, &revision, sha256, wanted)? => {
                wanted.source.clone()
            }
            _ => Source::Found { revision },
        }
    } else {
        match (listed.and_then(|l| l.tracking.as_deref()), &wanted.source) {
            (Some(tracking), Source::Store { channel })
                if snap::normalize_channel(tracking) == snap::normalize_channel(channel) =>
            {
                wanted.source.clone()
            }
            (Some(tracking), _) => Source::Store {
                channel: tracking.to_string(),
            },
            (None, _) => Source::Found { revision },
        }
    };
    let from = match &source {
        Source::Store { channel } => channel.clone(),
        other => other.to_string(),
    };
    log::info!("adopted {name} {} from {from}", meta.version);
    Ok(Some(Installed {
        source,
        version: meta.version,
        adopted: true,
    }))
}

/// Whether the file snapd mounts for `revision` is the attached one.
fn same_file(
    root: &MachineRoot,
    name: &str,
    revision: &str,
    sha256: &str,
    wanted: &Wanted,
) -> Result<bool, Error> {
    let kept = snap::revision_file(root, name, revision);
    let (Ok(kept_meta), Some(Ok(attached))) = (
        std::fs::metadata(&kept),
        wanted.file.as_ref().map(std::fs::metadata),
    ) else {
        return Ok(false);
    };
    if kept_meta.len() != attached.len() {
        return Ok(false);
    }
    let hash = resources::fingerprint(&kept).map_err(|source| Error::Io {
        doing: format!("reading {}", kept.display()),
        source,
    })?;
    Ok(hash == sha256)
}

/// What the operator's resources and config ask for.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub source: Source,
    pub file: Option<PathBuf>,
}

/// Reads resource `name`: a file with content means "this file"; a zero-byte
/// or missing resource means "the store, on `channel`".
/// `Ok(Err(why))`: the resource could not be fetched now, and so what is
/// wanted is not known (an attached file must not be taken for "use the
/// store").
pub fn wanted(
    tools: &HookTools,
    name: &str,
    channel: &str,
    fingerprints: &mut resources::FingerprintCache,
) -> Result<Result<Wanted, String>, Error> {
    let store = || Wanted {
        source: Source::Store {
            channel: channel.to_string(),
        },
        file: None,
    };
    match resources::fetch(tools, name).map_err(Error::Resource)? {
        Resource::Missing(why) => {
            log::debug!("{name}: no resource ({why}); using the store");
            Ok(Ok(store()))
        }
        Resource::Unavailable(why) => Ok(Err(why)),
        Resource::Empty(_) => Ok(Ok(store())),
        Resource::File { path, .. } => {
            let sha256 = fingerprints
                .fingerprint(name, &path)
                .map_err(|source| Error::Io {
                    doing: format!("reading resource {name} at {}", path.display()),
                    source,
                })?;
            Ok(Ok(Wanted {
                source: Source::Resource { sha256 },
                file: Some(path),
            }))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    /// What was done, for the log and the upgrade action's results.
    Done(String),
    /// An upgrade waits for the operator's `upgrade` action.
    Held {
        from: Source,
        to: Source,
    },
    /// The attached file cannot be installed: a blocked message.
    Blocked(String),
    /// The store failed: the reason, for a waiting message.
    Retry(String),
}

/// Brings snap `name` in line with `wanted`. `allow_upgrade`: whether a
/// change of source may be applied now. `before_change` sees the change
/// before snapd is asked to make it (to record it ahead).
pub fn converge(
    name: &str,
    wanted: &Wanted,
    installed: &mut Option<Installed>,
    allow_upgrade: bool,
    (arch, root): (Arch, &MachineRoot),
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    before_change: &mut dyn FnMut(&Pending) -> Result<(), Error>,
) -> Result<Outcome, Error> {
    let on_machine = snap::installed(root, name)?;
    match (installed.as_ref(), &on_machine) {
        (Some(current), Some(_)) if current.source == wanted.source => {
            return Ok(Outcome::Unchanged)
        }
        (Some(current), Some(_)) if !allow_upgrade => {
            return Ok(Outcome::Held {
                from: current.source.clone(),
                to: wanted.source.clone(),
            })
        }
        // Never installed by this charm, or removed behind its back.
        _ => {}
    }
    let cli = SnapCli;
    let pending = Pending {
        source: wanted.source.clone(),
        from_revision: on_machine
            .as_ref()
            .and_then(|_| snap::current_revision(root, name)),
    };
    let done = match (&wanted.source, &wanted.file) {
        (Source::Resource { .. }, Some(file)) => {
            if let Some(problem) = check_file(name, file, arch) {
                return Ok(Outcome::Blocked(problem));
            }
            announce(&format!("Installing {name} snap"))?;
            before_change(&pending)?;
            match cli.install_file(file, true) {
                Ok(_) => format!("installed {name} from {}", wanted.source),
                Err(SnapError::Exec(e)) if e.code().is_some() => {
                    return Ok(Outcome::Blocked(format!(
                        "{name} resource rejected by snapd: {}",
                        one_line(e.stderr())
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        (Source::Store { channel }, _) => {
            announce(&format!("Installing {name} snap"))?;
            before_change(&pending)?;
            let amend = snap::installed_from_file(root, name);
            let mut attempt = 0;
            loop {
                let result = if on_machine.is_some() {
                    cli.refresh(name, channel, true, amend)
                } else {
                    cli.install_from_store(name, channel, true)
                };
                match result {
                    Ok(_) => break format!("installed {name} from {}", wanted.source),
                    Err(SnapError::Exec(e)) if e.code().is_some() => {
                        let reason = one_line(e.stderr());
                        if is_not_in_store(&reason) {
                            // The store answered: retrying cannot help.
                            return Ok(Outcome::Blocked(format!(
                                "{name} is not in the store on channel {channel} ({reason}); set the channel option to a published track"
                            )));
                        }
                        let Some(pause) = STORE_BACKOFF.get(attempt) else {
                            log::warn!("{name}: the store failed {} times: {reason}", attempt + 1);
                            return Ok(Outcome::Retry(reason));
                        };
                        log::info!(
                            "{name}: store attempt {} failed ({reason}); retrying",
                            attempt + 1
                        );
                        std::thread::sleep(*pause);
                        attempt += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        (Source::Resource { .. }, None) | (Source::Found { .. }, _) => {
            return Err(Error::Io {
                doing: format!("installing {name}"),
                source: std::io::Error::other("a wanted source that names no file or channel"),
            })
        }
    };
    let version = snap::installed(root, name)?
        .map(|m| m.version)
        .unwrap_or_default();
    *installed = Some(Installed {
        source: wanted.source.clone(),
        version: version.clone(),
        adopted: false,
    });
    Ok(Outcome::Done(format!("{done}: version {version}")))
}

/// Why an attached snap file cannot be this snap on this machine, if it
/// cannot; checked before snapd, which would say less.
pub fn check_file(name: &str, file: &std::path::Path, arch: Arch) -> Option<String> {
    let meta = match snap::inspect_file(file) {
        Ok(meta) => meta,
        Err(SnapError::NotSquashfs { .. }) => {
            return Some(format!(
                "{name} resource is not a snap (not a squashfs image)"
            ))
        }
        Err(SnapError::BadMetadata { reason, .. }) if snap::can_inspect_files() => {
            return Some(format!(
                "{name} resource is not a valid snap: {}",
                one_line(&reason)
            ))
        }
        Err(e) => {
            // Without unsquashfs, snapd's own checks are the ones that count.
            log::warn!("{name}: cannot inspect the attached file before installing it: {e}");
            return None;
        }
    };
    if meta.name != name {
        return Some(format!(
            "{name} resource is the {} snap, not {name}",
            meta.name
        ));
    }
    if !meta.supports(arch.name()) {
        return Some(format!(
            "{name} resource is an {} snap; this machine is {arch}",
            meta.architectures.join("/")
        ));
    }
    None
}

/// snapd's answers that mean the store has no such snap or channel.
fn is_not_in_store(reason: &str) -> bool {
    reason.contains("not found") || reason.contains("is not available on")
}

/// snapd's message, on one line, without its `error: ` prefix.
fn one_line(stderr: &str) -> String {
    let text = stderr.trim();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapd_messages_fold_to_one_line() {
        assert_eq!(
            one_line("error: cannot perform the following tasks:\n- Download snap \"kubelet\" (unexpected EOF)\n"),
            "cannot perform the following tasks: - Download snap \"kubelet\" (unexpected EOF)"
        );
    }

    #[test]
    fn sources_serialise_readably() {
        let s = serde_json::to_string(&Source::Store {
            channel: "1.31/stable".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"from":"store","channel":"1.31/stable"}"#);
    }
}
