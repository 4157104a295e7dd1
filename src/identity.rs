//! The node's name, as the Python charm names it (its `get_node_name`):
//! the lower-cased FQDN on AWS when the control plane runs the external
//! cloud provider, whose AWS controller matches a node to its instance by
//! the instance's private DNS name; everywhere else the lower-cased host
//! name. The name is `--hostname-override`, `hostnameOverride`, the
//! `kubelet_user` the control plane makes credentials for, the COS user,
//! and the node labelled, drained and deleted.

use charm::root::MachineRoot;

use crate::error::Error;
use crate::relations::{self, EndpointData};

/// Where the machine's DMI vendor is, which the external-cloud-provider
/// library reads to tell the cloud.
pub const SYS_VENDOR: &str = "/sys/devices/virtual/dmi/id/sys_vendor";

/// The clouds that library knows, by the vendor it looks for, in its order.
const CLOUDS: [(&str, &str); 5] = [
    ("aws", "Amazon"),
    ("openstack", "OpenStack"),
    ("azure", "Microsoft"),
    ("gce", "Google"),
    ("vsphere", "VMware"),
];

/// The cloud this machine runs on, as the library tells it; `None` where
/// the vendor is unknown or unreadable.
pub fn cloud(root: &MachineRoot) -> Option<&'static str> {
    let vendor = std::fs::read_to_string(root.path(SYS_VENDOR)).ok()?;
    CLOUDS
        .iter()
        .find(|(_, v)| vendor.contains(v))
        .map(|(name, _)| *name)
}

/// What the name is made from that the charm keeps between hooks: the
/// FQDN last found for a host name.
pub type KnownFqdn = Option<(String, String)>;

/// When to ask the resolver for the FQDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Never: the FQDN known for this host name, else the host name.
    Never,
    /// When none is known for this host name.
    IfUnknown,
    /// Again (where the machine's addresses can have changed).
    Again,
}

/// The node's name from the kube-control data at hand; on AWS with an
/// external cloud provider, the FQDN as [`fqdn`] finds it.
pub fn node_name(
    root: &MachineRoot,
    kube_control: Option<&EndpointData>,
    known: &mut KnownFqdn,
    look: Look,
) -> Result<String, Error> {
    let has_xcp = kube_control
        .and_then(|data| relations::kube_control(data, "").ok().flatten())
        .is_some_and(|k| k.has_xcp);
    if !has_xcp || cloud(root) != Some("aws") {
        return Ok(chosen(&charm::host::hostname(), None));
    }
    Ok(chosen(&charm::host::hostname(), Some(&fqdn(known, look)?)))
}

/// The name kubelet registers under: the FQDN where one is asked for (AWS
/// with the external cloud provider), else the host name; lower case, as
/// the node object's name must be.
pub fn chosen(hostname: &str, fqdn: Option<&str>) -> String {
    fqdn.unwrap_or(hostname).to_lowercase()
}

/// This machine's FQDN as Python's `socket.getfqdn()` gives it
/// ([`charm::host::fqdn`]), as it is (not lower-cased). Looked up (two
/// `getent` calls) as `look` says; with [`Look::Never`] and none known,
/// the host name. A lookup that finds nothing does not undo an FQDN found
/// before for the same host name: a resolver's bad moment must not rename
/// the node.
pub fn fqdn(known: &mut KnownFqdn, look: Look) -> Result<String, Error> {
    let host = charm::host::hostname();
    let cached = known
        .as_ref()
        .filter(|(h, _)| *h == host)
        .map(|(_, f)| f.clone());
    match (&cached, look) {
        (Some(fqdn), Look::Never | Look::IfUnknown) => return Ok(fqdn.clone()),
        (None, Look::Never) => return Ok(host),
        _ => {}
    }
    let found = charm::host::fqdn().map_err(|source| Error::Exec {
        doing: "looking up this machine's FQDN",
        source,
    })?;
    let fqdn = match cached {
        Some(before) if found == host && before != host => {
            log::warn!("the resolver no longer knows {host}'s FQDN; keeping {before}");
            before
        }
        _ => found,
    };
    *known = Some((host, fqdn.clone()));
    Ok(fqdn)
}
