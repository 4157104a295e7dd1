//! The stop hook: the node leaves the cluster and its daemons stop.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use charm::service::Systemctl;
use charm::snap::{self};
use charm::Status;

use crate::drain;
use crate::error::ToolContext;
use crate::facts::StopDrain;

use crate::error::Error;
use crate::journal::JournalFile;
use crate::kubeapi::Api;
use crate::unit_state::{Recorded, DEFAULT_REMOVAL_DRAIN_TIMEOUT};

use super::Node;
use crate::snaps::DAEMONS;

impl Node<'_> {
    /// Keeps the API server the relations name, and its CA, for `stop`,
    /// which runs after every relation is gone.
    pub fn remember_api_server(&self, recorded: &mut Recorded) {
        if let Some((url, ca)) = self.api_target(recorded) {
            recorded.journal.api_server = Some(crate::facts::ApiServer { url, ca });
        }
    }

    /// The stop hook: remove the node from the cluster, stop the daemons.
    /// Juju runs it after every relation is gone, so the API server is the
    /// one the journal recorded (`known`), reached with the client token
    /// still in the kubeconfig the charm wrote.
    pub fn stop(&self, recorded: &mut Recorded, file: &mut JournalFile) -> Result<(), Error> {
        recorded.journal.stopped = true;
        // The node as it was configured: the relations that named it are gone.
        let name = recorded
            .journal
            .node_name
            .clone()
            .unwrap_or_else(|| self.name.clone());
        let known = recorded.journal.api_server.clone();
        let api = self.api(recorded).or_else(|| {
            let server = known?;
            let token = self.disk_tokens()?.client_token;
            Some(Api::new(&server.url, &server.ca, &token))
        });
        let sent_before = recorded.journal.node_deleted.as_ref() == Some(&name);
        // Once the deletion is sent, the pods went with the node.
        let drained = match &api {
            Some(Ok(api)) if !sent_before => {
                let note = self.drain_before_removal(api, &name, recorded, file)?;
                // Kept with the deletion's record: a stop run again says
                // what the drain did, not that there was none.
                recorded.journal.stop_drained = Some(note.clone());
                note
            }
            _ if sent_before => recorded.journal.stop_drained.clone().unwrap_or_default(),
            _ => String::new(),
        };
        if api.as_ref().is_some_and(|a| a.is_ok()) {
            // Written ahead: a stop killed after the delete, run again,
            // finds the node gone and must still say it removed it.
            recorded.journal.node_deleted = Some(name.clone());
            file.persist(&recorded.journal)?;
        }
        let outcome = match api {
            Some(Ok(api)) => match api.delete_node(&name) {
                Ok(()) => "node removed from the cluster".to_string(),
                Err(e) if e.is_not_found() && sent_before => {
                    "node removed from the cluster".to_string()
                }
                Err(e) if e.is_not_found() => format!("node {name} was not in the cluster"),
                Err(e) => format!("could not remove node {name} from the cluster ({e})"),
            },
            Some(Err(e)) => format!("could not remove node {name} from the cluster ({e})"),
            None => format!("no API server known, node {name} left to the control plane"),
        };
        if outcome.starts_with("could not") {
            log::warn!("{outcome}");
        } else {
            log::info!("{outcome}");
        }
        recorded.journal.stop_outcome = Some(format!("{outcome}{drained}"));
        for snap_name in DAEMONS {
            if snap::installed(self.root, snap_name)?.is_some() {
                Systemctl
                    .disable_now(&format!("snap.{snap_name}.daemon"))
                    .map_err(|e| Error::Exec {
                        doing: "stopping a daemon",
                        source: e,
                    })?;
            }
        }
        recorded.journal.daemons.clear();
        Ok(())
    }

    /// Drains the node before it is deleted, within `removal-drain-timeout`
    /// (counted from the first try, should a killed stop run again), unless
    /// the cluster is going away: the control plane left, or no other node
    /// would take the pods. Returns what the stop's outcome adds about it.
    fn drain_before_removal(
        &self,
        api: &Api,
        name: &str,
        recorded: &mut Recorded,
        file: &mut JournalFile,
    ) -> Result<String, Error> {
        let timeout = recorded
            .options
            .as_ref()
            .map_or(DEFAULT_REMOVAL_DRAIN_TIMEOUT, |o| o.removal_drain_timeout);
        if timeout == 0 {
            return Ok(String::new());
        }
        if recorded.control_plane_left {
            log::info!("the control plane has left: node {name} is not drained");
            return Ok("; not drained: the control plane left".into());
        }
        match api.other_schedulable_node(name) {
            Ok(Some(other)) => log::debug!("{other} takes pods: draining node {name}"),
            Ok(None) => {
                log::info!("no other node takes pods: node {name} is not drained");
                return Ok("; not drained: no other node takes pods".into());
            }
            // The deletion will say so too.
            Err(e) => {
                log::warn!("cannot list the nodes, so node {name} is not drained: {e}");
                return Ok(String::new());
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let deadline = match &recorded.journal.stop_drain {
            Some(begun) if begun.node == name => begun.deadline,
            _ => {
                let deadline = now.saturating_add(timeout);
                recorded.journal.stop_drain = Some(StopDrain {
                    node: name.to_string(),
                    deadline,
                });
                file.persist(&recorded.journal)?;
                deadline
            }
        };
        let left = Duration::from_secs(deadline.saturating_sub(now));
        self.tools
            .status_set(&Status::maintenance(format!(
                "Draining node {name} before its removal (at most {} s)",
                left.as_secs()
            )))
            .doing("setting the unit's status")?;
        let removal = drain::drain_for_removal(api, name, Instant::now() + left);
        if !removal.evicted.is_empty() {
            log::info!("evicted from node {name}: {}", removal.evicted.join(", "));
        }
        if let Some(why) = &removal.stopped {
            log::warn!("the drain of node {name} stopped early: {why}");
        }
        Ok(if !removal.left.is_empty() {
            log::warn!(
                "pods still on node {name} after {timeout} s, going with it: {}",
                removal.left.join(", ")
            );
            format!(
                "; pods still there after {timeout} s went with it: {}",
                few(&removal.left)
            )
        } else if let Some(why) = removal.stopped {
            format!("; drain stopped: {}", charm::quote::bounded(&why, 200))
        } else {
            " after draining it".into()
        })
    }
}

/// The first few names, and how many more: a status line stays readable.
fn few(names: &[String]) -> String {
    const SHOWN: usize = 5;
    match names.len() {
        n if n <= SHOWN => names.join(", "),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}
