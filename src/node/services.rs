//! kubelet and kube-proxy as services: adopted, configured, (re)started,
//! and started again after a refresh.

use std::collections::BTreeMap;

use charm::files::{self};
use charm::resources::Fingerprint;
use charm::service::Systemctl;
use charm::snap::{self, SnapCli};

use crate::adoption;
use crate::daemons::{DaemonConfig, Version};
use crate::error::Error;
use crate::facts::DaemonRecord;
use crate::journal::JournalFile;
use crate::problem::Problem;
use crate::unit_state::Recorded;

use super::config_files::{NewFiles, READS};
use super::Node;
use crate::snaps::DAEMONS;

impl Node<'_> {
    /// The installed kubelet's and kube-proxy's versions, from their snaps'
    /// metadata; `None` until both are installed.
    pub(super) fn daemon_versions(&self) -> Result<Option<[Version; 2]>, Error> {
        let mut versions = [Version(0, 0); 2];
        for (i, snap_name) in DAEMONS.iter().enumerate() {
            let Some(meta) = snap::installed(self.root, snap_name)? else {
                return Ok(None);
            };
            // An unreadable version is taken to be a current one.
            versions[i] = Version::parse(&meta.version).unwrap_or(Version(1, u32::MAX));
        }
        Ok(Some(versions))
    }

    /// Looks at each daemon to adopt (its snap was found installed, and the
    /// charm has no record of how it runs it) before any file is written:
    /// whether what it runs with now (its snap options, the files it
    /// reads) is, in effect, what the charm is about to give it. One that
    /// must restart is recorded so before the first change, so that a hook
    /// killed after rewriting its files still restarts it when retried.
    pub(super) fn adopt_daemons(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        new_files: &NewFiles,
        configs: [&DaemonConfig; 2],
    ) -> Result<BTreeMap<&'static str, Adopted>, Error> {
        let mut adopted = BTreeMap::new();
        for ((snap_name, reads), config) in DAEMONS.iter().zip(READS).zip(configs) {
            let adopt = !recorded.journal.daemons.contains_key(*snap_name)
                && recorded
                    .journal
                    .snaps
                    .get(*snap_name)
                    .is_some_and(|s| s.adopted);
            if !adopt {
                continue;
            }
            let mut files_same = true;
            for path in reads {
                let now = files::read_optional(&self.root.path(path))?;
                let new = new_files.get(path).map(|c| c.as_bytes());
                if !adoption::same_in_effect(path, now.as_deref(), new) {
                    log::info!("{snap_name}: {path} differs in effect from what it runs with");
                    files_same = false;
                }
            }
            let on_machine = SnapCli.config(snap_name)?;
            let flags_now = adoption::flags_in_effect(&on_machine);
            let flags_same = flags_now.as_ref() == Some(&config.flags);
            let mut keys: BTreeMap<String, String> = on_machine
                .iter()
                .map(|(k, v)| (k.clone(), adoption::value_text(v)))
                .collect();
            if flags_same {
                // The snap's options stand for what the charm would set:
                // only options it would not set at all are unset.
                keys.retain(|k, _| !config.snap_keys.contains_key(k));
                keys.extend(config.snap_keys.clone());
            } else {
                let why = match &flags_now {
                    Some(now) => adoption::flag_differences(now, &config.flags).join(", "),
                    None => "its args cannot be read without a shell".into(),
                };
                log::info!("{snap_name}: its flags differ in effect ({why})");
            }
            let keep_running = flags_same && files_same;
            log::info!(
                "adopted {snap_name}: {}",
                if keep_running {
                    "it runs with the configuration the charm computes, so it keeps running"
                } else {
                    "reconfiguring it and restarting it"
                }
            );
            if !keep_running {
                recorded.journal.daemons.insert(
                    snap_name.to_string(),
                    DaemonRecord {
                        keys: keys.clone(),
                        fingerprint: String::new(),
                    },
                );
            }
            adopted.insert(*snap_name, Adopted { keys, keep_running });
        }
        if adopted.values().any(|a| !a.keep_running) {
            journal.persist(&recorded.journal)?;
        }
        Ok(adopted)
    }

    /// Sets each daemon's snap config in one call, restarts it exactly when
    /// its binary or anything it reads changed, and returns those that are
    /// not running. A daemon just adopted starts from the snap options it
    /// had, and keeps running if it already ran as the charm would run it.
    pub(super) fn run_daemons(
        &self,
        recorded: &mut Recorded,
        configs: &[(DaemonConfig, Vec<&'static str>)],
        adopting: &BTreeMap<&'static str, Adopted>,
        refused: &mut Vec<Problem>,
    ) -> Result<Vec<&'static str>, Error> {
        let mut inactive = Vec::new();
        for (snap_name, (config, reads)) in DAEMONS.iter().zip(configs) {
            let keep_running = match adopting.get(snap_name) {
                Some(adopted) => {
                    recorded.journal.daemons.insert(
                        snap_name.to_string(),
                        DaemonRecord {
                            keys: adopted.keys.clone(),
                            fingerprint: String::new(),
                        },
                    );
                    adopted.keep_running
                }
                None => false,
            };
            let record = recorded
                .journal
                .daemons
                .entry(snap_name.to_string())
                .or_default();
            if let Some(problem) = set_options(snap_name, &config.snap_keys, record)? {
                refused.push(problem);
                continue;
            }
            let fingerprint = self.fingerprint(
                snap_name,
                config,
                reads,
                recorded.journal.snaps.get(*snap_name),
            )?;
            let record = recorded
                .journal
                .daemons
                .entry(snap_name.to_string())
                .or_default();
            let service = format!("snap.{snap_name}.daemon");
            let systemctl = Systemctl;
            if keep_running {
                record.fingerprint = fingerprint.clone();
            }
            if recorded.journal.parked.contains(*snap_name) {
                // Stopped for its refresh: started once, configured.
                log::info!("starting {snap_name} on its new version's configuration");
                systemctl.enable_now(&service).map_err(|e| Error::Exec {
                    doing: "starting a daemon after its refresh",
                    source: e,
                })?;
                let record = recorded
                    .journal
                    .daemons
                    .entry(snap_name.to_string())
                    .or_default();
                record.fingerprint = fingerprint;
                recorded.journal.parked.remove(*snap_name);
            } else if record.fingerprint != fingerprint {
                log::info!("restarting {snap_name}: its configuration or binary changed");
                systemctl.restart(&service).map_err(|e| Error::Exec {
                    doing: "restarting a daemon",
                    source: e,
                })?;
                record.fingerprint = fingerprint;
            }
            if !running(&service)? {
                inactive.push(*snap_name);
            }
        }
        Ok(inactive)
    }

    fn fingerprint(
        &self,
        snap_name: &str,
        config: &DaemonConfig,
        reads: &[&str],
        installed: Option<&crate::facts::snap::Installed>,
    ) -> Result<String, Error> {
        let mut hash = Fingerprint::default();
        hash.update(format!(
            "{snap_name}\n{:?}\n{:?}\n",
            installed, config.snap_keys
        ));
        for path in reads {
            let full = self.root.path(path);
            hash.update(path.as_bytes());
            hash.update(files::read_optional(&full)?.unwrap_or_default());
        }
        Ok(hash.hex())
    }

    /// Starts, on the configuration they have, the daemons stopped for a
    /// refresh that the node's configuration did not start (it could not
    /// be configured in this hook): a node waiting on its relations or
    /// options keeps running rather than staying down.
    pub fn unpark(&self, recorded: &mut Recorded) -> Result<(), Error> {
        for snap_name in recorded.journal.parked.clone() {
            log::warn!(
                "starting {snap_name} on the configuration it has: the node could not be configured for its new version"
            );
            Systemctl
                .enable_now(&format!("snap.{snap_name}.daemon"))
                .map_err(|e| Error::Exec {
                    doing: "starting a daemon after its refresh",
                    source: e,
                })?;
            recorded.journal.parked.remove(&snap_name);
        }
        Ok(())
    }
}

/// A daemon found running without a record, as the charm takes it over.
pub(super) struct Adopted {
    /// Its snap options as the charm's record: what it would set, plus
    /// options the charm does not set (to be unset).
    pub(super) keys: BTreeMap<String, String>,
    /// It already runs as the charm would run it.
    pub(super) keep_running: bool,
}

/// Whether `service` runs, started once if it did not.
fn running(service: &str) -> Result<bool, Error> {
    let exec = |e| Error::Exec {
        doing: "checking a daemon",
        source: e,
    };
    if Systemctl.is_active(service).map_err(exec)? {
        return Ok(true);
    }
    log::warn!("{service} is not running; starting it");
    Systemctl.start(service).map_err(exec)?;
    Systemctl.is_active(service).map_err(exec)
}

/// Sets `wanted` as the snap's options in one `snap set`, unsetting
/// those the charm set before and no longer does; `record` is what it
/// set. A refusal that is the values' fault is returned, for the operator
/// to mend: the daemon keeps what it runs with, and the next hook tries
/// again.
fn set_options(
    snap_name: &str,
    wanted: &BTreeMap<String, String>,
    record: &mut DaemonRecord,
) -> Result<Option<Problem>, Error> {
    let mut changes: Vec<(String, Option<String>)> = wanted
        .iter()
        .filter(|(k, v)| record.keys.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    changes.extend(
        record
            .keys
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    if changes.is_empty() {
        return Ok(None);
    }
    match SnapCli.set(snap_name, &changes) {
        Ok(()) => {
            record.keys = wanted.clone();
            Ok(None)
        }
        Err(e) => match refusal(&e) {
            Some(why) => {
                let option = match snap_name {
                    "kubelet" => "kubelet-extra-args",
                    _ => "proxy-extra-args",
                };
                Ok(Some(Problem::blocked(format!(
                    "snap set {snap_name} refused its configuration ({why}); check {option}"
                ))))
            }
            None => Err(e.into()),
        },
    }
}

/// Why snapd would not take a `snap set`, when it is the values' fault
/// rather than the machine's: it ran and said no, or the kernel refused
/// the arguments as too long. A full disk or a deadline is not this.
fn refusal(e: &snap::SnapError) -> Option<String> {
    let snap::SnapError::Exec(e) = e else {
        return None;
    };
    match e {
        charm::exec::ExecError::Failed {
            code: Some(_),
            stderr,
            ..
        } if !stderr.contains("no space left on device") => {
            // snapd says what failed on the lines after its first.
            let said: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Some(charm::quote::bounded(&said.join(" "), 200).into_owned())
        }
        charm::exec::ExecError::Spawn { source, .. }
            if source.raw_os_error() == Some(nix::libc::E2BIG) =>
        {
            Some("its arguments are longer than the kernel accepts".into())
        }
        _ => None,
    }
}
