//! kubelet and kube-proxy configuration, following the installed version.
//!
//! The CDK snaps read daemon flags from snap config only at start. Up to
//! 1.15 each flag is its own option (`snap set kubelet key=value` becomes
//! `--key=value`); from 1.16 all flags are one option, `args`, which the
//! snap's wrapper reads as a bash array (see [`render_args`]). Up to 1.9
//! everything is a flag (the reference's flag set); from 1.10 the settings
//! go in a KubeletConfiguration / KubeProxyConfiguration file passed with
//! `config`, and only the flags that version still has are set.

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

/// The first release whose snaps take every flag in `args`.
pub const ARGS_SINCE: Version = Version(1, 16);

/// systemd-resolved's full resolv.conf: the stub (127.0.0.53) would make
/// CoreDNS forward to itself.
pub const RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// What the daemons are configured from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub api_url: &'a str,
    pub dns: &'a Dns,
    /// From the cni relation; `None` with `ignore-missing-cni` and no CNI.
    pub cluster_cidr: Option<&'a str>,
    pub allow_privileged: bool,
    pub in_container: bool,
    pub kubelet_extra: &'a BTreeMap<String, String>,
    pub proxy_extra: &'a BTreeMap<String, String>,
    /// The name the node registers under.
    pub node_name: &'a str,
    /// The kube-control binding's addresses (IPv4 and IPv6 alike).
    pub node_ips: &'a [String],
    /// The container runtime's socket (`unix://...`).
    pub runtime_socket: Option<&'a str>,
    /// `has-xcp`: an external cloud provider.
    pub external_cloud: bool,
    /// `resolvConf` for kubelet, when /etc/resolv.conf is resolved's stub.
    pub resolv_conf: Option<&'a str>,
    /// `kubelet-extra-config` and `proxy-extra-config`: YAML maps merged
    /// over the configuration files.
    pub kubelet_extra_config: &'a serde_yaml::Mapping,
    pub proxy_extra_config: &'a serde_yaml::Mapping,
}

/// One daemon's configuration: its snap config keys and the files it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The flags, `--` left off.
    pub flags: BTreeMap<String, String>,
    /// What goes into snap config: the flags one per key, or `args`.
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

/// The `args` string of the CDK snaps: `--key="value"`, space-separated.
/// Their wrapper runs `declare -a ARGS="($(cat <args file>))"` and then
/// `exec <daemon> "${ARGS[@]}"`: the string is parsed as a bash array
/// assignment, so inside the double quotes `\`, `"`, `$` and the backquote
/// are escaped, and every other character (spaces, `<`, `'`) is literal.
pub fn render_args(flags: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (key, value) in flags {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str("--");
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// The flags an `args` string holds, as bash reads it: what each daemon
/// receives. Only the quoting [`render_args`] produces (and plain words)
/// is understood; anything else is `None`.
pub fn parse_args(args: &str) -> Option<BTreeMap<String, String>> {
    let mut flags = BTreeMap::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(flags);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '"' => loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let next = chars.next()?;
                            if !matches!(next, '\\' | '"' | '$' | '`') {
                                word.push('\\');
                            }
                            word.push(next);
                        }
                        '$' | '`' => return None,
                        other => word.push(other),
                    }
                },
                '\'' => loop {
                    match chars.next()? {
                        '\'' => break,
                        other => word.push(other),
                    }
                },
                '\\' => word.push(chars.next()?),
                '$' | '`' => return None,
                other => word.push(other),
            }
        }
        let flag = word.strip_prefix("--")?;
        let (key, value) = flag.split_once('=').unwrap_or((flag, "true"));
        flags.insert(key.to_string(), value.to_string());
    }
}

/// Merges `extra` over `base`: maps key by key, all else replaced.
pub fn deep_merge(base: &mut serde_yaml::Value, extra: &serde_yaml::Value) {
    match (base, extra) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(e)) => {
            for (k, v) in e {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// The keys of `extra` (dotted) that would put a map where the charm's
/// file for kubelet (`kubelet_file`) or kube-proxy has a value or a list
/// (`readOnlyPort: {a: 1}`): the daemon could not read the result (and
/// today's library crashes on it).
pub fn maps_over_values(kubelet_file: bool, extra: &serde_yaml::Mapping) -> Vec<String> {
    let empty = serde_yaml::Mapping::new();
    let no_flags = BTreeMap::new();
    let dns = Dns::Ready {
        ip: "10.152.183.10".into(),
        domain: "cluster.local".into(),
        port: 53,
    };
    let ips = ["10.0.0.1".to_string()];
    // Every optional field present: the file at its fullest.
    let inputs = Inputs {
        api_url: "",
        dns: &dns,
        cluster_cidr: Some("10.1.0.0/16"),
        allow_privileged: false,
        in_container: true,
        kubelet_extra: &no_flags,
        proxy_extra: &no_flags,
        node_name: "node",
        node_ips: &ips,
        runtime_socket: None,
        external_cloud: false,
        resolv_conf: Some(RESOLVED_CONF),
        kubelet_extra_config: &empty,
        proxy_extra_config: &empty,
    };
    let (config, path) = if kubelet_file {
        (kubelet(ARGS_SINCE, &inputs), KUBELET_CONFIG)
    } else {
        (kube_proxy(ARGS_SINCE, &inputs), KUBE_PROXY_CONFIG)
    };
    let base: serde_yaml::Value = config
        .files
        .get(path)
        .and_then(|text| serde_yaml::from_str(text).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    maps_over(&base, extra, "", &mut out);
    out
}

fn maps_over(
    base: &serde_yaml::Value,
    extra: &serde_yaml::Mapping,
    path: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in extra {
        let name = key
            .as_str()
            .map_or_else(|| format!("{key:?}"), str::to_string);
        let dotted = if path.is_empty() {
            name
        } else {
            format!("{path}.{name}")
        };
        match (base.get(key), value) {
            (Some(inner @ serde_yaml::Value::Mapping(_)), serde_yaml::Value::Mapping(more)) => {
                maps_over(inner, more, &dotted, out)
            }
            (Some(_), serde_yaml::Value::Mapping(_)) => out.push(dotted),
            _ => {}
        }
    }
}

/// A configuration file's text: the typed structure, `extra` merged over.
fn config_file<T: Serialize>(value: &T, extra: &serde_yaml::Mapping) -> String {
    let mut value = serde_yaml::to_value(value).unwrap_or_default();
    deep_merge(&mut value, &serde_yaml::Value::Mapping(extra.clone()));
    yaml(&value)
}

/// The snap config for `flags` on `version`: one key per flag, or `args`.
fn snap_keys(version: Version, flags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    if version >= ARGS_SINCE {
        [("args".to_string(), render_args(flags))].into()
    } else {
        flags.clone()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    address: &'static str,
    port: u16,
    read_only_port: u16,
    authentication: Authentication,
    authorization: Authorization,
    #[serde(rename = "clusterDNS", skip_serializing_if = "Vec::is_empty")]
    cluster_dns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_domain: Option<String>,
    tls_cert_file: &'static str,
    tls_private_key_file: &'static str,
    fail_swap_on: bool,
    protect_kernel_defaults: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolv_conf: Option<String>,
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
    #[serde(rename = "clusterCIDR", skip_serializing_if = "Option::is_none")]
    cluster_cidr: Option<String>,
    hostname_override: String,
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
    let mut flags = if version < Version(1, 10) {
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
            read_only_port: 0,
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
            // Inside a container the charm cannot set the tunables that
            // kubelet would then insist on.
            protect_kernel_defaults: !inputs.in_container,
            resolv_conf: inputs.resolv_conf.map(str::to_string),
        };
        files.insert(
            KUBELET_CONFIG,
            config_file(&config, inputs.kubelet_extra_config),
        );
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
        if version >= ARGS_SINCE {
            k.insert("hostname-override".into(), inputs.node_name.into());
            if let Some(ips) = node_ips(inputs.node_ips) {
                k.insert("node-ip".into(), ips);
            }
            if let Some(socket) = inputs.runtime_socket {
                k.insert("container-runtime-endpoint".into(), socket.into());
                if version < Version(1, 24) {
                    k.insert("container-runtime".into(), "remote".into());
                }
            }
            if inputs.external_cloud {
                k.insert("cloud-provider".into(), "external".into());
            }
        }
        k
    };
    flags.extend(inputs.kubelet_extra.clone());
    DaemonConfig {
        snap_keys: snap_keys(version, &flags),
        flags,
        files,
        notes,
    }
}

/// `--node-ip`: the first IPv4 and the first IPv6 address (kubelet takes
/// one of each for a dual-stack node); names are left out.
fn node_ips(addresses: &[String]) -> Option<String> {
    let ips: Vec<std::net::IpAddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    let v4 = ips.iter().find(|ip| ip.is_ipv4());
    let v6 = ips.iter().find(|ip| ip.is_ipv6());
    let chosen: Vec<String> = v4.into_iter().chain(v6).map(|ip| ip.to_string()).collect();
    (!chosen.is_empty()).then(|| chosen.join(","))
}

pub fn kube_proxy(version: Version, inputs: &Inputs) -> DaemonConfig {
    let mut files = BTreeMap::new();
    let mut flags = if version < Version(1, 10) {
        let mut k = keys(&[
            ("cluster-cidr", inputs.cluster_cidr.unwrap_or_default()),
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
            cluster_cidr: inputs.cluster_cidr.map(str::to_string),
            hostname_override: inputs.node_name.to_string(),
            conntrack: inputs.in_container.then_some(Conntrack { max_per_core: 0 }),
        };
        files.insert(
            KUBE_PROXY_CONFIG,
            config_file(&config, inputs.proxy_extra_config),
        );
        let mut k = keys(&[("config", KUBE_PROXY_CONFIG), ("v", "0")]);
        // Today's snaps take the server from the kubeconfig.
        if version < ARGS_SINCE {
            k.insert("master".into(), inputs.api_url.into());
        }
        if version < Version(1, 26) {
            k.insert("logtostderr".into(), "true".into());
        }
        k
    };
    flags.extend(inputs.proxy_extra.clone());
    DaemonConfig {
        snap_keys: snap_keys(version, &flags),
        flags,
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
        static EMPTY: std::sync::OnceLock<serde_yaml::Mapping> = std::sync::OnceLock::new();
        static IPS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(serde_yaml::Mapping::new);
        Inputs {
            api_url: "https://10.0.0.5:6443",
            dns,
            cluster_cidr: Some("10.1.0.0/16"),
            allow_privileged: true,
            in_container: container,
            kubelet_extra: extra,
            proxy_extra: extra,
            node_name: "w0",
            node_ips: IPS
                .get_or_init(|| vec!["10.0.0.7".into(), "host.example".into(), "fd00::7".into()]),
            runtime_socket: Some("unix:///var/run/containerd/containerd.sock"),
            external_cloud: false,
            resolv_conf: None,
            kubelet_extra_config: empty,
            proxy_extra_config: empty,
        }
    }

    #[test]
    fn args_quote_what_bash_would_expand() {
        let flags: BTreeMap<String, String> = [
            ("eviction-hard", "memory.available<650Mi"),
            ("node-labels", "a=b c=d"),
            ("x", r#"it's "quoted" $HOME `cmd` \n"#),
            ("v", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let args = render_args(&flags);
        assert_eq!(
            args,
            r#"--eviction-hard="memory.available<650Mi" --node-labels="a=b c=d" --v="0" --x="it's \"quoted\" \$HOME \`cmd\` \\n""#
        );
        assert_eq!(parse_args(&args).unwrap(), flags);
        assert_eq!(
            parse_args("--a=1 --b 'c d'"),
            None,
            "not a --key=value word"
        );
        assert_eq!(parse_args("--a=$x"), None);
        assert_eq!(parse_args("").unwrap(), BTreeMap::new());
    }

    #[test]
    fn args_mean_to_bash_what_they_say() {
        // What the CDK snaps' wrapper does with the string.
        let flags: BTreeMap<String, String> = [
            ("eviction-hard", "memory.available<650Mi"),
            ("labels", "a=b c=d"),
            ("odd", r#"it's "q" $HOME `x` \ end"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let argv = juju_sim::fixtures::bash_argv(&render_args(&flags));
        let expected: Vec<String> = flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
        assert_eq!(argv, expected);
    }

    #[test]
    fn deep_merge_keeps_what_extra_does_not_name() {
        let mut base: serde_yaml::Value =
            serde_yaml::from_str("a: {b: 1, c: 2}\nl: [1]\nk: x").unwrap();
        let extra: serde_yaml::Value = serde_yaml::from_str("a: {c: 3, d: 4}\nl: [2]").unwrap();
        deep_merge(&mut base, &extra);
        let want: serde_yaml::Value =
            serde_yaml::from_str("a: {b: 1, c: 3, d: 4}\nl: [2]\nk: x").unwrap();
        assert_eq!(base, want);
    }

    #[test]
    fn today_kubelet_takes_every_flag_in_args() {
        let dns = Dns::Disabled;
        let extra: BTreeMap<String, String> = [("max-pods".to_string(), "50".to_string())].into();
        let mut i = inputs(&dns, &extra, false);
        i.external_cloud = true;
        i.resolv_conf = Some(RESOLVED_CONF);
        let config: serde_yaml::Mapping =
            serde_yaml::from_str("evictionHard: {memory.available: 650Mi}\nreadOnlyPort: 10255")
                .unwrap();
        i.kubelet_extra_config = &config;
        let c = kubelet(Version(1, 31), &i);
        assert_eq!(c.snap_keys.keys().collect::<Vec<_>>(), vec!["args"]);
        let flags = parse_args(&c.snap_keys["args"]).unwrap();
        assert_eq!(flags, c.flags);
        let want: BTreeMap<String, String> = [
            ("cloud-provider", "external"),
            ("config", KUBELET_CONFIG),
            (
                "container-runtime-endpoint",
                "unix:///var/run/containerd/containerd.sock",
            ),
            ("hostname-override", "w0"),
            ("kubeconfig", KUBELET_KUBECONFIG),
            ("max-pods", "50"),
            ("node-ip", "10.0.0.7,fd00::7"),
            ("v", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(flags, want);
        let file: serde_yaml::Value = serde_yaml::from_str(&c.files[KUBELET_CONFIG]).unwrap();
        assert_eq!(file["readOnlyPort"], 10255, "extra config wins");
        assert_eq!(file["evictionHard"]["memory.available"], "650Mi");
        assert_eq!(file["protectKernelDefaults"], true);
        assert_eq!(file["resolvConf"], RESOLVED_CONF);
        assert_eq!(file["authentication"]["anonymous"]["enabled"], false);
        let in_lxd = kubelet(Version(1, 31), &inputs(&dns, &extra, true));
        let file: serde_yaml::Value = serde_yaml::from_str(&in_lxd.files[KUBELET_CONFIG]).unwrap();
        assert_eq!(file["protectKernelDefaults"], false);
        assert_eq!(file["readOnlyPort"], 0);
        assert!(file.get("resolvConf").is_none());
        // 1.16 to 1.23 still name the remote runtime and the CNI plugin.
        let mid = kubelet(Version(1, 20), &inputs(&dns, &extra, false));
        assert_eq!(mid.flags["container-runtime"], "remote");
        assert_eq!(mid.flags["network-plugin"], "cni");
        // 1.15 and earlier: one snap option per flag, no new flags.
        let old = kubelet(Version(1, 15), &inputs(&dns, &extra, false));
        assert!(!old.snap_keys.contains_key("args"));
        assert!(!old.snap_keys.contains_key("node-ip"));
        assert_eq!(old.snap_keys["config"], KUBELET_CONFIG);
    }

    #[test]
    fn today_kube_proxy() {
        let extra = BTreeMap::new();
        let mut i = inputs(&Dns::Disabled, &extra, false);
        let config: serde_yaml::Mapping = serde_yaml::from_str("mode: ipvs").unwrap();
        i.proxy_extra_config = &config;
        let c = kube_proxy(Version(1, 31), &i);
        assert_eq!(
            parse_args(&c.snap_keys["args"]).unwrap(),
            [("config", KUBE_PROXY_CONFIG), ("v", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        let file: serde_yaml::Value = serde_yaml::from_str(&c.files[KUBE_PROXY_CONFIG]).unwrap();
        assert_eq!(file["hostnameOverride"], "w0");
        assert_eq!(file["mode"], "ipvs");
        assert_eq!(file["clusterCIDR"], "10.1.0.0/16");
        i.cluster_cidr = None;
        let c = kube_proxy(Version(1, 31), &i);
        assert!(!c.files[KUBE_PROXY_CONFIG].contains("clusterCIDR"));
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
            c.flags.keys().cloned().collect::<Vec<_>>(),
            vec![
                "config",
                "container-runtime-endpoint",
                "hostname-override",
                "kubeconfig",
                "node-ip",
                "v"
            ]
        );
        assert_eq!(c.flags["v"], "3", "extra args win");
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
