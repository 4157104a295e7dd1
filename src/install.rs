//! Convergence of everything the resources provide: the CNI plugins and
//! the three snaps, for this machine's architecture.

use std::collections::BTreeMap;

use charm::root::MachineRoot;
use charm::snap::{self, SnapCli};
use charm::HookTools;

use crate::arch::Arch;
use crate::error::{Error, ToolContext};
use crate::journal::JournalFile;
use crate::problem::{Concern, Problem, ProblemKind};
use crate::unit_state::Recorded;
use crate::{cni, config::Config, snaps};

/// What a look at the resources did, item by item (for the upgrade
/// action's results and the log).
pub type Report = BTreeMap<String, String>;

/// The machine the resources are for, and the tools to fetch them with.
pub struct Target<'a> {
    pub tools: &'a HookTools,
    pub root: &'a MachineRoot,
    pub arch: Arch,
}

/// Which resources a look covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Every resource (install, upgrade-charm, a channel change).
    All,
    /// Only those that could not be fetched or installed last time: what a
    /// hook that cannot have changed the resources retries.
    Retries,
}

/// Brings the plugins and snaps in line with the resources and config.
/// `force_upgrade`: apply upgrades even under require-manual-upgrade (the
/// `upgrade` action). Records what it did and what stood in the way, item
/// by item.
pub fn converge(
    target: &Target,
    config: &Config,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    force_upgrade: bool,
    look: Look,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Report, Error> {
    let (tools, arch) = (target.tools, target.arch);
    let mut report = Report::new();
    let key = cni::resource_name(arch);
    // What stood in the way, by item: an item not looked at keeps its own.
    let mut item_problems = std::mem::take(&mut recorded.item_problems);
    let looks_at = |item: &str, problems: &BTreeMap<String, Problem>| match look {
        Look::All => true,
        Look::Retries => problems
            .get(item)
            .is_some_and(|p| p.kind == ProblemKind::Retry),
    };
    let mut problems: Vec<(String, Problem)> = Vec::new();
    let result = (|| -> Result<(), Error> {
        if looks_at(&key, &item_problems) {
            item_problems.remove(&key);
            look_at_cni(
                target,
                recorded,
                journal,
                announce,
                &mut report,
                &mut problems,
            )?;
        }
        let allow_upgrade = force_upgrade || !config.require_manual_upgrade;
        // A channel snapd cannot take is the operator's to fix: the snaps
        // are left as they are rather than refreshed to `--channel=` and
        // retried.
        item_problems.remove("channel");
        let snaps_to_look_at = match config.channel_error() {
            Some(message) => {
                report.insert("channel".into(), message.clone());
                problems.push(("channel".into(), Problem::blocked(message)));
                &[][..]
            }
            None => &snaps::SNAPS[..],
        };
        let mut listed = None;
        for name in snaps_to_look_at {
            if !looks_at(name, &item_problems) {
                continue;
            }
            item_problems.remove(*name);
            look_at_snap(
                target,
                name,
                (config, allow_upgrade),
                (recorded, &mut *journal),
                announce,
                Findings {
                    report: &mut report,
                    problems: &mut problems,
                    listed: &mut listed,
                },
            )?;
        }
        Ok(())
    })();
    item_problems.extend(problems);
    recorded.item_problems = item_problems;
    let order = std::iter::once(key.as_str())
        .chain(["channel"])
        .chain(snaps::SNAPS);
    let mut flat: Vec<Problem> = Vec::new();
    for item in order {
        // Three held snaps make one "Needs manual upgrade".
        if let Some(p) = recorded
            .item_problems
            .get(item)
            .filter(|p| !flat.contains(p))
        {
            flat.push(p.clone());
        }
    }
    if flat != recorded.concerns.of(Concern::Resources) {
        for p in &flat {
            log::info!("{}", p.message);
        }
    }
    recorded.concerns.set(Concern::Resources, flat);
    result?;
    hold_and_version(tools, config, recorded)?;
    Ok(report)
}

fn look_at_cni(
    target: &Target,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    report: &mut Report,
    problems: &mut Vec<(String, Problem)>,
) -> Result<(), Error> {
    let (tools, root, arch) = (target.tools, target.root, target.arch);
    let key = cni::resource_name(arch);
    let outcome = cni::converge(
        (tools, root, arch),
        &mut recorded.journal,
        journal,
        &mut recorded.fingerprints,
        announce,
    )?;
    match outcome {
        cni::Outcome::Unchanged => {
            report.insert(key, "unchanged".into());
        }
        cni::Outcome::Adopted(count) => {
            report.insert(key, format!("adopted {count} plugins already in place"));
        }
        cni::Outcome::Installed { added, removed } => {
            report.insert(key, format!("installed {added} plugins, removed {removed}"));
        }
        cni::Outcome::Blocked(message) => {
            report.insert(key.clone(), message.clone());
            problems.push((key, Problem::blocked(message)));
        }
        cni::Outcome::Unavailable(why) => {
            report.insert(key.clone(), format!("could not be fetched: {why}"));
            problems.push((key.clone(), unavailable(&key, &why)));
        }
    }
    Ok(())
}

/// What a look found: item by item, for the report and the status.
struct Findings<'a> {
    report: &'a mut Report,
    problems: &'a mut Vec<(String, Problem)>,
    /// `snap list`, asked once per hook and only when a snap the charm has
    /// no record of is on the machine.
    listed: &'a mut Option<Vec<snap::Listed>>,
}

fn look_at_snap(
    target: &Target,
    name: &str,
    (config, allow_upgrade): (&Config, bool),
    (recorded, journal): (&mut Recorded, &mut JournalFile),
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    found: Findings,
) -> Result<(), Error> {
    let Findings {
        report,
        problems,
        listed,
    } = found;
    let (tools, root, arch) = (target.tools, target.root, target.arch);
    let wanted = match snaps::wanted(tools, name, &config.channel, &mut recorded.fingerprints)? {
        Ok(wanted) => wanted,
        Err(why) => {
            report.insert(name.to_string(), format!("could not be fetched: {why}"));
            problems.push((name.to_string(), unavailable(name, &why)));
            return Ok(());
        }
    };
    let mut installed = recorded.journal.snaps.get(name).cloned();
    if let Some(pending) = recorded.journal.snap_pending.remove(name) {
        // A change this charm began and a stopped hook did not record:
        // the machine says whether it went through.
        let now = snap::current_revision(root, name);
        if let (Some(_), Some(meta)) = (&now, snap::installed(root, name)?) {
            if now != pending.from_revision {
                log::info!("{name}: the change a stopped hook began went through");
                let done = crate::facts::snap::Installed {
                    source: pending.source,
                    version: meta.version,
                    adopted: false,
                };
                recorded
                    .journal
                    .snaps
                    .insert(name.to_string(), done.clone());
                installed = Some(done);
            }
        }
    }
    if installed.is_none() && snap::installed(root, name)?.is_some() {
        // Installed by someone else (the Python charm before a switch), or
        // by this charm before its journal was lost: what snapd says is the
        // starting point, and only a difference from it is an upgrade.
        let listed = match listed {
            Some(listed) => listed,
            None => listed.insert(SnapCli.list(&snaps::SNAPS)?),
        };
        let entry = listed.iter().find(|l| l.name == name);
        installed = snaps::adopt(name, &wanted, root, entry)?;
        if recorded.journal.snaps_held.is_none()
            && snaps::SNAPS
                .iter()
                .all(|n| listed.iter().any(|l| l.name == *n && l.held))
        {
            recorded.journal.snaps_held = Some(true);
        }
    }
    let daemon = snaps::DAEMONS.contains(&name);
    let mut before_change = |pending: &crate::facts::snap::Pending| -> Result<(), Error> {
        recorded
            .journal
            .snap_pending
            .insert(name.to_string(), pending.clone());
        // snapd restarts a running daemon on its new binary with the old
        // options; one stopped and disabled it leaves so, and the node's
        // configuration starts it once, configured for the new version.
        let park = daemon && pending.from_revision.is_some();
        if park {
            recorded.journal.parked.insert(name.to_string());
        }
        journal.persist(&recorded.journal)?;
        if park {
            log::info!("stopping {name} until it is configured for its new version");
            charm::service::Systemctl
                .disable_now(&format!("snap.{name}.daemon"))
                .map_err(|e| Error::Exec {
                    doing: "stopping a daemon ahead of its refresh",
                    source: e,
                })?;
        }
        Ok(())
    };
    let outcome = snaps::converge(
        name,
        &wanted,
        &mut installed,
        allow_upgrade,
        (arch, root),
        announce,
        &mut before_change,
    )?;
    if let Some(installed) = installed {
        recorded.journal.snaps.insert(name.to_string(), installed);
    }
    recorded.journal.snap_pending.remove(name);
    let (text, problem) = match outcome {
        snaps::Outcome::Unchanged => ("unchanged".to_string(), None),
        snaps::Outcome::Done(what) => {
            log::info!("{what}");
            (what, None)
        }
        snaps::Outcome::Held { from, to } => {
            log::debug!("{name}: upgrade from {from} to {to} waits for the upgrade action");
            (
                format!("upgrade from {from} to {to} waits for the upgrade action"),
                Some(Problem {
                    kind: ProblemKind::ManualUpgrade,
                    message: "Needs manual upgrade, run the upgrade action".into(),
                }),
            )
        }
        snaps::Outcome::Blocked(message) => (message.clone(), Some(Problem::blocked(message))),
        snaps::Outcome::Retry(reason) => (
            format!("the store failed: {reason}"),
            Some(Problem {
                kind: ProblemKind::Retry,
                message: format!("Waiting to retry installing {name}: {reason}"),
            }),
        ),
    };
    report.insert(name.to_string(), text);
    if let Some(problem) = problem {
        problems.push((name.to_string(), problem));
    }
    Ok(())
}

/// Holds the snaps once all three are in, and tells Juju the workload
/// version.
fn hold_and_version(
    tools: &HookTools,
    config: &Config,
    recorded: &mut Recorded,
) -> Result<(), Error> {
    // Only the charm changes these snaps' revisions (on the channel, or by
    // the upgrade action): snapd's own refreshes would restart the daemons
    // behind the manual-upgrade gate.
    if recorded.journal.snaps_held.is_none()
        && snaps::SNAPS
            .iter()
            .all(|n| recorded.journal.snaps.contains_key(*n))
    {
        let held = SnapCli.hold(&snaps::SNAPS)?;
        if held {
            log::info!("kubectl, kubelet and kube-proxy held from automatic refreshes");
        } else {
            log::warn!("snapd is older than 2.58 and cannot hold snaps: it may refresh kubectl, kubelet and kube-proxy within their channel on its own schedule");
        }
        recorded.journal.snaps_held = Some(held);
    }
    recorded.resources_for = Some((config.channel.clone(), config.require_manual_upgrade));
    let version = recorded.journal.kubelet_version().map(str::to_string);
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        if recorded.workload_version.as_ref() != Some(&version) {
            tools
                .application_version_set(&version)
                .doing("setting the workload version")?;
            recorded.workload_version = Some(version);
        }
    }
    Ok(())
}

/// A resource the controller could not serve now: waited for, and looked
/// at again by the next hook, whatever it is.
fn unavailable(resource: &str, why: &str) -> Problem {
    Problem {
        kind: ProblemKind::Retry,
        message: format!(
            "Waiting for the {resource} resource: {}; retrying on the next hook",
            charm::quote::bounded(why, 200)
        ),
    }
}
