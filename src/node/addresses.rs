//! This unit's addresses and the names its serving certificate is for.

use std::collections::BTreeSet;

use crate::error::{Error, ToolContext};
use crate::identity;
use crate::relations::KUBE_CONTROL;
use crate::unit_state::Recorded;

use super::Node;

/// Interfaces whose addresses no certificate names: LXD's, libvirt's and
/// Docker's bridges and the CNI's (as kubernetes-snaps leaves them out).
pub(crate) const BRIDGES: [&str; 5] = ["lxdbr", "flannel", "cni", "virbr", "docker"];

impl Node<'_> {
    /// The names kubelet's serving certificate is for, as today's Python
    /// charm requests them: the public address, 127.0.0.1, the host name
    /// and FQDN, the kube-control binding's addresses (the API server
    /// reaches kubelet there: `--node-ip`), and the machine's global
    /// addresses but those of container and CNI bridges; sorted, once each.
    pub(super) fn sans(&self, recorded: &mut Recorded, public: &str) -> Result<Vec<String>, Error> {
        let fqdn = identity::fqdn(&mut recorded.fqdn, identity::Look::IfUnknown)?;
        let node_ips = self.node_ips(recorded, false)?;
        let bind = self.bind_addresses(recorded);
        let all: BTreeSet<String> = [
            public.to_string(),
            "127.0.0.1".into(),
            charm::host::hostname(),
            fqdn,
        ]
        .into_iter()
        .chain(node_ips)
        .chain(bind)
        .filter(|s| !s.is_empty())
        .collect();
        Ok(all.into_iter().collect())
    }

    /// This unit's public and private addresses, as recorded or read now.
    pub(super) fn addresses(&self, recorded: &mut Recorded) -> Result<(String, String), Error> {
        if let Some(addresses) = &recorded.addresses {
            return Ok(addresses.clone());
        }
        let public = self
            .tools
            .unit_get("public-address")
            .doing("reading the public address")?;
        let private = self
            .tools
            .unit_get("private-address")
            .doing("reading the private address")?;
        recorded.addresses = Some((public.clone(), private.clone()));
        Ok((public, private))
    }

    /// The machine's global addresses, read again where they can have
    /// changed. A failed read keeps those known: a moment when `ip` cannot
    /// answer must not take them off the certificate (with none known,
    /// none, and the next hook that needs them reads again).
    fn bind_addresses(&self, recorded: &mut Recorded) -> Vec<String> {
        if let (Some(known), false) = (&recorded.bind_addresses, recorded.addresses_due) {
            return known.clone();
        }
        match charm::host::global_addresses(&BRIDGES) {
            Ok(found) => {
                recorded.bind_addresses = Some(found.clone());
                recorded.addresses_due = false;
                found
            }
            Err(e) => {
                let known = recorded.bind_addresses.clone().unwrap_or_default();
                log::warn!(
                    "cannot read this machine's addresses ({e}); the certificate request keeps [{}]",
                    known.join(", ")
                );
                known
            }
        }
    }

    /// kubelet's node IPs: the kube-control binding's ingress addresses,
    /// read again where they can have changed. A failed read keeps those
    /// known (a restart without `--node-ip` can change the node's
    /// address); with none known it is an error, and Juju retries.
    pub(super) fn node_ips(
        &self,
        recorded: &mut Recorded,
        refresh: bool,
    ) -> Result<Vec<String>, Error> {
        if let (Some(ips), false) = (&recorded.node_ips, refresh) {
            return Ok(ips.clone());
        }
        let ips = match (
            self.tools.network_get_ingress(KUBE_CONTROL),
            &recorded.node_ips,
        ) {
            (Ok(ips), _) => ips,
            (Err(e), Some(known)) => {
                log::warn!(
                    "cannot read the kube-control binding's addresses ({e}); kubelet keeps [{}]",
                    known.join(", ")
                );
                return Ok(known.clone());
            }
            (Err(e), None) => {
                return Err(e).doing("reading the kube-control binding's addresses");
            }
        };
        recorded.node_ips = Some(ips.clone());
        Ok(ips)
    }
}
