//! kubelet and kube-proxy configuration, following the installed version.
//!
//! The CDK snaps take daemon flags as snap config (`snap set kubelet
//! key=value` becomes `--key=value` at start) and read them only at start.
//! Up to 1.9 everything is a flag (the reference's flag set); from 1.10 the
//! settings go in a KubeletConfiguration / KubeProxyConfiguration file
//! passed with `config`, and only the flags that version still has are set.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::relations::Dns;

pub const KUBELET_CONFIG: &str = "/root/cdk/kubelet/config.yaml";
pub const KUBE_PROXY_CONFIG: &str = "/root/cdk/kubeproxy/config.yaml";
pub const CA: &str = "/root/cdk/ca.crt";
pub const SERVER_CERT: &str = "/root/cdk/server.crt";
pub const SERVER_KEY: &str = "/root/cdk/server.key";
pub const KUBELET_KUBECONFIG: &str = "/root/cdk/kubeconfig";
pub const PROXY_KUBECONFIG: &str = "/root/cdk/kubeproxyconfig";

/// `major.minor` of a Kubernetes version string (`1.31.2`, `1.7.16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version(major, minor))
    }
}

/// What the daemons are configured from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub api_url: &'a str,
    pub dns: &'a Dns,
    pub cluster_cidr: &'a str,
    pub allow_privileged: bool,
    pub in_container: bool,
    pub kubelet_extra: &'a BTreeMap<String, String>,
    pub proxy_extra: &'a BTreeMap<String, String>,
}

/// One daemon's configuration: its snap config keys and the files it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub snap_keys: BTreeMap<String, String>,
    /// Machine path -> content.
    pub files: BTreeMap<&'static str, String>,
    /// Notes for the log (a flag this version lacks, ...).
    pub notes: Vec<String>,
}

fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    address: &'static str,
    port: u16,
    authentication: Authentication,
    authorization: Authorization,
    #[serde(rename = "clusterDNS", skip_serializing_if = "Vec::is_empty")]
    cluster_dns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_domain: Option<String>,
    tls_cert_file: &'static str,
    tls_private_key_file: &'static str,
    fail_swap_on: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Authentication {
    anonymous: Enabled,
    webhook: Enabled,
    x509: X509,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
struct X509 {
    #[serde(rename = "clientCAFile")]
    client_ca_file: &'static str,
}

#[derive(Serialize)]
struct Authorization {
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration {
    api_version: &'static str,
    kind: &'static str,
    client_connection: ClientConnection,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    conntrack: Option<Conntrack>,
}

#[derive(Serialize)]
struct ClientConnection {
    kubeconfig: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Conntrack {
    max_per_core: u32,
}

fn yaml<T: Serialize>(value: &T) -> String {
    // Plain structures of strings, numbers and lists always serialise.
    serde_yaml::to_string(value).unwrap_or_default()
}

pub fn kubelet(version: Version, inputs: &Inputs) -> DaemonConfig {
    let mut notes = Vec::new();
    let privileged = if inputs.allow_privileged {
        "true"
    } else {
        "false"
    };
    let (dns_ip, dns_domain) = match inputs.dns {
        Dns::Ready { ip, domain, .. } => (Some(ip.clone()), Some(domain.clone())),
        _ => (None, None),
    };
    let mut files = BTreeMap::new();
    let mut snap_keys = if version < Version(1, 10) {
        let mut k = keys(&[
            ("kubeconfig", KUBELET_KUBECONFIG),
            ("network-plugin", "cni"),
            ("v", "0"),
            ("address", "0.0.0.0"),
            ("port", "10250"),
            ("anonymous-auth", "false"),
            ("client-ca-file", CA),
            ("tls-cert-file", SERVER_CERT),
            ("tls-private-key-file", SERVER_KEY),
            ("logtostderr", "true"),
            ("allow-privileged", privileged),
            ("fail-swap-on", "false"),
            ("require-kubeconfig", "true"),
        ]);
        if let (Some(ip), Some(domain)) = (dns_ip, dns_domain) {
            k.insert("cluster-dns".into(), ip);
            k.insert("cluster-domain".into(), domain);
        }
        k
    } else {
        let config = KubeletConfiguration {
            api_version: "kubelet.config.k8s.io/v1beta1",
            kind: "KubeletConfiguration",
            address: "0.0.0.0",
            port: 10250,
            authentication: Authentication {
                anonymous: Enabled { enabled: false },
                webhook: Enabled { enabled: true },
                x509: X509 { client_ca_file: CA },
            },
            authorization: Authorization { mode: "Webhook" },
            cluster_dns: dns_ip.into_iter().collect(),
            cluster_domain: dns_domain,
            tls_cert_file: SERVER_CERT,
            tls_private_key_file: SERVER_KEY,
            fail_swap_on: false,
        };
        files.insert(KUBELET_CONFIG, yaml(&config));
        let mut k = keys(&[
            ("config", KUBELET_CONFIG),
            ("kubeconfig", KUBELET_KUBECONFIG),
            ("v", "0"),
        ]);
        // Flags later releases removed.
        if version < Version(1, 24) {
            k.insert("network-plugin".into(), "cni".into());
        }
        if version < Version(1, 15) {
            k.insert("allow-privileged".into(), privileged.into());
        } else {
            notes.push(format!(
                "kubelet {}.{} has no allow-privileged flag; the option is not passed",
                version.0, version.1
            ));
        }
        if version < Version(1, 26) {
            k.insert("logtostderr".into(), "true".into());
        }
        k
    };
    snap_keys.extend(inputs.kubelet_extra.clone());
    DaemonConfig {
        snap_keys,
        files,
        notes,
    }
}

pub fn kube_proxy(version: Version, inputs: &Inputs) -> DaemonConfig {
    let mut files = BTreeMap::new();
    let mut snap_keys = if version < Version(1, 10) {
        let mut k = keys(&[
            ("cluster-cidr", inputs.cluster_cidr),
            ("kubeconfig", PROXY_KUBECONFIG),
            ("logtostderr", "true"),
            ("v", "0"),
            ("master", inputs.api_url),
        ]);
        if inputs.in_container {
            k.insert("conntrack-max-per-core".into(), "0".into());
        }
        k
    } else {
        let config = KubeProxyConfiguration {
            api_version: "kubeproxy.config.k8s.io/v1alpha1",
            kind: "KubeProxyConfiguration",
            client_connection: ClientConnection {
                kubeconfig: PROXY_KUBECONFIG,
            },
            cluster_cidr: inputs.cluster_cidr.to_string(),
            conntrack: inputs.in_container.then_some(Conntrack { max_per_core: 0 }),
        };
        files.insert(KUBE_PROXY_CONFIG, yaml(&config));
        let mut k = keys(&[
            ("config", KUBE_PROXY_CONFIG),
            ("v", "0"),
            ("master", inputs.api_url),
        ]);
        if version < Version(1, 26) {
            k.insert("logtostderr".into(), "true".into());
        }
        k
    };
    snap_keys.extend(inputs.proxy_extra.clone());
    DaemonConfig {
        snap_keys,
        files,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(
        dns: &'a Dns,
        extra: &'a BTreeMap<String, String>,
        container: bool,
    ) -> Inputs<'a> {
        Inputs {
            api_url: "https://10.0.0.5:6443",
            dns,
            cluster_cidr: "10.1.0.0/16",
            allow_privileged: true,
            in_container: container,
            kubelet_extra: extra,
            proxy_extra: extra,
        }
    }

    #[test]
    fn versions() {
        assert_eq!(Version::parse("1.31.2"), Some(Version(1, 31)));
        assert_eq!(Version::parse("v1.7.16"), Some(Version(1, 7)));
        assert_eq!(Version::parse("1.10.0-beta.1"), Some(Version(1, 10)));
        assert_eq!(Version::parse("latest"), None);
        assert!(Version(1, 9) < Version(1, 10));
    }

    #[test]
    fn kubelet_1_7_is_all_flags() {
        let dns = Dns::Ready {
            ip: "10.152.183.10".into(),
            domain: "cluster.local".into(),
            port: 53,
        };
        let extra = BTreeMap::new();
        let c = kubelet(Version(1, 7), &inputs(&dns, &extra, false));
        assert!(c.files.is_empty());
        assert_eq!(c.snap_keys["require-kubeconfig"], "true");
        assert_eq!(c.snap_keys["cluster-dns"], "10.152.183.10");
        assert_eq!(c.snap_keys["allow-privileged"], "true");
        assert_eq!(c.snap_keys["tls-private-key-file"], SERVER_KEY);
        assert!(!c.snap_keys.contains_key("config"));
    }

    #[test]
    fn kubelet_current_uses_a_config_file_and_only_live_flags() {
        let dns = Dns::Ready {
            ip: "10.152.183.10".into(),
            domain: "cluster.local".into(),
            port: 53,
        };
        let extra: BTreeMap<String, String> = [("v".to_string(), "3".to_string())].into();
        let c = kubelet(Version(1, 31), &inputs(&dns, &extra, false));
        assert_eq!(
            c.snap_keys.keys().cloned().collect::<Vec<_>>(),
            vec!["config", "kubeconfig", "v"]
        );
        assert_eq!(c.snap_keys["v"], "3", "extra args win");
        let file: serde_yaml::Value = serde_yaml::from_str(&c.files[KUBELET_CONFIG]).unwrap();
        assert_eq!(file["kind"], "KubeletConfiguration");
        assert_eq!(file["clusterDNS"][0], "10.152.183.10");
        assert_eq!(file["authentication"]["x509"]["clientCAFile"], CA);
        assert_eq!(file["failSwapOn"], false);
        assert!(c.notes[0].contains("allow-privileged"));
        let disabled = kubelet(Version(1, 31), &inputs(&Dns::Disabled, &extra, false));
        let file: serde_yaml::Value =
            serde_yaml::from_str(&disabled.files[KUBELET_CONFIG]).unwrap();
        assert!(file.get("clusterDNS").is_none());
        let mid = kubelet(Version(1, 14), &inputs(&dns, &extra, false));
        assert!(mid.snap_keys.contains_key("allow-privileged"));
        assert!(mid.snap_keys.contains_key("network-plugin"));
    }

    #[test]
    fn kube_proxy_in_a_container_gets_no_conntrack_limit() {
        let extra = BTreeMap::new();
        let old = kube_proxy(Version(1, 7), &inputs(&Dns::Disabled, &extra, true));
        assert_eq!(old.snap_keys["conntrack-max-per-core"], "0");
        assert_eq!(old.snap_keys["cluster-cidr"], "10.1.0.0/16");
        let new = kube_proxy(Version(1, 31), &inputs(&Dns::Disabled, &extra, true));
        let file: serde_yaml::Value = serde_yaml::from_str(&new.files[KUBE_PROXY_CONFIG]).unwrap();
        assert_eq!(file["conntrack"]["maxPerCore"], 0);
        assert_eq!(file["clusterCIDR"], "10.1.0.0/16");
        let bare = kube_proxy(Version(1, 31), &inputs(&Dns::Disabled, &extra, false));
        assert!(!bare.files[KUBE_PROXY_CONFIG].contains("conntrack"));
    }
}
