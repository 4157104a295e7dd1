//! What this unit publishes on each relation it is in.

use charm::files::{self};
use charm::resources::Fingerprint;
use charm::tools::Databag;
use charm::RelationId;

use crate::cos;
use crate::daemons::{self};
use crate::error::{Error, ToolContext};
use crate::relations::{
    self, KubeControl, CERTIFICATES, CNI, CONTAINER_RUNTIME, INGRESS_PROXY, KUBE_CONTROL,
};
use crate::unit_state::Recorded;

use super::config_files::ROOT_KUBECONFIG;
use super::Node;

/// The credential schemas this charm reads: tokens in `creds` (0) and
/// tokens in a Juju secret (1); written as the Python charm writes it.
const SCHEMA_VERSIONS: &str = "[0, 1]";
const PAUSE_IMAGE: &str = "pause:3.9";

/// The pause image containerd is told to use, from the control plane's
/// registry.
pub(crate) fn sandbox_image(registry: &str) -> String {
    format!("{registry}/{PAUSE_IMAGE}")
}

impl Node<'_> {
    /// Publishes this unit's side of every relation it is in, where it
    /// differs from what was published.
    pub fn publish_all(&self, recorded: &mut Recorded) -> Result<(), Error> {
        let rids: Vec<(String, String)> = recorded
            .relations
            .iter()
            .flat_map(|(ep, data)| data.relations.keys().map(|rid| (ep.clone(), rid.clone())))
            .collect();
        for (endpoint, rid) in rids {
            self.publish(recorded, &endpoint, &rid)?;
        }
        Ok(())
    }

    /// The kube-control answer in the cache, if it parses.
    pub(super) fn control(&self, recorded: &Recorded) -> Option<KubeControl> {
        let data = recorded.relations.get(KUBE_CONTROL)?;
        relations::kube_control(data, &self.user()).ok().flatten()
    }

    /// The cluster's tag from kube-control, once sent.
    pub fn cluster_tag(&self, recorded: &Recorded) -> Option<String> {
        self.control(recorded).and_then(|c| c.cluster_tag)
    }

    pub(super) fn registry(&self, recorded: &Recorded) -> String {
        self.control(recorded)
            .map(|c| c.registry)
            .unwrap_or_else(|| relations::DEFAULT_REGISTRY.to_string())
    }

    fn publish(&self, recorded: &mut Recorded, endpoint: &str, rid: &str) -> Result<(), Error> {
        let pairs: Vec<(&str, String)> = match endpoint {
            KUBE_CONTROL => vec![
                ("kubelet_user", self.user()),
                ("auth_group", "system:nodes".into()),
                ("gpu", "False".into()),
                ("schema_vers", SCHEMA_VERSIONS.into()),
            ],
            CNI => {
                // calico and cilium wait for this before configuring.
                let hash = files::read_optional(&self.root.path(ROOT_KUBECONFIG))?
                    .map(Fingerprint::of)
                    .unwrap_or_default();
                vec![
                    ("is_master", "False".into()),
                    ("kubeconfig_path", daemons::KUBELET_KUBECONFIG.into()),
                    ("kubeconfig-hash", hash),
                    ("image-registry", self.registry(recorded)),
                ]
            }
            crate::relations::TOKENS => vec![("requests", cos::requests(&self.name))],
            CONTAINER_RUNTIME => vec![("sandbox_image", sandbox_image(&self.registry(recorded)))],
            // The ingress controller listens on every node of the
            // application, on the host's port 80.
            INGRESS_PROXY => {
                let (_, private) = self.addresses(recorded)?;
                vec![
                    ("hostname", self.name.clone()),
                    ("private-address", private),
                    ("port", "80".into()),
                ]
            }
            CERTIFICATES => {
                let (public, _) = self.addresses(recorded)?;
                let sans =
                    serde_json::to_string(&self.sans(recorded, &public)?).unwrap_or_default();
                vec![
                    ("common_name", public),
                    ("sans", sans),
                    ("certificate_name", self.cert_name()),
                    ("unit_name", self.cert_name()),
                ]
            }
            _ => return Ok(()),
        };
        let bag: Databag = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if recorded.published.get(rid) == Some(&bag) {
            return Ok(());
        }
        let id: RelationId = rid.parse().map_err(|why: String| Error::Io {
            doing: format!("publishing on {rid}"),
            source: std::io::Error::other(why),
        })?;
        self.tools
            .relation_set(&id, &bag)
            .doing("publishing relation data")?;
        recorded.published.insert(rid.to_string(), bag);
        Ok(())
    }
}
