//! The `upgrade` action's look before it leaps: what each snap would
//! become, and whether the control plane allows it (Kubernetes'
//! version-skew policy, [`crate::skew`]). Nothing here changes the machine
//! or the cluster; whatever it cannot find out refuses the upgrade. Then
//! the upgrade itself, drained first, and what a later hook does with one
//! that was stopped half-way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use charm::snap::{self, SnapCli};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::daemons::Version;
use crate::drain;
use crate::error::Error;
use crate::facts::snap::Source;
use crate::facts::UpgradeRecord;
use crate::install::{self, Look, Target};
use crate::journal::JournalFile;
use crate::kubeapi::Api;
use crate::node::Node;
use crate::problem::{Concern, ProblemKind};
use crate::skew;
use crate::snaps::{self, DAEMONS, SNAPS};
use crate::unit_state::Recorded;

/// One snap the upgrade would change: its version now (if installed) and
/// the one it would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub snap: &'static str,
    pub from: Option<String>,
    pub to: String,
}

/// What an upgrade would do, found allowed.
#[derive(Debug)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The oldest API server's version, if the node is in a cluster.
    pub api_server: Option<String>,
}

impl Plan {
    /// The plan as the action's results, each snap under its own name.
    pub fn results(&self) -> BTreeMap<String, String> {
        let mut results: BTreeMap<String, String> = SNAPS
            .iter()
            .map(|s| (s.to_string(), "unchanged".to_string()))
            .collect();
        for c in &self.changes {
            let from = c.from.as_deref().unwrap_or("nothing");
            results.insert(c.snap.to_string(), format!("from {from} to {}", c.to));
        }
        let skew = match &self.api_server {
            Some(version) => format!("allowed against the API server's {version}"),
            None if self.changes.is_empty() => "nothing to check".into(),
            None => "not checked: no API server known (the node is in no cluster yet)".into(),
        };
        results.insert("skew".into(), skew);
        results
    }
}

/// The upgrade the resources and the channel ask for, and whether it may
/// go ahead: `Err` says why not, naming what stands in the way.
pub fn plan(
    target: &Target,
    node: &Node,
    config: &Config,
    recorded: &mut Recorded,
) -> Result<Result<Plan, String>, Error> {
    if let Some(why) = config.channel_error() {
        return Ok(Err(why));
    }
    let changes = match changes(target, config, recorded)? {
        Ok(changes) => changes,
        Err(why) => return Ok(Err(why)),
    };
    let daemons: Vec<&Change> = changes
        .iter()
        .filter(|c| DAEMONS.contains(&c.snap))
        .collect();
    if daemons.is_empty() {
        return Ok(Ok(Plan {
            changes,
            api_server: None,
        }));
    }
    let targets: Vec<(&str, &str)> = daemons.iter().map(|c| (c.snap, c.to.as_str())).collect();
    match skew_verdict(&targets, node, recorded) {
        Ok(api_server) => Ok(Ok(Plan {
            changes,
            api_server,
        })),
        Err(why) => Ok(Err(why)),
    }
}

/// Whether the control plane's oldest API server allows each `(snap,
/// version)`: `Ok(None)` when the node is in no cluster yet, else the
/// API server it was checked against; `Err` says why not.
pub fn skew_verdict(
    targets: &[(&str, &str)],
    node: &Node,
    recorded: &Recorded,
) -> Result<Option<String>, String> {
    let Some((oldest, text)) = oldest_api_server(node, recorded)? else {
        return Ok(None);
    };
    for (snap, to) in targets {
        let Some(version) = Version::parse(to) else {
            return Err(format!(
                "cannot tell which Kubernetes release {snap} {to} is"
            ));
        };
        if let Err(why) = skew::allows(version, oldest) {
            return Err(format!("version skew: {snap} {why} ({text})"));
        }
    }
    Ok(Some(text))
}

/// The kubelet version the channel or the attached resource gives, whether
/// or not it is installed already: what a rolling upgrade brings every
/// unit to.
pub fn kubelet_target(
    target: &Target,
    config: &Config,
    recorded: &mut Recorded,
) -> Result<Result<String, String>, Error> {
    if let Some(why) = config.channel_error() {
        return Ok(Err(why));
    }
    Ok(change_of(target, config, recorded, "kubelet", true)?
        .map(|c| c.map(|c| c.to).unwrap_or_default()))
}

/// Each snap whose source would change, with the version it would get:
/// an attached file's own, or what the store serves on the channel.
fn changes(
    target: &Target,
    config: &Config,
    recorded: &mut Recorded,
) -> Result<Result<Vec<Change>, String>, Error> {
    let mut changes = Vec::new();
    for name in SNAPS {
        match change_of(target, config, recorded, name, false)? {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok(changes))
}

/// What `name` would become; `None` when its source is installed already
/// (unless `even_unchanged`).
fn change_of(
    target: &Target,
    config: &Config,
    recorded: &mut Recorded,
    name: &'static str,
    even_unchanged: bool,
) -> Result<Result<Option<Change>, String>, Error> {
    let wanted = match snaps::wanted(
        target.tools,
        name,
        &config.channel,
        &mut recorded.fingerprints,
    )? {
        Ok(wanted) => wanted,
        Err(why) => return Ok(Err(format!("resource {name} could not be fetched: {why}"))),
    };
    let installed = recorded.journal.snaps.get(name);
    if installed.is_some_and(|i| i.source == wanted.source) && !even_unchanged {
        return Ok(Ok(None));
    }
    let to = match (&wanted.file, &wanted.source) {
        (Some(file), _) => match snap::inspect_file(file) {
            Ok(meta) => meta.version,
            Err(e) => return Ok(Err(format!("resource {name}: {e}"))),
        },
        (None, Source::Store { channel }) => match store_version(name, channel)? {
            Ok(version) => version,
            Err(why) => return Ok(Err(why)),
        },
        (None, other) => return Ok(Err(format!("{name}: nothing to install from {other}"))),
    };
    Ok(Ok(Some(Change {
        snap: name,
        from: installed.map(|i| i.version.clone()),
        to,
    })))
}

/// The version the store serves `name` at on `channel`.
fn store_version(name: &str, channel: &str) -> Result<Result<String, String>, Error> {
    let channels = match SnapCli.channels(name) {
        Ok(channels) => channels,
        Err(snap::SnapError::Exec(e)) if e.code().is_some() => {
            let said = e.stderr().trim().to_string();
            return Ok(Err(format!("snap info {name} failed: {said}")));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(channels) = channels else {
        return Ok(Err(format!(
            "cannot reach the snap store to learn which {name} {channel} serves"
        )));
    };
    let normal = snap::normalize_channel(channel);
    Ok(channels
        .get(&normal)
        .cloned()
        .ok_or_else(|| format!("the snap store has no {name} on channel {channel}")))
}

/// The oldest version among every API server the relations name, and
/// how to say it (`1.31 (v1.31.2 at https://...)`); `None` when the node
/// is in no cluster yet.
fn oldest_api_server(
    node: &Node,
    recorded: &Recorded,
) -> Result<Option<(Version, String)>, String> {
    let Some(apis) = node.every_api(recorded) else {
        return Ok(None);
    };
    let mut oldest: Option<(Version, String)> = None;
    for (url, api) in apis {
        let version = api
            .and_then(|api| api.version())
            .map_err(|e| format!("cannot read the API server's version at {url}: {e}"))?;
        let parsed = Version::parse(&version).ok_or_else(|| {
            format!("the API server at {url} says it runs {version:?}, not a Kubernetes version")
        })?;
        if oldest.as_ref().is_none_or(|(v, _)| parsed < *v) {
            oldest = Some((parsed, format!("{version} at {url}")));
        }
    }
    Ok(oldest)
}

/// The longest either deadline may be: a day. Longer would hold the
/// machine lock (and every other charm on the machine) for longer still.
const MAX_TIMEOUT: i64 = 86_400;

const POLL: Duration = Duration::from_secs(2);

/// The `upgrade` action's parameters (actions.yaml). A rolling upgrade
/// hands them to every unit in the application's bag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    #[serde(rename = "dry-run", default)]
    pub dry_run: bool,
    #[serde(rename = "skip-drain", default)]
    pub skip_drain: bool,
    #[serde(rename = "delete-local-data", default)]
    pub delete_local_data: bool,
    #[serde(default)]
    pub force: bool,
    #[serde(rename = "drain-timeout", default = "default_timeout")]
    pub drain_timeout: i64,
    #[serde(rename = "ready-timeout", default = "default_timeout")]
    pub ready_timeout: i64,
    #[serde(rename = "all-units", default, skip_serializing)]
    pub all_units: bool,
    #[serde(rename = "at-once", default = "one", skip_serializing)]
    pub at_once: i64,
}

fn one() -> i64 {
    1
}

fn default_timeout() -> i64 {
    300
}

impl Params {
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("drain-timeout", self.drain_timeout),
            ("ready-timeout", self.ready_timeout),
        ] {
            if !(0..=MAX_TIMEOUT).contains(&value) {
                return Err(format!(
                    "{name} must be from 0 to {MAX_TIMEOUT} seconds, not {value}"
                ));
            }
        }
        if self.at_once < 1 {
            return Err(format!("at-once must be 1 or more, not {}", self.at_once));
        }
        Ok(())
    }
}

/// What runs the node's configuration once the snaps changed.
pub type Configure<'a> = dyn FnMut(&mut Recorded, &mut JournalFile) -> Result<(), Error> + 'a;

/// Carries out `plan`: drains the node (unless told not to), refreshes the
/// snaps, configures and restarts the daemons, waits until the node is
/// Ready on the new kubelet, and uncordons it. Each step is announced in
/// the status and reported with its time. Returns the report and, if it
/// stopped, why: the node then stays cordoned and the unit blocked, until
/// the action is run again.
pub fn run(
    target: &Target,
    node: &Node,
    (config, plan, params): (&Config, &Plan, &Params),
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    configure: &mut Configure,
) -> Result<(BTreeMap<String, String>, Option<String>), Error> {
    let mut report = plan.results();
    let kubelet_to = plan
        .changes
        .iter()
        .find(|c| c.snap == "kubelet")
        .map(|c| c.to.clone());
    let node_changes = plan.changes.iter().any(|c| DAEMONS.contains(&c.snap));
    let api = match (node_changes || recorded.journal.upgrade.is_some())
        .then(|| node.api(recorded))
        .flatten()
    {
        Some(Ok(api)) => Some(api),
        Some(Err(e)) => return Ok((report, Some(format!("cannot reach the API server: {e}")))),
        None => None,
    };
    if api.is_some() {
        // Written ahead: a node this action cordons is never left so with
        // an active status, whatever stops the action.
        let to = kubelet_to
            .clone()
            .or_else(|| recorded.journal.upgrade.as_ref().and_then(|u| u.to.clone()));
        recorded.journal.upgrade = Some(UpgradeRecord {
            to,
            stopped: None,
            cordoned: !params.skip_drain,
        });
        journal.persist(&recorded.journal)?;
    }
    if let (Some(api), false) = (&api, params.skip_drain) {
        announce(&format!("Draining node {} for its upgrade", node.name))?;
        let started = Instant::now();
        let options = drain::Options {
            delete_local_data: params.delete_local_data,
            force: params.force,
            timeout: Duration::from_secs(params.drain_timeout.unsigned_abs()),
        };
        let drained = match drain::drain(api, &node.name, &options) {
            Ok(drained) if drained.terminating.is_empty() => drained,
            Ok(drained) => {
                let why = format!(
                    "Upgrade stopped before any snap changed: node {} cordoned, but pods had not terminated after {} s ({}); run the upgrade action again",
                    node.name,
                    params.drain_timeout,
                    drained.terminating.join(", ")
                );
                return Ok(stopped(recorded, report, why));
            }
            Err(m) => {
                let why = format!("Upgrade stopped before any snap changed: {m}");
                return Ok(stopped(recorded, report, why));
            }
        };
        report.insert(
            "drain".into(),
            format!(
                "{} pods evicted in {} s",
                drained.evicted.len(),
                started.elapsed().as_secs()
            ),
        );
    }
    let snaps = install::converge(target, config, recorded, journal, true, Look::All, announce)?;
    report.extend(snaps);
    // Configured even if a snap failed: a daemon stopped for its refresh
    // starts again, on what it has.
    configure(recorded, journal)?;
    let trouble: Vec<String> = recorded
        .concerns
        .of(Concern::Resources)
        .iter()
        .map(|p| p.message.clone())
        .collect();
    if !trouble.is_empty() {
        let why = format!("upgrade incomplete: {}", trouble.join("; "));
        return Ok(stopped(recorded, report, why));
    }
    let Some(api) = api else {
        return Ok((report, None));
    };
    // The version the refresh installed, not the one the plan read: the
    // store may have published a new patch on the channel during a long
    // drain, and the node then posts that one. Recorded, so that a retry
    // after a kill waits for the same.
    let installed = recorded
        .journal
        .kubelet_version()
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    if let (Some(record), Some(installed)) = (&mut recorded.journal.upgrade, installed) {
        if record.to.is_some() && record.to.as_ref() != Some(&installed) {
            log::info!(
                "kubelet {installed} was installed where the plan read {}: waiting for {installed}",
                record.to.as_deref().unwrap_or_default()
            );
            record.to = Some(installed);
            journal.persist(&recorded.journal)?;
        }
    }
    let to = recorded.journal.upgrade.as_ref().and_then(|u| u.to.clone());
    let on = to
        .as_deref()
        .map(|v| format!(" on kubelet {v}"))
        .unwrap_or_default();
    announce(&format!("Waiting for node {} to be Ready{on}", node.name))?;
    let started = Instant::now();
    let timeout = Duration::from_secs(params.ready_timeout.unsigned_abs());
    if let Err(why) = wait_ready(&api, &node.name, to.as_deref(), timeout) {
        let cordon = if params.skip_drain {
            ""
        } else {
            "; it stays cordoned"
        };
        let why = format!(
            "Upgrade stopped: node {} not Ready{on} after {} s ({why}){cordon}. Fix the node, then run the upgrade action again",
            node.name, params.ready_timeout
        );
        return Ok(stopped(recorded, report, why));
    }
    report.insert(
        "ready".into(),
        format!("Ready{on} after {} s", started.elapsed().as_secs()),
    );
    if !params.skip_drain {
        announce(&format!("Uncordoning node {}", node.name))?;
        if let Err(e) = api.set_unschedulable(&node.name, false) {
            let why = format!("Upgrade stopped: cannot uncordon node {}: {e}", node.name);
            return Ok(stopped(recorded, report, why));
        }
        report.insert("uncordoned".into(), "true".into());
    }
    recorded.journal.upgrade = None;
    log::info!("upgraded node {}{on}", node.name);
    Ok((report, None))
}

fn stopped(
    recorded: &mut Recorded,
    report: BTreeMap<String, String>,
    why: String,
) -> (BTreeMap<String, String>, Option<String>) {
    log::warn!("{why}");
    if let Some(record) = &mut recorded.journal.upgrade {
        record.stopped = Some(why.clone());
    }
    (report, Some(why))
}

/// Waits until the node is Ready and posts kubelet `to` (when given).
/// `Err` says how it last stood.
fn wait_ready(api: &Api, node: &str, to: Option<&str>, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.node_readiness(node) {
            Ok((None, version)) => match (to, version) {
                (None, _) => return Ok(()),
                (Some(to), Some(v)) if v.trim_start_matches('v') == to => return Ok(()),
                (Some(_), v) => {
                    format!("it posts kubelet {}", v.as_deref().unwrap_or("no version"))
                }
            },
            Ok((Some(why), _)) => why,
            Err(e) => e.to_string(),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(last);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// A hook after an upgrade was stopped half-way (the action killed: the
/// agent restarted, the machine rebooted): a node Ready on the new kubelet
/// is uncordoned and the upgrade done; any other is left cordoned and the
/// unit blocked, saying so.
pub fn recover(node: &Node, recorded: &mut Recorded) -> Result<(), Error> {
    let Some(record) = recorded.journal.upgrade.clone() else {
        return Ok(());
    };
    if record.stopped.is_some() {
        return Ok(());
    }
    let on = record
        .to
        .as_deref()
        .map(|v| format!(" on kubelet {v}"))
        .unwrap_or_default();
    // The record is written before the cordon: a kill in between leaves a
    // node that was never cordoned, and the status says which it is.
    let mut cordoned = record.cordoned;
    // A snap the upgrade did not reach is still held back: not done.
    let unfinished = recorded
        .concerns
        .of(Concern::Resources)
        .iter()
        .any(|p| p.kind == ProblemKind::ManualUpgrade);
    let outcome = match node.api(recorded) {
        Some(Ok(api)) if unfinished => {
            if record.cordoned {
                cordoned = api.node_cordoned(&node.name).unwrap_or(true);
            }
            Err("not every snap was refreshed".to_string())
        }
        Some(Ok(api)) => match wait_ready(&api, &node.name, record.to.as_deref(), Duration::ZERO) {
            Ok(()) if !record.cordoned => Ok(()),
            Ok(()) => api
                .set_unschedulable(&node.name, false)
                .map_err(|e| format!("cannot uncordon it: {e}")),
            Err(why) => {
                if record.cordoned {
                    cordoned = api.node_cordoned(&node.name).unwrap_or(true);
                }
                Err(why)
            }
        },
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no API server known".into()),
    };
    match outcome {
        Ok(()) => {
            log::info!(
                "the interrupted upgrade of node {} is done: Ready{on}",
                node.name
            );
            recorded.journal.upgrade = None;
        }
        Err(why) => {
            let cordon = if cordoned { "; it stays cordoned" } else { "" };
            let why = format!(
                "Upgrade interrupted before node {} was Ready{on} ({why}){cordon}. Run the upgrade action again",
                node.name
            );
            log::warn!("{why}");
            if let Some(record) = &mut recorded.journal.upgrade {
                record.stopped = Some(why);
            }
        }
    }
    Ok(())
}
