//! This unit's addresses and the names its serving certificate is for.

use std::collections::BTreeSet;

use crate::error::{Error, ToolContext};
use crate::identity;
use crate::relations::KUBE_CONTROL;
use crate::unit_state::Recorded;

use super::Node;

/// Interfaces whose addresses no certificate names: LXD's, libvirt's and
/// Docker's bridges and the CNI's (as kubernetes-snaps leaves them out).
const BRIDGES: [&str; 5] = ["lxdbr", "flannel", "cni", "virbr", "docker"];

impl Node<'_> {
    /// The names kubelet's serving certificate is for, as today's Python
    /// charm requests them: the public address, 127.0.0.1, the host name
    /// and FQDN, the kube-control binding's addresses (the API server
    /// reaches kubelet there: `--node-ip`), and the machine's global
    /// addresses but those of container and CNI bridges; sorted, once each.
    pub(super) fn sans(&self, recorded: &mut Recorded, public: &str) -> Result<Vec<String>, Error> {
        let fqdn = identity::fqdn(&mut recorded.fqdn, identity::Look::IfUnknown)?;
        let node_ips = self.node_ips(recorded, false)?;
        let bind = recorded
            .bind_addresses
            .get_or_insert_with(|| charm::host::global_addresses(&BRIDGES))
            .clone();
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

    /// kubelet's node IPs: the kube-control binding's ingress addresses,
    /// read again where they can have changed.
    pub(super) fn node_ips(
        &self,
        recorded: &mut Recorded,
        refresh: bool,
    ) -> Result<Vec<String>, Error> {
        if let (Some(ips), false) = (&recorded.node_ips, refresh) {
            return Ok(ips.clone());
        }
        let ips = match self.tools.network_get_ingress(KUBE_CONTROL) {
            Ok(ips) => ips,
            Err(e) => {
                log::warn!("no node IP for kubelet: {e}");
                Vec::new()
            }
        };
        recorded.node_ips = Some(ips.clone());
        Ok(ips)
    }
}
