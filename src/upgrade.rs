//! The `upgrade` action's look before it leaps: what each snap would
//! become, and whether the control plane allows it (Kubernetes'
//! version-skew policy, [`crate::skew`]). Nothing here changes the machine
//! or the cluster; whatever it cannot find out refuses the upgrade.

use std::collections::BTreeMap;

use charm::snap::{self, SnapCli};

use crate::config::Config;
use crate::daemons::Version;
use crate::error::Error;
use crate::facts::snap::Source;
use crate::install::Target;
use crate::node::Node;
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
    let (oldest, text) = match oldest_api_server(node, recorded) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Ok(Ok(Plan {
                changes,
                api_server: None,
            }))
        }
        Err(why) => return Ok(Err(why)),
    };
    for change in daemons {
        let Some(version) = Version::parse(&change.to) else {
            return Ok(Err(format!(
                "cannot tell which Kubernetes release {} {} is",
                change.snap, change.to
            )));
        };
        if let Err(why) = skew::allows(version, oldest) {
            return Ok(Err(format!("version skew: {} {why} ({text})", change.snap)));
        }
    }
    Ok(Ok(Plan {
        changes,
        api_server: Some(text),
    }))
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
        if installed.is_some_and(|i| i.source == wanted.source) {
            continue;
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
        changes.push(Change {
            snap: name,
            from: installed.map(|i| i.version.clone()),
            to,
        });
    }
    Ok(Ok(changes))
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
