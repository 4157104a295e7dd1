//! The certificates, kubeconfigs and config files kubelet and kube-proxy
//! read.

use std::collections::BTreeMap;

use charm::files::{self, Change, Owner};

use crate::daemons::{self, DaemonConfig, Inputs, Version};
use crate::error::Error;
use crate::kubeconfig;
use crate::relations::Credentials;
use crate::unit_state::NodeOptions;

use super::inputs::Ready;
use super::Node;

/// The files each of [`DAEMONS`](crate::snaps::DAEMONS) reads at start.
pub(super) const READS: [&[&str]; 2] = [
    &[
        daemons::CA,
        daemons::SERVER_CERT,
        daemons::SERVER_KEY,
        daemons::KUBELET_KUBECONFIG,
        daemons::KUBELET_CONFIG,
    ],
    &[daemons::PROXY_KUBECONFIG, daemons::KUBE_PROXY_CONFIG],
];
pub(super) const ROOT_KUBECONFIG: &str = "/root/.kube/config";
pub(super) const CLIENT_KEY: &str = "/root/cdk/client.key";

impl Node<'_> {
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
    pub(super) fn write_files(
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

        let [kubelet, proxy] = self.daemon_configs(ready, options, versions, node_ips)?;
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
        self.write_ubuntu_kubeconfig(&kubeconfig("ubuntu", &creds.client_token))?;
        Ok(vec![
            (kubelet, READS[0].to_vec()),
            (proxy, READS[1].to_vec()),
        ])
    }

    /// kubelet's and kube-proxy's configuration, for their versions.
    fn daemon_configs(
        &self,
        ready: &Ready,
        options: &NodeOptions,
        versions: [Version; 2],
        node_ips: &[String],
    ) -> Result<[DaemonConfig; 2], Error> {
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
        Ok([
            daemons::kubelet(versions[0], &inputs),
            daemons::kube_proxy(versions[1], &inputs),
        ])
    }

    /// The ubuntu user's kubeconfig, where there is an ubuntu user. It
    /// owns its home and .kube: written by descriptor, never through a
    /// link it placed there. A home that is not as it should be costs
    /// ubuntu its kubeconfig, not the node.
    fn write_ubuntu_kubeconfig(&self, config: &str) -> Result<(), Error> {
        let Some(ubuntu) = self.ubuntu_user()? else {
            return Ok(());
        };
        let home = self.root.path(&ubuntu.home);
        let written = files::write_in_owned_dir(
            &home,
            ".kube",
            "config",
            config.as_bytes(),
            0o600,
            ubuntu.owner,
        );
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.action == files::REFUSED => {
                log::warn!("not writing ubuntu's kubeconfig: {e}");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The ubuntu account, from the machine's passwd, if there is one.
    pub(crate) fn ubuntu_user(&self) -> Result<Option<Account>, Error> {
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

pub(crate) struct Account {
    pub owner: Owner,
    pub home: String,
}

/// The files the charm is about to write: machine path -> content.
pub(super) type NewFiles<'a> = BTreeMap<&'static str, &'a str>;

/// What looks at the files and daemon configurations about to be written.
type BeforeWriting<'a> = dyn FnMut(&NewFiles, [&DaemonConfig; 2]) -> Result<(), Error> + 'a;
