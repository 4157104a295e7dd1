//! Convergence of everything the resources provide: the CNI plugins and
//! the three snaps, for this machine's architecture.

use std::collections::BTreeMap;

use charm::root::MachineRoot;
use charm::snap::SnapCli;
use charm::state::StateFile;
use charm::HookTools;

use crate::arch::Arch;
use crate::error::{Error, ToolContext};
use crate::journal::Journal;
use crate::unit_state::{Problem, ProblemKind, Recorded};
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

/// Brings the plugins and snaps in line with the resources and config.
/// `force_upgrade`: apply upgrades even under require-manual-upgrade (the
/// `upgrade` action). Records what it did and what stood in the way.
pub fn converge(
    target: &Target,
    config: &Config,
    recorded: &mut Recorded,
    journal: &mut StateFile<Journal>,
    force_upgrade: bool,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Report, Error> {
    let (tools, root, arch) = (target.tools, target.root, target.arch);
    let mut report = Report::new();
    let mut problems = Vec::new();

    let outcome = cni::converge(
        tools,
        root,
        arch,
        journal,
        &mut recorded.fingerprints,
        announce,
    )?;
    let key = cni::resource_name(arch);
    match outcome {
        cni::Outcome::Unchanged => {
            report.insert(key, "unchanged".into());
        }
        cni::Outcome::Installed { added, removed } => {
            report.insert(key, format!("installed {added} plugins, removed {removed}"));
        }
        cni::Outcome::Blocked(message) => {
            report.insert(key, message.clone());
            problems.push(Problem {
                kind: ProblemKind::Blocked,
                message,
            });
        }
        cni::Outcome::Unavailable(why) => {
            report.insert(key.clone(), format!("could not be fetched: {why}"));
            problems.push(unavailable(&key, &why));
        }
    }

    let allow_upgrade = force_upgrade || !config.require_manual_upgrade;
    // A channel snapd cannot take is the operator's to fix: the snaps are
    // left as they are rather than refreshed to `--channel=` and retried.
    let snaps_to_look_at = match config.channel_error() {
        Some(message) => {
            report.insert("channel".into(), message.clone());
            problems.push(Problem {
                kind: ProblemKind::Blocked,
                message,
            });
            &[][..]
        }
        None => &snaps::SNAPS[..],
    };
    for name in snaps_to_look_at {
        let name = *name;
        let wanted = match snaps::wanted(tools, name, &config.channel, &mut recorded.fingerprints)?
        {
            Ok(wanted) => wanted,
            Err(why) => {
                report.insert(name.to_string(), format!("could not be fetched: {why}"));
                problems.push(unavailable(name, &why));
                continue;
            }
        };
        let mut installed = recorded.snaps.get(name).cloned();
        let outcome = snaps::converge(
            name,
            &wanted,
            &mut installed,
            allow_upgrade,
            arch,
            root,
            announce,
        )?;
        if let Some(installed) = installed {
            recorded.snaps.insert(name.to_string(), installed);
        }
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
            snaps::Outcome::Blocked(message) => (
                message.clone(),
                Some(Problem {
                    kind: ProblemKind::Blocked,
                    message,
                }),
            ),
            snaps::Outcome::Retry(reason) => (
                format!("the store failed: {reason}"),
                Some(Problem {
                    kind: ProblemKind::Retry,
                    message: format!("Waiting to retry installing {name}: {reason}"),
                }),
            ),
        };
        report.insert(name.to_string(), text);
        // Three held snaps make one "Needs manual upgrade".
        if let Some(problem) = problem.filter(|p| !problems.contains(p)) {
            problems.push(problem);
        }
    }
    // Only the charm changes these snaps' revisions (on the channel, or by
    // the upgrade action): snapd's own refreshes would restart the daemons
    // behind the manual-upgrade gate.
    if recorded.snaps_held.is_none() && snaps::SNAPS.iter().all(|n| recorded.snaps.contains_key(*n))
    {
        let held = SnapCli.hold(&snaps::SNAPS)?;
        if held {
            log::info!("kubectl, kubelet and kube-proxy held from automatic refreshes");
        } else {
            log::warn!("snapd is older than 2.58 and cannot hold snaps: it may refresh kubectl, kubelet and kube-proxy within their channel on its own schedule");
        }
        recorded.snaps_held = Some(held);
    }
    if problems != recorded.problems {
        for p in &problems {
            log::info!("{}", p.message);
        }
    }
    recorded.problems = problems;
    recorded.resources_for = Some((config.channel.clone(), config.require_manual_upgrade));
    let version = recorded.snaps.get("kubelet").map(|s| s.version.clone());
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        if recorded.workload_version.as_ref() != Some(&version) {
            tools
                .application_version_set(&version)
                .doing("setting the workload version")?;
            recorded.workload_version = Some(version);
        }
    }
    Ok(report)
}

/// A resource the controller could not serve now: waited for, and looked
/// at again by the next hook, whatever it is.
fn unavailable(resource: &str, why: &str) -> Problem {
    Problem {
        kind: ProblemKind::Retry,
        message: format!(
            "Waiting for the {resource} resource: {}; retrying on the next hook",
            charm::logging::bounded(why, 200)
        ),
    }
}
