//! The node: what this unit publishes on its relations, and the files,
//! daemon configuration, services and labels that make it a Kubernetes
//! worker, converged from the recorded relation data and options.

use std::collections::{BTreeMap, BTreeSet};

use charm::files::{self, Change, Owner};
use charm::resources::Fingerprint;
use charm::root::MachineRoot;
use charm::service::Systemctl;
use charm::snap::{self, SnapCli};
use charm::tools::Databag;
use charm::{HookTools, RelationId};

use crate::adoption;
use crate::cos;
use crate::daemons::{self, DaemonConfig, Inputs, Version};
use crate::error::{Error, ToolContext};
use crate::facts::DaemonRecord;
use crate::facts::IngressRecord;
use crate::identity;
use crate::ingress;
use crate::journal::JournalFile;
use crate::kubeapi::{Api, ApiError};
use crate::kubeconfig;
use crate::problem::Problem;
use crate::relations::{
    self, Certificates, Cni, Credentials, CredentialsRef, Dns, EndpointData, KubeControl, Runtime,
    CERTIFICATES, CNI, CONTAINER_RUNTIME, INGRESS_PROXY, KUBE_API_ENDPOINT, KUBE_CONTROL,
};
use crate::unit_state::{NodeOptions, Recorded};

use crate::snaps::DAEMONS;
/// The files each of [`DAEMONS`] reads at start.
const READS: [&[&str]; 2] = [
    &[
        daemons::CA,
        daemons::SERVER_CERT,
        daemons::SERVER_KEY,
        daemons::KUBELET_KUBECONFIG,
        daemons::KUBELET_CONFIG,
    ],
    &[daemons::PROXY_KUBECONFIG, daemons::KUBE_PROXY_CONFIG],
];
const ROOT_KUBECONFIG: &str = "/root/.kube/config";
const CLIENT_KEY: &str = "/root/cdk/client.key";
const SYSCTL_FILE: &str = "/etc/sysctl.d/50-kubernetes-charm.conf";
/// The first release without a built-in container runtime.
const RUNTIME_REQUIRED_SINCE: Version = Version(1, 24);
/// The credential schemas this charm reads: tokens in `creds` (0) and
/// tokens in a Juju secret (1); written as the Python charm writes it.
const SCHEMA_VERSIONS: &str = "[0, 1]";
const PAUSE_IMAGE: &str = "pause:3.9";
/// Interfaces whose addresses no certificate names: LXD's, libvirt's and
/// Docker's bridges and the CNI's (as kubernetes-snaps leaves them out).
const BRIDGES: [&str; 5] = ["lxdbr", "flannel", "cni", "virbr", "docker"];
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Clone)]
pub struct Node<'a> {
    pub tools: &'a HookTools,
    pub root: &'a MachineRoot,
    /// `kubernetes-worker/0`.
    pub unit: &'a str,
    /// The node's name ([`crate::identity`]).
    pub name: String,
    /// `JUJU_AVAILABILITY_ZONE`, for the zone label.
    pub zone: Option<String>,
}

/// What this hook learnt beyond the charm's cache.
#[derive(Default)]
pub struct Fresh {
    /// kube-control as read in this hook, tokens and all (the cache holds
    /// only their fingerprints).
    pub kube_control: Option<EndpointData>,
    /// The tokens relation as read in this hook, the COS token included.
    pub tokens: Option<EndpointData>,
    /// The certificates relation as read in this hook, private keys and
    /// all (the cache holds only their fingerprints).
    pub certificates: Option<EndpointData>,
    /// Re-read this unit's addresses (they can have changed).
    pub addresses: bool,
    /// Look at the node's Ready condition (update-status).
    pub check_ready: bool,
}

/// Everything the daemons need from the relations, once delivered.
struct Ready {
    api_url: String,
    certs: Certificates,
    creds: CredentialsRef,
    dns: Dns,
    control: KubeControl,
    cni: Option<Cni>,
    runtime: Option<Runtime>,
}

impl Node<'_> {
    pub fn user(&self) -> String {
        format!("system:node:{}", self.name)
    }

    fn cert_name(&self) -> String {
        self.unit.replace('/', "_")
    }

    fn app(&self) -> &str {
        self.unit.split('/').next().unwrap_or(self.unit)
    }

    fn unit_number(&self) -> usize {
        self.unit
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Re-reads `endpoints` into the cache (kube-control and tokens with
    /// their tokens, certificates with its keys, replaced by fingerprints;
    /// what they stand for goes to `fresh`).
    /// `broken`: the relation whose relation-broken hook is running; Juju
    /// still lists it, but it is gone.
    pub fn refresh(
        &self,
        recorded: &mut Recorded,
        endpoints: &[&str],
        broken: Option<&str>,
        fresh: &mut Fresh,
    ) -> Result<(), Error> {
        for endpoint in endpoints {
            let mut data = relations::read(self.tools, endpoint)?;
            if let Some(rid) = broken {
                data.relations.remove(rid);
            }
            recorded.published.retain(|rid, _| {
                !rid.starts_with(&format!("{endpoint}:")) || data.relations.contains_key(rid)
            });
            if *endpoint == KUBE_CONTROL {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_tokens(&data));
                fresh.kube_control = Some(data);
            } else if *endpoint == crate::relations::TOKENS {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_cos_tokens(&data));
                fresh.tokens = Some(data);
            } else if *endpoint == CERTIFICATES {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_keys(&data));
                fresh.certificates = Some(data);
            } else {
                recorded.relations.insert(endpoint.to_string(), data);
            }
        }
        Ok(())
    }

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
    fn control(&self, recorded: &Recorded) -> Option<KubeControl> {
        let data = recorded.relations.get(KUBE_CONTROL)?;
        relations::kube_control(data, &self.user()).ok().flatten()
    }

    fn registry(&self, recorded: &Recorded) -> String {
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
            CONTAINER_RUNTIME => vec![(
                "sandbox_image",
                format!("{}/{PAUSE_IMAGE}", self.registry(recorded)),
            )],
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

    /// Publishes the COS configuration on every cos-agent relation, where
    /// its content changed, and records what keeps it from being
    /// published. Needs the tokens relation as read in this hook (`fresh`).
    pub fn publish_cos(&self, recorded: &mut Recorded, fresh: &mut Fresh) -> Result<(), Error> {
        let rids: Vec<String> = recorded
            .relations
            .get(crate::relations::COS_AGENT)
            .map(|d| d.relations.keys().cloned().collect())
            .unwrap_or_default();
        if rids.is_empty() {
            // Without cos-agent, the tokens relation is nothing to wait on.
            recorded.cos_problems.clear();
            return Ok(());
        }
        let ca = files::read_optional(&self.root.path(daemons::CA))?
            .map(|pem| String::from_utf8_lossy(&pem).into_owned());
        let max_pods = recorded
            .options
            .as_ref()
            .map(|o| cos::max_pods(&o.kubelet_extra_config))
            .unwrap_or(cos::DEFAULT_MAX_PODS);
        // Everything the configuration is made of, the token by the
        // fingerprint the cache keeps: while it is what every cos-agent
        // relation was given, nothing is read or built again.
        let inputs = {
            let mut hash = Fingerprint::default();
            let tokens = recorded
                .relations
                .get(crate::relations::TOKENS)
                .cloned()
                .unwrap_or_default();
            let tag = self.control(recorded).and_then(|c| c.cluster_tag);
            hash.update(serde_json::to_string(&tokens).unwrap_or_default());
            hash.update(format!("{}\n{tag:?}\n{max_pods}\n", self.name));
            hash.update(ca.as_deref().unwrap_or_default());
            hash.update(cos::content_version());
            hash.hex()
        };
        let kept: Databag = [("config-inputs".to_string(), inputs)].into();
        if recorded.cos_problems.is_empty()
            && rids
                .iter()
                .all(|r| recorded.published.get(r) == Some(&kept))
        {
            return Ok(());
        }
        if fresh.tokens.is_none() {
            self.refresh(recorded, &[crate::relations::TOKENS], None, fresh)?;
        }
        let Some(tokens) = &fresh.tokens else {
            return Ok(());
        };
        let waiting = |why: String| vec![Problem::waiting(why)];
        let token = match cos::token(tokens, &cos::user(&self.name)) {
            Err(why) => Err(waiting(format!("Waiting for the COS token: {why}"))),
            Ok(None) if !tokens.is_related() => Err(waiting(format!(
                "Waiting for the COS token: relate {}:tokens to the control plane",
                self.app()
            ))),
            Ok(None) => Err(waiting("Waiting for the COS token".into())),
            Ok(Some(token)) => Ok(token),
        };
        let tag = self.control(recorded).and_then(|c| c.cluster_tag);
        let (token, tag) = match (token, tag) {
            (Err(problems), _) => {
                recorded.cos_problems = problems;
                return Ok(());
            }
            (Ok(_), None) => {
                recorded.cos_problems = waiting(
                    "Waiting for the cluster-tag from kube-control (COS labels by it)".into(),
                );
                return Ok(());
            }
            (Ok(token), Some(tag)) => (token, tag),
        };
        if ca.is_none() {
            log::info!(
                "COS scrape jobs skip checking kubelet's certificate until the cluster CA is known"
            );
        }
        let config = cos::config(&cos::Inputs {
            node: &self.name,
            token: &token,
            cluster_tag: &tag,
            ca: ca.as_deref(),
            max_pods,
        })
        .map_err(|why| Error::Io {
            doing: "building the COS configuration".into(),
            source: std::io::Error::other(why),
        })?;
        for rid in rids {
            if recorded.published.get(&rid) == Some(&kept) {
                continue;
            }
            let id: RelationId = rid.parse().map_err(|why: String| Error::Io {
                doing: format!("publishing on {rid}"),
                source: std::io::Error::other(why),
            })?;
            let bag: Databag = [("config".to_string(), config.clone())].into();
            self.tools
                .relation_set(&id, &bag)
                .doing("publishing the COS configuration")?;
            log::info!(
                "published the COS configuration on {rid} ({} bytes)",
                config.len()
            );
            recorded.published.insert(rid, kept.clone());
        }
        recorded.cos_problems.clear();
        Ok(())
    }

    /// The ingress controller, as the leader keeps it: applied when
    /// `ingress` is on and what it would apply differs from what it last
    /// applied (or an earlier try failed); deleted, exactly what it
    /// applied, in reverse order, when `ingress` is off. `ssl_key`: the
    /// default certificate's key, from config. A failure is a waiting
    /// status and the next hook tries again.
    /// `leads_now`: this hook asked `is-leader`; otherwise it is asked
    /// before the first write, since Juju 4 tells no deposed leader.
    pub fn converge_ingress(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        options: &NodeOptions,
        ssl_key: Option<&str>,
        leads_now: bool,
    ) -> Result<(), Error> {
        let (Some((url, ca)), Some(token)) = (
            self.api_target(recorded),
            self.disk_tokens().map(|t| t.client_token),
        ) else {
            // The node is not configured yet: its relation hooks come back.
            return Ok(());
        };
        let waiting = |what: &str, e: &dyn std::fmt::Display| {
            vec![Problem::waiting(format!(
                "Waiting to {what} the ingress controller: {e}"
            ))]
        };
        if !options.ingress {
            let Some(record) = recorded.journal.ingress.clone() else {
                recorded.ingress_problems.clear();
                return Ok(());
            };
            if !self.still_leads(recorded, leads_now)? {
                return Ok(());
            }
            let api = match Api::new(&url, &ca, &token) {
                Ok(api) => api,
                Err(e) => {
                    recorded.ingress_problems = waiting("remove", &e);
                    return Ok(());
                }
            };
            for path in record.paths.iter().rev() {
                if let Err(e) = api.delete(path) {
                    recorded.ingress_problems = waiting("remove", &e);
                    return Ok(());
                }
            }
            log::info!(
                "removed the ingress controller ({} objects)",
                record.paths.len()
            );
            recorded.journal.ingress = None;
            recorded.ingress_problems.clear();
            return Ok(());
        }
        let registry = self.registry(recorded);
        let inputs = ingress::Inputs {
            app: self.app(),
            registry: &registry,
            settings: &options.ingress_settings,
            ssl_key,
        };
        let objects = ingress::objects(&inputs);
        let fingerprint = ingress::fingerprint(&objects);
        let previous = recorded.journal.ingress.clone().unwrap_or_default();
        if previous.fingerprint == fingerprint && recorded.ingress_problems.is_empty() {
            return Ok(());
        }
        if !self.still_leads(recorded, leads_now)? {
            return Ok(());
        }
        let paths: Vec<String> = objects.iter().map(|o| o.path.clone()).collect();
        // Written ahead: whatever this apply creates is known to be the
        // charm's, even if the hook stops half-way.
        let mut all = previous.paths.clone();
        all.extend(
            paths
                .iter()
                .filter(|p| !previous.paths.contains(p))
                .cloned(),
        );
        recorded.journal.ingress = Some(IngressRecord {
            fingerprint: String::new(),
            paths: all,
        });
        journal.persist(&recorded.journal)?;
        let api = match Api::new(&url, &ca, &token) {
            Ok(api) => api,
            Err(e) => {
                recorded.ingress_problems = waiting("configure", &e);
                return Ok(());
            }
        };
        for object in &objects {
            if let Err(e) = api.apply(&object.path, &object.body) {
                recorded.ingress_problems = waiting("configure", &e);
                return Ok(());
            }
        }
        // What an earlier apply created and this one does not (the default
        // certificate's Secret once unset).
        for gone in previous.paths.iter().rev().filter(|p| !paths.contains(p)) {
            if let Err(e) = api.delete(gone) {
                recorded.ingress_problems = waiting("configure", &e);
                return Ok(());
            }
        }
        log::info!(
            "applied the ingress controller ({} objects, image {})",
            objects.len(),
            ingress::image(&inputs)
        );
        recorded.journal.ingress = Some(IngressRecord { fingerprint, paths });
        recorded.ingress_problems.clear();
        Ok(())
    }

    /// The names kubelet's serving certificate is for, as today's Python
    /// charm requests them: the public address, 127.0.0.1, the host name
    /// and FQDN, the kube-control binding's addresses (the API server
    /// reaches kubelet there: `--node-ip`), and the machine's global
    /// addresses but those of container and CNI bridges; sorted, once each.
    fn sans(&self, recorded: &mut Recorded, public: &str) -> Result<Vec<String>, Error> {
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

    /// Whether this unit leads, before a leader-only write: asked unless
    /// this hook already did (`leads_now`). A deposed leader leaves the
    /// controller to the new one.
    fn still_leads(&self, recorded: &mut Recorded, leads_now: bool) -> Result<bool, Error> {
        if leads_now {
            return Ok(true);
        }
        let leads = self
            .tools
            .is_leader()
            .doing("asking whether this unit still leads")?;
        recorded.leader = Some(leads);
        if !leads {
            log::info!("no longer the leader: the new leader keeps the ingress controller");
            recorded.ingress_problems.clear();
        }
        Ok(leads)
    }

    /// This unit's public and private addresses, as recorded or read now.
    fn addresses(&self, recorded: &mut Recorded) -> Result<(String, String), Error> {
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

    /// The API server's URL and the cluster CA: all an API call needs
    /// besides the client token.
    pub fn api_target(&self, recorded: &Recorded) -> Option<(String, String)> {
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let control = relations::kube_control(&data(KUBE_CONTROL), &self.user())
            .ok()
            .flatten();
        let http = relations::api_urls_from_http(&data(KUBE_API_ENDPOINT)).ok()?;
        let certs = relations::cached_certificates(&data(CERTIFICATES), &self.cert_name())
            .ok()
            .flatten()?;
        let url = control
            .as_ref()
            .and_then(|c| pick(&c.api_urls, self.unit_number()))
            .or_else(|| http.first().cloned())?;
        Some((url, certs.ca))
    }

    /// What the relations provide, or what is missing or wrong.
    /// `kubelet`: the installed kubelet's version, if known.
    fn ready(
        &self,
        recorded: &Recorded,
        options: &NodeOptions,
        kubelet: Option<Version>,
    ) -> Result<Ready, Vec<Problem>> {
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let (control, api, certs, cni, runtime) = (
            data(KUBE_CONTROL),
            data(KUBE_API_ENDPOINT),
            data(CERTIFICATES),
            data(CNI),
            data(CONTAINER_RUNTIME),
        );
        let needs_runtime = kubelet.is_none_or(|v| v >= RUNTIME_REQUIRED_SINCE);
        let mut blocked = Vec::new();
        if !control.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:kube-control to the control plane",
            ));
        }
        if !certs.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:certificates to a certificate authority",
            ));
        }
        if !cni.is_related() && !options.ignore_missing_cni {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:cni to a CNI subordinate (flannel, calico)",
            ));
        }
        if needs_runtime && !runtime.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:container-runtime to a container runtime (containerd)",
            ));
        }
        let parsed = (
            relations::kube_control(&control, &self.user()),
            relations::api_urls_from_http(&api),
            relations::cached_certificates(&certs, &self.cert_name()),
            relations::cni(&cni),
            relations::container_runtime(&runtime),
        );
        let (control, http_urls, certs, cni_data, runtime_data) = match parsed {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
            (a, b, c, d, e) => {
                let malformed = [a.err(), b.err(), c.err(), d.err(), e.err()];
                blocked.extend(malformed.into_iter().flatten().map(Problem::blocked));
                return Err(blocked);
            }
        };
        if !blocked.is_empty() {
            return Err(blocked);
        }
        let mut waiting = Vec::new();
        let creds = control.as_ref().and_then(|c| c.credentials.clone());
        if creds.is_none() {
            waiting.push(Problem::waiting("Waiting for kube-control relation data"));
        }
        if certs.is_none() {
            waiting.push(Problem::waiting("Waiting for certificates"));
        }
        // Current control planes send the URLs on kube-control, and each
        // worker takes its own (unit number modulo their count); older
        // masters sent them on http.
        let api_url = control
            .as_ref()
            .and_then(|c| pick(&c.api_urls, self.unit_number()))
            .or_else(|| http_urls.first().cloned());
        if api_url.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the API server address (kube-api-endpoint or kube-control)",
            ));
        }
        let dns = control
            .as_ref()
            .map(|c| c.dns.clone())
            .unwrap_or(Dns::Pending);
        if dns == Dns::Pending && creds.is_some() {
            waiting.push(Problem::waiting("Waiting for cluster DNS."));
        }
        if cni.is_related() && cni_data.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the cluster CIDR from the cni relation",
            ));
        }
        if runtime.is_related() && runtime_data.is_none() {
            waiting.push(Problem::waiting("Waiting for the container runtime"));
        }
        match (api_url, certs, creds, control) {
            (Some(api_url), Some(certs), Some(creds), Some(control)) if waiting.is_empty() => {
                Ok(Ready {
                    api_url,
                    certs,
                    creds,
                    dns,
                    control,
                    cni: cni_data,
                    runtime: runtime_data,
                })
            }
            _ => Err(waiting),
        }
    }

    /// The API client, if the relations have named the API server and the
    /// CA, and the client token is in place.
    pub fn api(&self, recorded: &Recorded) -> Option<Result<Api, ApiError>> {
        let (url, ca) = self.api_target(recorded)?;
        let token = self.disk_tokens()?.client_token;
        Some(Api::new(&url, &ca, &token))
    }

    /// The tokens in the kubeconfigs this charm wrote: the one place they
    /// are kept between hooks.
    fn disk_tokens(&self) -> Option<Credentials> {
        let token = |path: &str| -> Option<String> {
            let bytes = files::read_optional(&self.root.path(path)).ok()??;
            kubeconfig::token(&String::from_utf8_lossy(&bytes)).filter(|t| !t.is_empty())
        };
        Some(Credentials {
            kubelet_token: token(daemons::KUBELET_KUBECONFIG)?,
            proxy_token: token(daemons::PROXY_KUBECONFIG)?,
            client_token: token(ROOT_KUBECONFIG)?,
        })
    }

    /// The node's tokens: from the kubeconfigs while they are the ones
    /// kube-control names, else from the relation or the secret.
    fn credentials(
        &self,
        recorded: &mut Recorded,
        wanted: &CredentialsRef,
        fresh: &Fresh,
    ) -> Result<Result<Credentials, Problem>, Error> {
        let disk = self.disk_tokens();
        let result = match wanted {
            CredentialsRef::Tokens(refs) => {
                let matches = |c: &Credentials| {
                    relations::secret_matches(&refs.kubelet_token, &c.kubelet_token)
                        && relations::secret_matches(&refs.proxy_token, &c.proxy_token)
                        && relations::secret_matches(&refs.client_token, &c.client_token)
                };
                match disk.filter(|d| matches(d) && !recorded.credentials_stale) {
                    Some(disk) => Ok(disk),
                    None => {
                        let data = match &fresh.kube_control {
                            Some(data) => data.clone(),
                            None => relations::read(self.tools, KUBE_CONTROL)?,
                        };
                        match relations::kube_control(&data, &self.user()) {
                            Ok(Some(KubeControl {
                                credentials: Some(CredentialsRef::Tokens(c)),
                                ..
                            })) if matches(&c) => Ok(c),
                            // A token that is none: the ones in place stay.
                            Err(malformed) => Err(Problem::blocked(malformed)),
                            _ => Err(Problem::waiting("Waiting for kube-control relation data")),
                        }
                    }
                }
            }
            CredentialsRef::Secret { id, from } => {
                let current = disk.filter(|_| {
                    fresh.kube_control.is_none()
                        && !recorded.credentials_stale
                        && recorded.credentials_secret.as_ref() == Some(id)
                });
                match current {
                    Some(disk) => Ok(disk),
                    None => self.read_secret(id, from)?,
                }
            }
        };
        // Cleared once the tokens are in the kubeconfigs (see `converge`):
        // a hook stopped before then leaves them to the next.
        if result.is_err() {
            recorded.credentials_stale = true;
        } else {
            recorded.credentials_secret = match wanted {
                CredentialsRef::Secret { id, .. } => Some(id.clone()),
                CredentialsRef::Tokens(_) => None,
            };
        }
        Ok(result)
    }

    /// The certificates with their private keys: the ones in the files this
    /// charm wrote while they are those the relation names, else the
    /// relation's (read again unless this hook has).
    fn private_keys(
        &self,
        certs: &Certificates,
        fresh: &Fresh,
    ) -> Result<Result<Certificates, Problem>, Error> {
        let mut certs = certs.clone();
        let mut in_place = true;
        for (key, path) in [
            (&mut certs.server_key, daemons::SERVER_KEY),
            (&mut certs.client_key, CLIENT_KEY),
        ] {
            if !relations::is_fingerprint(key) {
                continue;
            }
            let disk = files::read_optional(&self.root.path(path))?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
            match disk {
                Some(text) if relations::secret_matches(key, &text) => *key = text,
                _ => in_place = false,
            }
        }
        if in_place {
            return Ok(Ok(certs));
        }
        let data = match &fresh.certificates {
            Some(data) => data.clone(),
            None => relations::read(self.tools, CERTIFICATES)?,
        };
        Ok(match relations::certificates(&data, &self.cert_name()) {
            Ok(Some(certs)) => Ok(certs),
            Ok(None) => Err(Problem::waiting("Waiting for certificates")),
            Err(malformed) => Err(Problem::blocked(malformed)),
        })
    }

    /// The tokens in secret `id` (named by unit `from`), at its latest
    /// revision. A secret this unit may not read, or that is gone, is
    /// something to wait for: the control plane grants and replaces them.
    /// Any other refusal is the relation's to mend: blocked, naming it.
    fn read_secret(&self, id: &str, from: &str) -> Result<Result<Credentials, Problem>, Error> {
        let waiting = |why: String| {
            Ok(Err(Problem::waiting(format!(
                "Waiting for credentials: {why}"
            ))))
        };
        let content = match self.tools.secret_get(id, true) {
            Ok(content) => content,
            Err(e) if e.code().is_some() => {
                let stderr = match &e {
                    charm::tools::ToolError::Exec(x) => x.stderr().trim().to_string(),
                    other => other.to_string(),
                };
                let why = stderr.strip_prefix("ERROR ").unwrap_or(&stderr);
                let why = charm::logging::bounded(why, 200);
                let source = format!("{KUBE_CONTROL} relation: secret-id from {from}");
                if e.code() == Some(1) {
                    return waiting(format!("cannot read secret {id} ({source}): {why}"));
                }
                return Ok(Err(Problem::blocked(format!(
                    "{source}: secret-get refused {id}: {why}"
                ))));
            }
            Err(e) => {
                return Err(Error::Tool {
                    doing: "reading the credentials secret",
                    source: e,
                })
            }
        };
        let get = |key: &str| content.get(key).filter(|v| !v.is_empty()).cloned();
        match (
            get("kubelet-token"),
            get("proxy-token"),
            get("client-token"),
        ) {
            (Some(kubelet_token), Some(proxy_token), Some(client_token)) => {
                for (key, token) in [
                    ("kubelet-token", &kubelet_token),
                    ("proxy-token", &proxy_token),
                    ("client-token", &client_token),
                ] {
                    if let Err(why) = crate::validate::token(token) {
                        // The tokens in place stay in force.
                        return Ok(Err(Problem::blocked(format!("secret {id}: {key} {why}"))));
                    }
                }
                Ok(Ok(Credentials {
                    kubelet_token,
                    proxy_token,
                    client_token,
                }))
            }
            _ => waiting(format!(
                "secret {id} lacks kubelet-token, proxy-token or client-token"
            )),
        }
    }

    /// Configures and runs the node if everything it needs is there;
    /// records what stands in the way otherwise.
    pub fn converge(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        options: &NodeOptions,
        fresh: &Fresh,
    ) -> Result<(), Error> {
        let mut problems = Vec::new();
        self.apply_sysctl(recorded, options)?;
        if let Some(refused) = &recorded.journal.sysctl_refused {
            problems.push(Problem::blocked(format!(
                "sysctl: the kernel refused {refused}"
            )));
        }
        let versions = self.daemon_versions()?;
        match self.ready(recorded, options, versions.map(|v| v[0])) {
            Err(missing) => {
                problems.extend(missing);
                // Labels need only the API server, its CA and the client
                // token, which a node that ran keeps while another relation
                // is missing.
                if let Some((url, ca)) = self.api_target(recorded) {
                    if let Some(token) = self.disk_tokens().map(|t| t.client_token) {
                        let api = || Api::new(&url, &ca, &token);
                        if let Some(problem) = self.label(recorded, &api, options) {
                            problems.push(problem);
                        }
                    }
                }
            }
            Ok(ready) => match (
                self.credentials(recorded, &ready.creds, fresh)?,
                self.private_keys(&ready.certs, fresh)?,
            ) {
                (Err(problem), _) | (_, Err(problem)) => problems.push(problem),
                (Ok(creds), Ok(certs)) => {
                    let ready = Ready { certs, ..ready };
                    if let Some(versions) = versions {
                        // Written ahead: `stop` deletes the node by this name.
                        if recorded.journal.node_name.as_ref() != Some(&self.name) {
                            recorded.journal.node_name = Some(self.name.clone());
                            journal.persist(&recorded.journal)?;
                        }
                        let node_ips = self.node_ips(recorded, fresh.addresses)?;
                        // Daemons found running that the charm has no record
                        // of are looked at before any file is written.
                        let mut adopting = BTreeMap::new();
                        let configs = self.write_files(
                            &ready,
                            &creds,
                            (options, versions, &node_ips),
                            &mut |new_files, configs| {
                                adopting =
                                    self.adopt_daemons(recorded, journal, new_files, configs)?;
                                Ok(())
                            },
                        )?;
                        // The tokens are in the kubeconfigs: nothing left
                        // for a later hook to read again.
                        recorded.credentials_stale = false;
                        let inactive =
                            self.run_daemons(recorded, &configs, &adopting, &mut problems)?;
                        if !inactive.is_empty() {
                            problems.push(Problem::waiting(format!(
                                "Waiting for {} to start.",
                                inactive.join(",")
                            )));
                        }
                        // Built only when a call is to be made: setting up
                        // TLS is most of what a converged hook would cost.
                        let api = || Api::new(&ready.api_url, &ready.certs.ca, &creds.client_token);
                        if let Some(problem) = self.label(recorded, &api, options) {
                            problems.push(problem);
                        } else if fresh.check_ready && inactive.is_empty() {
                            self.check_ready(recorded, &api);
                        }
                        if let Some(why) = &recorded.node_not_ready {
                            problems.push(Problem::waiting(format!("Node not Ready: {why}")));
                        }
                    }
                }
            },
        }
        if problems != recorded.node_problems {
            for p in &problems {
                log::info!("{}", p.message);
            }
        }
        recorded.node_problems = problems;
        Ok(())
    }

    /// One look at the node's Ready condition. An unreachable API server
    /// leaves the last answer standing.
    fn check_ready(&self, recorded: &mut Recorded, api: &dyn Fn() -> Result<Api, ApiError>) {
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

    /// kubelet's node IPs: the kube-control binding's ingress addresses,
    /// read again where they can have changed.
    fn node_ips(&self, recorded: &mut Recorded, refresh: bool) -> Result<Vec<String>, Error> {
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

    /// Writes the `sysctl` option to its file and loads it when its content
    /// is not the one last loaded. Inside a container the kernel refuses
    /// some keys by design: logged, not a problem.
    fn apply_sysctl(&self, recorded: &mut Recorded, options: &NodeOptions) -> Result<(), Error> {
        let mut text =
            String::from("# Written by the kubernetes-worker charm from its sysctl option.\n");
        for (key, value) in &options.sysctl {
            text.push_str(&format!("{key} = {value}\n"));
        }
        let fingerprint = Fingerprint::of(&text);
        let path = self.root.path(SYSCTL_FILE);
        if let Some(dir) = path.parent() {
            files::ensure_dir(dir, 0o755)?;
        }
        files::write_atomic(&path, text.as_bytes(), 0o644, None)?;
        if recorded.journal.sysctl_applied.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        let loaded = charm::sysctl::load(&path).map_err(|source| Error::Exec {
            doing: "loading the kernel tunables",
            source,
        })?;
        recorded.journal.sysctl_refused = None;
        if !loaded.refused.is_empty() {
            let refused = loaded.refused.join("; ");
            if self.in_container() {
                log::info!("inside a container the kernel keeps some tunables: {refused}");
            } else {
                log::warn!("sysctl: {refused}");
                recorded.journal.sysctl_refused = Some(refused);
            }
        }
        recorded.journal.sysctl_applied = Some(fingerprint);
        Ok(())
    }

    /// The installed kubelet's and kube-proxy's versions, from their snaps'
    /// metadata; `None` until both are installed.
    fn daemon_versions(&self) -> Result<Option<[Version; 2]>, Error> {
        let mut versions = [Version(0, 0); 2];
        for (i, snap_name) in DAEMONS.iter().enumerate() {
            let Some(meta) = snap::installed(self.root, snap_name)? else {
                return Ok(None);
            };
            // An unreadable version is taken to be a current one.
            versions[i] = Version::parse(&meta.version).unwrap_or(Version(1, u32::MAX));
        }
        Ok(Some(versions))
    }

    /// Whether /etc/resolv.conf points at systemd-resolved's stub.
    fn resolv_conf(&self) -> Result<Option<&'static str>, Error> {
        let text = files::read_optional(&self.root.path("/etc/resolv.conf"))?.unwrap_or_default();
        let stub = String::from_utf8_lossy(&text).lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("nameserver") && words.next() == Some("127.0.0.53")
        });
        Ok(stub.then_some(daemons::RESOLVED_CONF))
    }

    /// Writes certificates, kubeconfigs and the daemons' config files;
    /// returns each daemon's configuration and the machine paths it reads.
    /// `before_writing` sees every file's new content and both daemons'
    /// configurations before the first write.
    fn write_files(
        &self,
        ready: &Ready,
        creds: &Credentials,
        (options, versions, node_ips): (&NodeOptions, [Version; 2], &[String]),
        before_writing: &mut BeforeWriting,
    ) -> Result<Vec<(DaemonConfig, Vec<&'static str>)>, Error> {
        for dir in ["/root/cdk", "/root/cdk/kubelet", "/root/cdk/kubeproxy"] {
            files::ensure_dir(&self.root.path(dir), 0o755)?;
        }
        files::ensure_dir(&self.root.path("/root/.kube"), 0o700)?;
        let certs = &ready.certs;
        let mut written: Vec<(&str, String, u32)> = vec![
            (daemons::CA, certs.ca.clone(), 0o644),
            (daemons::SERVER_CERT, certs.server_cert.clone(), 0o644),
            (daemons::SERVER_KEY, certs.server_key.clone(), 0o600),
            ("/root/cdk/client.crt", certs.client_cert.clone(), 0o644),
            (CLIENT_KEY, certs.client_key.clone(), 0o600),
        ];
        let kubeconfig =
            |user: &str, token: &str| kubeconfig::render(&ready.api_url, &certs.ca, user, token);
        written.push((
            daemons::KUBELET_KUBECONFIG,
            kubeconfig("kubelet", &creds.kubelet_token),
            0o600,
        ));
        written.push((
            daemons::PROXY_KUBECONFIG,
            kubeconfig("kube-proxy", &creds.proxy_token),
            0o600,
        ));
        written.push((
            ROOT_KUBECONFIG,
            kubeconfig("root", &creds.client_token),
            0o600,
        ));

        let extra_config = |text: &str| -> serde_yaml::Mapping {
            // Checked when the option was read.
            serde_yaml::from_str(text).unwrap_or_default()
        };
        let (kubelet_extra_config, proxy_extra_config) = (
            extra_config(&options.kubelet_extra_config),
            extra_config(&options.proxy_extra_config),
        );
        let inputs = Inputs {
            api_url: &ready.api_url,
            dns: &ready.dns,
            cluster_cidr: ready.cni.as_ref().map(|c| c.cidr.as_str()),
            allow_privileged: options.allow_privileged,
            in_container: self.in_container(),
            kubelet_extra: &options.kubelet_extra_args,
            proxy_extra: &options.proxy_extra_args,
            node_name: &self.name,
            node_ips,
            runtime_socket: ready.runtime.as_ref().map(|r| r.socket.as_str()),
            external_cloud: ready.control.has_xcp,
            resolv_conf: self.resolv_conf()?,
            kubelet_extra_config: &kubelet_extra_config,
            proxy_extra_config: &proxy_extra_config,
        };
        let kubelet = daemons::kubelet(versions[0], &inputs);
        let proxy = daemons::kube_proxy(versions[1], &inputs);
        for note in kubelet.notes.iter().chain(&proxy.notes) {
            log::debug!("{note}");
        }
        for config in [&kubelet, &proxy] {
            for (path, content) in &config.files {
                written.push((path, content.clone(), 0o644));
            }
        }
        let new_files: NewFiles = written
            .iter()
            .map(|(path, content, _)| (*path, content.as_str()))
            .collect();
        before_writing(&new_files, [&kubelet, &proxy])?;
        for (path, content, mode) in &written {
            if files::write_atomic(&self.root.path(path), content.as_bytes(), *mode, None)?
                == Change::Written
            {
                log::debug!("wrote {path}");
            }
        }
        if let Some(ubuntu) = self.ubuntu_user()? {
            // ubuntu owns its home and .kube: written by descriptor, never
            // through a link it placed there. A home that is not as it
            // should be costs ubuntu its kubeconfig, not the node.
            let home = self.root.path(&ubuntu.home);
            let config = kubeconfig("ubuntu", &creds.client_token);
            let written = files::write_in_owned_dir(
                &home,
                ".kube",
                "config",
                config.as_bytes(),
                0o600,
                ubuntu.owner,
            );
            match written {
                Ok(_) => {}
                Err(e) if e.action == files::REFUSED => {
                    log::warn!("not writing ubuntu's kubeconfig: {e}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(vec![
            (kubelet, READS[0].to_vec()),
            (proxy, READS[1].to_vec()),
        ])
    }

    /// Looks at each daemon to adopt (its snap was found installed, and the
    /// charm has no record of how it runs it) before any file is written:
    /// whether what it runs with now (its snap options, the files it
    /// reads) is, in effect, what the charm is about to give it. One that
    /// must restart is recorded so before the first change, so that a hook
    /// killed after rewriting its files still restarts it when retried.
    fn adopt_daemons(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        new_files: &NewFiles,
        configs: [&DaemonConfig; 2],
    ) -> Result<BTreeMap<&'static str, Adopted>, Error> {
        let mut adopted = BTreeMap::new();
        for ((snap_name, reads), config) in DAEMONS.iter().zip(READS).zip(configs) {
            let adopt = !recorded.journal.daemons.contains_key(*snap_name)
                && recorded
                    .journal
                    .snaps
                    .get(*snap_name)
                    .is_some_and(|s| s.adopted);
            if !adopt {
                continue;
            }
            let mut files_same = true;
            for path in reads {
                let now = files::read_optional(&self.root.path(path))?;
                let new = new_files.get(path).map(|c| c.as_bytes());
                if !adoption::same_in_effect(path, now.as_deref(), new) {
                    log::info!("{snap_name}: {path} differs in effect from what it runs with");
                    files_same = false;
                }
            }
            let on_machine = SnapCli.config(snap_name)?;
            let flags_now = adoption::flags_in_effect(&on_machine);
            let flags_same = flags_now.as_ref() == Some(&config.flags);
            let mut keys: BTreeMap<String, String> = on_machine
                .iter()
                .map(|(k, v)| (k.clone(), adoption::value_text(v)))
                .collect();
            if flags_same {
                // The snap's options stand for what the charm would set:
                // only options it would not set at all are unset.
                keys.retain(|k, _| !config.snap_keys.contains_key(k));
                keys.extend(config.snap_keys.clone());
            } else {
                let why = match &flags_now {
                    Some(now) => adoption::flag_differences(now, &config.flags).join(", "),
                    None => "its args cannot be read without a shell".into(),
                };
                log::info!("{snap_name}: its flags differ in effect ({why})");
            }
            let keep_running = flags_same && files_same;
            log::info!(
                "adopted {snap_name}: {}",
                if keep_running {
                    "it runs with the configuration the charm computes, so it keeps running"
                } else {
                    "reconfiguring it and restarting it"
                }
            );
            if !keep_running {
                recorded.journal.daemons.insert(
                    snap_name.to_string(),
                    DaemonRecord {
                        keys: keys.clone(),
                        fingerprint: String::new(),
                    },
                );
            }
            adopted.insert(*snap_name, Adopted { keys, keep_running });
        }
        if adopted.values().any(|a| !a.keep_running) {
            journal.persist(&recorded.journal)?;
        }
        Ok(adopted)
    }

    /// Sets each daemon's snap config in one call, restarts it exactly when
    /// its binary or anything it reads changed, and returns those that are
    /// not running. A daemon just adopted starts from the snap options it
    /// had, and keeps running if it already ran as the charm would run it.
    fn run_daemons(
        &self,
        recorded: &mut Recorded,
        configs: &[(DaemonConfig, Vec<&'static str>)],
        adopting: &BTreeMap<&'static str, Adopted>,
        refused: &mut Vec<Problem>,
    ) -> Result<Vec<&'static str>, Error> {
        let mut inactive = Vec::new();
        for (snap_name, (config, reads)) in DAEMONS.iter().zip(configs) {
            let keep_running = match adopting.get(snap_name) {
                Some(adopted) => {
                    recorded.journal.daemons.insert(
                        snap_name.to_string(),
                        DaemonRecord {
                            keys: adopted.keys.clone(),
                            fingerprint: String::new(),
                        },
                    );
                    adopted.keep_running
                }
                None => false,
            };
            let record = recorded
                .journal
                .daemons
                .entry(snap_name.to_string())
                .or_default();
            let mut changes: Vec<(String, Option<String>)> = config
                .snap_keys
                .iter()
                .filter(|(k, v)| record.keys.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            changes.extend(
                record
                    .keys
                    .keys()
                    .filter(|k| !config.snap_keys.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            );
            if !changes.is_empty() {
                match SnapCli.set(snap_name, &changes) {
                    Ok(()) => record.keys = config.snap_keys.clone(),
                    Err(e) => match refusal(&e) {
                        // What the snap will not take is the operator's to
                        // mend; the daemon keeps what it runs with, and the
                        // next hook tries again.
                        Some(why) => {
                            let option = match *snap_name {
                                "kubelet" => "kubelet-extra-args",
                                _ => "proxy-extra-args",
                            };
                            refused.push(Problem::blocked(format!(
                                "snap set {snap_name} refused its configuration ({why}); check {option}"
                            )));
                            continue;
                        }
                        None => return Err(e.into()),
                    },
                }
            }
            let fingerprint = self.fingerprint(
                snap_name,
                config,
                reads,
                recorded.journal.snaps.get(*snap_name),
            )?;
            let record = recorded
                .journal
                .daemons
                .entry(snap_name.to_string())
                .or_default();
            let service = format!("snap.{snap_name}.daemon");
            let systemctl = Systemctl;
            if keep_running {
                record.fingerprint = fingerprint.clone();
            }
            if recorded.journal.parked.contains(*snap_name) {
                // Stopped for its refresh: started once, configured.
                log::info!("starting {snap_name} on its new version's configuration");
                systemctl.enable_now(&service).map_err(|e| Error::Exec {
                    doing: "starting a daemon after its refresh",
                    source: e,
                })?;
                let record = recorded
                    .journal
                    .daemons
                    .entry(snap_name.to_string())
                    .or_default();
                record.fingerprint = fingerprint;
                recorded.journal.parked.remove(*snap_name);
            } else if record.fingerprint != fingerprint {
                log::info!("restarting {snap_name}: its configuration or binary changed");
                systemctl.restart(&service).map_err(|e| Error::Exec {
                    doing: "restarting a daemon",
                    source: e,
                })?;
                record.fingerprint = fingerprint;
            }
            let exec = |e| Error::Exec {
                doing: "checking a daemon",
                source: e,
            };
            if !systemctl.is_active(&service).map_err(exec)? {
                log::warn!("{service} is not running; starting it");
                systemctl.start(&service).map_err(exec)?;
                if !systemctl.is_active(&service).map_err(exec)? {
                    inactive.push(*snap_name);
                }
            }
        }
        Ok(inactive)
    }

    fn fingerprint(
        &self,
        snap_name: &str,
        config: &DaemonConfig,
        reads: &[&str],
        installed: Option<&crate::facts::snap::Installed>,
    ) -> Result<String, Error> {
        let mut hash = Fingerprint::default();
        hash.update(format!(
            "{snap_name}\n{:?}\n{:?}\n",
            installed, config.snap_keys
        ));
        for path in reads {
            let full = self.root.path(path);
            hash.update(path.as_bytes());
            hash.update(files::read_optional(&full)?.unwrap_or_default());
        }
        Ok(hash.hex())
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
    fn label(
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

    /// Starts, on the configuration they have, the daemons stopped for a
    /// refresh that the node's configuration did not start (it could not
    /// be configured in this hook): a node waiting on its relations or
    /// options keeps running rather than staying down.
    pub fn unpark(&self, recorded: &mut Recorded) -> Result<(), Error> {
        for snap_name in recorded.journal.parked.clone() {
            log::warn!(
                "starting {snap_name} on the configuration it has: the node could not be configured for its new version"
            );
            Systemctl
                .enable_now(&format!("snap.{snap_name}.daemon"))
                .map_err(|e| Error::Exec {
                    doing: "starting a daemon after its refresh",
                    source: e,
                })?;
            recorded.journal.parked.remove(&snap_name);
        }
        Ok(())
    }

    /// Inside a container (LXD, ...), kube-proxy must not try to set
    /// conntrack limits. systemd records the container type here.
    fn in_container(&self) -> bool {
        std::fs::read_to_string(self.root.path("/run/systemd/container"))
            .is_ok_and(|kind| !kind.trim().is_empty())
    }

    fn ubuntu_user(&self) -> Result<Option<Account>, Error> {
        let passwd = files::read_optional(&self.root.path("/etc/passwd"))?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&passwd).lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                ["ubuntu", _, uid, gid, _, home, ..] => Some(Account {
                    owner: Owner {
                        uid: uid.parse().ok()?,
                        gid: gid.parse().ok()?,
                    },
                    home: home.to_string(),
                }),
                _ => None,
            }
        }))
    }
}

struct Account {
    owner: Owner,
    home: String,
}

/// The files the charm is about to write: machine path -> content.
type NewFiles<'a> = BTreeMap<&'static str, &'a str>;

/// What looks at the files and daemon configurations about to be written.
type BeforeWriting<'a> = dyn FnMut(&NewFiles, [&DaemonConfig; 2]) -> Result<(), Error> + 'a;

/// A daemon found running without a record, as the charm takes it over.
struct Adopted {
    /// Its snap options as the charm's record: what it would set, plus
    /// options the charm does not set (to be unset).
    keys: BTreeMap<String, String>,
    /// It already runs as the charm would run it.
    keep_running: bool,
}

/// Why snapd would not take a `snap set`, when it is the values' fault
/// rather than the machine's: it ran and said no, or the kernel refused
/// the arguments as too long. A full disk or a deadline is not this.
fn refusal(e: &snap::SnapError) -> Option<String> {
    let snap::SnapError::Exec(e) = e else {
        return None;
    };
    match e {
        charm::exec::ExecError::Failed {
            code: Some(_),
            stderr,
            ..
        } if !stderr.contains("no space left on device") => {
            // snapd says what failed on the lines after its first.
            let said: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Some(charm::logging::bounded(&said.join(" "), 200).into_owned())
        }
        charm::exec::ExecError::Spawn { source, .. }
            if source.raw_os_error() == Some(nix::libc::E2BIG) =>
        {
            Some("its arguments are longer than the kernel accepts".into())
        }
        _ => None,
    }
}

/// `endpoints[unit_number % len]`: the control plane's endpoints spread
/// over the workers.
fn pick(endpoints: &[String], unit_number: usize) -> Option<String> {
    (!endpoints.is_empty()).then(|| endpoints[unit_number % endpoints.len()].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_takes_its_own_endpoint() {
        let endpoints: Vec<String> = ["https://a:6443", "https://b:6443"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pick(&endpoints, 0).as_deref(), Some("https://a:6443"));
        assert_eq!(pick(&endpoints, 3).as_deref(), Some("https://b:6443"));
        assert_eq!(pick(&[], 3), None);
    }
}
