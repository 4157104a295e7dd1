//! The node: what this unit publishes on its relations, and the files,
//! daemon configuration, services and labels that make it a Kubernetes
//! worker, converged from the recorded relation data and options.

use charm::files::{self, Change, Owner};
use charm::resources::Fingerprint;
use charm::root::MachineRoot;
use charm::service::Systemctl;
use charm::snap::{self, SnapCli};
use charm::tools::Databag;
use charm::{HookTools, RelationId};

use crate::daemons::{self, DaemonConfig, Inputs, Version};
use crate::error::{Error, ToolContext};
use crate::kubeapi::{Api, ApiError};
use crate::kubeconfig;
use crate::relations::{
    self, Certificates, Credentials, Dns, CERTIFICATES, CNI, KUBE_API_ENDPOINT, KUBE_CONTROL,
};
use crate::unit_state::{NodeOptions, Problem, Recorded};

const DAEMONS: [&str; 2] = ["kubelet", "kube-proxy"];
const ROOT_KUBECONFIG: &str = "/root/.kube/config";

pub struct Node<'a> {
    pub tools: &'a HookTools,
    pub root: &'a MachineRoot,
    /// `kubernetes-worker/0`.
    pub unit: &'a str,
    /// The node's name: the hostname, lowercased.
    pub name: String,
}

/// Everything the daemons need, once all relations have delivered it.
struct Ready {
    api_url: String,
    certs: Certificates,
    creds: Credentials,
    dns: Dns,
    cidr: String,
}

impl Node<'_> {
    pub fn user(&self) -> String {
        format!("system:node:{}", self.name)
    }

    fn cert_name(&self) -> String {
        self.unit.replace('/', "_")
    }

    /// Re-reads `endpoints` and publishes this unit's side of them.
    /// `broken`: the relation whose relation-broken hook is running; Juju
    /// still lists it, but it is gone.
    pub fn refresh(
        &self,
        recorded: &mut Recorded,
        endpoints: &[&str],
        broken: Option<&str>,
    ) -> Result<(), Error> {
        for endpoint in endpoints {
            let mut data = relations::read(self.tools, endpoint)?;
            if let Some(rid) = broken {
                data.relations.remove(rid);
            }
            recorded.published.retain(|rid, _| {
                !rid.starts_with(&format!("{endpoint}:")) || data.relations.contains_key(rid)
            });
            for rid in data.relations.keys() {
                self.publish(recorded, endpoint, rid)?;
            }
            recorded.relations.insert(endpoint.to_string(), data);
        }
        Ok(())
    }

    fn publish(&self, recorded: &mut Recorded, endpoint: &str, rid: &str) -> Result<(), Error> {
        let pairs: Vec<(&str, String)> = match endpoint {
            KUBE_CONTROL => vec![
                ("kubelet_user", self.user()),
                ("auth_group", "system:nodes".into()),
                ("gpu", "False".into()),
            ],
            CNI => vec![
                ("is_master", "False".into()),
                ("kubeconfig_path", daemons::KUBELET_KUBECONFIG.into()),
            ],
            CERTIFICATES => {
                let (public, private) = match &recorded.addresses {
                    Some(addresses) => addresses.clone(),
                    None => {
                        let public = self
                            .tools
                            .unit_get("public-address")
                            .doing("reading the public address")?;
                        let private = self
                            .tools
                            .unit_get("private-address")
                            .doing("reading the private address")?;
                        recorded.addresses = Some((public.clone(), private.clone()));
                        (public, private)
                    }
                };
                let sans =
                    serde_json::to_string(&[&public, &private, &self.name]).unwrap_or_default();
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

    /// What the relations provide, or what is missing or wrong.
    fn ready(&self, recorded: &Recorded) -> Result<Ready, Vec<Problem>> {
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let (control, api, certs, cni) = (
            data(KUBE_CONTROL),
            data(KUBE_API_ENDPOINT),
            data(CERTIFICATES),
            data(CNI),
        );
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
        if !cni.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:cni to a CNI subordinate (flannel, calico)",
            ));
        }
        let parsed = (
            relations::kube_control(&control, &self.user()),
            relations::api_urls_from_http(&api),
            relations::certificates(&certs, &self.cert_name()),
            relations::cluster_cidr(&cni),
        );
        let (control, http_urls, certs, cidr) = match parsed {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
            (a, b, c, d) => {
                let malformed = [a.err(), b.err(), c.err(), d.err()];
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
        // Current masters send the URLs on kube-control; older ones on http.
        let api_url = control
            .as_ref()
            .and_then(|c| c.api_urls.first().cloned())
            .or_else(|| http_urls.first().cloned());
        if api_url.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the API server address (kube-api-endpoint or kube-control)",
            ));
        }
        let dns = control.map(|c| c.dns).unwrap_or(Dns::Pending);
        if dns == Dns::Pending && creds.is_some() {
            waiting.push(Problem::waiting("Waiting for cluster DNS."));
        }
        if cidr.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the cluster CIDR from the cni relation",
            ));
        }
        match (api_url, certs, creds, cidr) {
            (Some(api_url), Some(certs), Some(creds), Some(cidr)) if waiting.is_empty() => {
                Ok(Ready {
                    api_url,
                    certs,
                    creds,
                    dns,
                    cidr,
                })
            }
            _ => Err(waiting),
        }
    }

    /// The API client, if the relations have provided what it needs.
    pub fn api(&self, recorded: &Recorded) -> Option<Result<Api, ApiError>> {
        let ready = self.ready(recorded).ok()?;
        Some(Api::new(
            &ready.api_url,
            &ready.certs.ca,
            &ready.creds.client_token,
        ))
    }

    /// Configures and runs the node if everything it needs is there;
    /// records what stands in the way otherwise.
    pub fn converge(&self, recorded: &mut Recorded, options: &NodeOptions) -> Result<(), Error> {
        let mut problems = Vec::new();
        match self.ready(recorded) {
            Err(missing) => problems = missing,
            Ok(ready) => {
                let versions = self.daemon_versions()?;
                if let Some(versions) = versions {
                    let configs = self.write_files(&ready, options, versions)?;
                    let inactive = self.run_daemons(recorded, &configs)?;
                    if !inactive.is_empty() {
                        problems.push(Problem::waiting(format!(
                            "Waiting for {} to start.",
                            inactive.join(",")
                        )));
                    }
                    if let Some(problem) = self.label(recorded, &ready, options) {
                        problems.push(problem);
                    }
                }
            }
        }
        if problems != recorded.node_problems {
            for p in &problems {
                log::info!("{}", p.message);
            }
        }
        recorded.node_problems = problems;
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

    /// Writes certificates, kubeconfigs and the daemons' config files;
    /// returns each daemon's configuration and the machine paths it reads.
    fn write_files(
        &self,
        ready: &Ready,
        options: &NodeOptions,
        versions: [Version; 2],
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
            ("/root/cdk/client.key", certs.client_key.clone(), 0o600),
        ];
        let kubeconfig =
            |user: &str, token: &str| kubeconfig::render(&ready.api_url, &certs.ca, user, token);
        written.push((
            daemons::KUBELET_KUBECONFIG,
            kubeconfig("kubelet", &ready.creds.kubelet_token),
            0o600,
        ));
        written.push((
            daemons::PROXY_KUBECONFIG,
            kubeconfig("kube-proxy", &ready.creds.proxy_token),
            0o600,
        ));
        written.push((
            ROOT_KUBECONFIG,
            kubeconfig("root", &ready.creds.client_token),
            0o600,
        ));

        let inputs = Inputs {
            api_url: &ready.api_url,
            dns: &ready.dns,
            cluster_cidr: &ready.cidr,
            allow_privileged: options.allow_privileged,
            in_container: self.in_container(),
            kubelet_extra: &options.kubelet_extra_args,
            proxy_extra: &options.proxy_extra_args,
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
        for (path, content, mode) in &written {
            if files::write_atomic(&self.root.path(path), content.as_bytes(), *mode, None)?
                == Change::Written
            {
                log::debug!("wrote {path}");
            }
        }
        if let Some(ubuntu) = self.ubuntu_user()? {
            let dir = self.root.path(format!("{}/.kube", ubuntu.home));
            if files::ensure_dir(&dir, 0o700)? == Change::Written {
                std::os::unix::fs::chown(&dir, Some(ubuntu.owner.uid), Some(ubuntu.owner.gid))
                    .map_err(|source| Error::Io {
                        doing: format!("giving {} to ubuntu", dir.display()),
                        source,
                    })?;
            }
            files::write_atomic(
                &dir.join("config"),
                kubeconfig("ubuntu", &ready.creds.client_token).as_bytes(),
                0o600,
                Some(ubuntu.owner),
            )?;
        }
        let kubelet_reads = vec![
            daemons::CA,
            daemons::SERVER_CERT,
            daemons::SERVER_KEY,
            daemons::KUBELET_KUBECONFIG,
            daemons::KUBELET_CONFIG,
        ];
        let proxy_reads = vec![daemons::PROXY_KUBECONFIG, daemons::KUBE_PROXY_CONFIG];
        Ok(vec![(kubelet, kubelet_reads), (proxy, proxy_reads)])
    }

    /// Sets each daemon's snap config in one call, restarts it exactly when
    /// its binary or anything it reads changed, and returns those that are
    /// not running.
    fn run_daemons(
        &self,
        recorded: &mut Recorded,
        configs: &[(DaemonConfig, Vec<&'static str>)],
    ) -> Result<Vec<&'static str>, Error> {
        let mut inactive = Vec::new();
        for (snap_name, (config, reads)) in DAEMONS.iter().zip(configs) {
            let record = recorded.daemons.entry(snap_name.to_string()).or_default();
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
                SnapCli.set(snap_name, &changes)?;
                record.keys = config.snap_keys.clone();
            }
            let fingerprint =
                self.fingerprint(snap_name, config, reads, recorded.snaps.get(*snap_name))?;
            let record = recorded.daemons.entry(snap_name.to_string()).or_default();
            let service = format!("snap.{snap_name}.daemon");
            let systemctl = Systemctl;
            if record.fingerprint != fingerprint {
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
        installed: Option<&crate::snaps::Installed>,
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

    /// Applies the configured labels when they changed or a try failed.
    fn label(
        &self,
        recorded: &mut Recorded,
        ready: &Ready,
        options: &NodeOptions,
    ) -> Option<Problem> {
        if recorded.labels == options.labels && !recorded.labels_pending {
            return None;
        }
        let remove: Vec<String> = recorded
            .labels
            .keys()
            .filter(|k| !options.labels.contains_key(*k))
            .cloned()
            .collect();
        let result = Api::new(&ready.api_url, &ready.certs.ca, &ready.creds.client_token)
            .and_then(|api| api.patch_labels(&self.name, &options.labels, &remove));
        match result {
            Ok(()) => {
                log::info!(
                    "node {} labelled: {} set, {} removed",
                    self.name,
                    options.labels.len(),
                    remove.len()
                );
                recorded.labels = options.labels.clone();
                recorded.labels_pending = false;
                None
            }
            Err(e) => {
                recorded.labels_pending = true;
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
    pub fn stop(&self, recorded: &mut Recorded) -> Result<(), Error> {
        recorded.stopped = true;
        match self.api(recorded) {
            Some(Ok(api)) => match api.delete_node(&self.name) {
                Ok(()) => log::info!("deleted node {} from the cluster", self.name),
                Err(e) if e.is_not_found() => {
                    log::info!("node {} was not in the cluster", self.name)
                }
                Err(e) => log::warn!("could not delete node {} from the cluster: {e}", self.name),
            },
            Some(Err(e)) => log::warn!(
                "could not reach the API server to delete node {}: {e}",
                self.name
            ),
            None => log::info!(
                "no API server known; node {} left to the control plane",
                self.name
            ),
        }
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
        recorded.daemons.clear();
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

/// The machine's host name, lowercased: the name kubelet registers the
/// node under (upper-case host names broke the Python charm's labelling).
pub fn node_name() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().to_lowercase())
        .unwrap_or_default()
}
