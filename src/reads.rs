//! What each event can have changed, and so what its hook reads and looks
//! at: the one table that decides a hook's cost. Everything else comes
//! from what the charm recorded, so a converged update-status makes no
//! hook-tool call. `docs/engineers/hook-pipeline.md` shows the table; a
//! test renders it and fails when the two differ, so a change to it shows
//! in review.
//!
//! Besides what the event says, a hook reads what it has never read (no
//! options recorded, an endpoint never read, leadership never asked) and
//! retries what failed (a store failure, an apply the API server refused):
//! those depend on the record, and the worker adds them.

use charm::context::HookKind;

use crate::relations::{CERTIFICATES, COS_AGENT, ENDPOINTS, KUBE_CONTROL, TOKENS};

/// Which resources a hook looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resources {
    /// Every one (new ones come with upgrade-charm, fired by
    /// attach-resource).
    All,
    /// Every one if `channel` or `require-manual-upgrade` changed.
    IfChannelChanged,
    /// Only those whose fetch or install is to be retried.
    Retries,
}

/// Which endpoints' relation data a hook reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    All,
    /// The hook's own relation's endpoint.
    Own(String),
    /// Those never read (none, once every endpoint has been).
    Unread,
    None,
}

/// What a hook reads and looks at, as its event decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// `config-get`.
    pub config: bool,
    pub resources: Resources,
    pub endpoints: Endpoints,
    /// The unit's addresses, the kube-control binding's and the machine's
    /// interfaces (kubelet's node IPs, the certificate's SANs).
    pub addresses: bool,
    /// The machine's FQDN looked up again (a new revision; after a kill).
    pub fqdn_again: bool,
    /// The node's Ready condition in the API server.
    pub node_ready: bool,
    /// The COS configuration's inputs (the token, the cluster-tag, the CA).
    pub cos: bool,
    /// `is-leader`.
    pub leadership: bool,
    /// Whether the ingress controller's inputs can have changed.
    pub ingress: bool,
    /// The ingress ports opened or closed as `ingress` says.
    pub ports: bool,
    /// The coordinator peer relation: the rolling upgrade's turns.
    pub peers: bool,
    /// The cloud integrator's request and answer (this unit's own bag on
    /// that relation is read, the integrator's answer is in the cache).
    pub cloud: bool,
    /// The credentials read again, whatever the kubeconfigs hold: a new
    /// revision of their secret (recorded before anything else, and
    /// standing until the tokens are written).
    pub credentials: bool,
}

impl Reads {
    /// For a hook of `kind`; `recovering`: the last hook was killed
    /// half-way, and whatever it read or did may be lost.
    pub fn of(kind: &HookKind, recovering: bool) -> Reads {
        let relation = match kind {
            HookKind::Relation { endpoint, .. } => Some(endpoint.as_str()),
            _ => None,
        };
        let on = |endpoints: &[&str]| relation.is_some_and(|e| endpoints.contains(&e));
        let new_revision = recovering || matches!(kind, HookKind::Install | HookKind::UpgradeCharm);
        let config = new_revision || *kind == HookKind::ConfigChanged;
        let leadership = config
            || matches!(
                kind,
                HookKind::LeaderElected | HookKind::LeaderSettingsChanged
            );
        Reads {
            config,
            resources: if new_revision {
                Resources::All
            } else if *kind == HookKind::ConfigChanged {
                Resources::IfChannelChanged
            } else {
                Resources::Retries
            },
            endpoints: match (new_revision, relation) {
                (true, _) => Endpoints::All,
                (false, Some(endpoint)) if ENDPOINTS.contains(&endpoint) => {
                    Endpoints::Own(endpoint.to_string())
                }
                (false, Some(_)) => Endpoints::None,
                (false, None) if *kind == HookKind::UpdateStatus => Endpoints::None,
                (false, None) => Endpoints::Unread,
            },
            addresses: config || on(&[KUBE_CONTROL, CERTIFICATES]),
            fqdn_again: new_revision,
            node_ready: *kind == HookKind::UpdateStatus,
            cos: config || on(&[KUBE_CONTROL, CERTIFICATES, COS_AGENT, TOKENS]),
            leadership,
            ingress: leadership || on(&[KUBE_CONTROL, CERTIFICATES]),
            ports: config,
            credentials: *kind == HookKind::SecretChanged,
            peers: new_revision
                || *kind == HookKind::LeaderElected
                || on(&[crate::roll::COORDINATOR]),
            cloud: new_revision
                || on(&[
                    KUBE_CONTROL,
                    crate::relations::AWS,
                    crate::relations::GCP,
                    crate::relations::AZURE,
                ]),
        }
    }
}

/// The table, as docs/engineers/hook-pipeline.md shows it.
#[cfg(test)]
fn table() -> String {
    use charm::context::RelationEvent;
    let mut events: Vec<(String, HookKind, bool)> = [
        "install",
        "upgrade-charm",
        "config-changed",
        "start",
        "update-status",
        "leader-elected",
        "leader-settings-changed",
        "secret-changed",
    ]
    .iter()
    .map(|h| (h.to_string(), HookKind::parse(h), false))
    .collect();
    for endpoint in ENDPOINTS {
        events.push((
            format!("{endpoint}-relation-changed"),
            HookKind::Relation {
                endpoint: endpoint.to_string(),
                event: RelationEvent::Changed,
            },
            false,
        ));
    }
    events.push((
        format!("{}-relation-changed", crate::roll::COORDINATOR),
        HookKind::Relation {
            endpoint: crate::roll::COORDINATOR.to_string(),
            event: RelationEvent::Changed,
        },
        false,
    ));
    events.push((
        "update-status after a killed hook".into(),
        HookKind::UpdateStatus,
        true,
    ));
    let yes = |b: bool| if b { "yes" } else { "" };
    let mut out = String::from(
        "| event | config | resources | endpoints | credentials | addresses | FQDN again | node Ready | COS inputs | is-leader | ingress inputs | ports | peers | cloud |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, kind, recovering) in events {
        let r = Reads::of(&kind, recovering);
        let resources = match r.resources {
            Resources::All => "all",
            Resources::IfChannelChanged => "all if the channel changed",
            Resources::Retries => "retries",
        };
        let endpoints = match &r.endpoints {
            Endpoints::All => "all".to_string(),
            Endpoints::Own(e) => format!("`{e}`"),
            Endpoints::Unread => "never read".into(),
            Endpoints::None => String::new(),
        };
        out.push_str(&format!(
            "| {name} | {} | {resources} | {endpoints} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            yes(r.config),
            yes(r.credentials),
            yes(r.addresses),
            yes(r.fqdn_again),
            yes(r.node_ready),
            yes(r.cos),
            yes(r.leadership),
            yes(r.ingress),
            yes(r.ports),
            yes(r.peers),
            yes(r.cloud),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the docs is the one the code follows.
    #[test]
    fn the_documented_table_is_the_one_the_hooks_follow() {
        let doc = include_str!("../docs/engineers/hook-pipeline.md");
        let table = table();
        assert!(
            doc.contains(&table),
            "docs/engineers/hook-pipeline.md does not show the table the code follows; it is now:\n\n{table}"
        );
    }
}
