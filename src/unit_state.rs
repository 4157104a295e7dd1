//! The cache: what the worker last read from Juju (config, relation data,
//! addresses) and what stood in the way, so that hooks that cannot change
//! those (update-status, most relation hooks) need not look again. It may
//! be lost at any time and read again; the facts about the machine are in
//! the journal ([`crate::journal`]), which this record carries in memory.

use std::collections::BTreeMap;
use std::path::Path;

use charm::state::{StateError, StateFile};
use serde::{Deserialize, Serialize};

use charm::tools::Databag;

use crate::journal::Journal;
use crate::problem::{Concern, Problem, ProblemKind, Problems};
use crate::relations::EndpointData;

/// The file in the charm dir that holds [`Recorded`].
pub use crate::journal::STATE_FILE;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recorded {
    /// The journal of facts about the machine, kept in its own file
    /// ([`crate::journal`]) and read with this record.
    #[serde(skip)]
    pub journal: Journal,
    /// What each concern last found wrong, for the status. (A new field:
    /// an earlier revision's problem lists are left behind, and each
    /// concern finds its own again in upgrade-charm.)
    #[serde(default)]
    pub concerns: Problems,
    /// The last status this charm set, so that a converged hook need not set
    /// it again (nothing else changes it but the agent before install and
    /// stop, when the charm sets it anyway).
    #[serde(default)]
    pub status: Option<(String, String)>,
    /// The workload version last given to application-version-set.
    #[serde(default)]
    pub workload_version: Option<String>,
    /// What stood in the way at the last look at the resources, by item
    /// (`cni-<arch>`, `channel`, a snap): a look at some items keeps the
    /// others'. [`Concern::Resources`] holds them ranked.
    #[serde(default)]
    pub item_problems: BTreeMap<String, Problem>,
    /// The options the resources were last looked at with (`channel`,
    /// `require-manual-upgrade`): config-changed looks again only when
    /// they changed, since new resources come with upgrade-charm.
    #[serde(default)]
    pub resources_for: Option<(String, bool)>,
    /// Resource fingerprints by file identity.
    #[serde(default)]
    pub fingerprints: charm::resources::FingerprintCache,
    /// The options that shape the node, as last read (config-get runs only
    /// in hooks where config can have changed).
    #[serde(default)]
    pub options: Option<NodeOptions>,
    /// Remote data per endpoint, as last read. Holds tokens and keys: this
    /// file is 0600, like the files they end up in.
    #[serde(default)]
    pub relations: BTreeMap<String, EndpointData>,
    /// What this unit wrote to each relation (by relation id). Like Juju's
    /// own record, it is rolled back when the hook fails.
    #[serde(default)]
    pub published: BTreeMap<String, Databag>,
    /// This unit's (public, private) address, for certificate requests.
    #[serde(default)]
    pub addresses: Option<(String, String)>,
    /// Whether this unit leads, as `is-leader` last said (asked again in
    /// the leadership hooks and where config is read).
    #[serde(default)]
    pub leader: Option<bool>,
    /// Whether the ingress ports are open, as this unit last set them;
    /// rolled back with a failed hook, as Juju rolls back the ports.
    #[serde(default)]
    pub ingress_open: Option<bool>,
    /// This machine's global addresses, for the certificate's SANs (read
    /// again where the unit's addresses are).
    #[serde(default)]
    pub bind_addresses: Option<Vec<String>>,
    /// This hook reads the machine's addresses again (they can have
    /// changed); not kept.
    #[serde(skip)]
    pub addresses_due: bool,
    /// The kube-control binding's ingress addresses (kubelet's node IPs).
    #[serde(default)]
    pub node_ips: Option<Vec<String>>,
    /// Reading the credentials failed: the next hook reads them again
    /// rather than trusting the kubeconfigs on disk.
    #[serde(default)]
    pub credentials_stale: bool,
    /// The secret the tokens in the kubeconfigs came from, if any.
    #[serde(default)]
    pub credentials_secret: Option<String>,
    /// The node's Ready condition as update-status last saw it: `None`
    /// when Ready (or not looked at yet), else the condition's message.
    #[serde(default)]
    pub node_not_ready: Option<String>,
    /// A relation-departed named this unit as the one departing: Juju is
    /// removing it (or its application), and its relations go first.
    #[serde(default)]
    pub leaving: bool,
    /// kube-control, as last read while this unit was not leaving, had no
    /// control-plane unit left: the control plane was removed, or the
    /// relation was. `stop` then does not drain the node.
    #[serde(default)]
    pub control_plane_left: bool,
    /// The version of the roll this unit waits in (queued, or stopped by
    /// another unit), with [`Concern::Roll`](crate::problem::Concern):
    /// once this unit's own kubelet is on it, by whatever hook or action,
    /// it waits no more.
    #[serde(default)]
    pub roll_waits_for: Option<String>,
    /// The FQDN last found for the host name (on AWS with an external
    /// cloud provider the node is named by it).
    #[serde(default)]
    pub fqdn: crate::identity::KnownFqdn,
    /// This instance as the cloud's metadata service described it (the
    /// cloud, then the facts the integrator is told), asked once.
    #[serde(default)]
    pub cloud_instance: Option<(String, Vec<(String, String)>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOptions {
    pub allow_privileged: bool,
    pub kubelet_extra_args: BTreeMap<String, String>,
    pub proxy_extra_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Labels the operator asked to remove (`key-`).
    #[serde(default)]
    pub remove_labels: std::collections::BTreeSet<String>,
    pub ingress: bool,
    #[serde(default)]
    pub ignore_missing_cni: bool,
    /// `kubelet-extra-config` / `proxy-extra-config`: a YAML map, as text.
    #[serde(default)]
    pub kubelet_extra_config: String,
    #[serde(default)]
    pub proxy_extra_config: String,
    /// `sysctl`: tunable -> value.
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// The ingress controller's options.
    #[serde(default)]
    pub ingress_settings: IngressSettings,
    /// `removal-drain-timeout`, in seconds: the drain before a removal.
    #[serde(default = "default_removal_drain_timeout")]
    pub removal_drain_timeout: u64,
}

/// `removal-drain-timeout` unset (config.yaml's default).
pub const DEFAULT_REMOVAL_DRAIN_TIMEOUT: u64 = 300;

fn default_removal_drain_timeout() -> u64 {
    DEFAULT_REMOVAL_DRAIN_TIMEOUT
}

/// The options of the ingress controller, checked. The default
/// certificate's key is not kept (it is read from config when needed);
/// only its fingerprint is, to know it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressSettings {
    /// `nginx-image`: `auto` or an image reference.
    pub image: String,
    /// `ingress-default-ssl-certificate` (PEM), empty for none.
    pub ssl_certificate: String,
    /// sha256 of `ingress-default-ssl-key`, empty for none.
    pub ssl_key_fingerprint: String,
    pub chain_completion: bool,
    pub passthrough: bool,
    pub forwarded_headers: bool,
    pub real_ip_cidr: String,
}

impl Recorded {
    /// Whether the next hook, whatever it is, should look at the resources
    /// again: a store failure is retried on the next hook.
    pub fn wants_retry(&self) -> bool {
        self.concerns
            .of(Concern::Resources)
            .iter()
            .any(|p| p.kind == ProblemKind::Retry)
    }
}

/// The cache as the last hook left it. A cache that cannot be read is
/// moved aside (to `<file>.corrupt`, for a post-mortem) and started afresh:
/// everything in it can be read again. Returns where it went and why.
pub fn load(charm_dir: &Path) -> Result<(StateFile<Recorded>, Option<String>), StateError> {
    StateFile::load_or_set_aside(charm_dir.join(STATE_FILE))
}
