//! The node object in the API: its labels and its Ready condition.

use std::collections::{BTreeMap, BTreeSet};

use crate::kubeapi::{Api, ApiError};
use crate::problem::Problem;
use crate::unit_state::{NodeOptions, Recorded};

use super::Node;

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

impl Node<'_> {
    /// One look at the node's Ready condition. An unreachable API server
    /// leaves the last answer standing.
    pub(super) fn check_ready(
        &self,
        recorded: &mut Recorded,
        api: &dyn Fn() -> Result<Api, ApiError>,
    ) {
        let answer = match api() {
            Ok(api) => api.node_not_ready(&self.name),
            Err(e) => {
                log::debug!("cannot look at node {}: {e}", self.name);
                return;
            }
        };
        match answer {
            Ok(state) => recorded.node_not_ready = state,
            Err(e) if e.is_not_found() => {
                recorded.node_not_ready = Some(format!(
                    "node {} has not registered with the API server yet",
                    self.name
                ))
            }
            Err(e) => log::debug!("cannot look at node {}: {e}", self.name),
        }
    }

    /// The labels this node should carry: the charm's own, then the
    /// operator's; and those the operator asked to remove.
    fn wanted_labels(&self, options: &NodeOptions) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("juju-application".to_string(), self.app().to_string()),
            ("juju-charm".to_string(), "kubernetes-worker".to_string()),
        ]);
        // An invalid value would make the API server refuse the whole
        // patch, the application's label with it (see `label`).
        if let Some(zone) = self.zone.as_ref().filter(|z| crate::args::is_label_word(z)) {
            labels.insert(ZONE_LABEL.into(), zone.clone());
        }
        labels.extend(options.labels.clone());
        for key in &options.remove_labels {
            labels.remove(key);
        }
        labels
    }

    /// Applies the labels when they changed or a try failed.
    pub(super) fn label(
        &self,
        recorded: &mut Recorded,
        api: &dyn Fn() -> Result<Api, ApiError>,
        options: &NodeOptions,
    ) -> Option<Problem> {
        let wanted = self.wanted_labels(options);
        if recorded.journal.labels == wanted
            && recorded.journal.labels_removed == options.remove_labels
            && !recorded.journal.labels_pending
        {
            return None;
        }
        let remove: BTreeSet<String> = recorded
            .journal
            .labels
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .chain(&options.remove_labels)
            .cloned()
            .collect();
        let remove: Vec<String> = remove.into_iter().collect();
        if let Some(zone) = self
            .zone
            .as_ref()
            .filter(|z| !crate::args::is_label_word(z))
        {
            log::warn!(
                "not labelling node {} with its availability zone {}: not a valid label value",
                self.name,
                crate::validate::quoted(zone)
            );
        }
        let result = api().and_then(|api| api.patch_labels(&self.name, &wanted, &remove));
        match result {
            Ok(()) => {
                log::info!(
                    "node {} labelled: {} set, {} removed",
                    self.name,
                    wanted.len(),
                    remove.len()
                );
                recorded.journal.labels = wanted;
                recorded.journal.labels_removed = options.remove_labels.clone();
                recorded.journal.labels_pending = false;
                None
            }
            Err(e) => {
                recorded.journal.labels_pending = true;
                let why = if e.is_not_found() {
                    format!("node {} has not registered yet", self.name)
                } else {
                    e.to_string()
                };
                Some(Problem::waiting(format!(
                    "Waiting to apply node labels: {why}"
                )))
            }
        }
    }
}
