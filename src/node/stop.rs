//! The stop hook: the node leaves the cluster and its daemons stop.

use charm::service::Systemctl;
use charm::snap::{self};

use crate::error::Error;
use crate::journal::JournalFile;
use crate::kubeapi::Api;
use crate::unit_state::Recorded;

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
        recorded.journal.stop_outcome = Some(outcome);
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
}
