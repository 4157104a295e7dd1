//! Today's own code as the referee of the node's configuration (issue 31):
//! for the same inputs, the configuration this charm computes against the
//! one today's Python worker gets from the charms.kubernetes-snaps library
//! (run for real by tests/today/node_config.py, in the pinned virtualenv
//! `make today-venv` builds), field by field. Every difference must be one
//! docs/operators/differences.md lists as deliberate, and every one listed
//! must still show up, so the list and the code cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::daemons::{self, Inputs, Version};
use crate::relations::Dns;

/// One machine and its Juju inputs, as both sides are given them.
#[derive(Debug, Clone, Serialize)]
struct Case {
    hostname: String,
    fqdn: String,
    cloud: Option<&'static str>,
    has_xcp: bool,
    container: bool,
    resolv_stub: bool,
    runtime_endpoint: &'static str,
    dns_domain: &'static str,
    dns_ip: &'static str,
    node_ip: &'static str,
    /// The binding's other address, on a dual-stack machine: the charm
    /// is given both, the library (the binding's ingress address) one.
    other_ip: Option<&'static str>,
    /// The snaps' minor version (1.x), today's range.
    #[serde(skip)]
    minor: u32,
    registry: &'static str,
    cluster_cidr: Option<&'static str>,
    kubelet_extra_args: &'static str,
    kubelet_extra_config: &'static str,
    proxy_extra_args: &'static str,
    proxy_extra_config: &'static str,
    sysctl: &'static str,
}

const KUBELET_EXTRA_ARGS: [&str; 9] = [
    "",
    "v=2",
    "max-pods=200 v=3",
    "node-ip=10.9.9.9",
    "hostname-override=elsewhere",
    "feature-gates=GracefulNodeShutdown=true,Other=false",
    "read-only-port",
    "node-labels=\"a=b c=d\"",
    "cloud-provider=",
];

const KUBELET_EXTRA_CONFIG: [&str; 10] = [
    "{}",
    "{evictionHard: {memory.available: 200Mi}}",
    "{authentication: {anonymous: {enabled: true}}}",
    "{readOnlyPort: 10255}",
    "{clusterDNS: [10.0.0.10, 10.0.0.11]}",
    "{authentication: {webhook: {cacheTTL: 2m0s}}}",
    "{readOnlyPort: {a: 1}}",
    "{maxPods: 50, protectKernelDefaults: false}",
    "{featureGates: {GracefulNodeShutdown: true}}",
    "{resolvConf: /etc/resolv.conf}",
];

const PROXY_EXTRA_ARGS: [&str; 4] = ["", "v=4", "metrics-bind-address=0.0.0.0:10249", "v"];

const PROXY_EXTRA_CONFIG: [&str; 5] = [
    "{}",
    "{mode: ipvs}",
    "{conntrack: {maxPerCore: 5}}",
    "{clientConnection: {qps: 10}}",
    "{clusterCIDR: 10.99.0.0/16}",
];

const SYSCTL: [&str; 4] = [
    crate::config::DEFAULT_SYSCTL,
    "{kernel.panic: 10}",
    "{net.ipv4.ip_forward: '1', vm.swappiness: 0}",
    "{}",
];

/// The cases: every combination of the machine's facts (container or
/// not, resolver stub or not, cloud) and of the relation inputs, each
/// with options drawn from the lists above so that every option value
/// meets every fact.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let clouds: [(Option<&'static str>, bool); 4] = [
        (None, false),
        (Some("aws"), true),
        (Some("aws"), false),
        (Some("gce"), true),
    ];
    let mut i = 0usize;
    for container in [false, true] {
        for resolv_stub in [false, true] {
            for (cloud, has_xcp) in clouds {
                for cluster_cidr in [Some("10.1.0.0/16"), None] {
                    for _ in 0..4 {
                        // Each list walked with a stride prime to its
                        // length: every value comes up, against changing
                        // facts and other values.
                        let pick =
                            |list: &[&'static str], prime: usize| list[(i * prime) % list.len()];
                        out.push(Case {
                            hostname: format!("Worker-{i}"),
                            fqdn: format!("ip-10-0-0-{i}.EC2.internal"),
                            cloud,
                            has_xcp,
                            container,
                            resolv_stub,
                            runtime_endpoint: "unix:///var/run/containerd/containerd.sock",
                            dns_domain: ["cluster.local", "k8s.example"][i % 2],
                            dns_ip: ["10.152.183.10", "fd00::a"][(i / 2) % 2],
                            node_ip: ["10.0.0.7", "fd00::7"][(i / 3) % 2],
                            other_ip: [None, Some("fd00::7"), None][i % 3]
                                .filter(|_| (i / 3).is_multiple_of(2)),
                            minor: 29 + (i % 4) as u32,
                            registry: "rocks.canonical.com:443/cdk",
                            cluster_cidr,
                            kubelet_extra_args: pick(&KUBELET_EXTRA_ARGS, 7),
                            kubelet_extra_config: pick(&KUBELET_EXTRA_CONFIG, 3),
                            proxy_extra_args: pick(&PROXY_EXTRA_ARGS, 5),
                            proxy_extra_config: pick(&PROXY_EXTRA_CONFIG, 11),
                            sysctl: pick(&SYSCTL, 13),
                        });
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

/// What a side configured, in one shape for both.
struct Configured {
    kubelet_args: BTreeMap<String, String>,
    proxy_args: BTreeMap<String, String>,
    kubelet_config: Value,
    proxy_config: Value,
    sysctl: Option<BTreeMap<String, String>>,
    lxd_kernel_params: bool,
    sandbox_image: String,
}

/// This charm's configuration for `case`, or why it blocks.
fn charm(case: &Case) -> Result<Configured, String> {
    let options = json!({
        "kubelet-extra-args": case.kubelet_extra_args,
        "kubelet-extra-config": case.kubelet_extra_config,
        "proxy-extra-args": case.proxy_extra_args,
        "proxy-extra-config": case.proxy_extra_config,
        "sysctl": case.sysctl,
    });
    let config = Config::from_map(options.as_object().ok_or("not a map")?);
    let options = config.node.map_err(|problems| {
        problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let mapping = |text: &str| serde_yaml::from_str(text).unwrap_or_default();
    let (kubelet_extra_config, proxy_extra_config) = (
        mapping(&options.kubelet_extra_config),
        mapping(&options.proxy_extra_config),
    );
    let dns = Dns::Ready {
        ip: case.dns_ip.to_string(),
        domain: case.dns_domain.to_string(),
        port: 53,
    };
    let on_aws_with_xcp = case.cloud == Some("aws") && case.has_xcp;
    let name = crate::identity::chosen(&case.hostname, on_aws_with_xcp.then_some(&*case.fqdn));
    let node_ips: Vec<String> = std::iter::once(case.node_ip)
        .chain(case.other_ip)
        .map(str::to_string)
        .collect();
    let inputs = Inputs {
        api_url: "https://10.0.0.1:6443",
        dns: &dns,
        cluster_cidr: case.cluster_cidr,
        allow_privileged: options.allow_privileged,
        in_container: case.container,
        kubelet_extra: &options.kubelet_extra_args,
        proxy_extra: &options.proxy_extra_args,
        node_name: &name,
        node_ips: &node_ips,
        runtime_socket: Some(case.runtime_endpoint),
        external_cloud: case.has_xcp,
        resolv_conf: case.resolv_stub.then_some(daemons::RESOLVED_CONF),
        kubelet_extra_config: &kubelet_extra_config,
        proxy_extra_config: &proxy_extra_config,
    };
    let kubelet = daemons::kubelet(Version(1, case.minor), &inputs);
    let proxy = daemons::kube_proxy(Version(1, case.minor), &inputs);
    let file = |config: &daemons::DaemonConfig, path: &str| -> Value {
        config
            .files
            .get(path)
            .and_then(|text| serde_yaml::from_str(text).ok())
            .unwrap_or(Value::Null)
    };
    let sysctl = crate::node::sysctl::file_text(&options.sysctl)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Configured {
        kubelet_config: file(&kubelet, daemons::KUBELET_CONFIG),
        proxy_config: file(&proxy, daemons::KUBE_PROXY_CONFIG),
        kubelet_args: kubelet.flags,
        proxy_args: proxy.flags,
        sysctl: Some(sysctl),
        lxd_kernel_params: false,
        sandbox_image: crate::node::publish::sandbox_image(case.registry),
    })
}

/// The library, run by tests/today/node_config.py in the pinned
/// virtualenv, one process for every case.
struct Library {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Library {
    fn start() -> Library {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("KW_TODAY_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("build/today-venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: `make today-venv` installs today's charm libraries (tests/today/requirements.txt)",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(repo.join("tests/today/node_config.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("running today's library");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Library {
            child,
            input,
            output,
        }
    }

    /// One request (a line of JSON), one answer.
    fn ask(&mut self, request: &impl serde::Serialize) -> Value {
        let line = serde_json::to_string(request).expect("a request is JSON");
        writeln!(self.input, "{line}").expect("writing a request");
        let mut answer = String::new();
        self.output
            .read_line(&mut answer)
            .expect("reading an answer");
        serde_json::from_str(&answer).expect("an answer is JSON")
    }

    /// `get_bind_addresses` with `ip` printing `ip_output`.
    fn bind_addresses(&mut self, ip_output: &str) -> Vec<String> {
        let answer = self.ask(&serde_json::json!({ "ip_output": ip_output }));
        serde_json::from_value(answer["bind_addresses"].clone()).expect("a list of addresses")
    }

    fn configure(&mut self, case: &Case) -> Result<Configured, String> {
        let answer = self.ask(case);
        if let Some(error) = answer["error"].as_str() {
            return Err(error.to_string());
        }
        let flags = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Configured {
            kubelet_args: flags(&answer["kubelet_args"]),
            proxy_args: flags(&answer["proxy_args"]),
            kubelet_config: answer["kubelet_config"].clone(),
            proxy_config: answer["proxy_config"].clone(),
            sysctl: answer["sysctl"]
                .as_object()
                .map(|_| flags(&answer["sysctl"])),
            lxd_kernel_params: answer["lxd_kernel_params"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            sandbox_image: answer["sandbox_image"].as_str().unwrap_or_default().into(),
        })
    }
}

/// `ip -j -br addr show scope global`'s output for a machine made from
/// `seed`: interfaces named as on real machines (the bridges today's
/// charms skip among them), of every operstate, with addresses of both
/// families, repeated ones, and the `{}` iproute2 prints for an address
/// the scope filter left out.
fn ip_output(seed: u64) -> String {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    const NAMES: [&str; 10] = [
        "eth0",
        "ens3",
        "lxdbr0",
        "flannel.1",
        "cni0",
        "virbr0",
        "docker0",
        "br-5f2a",
        "wg0",
        "bond0",
    ];
    const STATES: [&str; 5] = ["UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", "up"];
    const ADDRESSES: [&str; 6] = [
        "10.1.0.10",
        "192.0.2.7",
        "2001:db8::7",
        "fd00::2",
        "172.18.0.1",
        "10.1.0.10",
    ];
    let links: Vec<String> = (0..next(5))
        .map(|_| {
            let addresses: Vec<String> = (0..next(4))
                .map(|_| match next(4) {
                    0 => "{}".to_string(),
                    _ => {
                        let a = ADDRESSES[next(ADDRESSES.len())];
                        format!(
                            r#"{{"local":"{a}","prefixlen":{}}}"#,
                            if a.contains(':') { 64 } else { 24 }
                        )
                    }
                })
                .collect();
            format!(
                r#"{{"ifname":"{}","operstate":"{}","addr_info":[{}]}}"#,
                NAMES[next(NAMES.len())],
                STATES[next(STATES.len())],
                addresses.join(",")
            )
        })
        .collect();
    format!("[{}]\n", links.join(","))
}

/// The machine's addresses for the serving certificate, from the same `ip`
/// output, equal to `get_bind_addresses`' once each (the certificate's
/// names are a set: the library lists an address twice where `ip` does).
#[test]
fn the_machine_s_addresses_are_read_as_todays_library_reads_them() {
    let mut library = Library::start();
    for seed in 0..300 {
        let output = ip_output(seed);
        let ours = charm::host::parse_global_addresses(output.as_bytes(), &crate::node::BRIDGES)
            .unwrap_or_else(|e| panic!("{e}: {output}"));
        let mut theirs = library.bind_addresses(&output);
        let mut seen = std::collections::BTreeSet::new();
        theirs.retain(|a| seen.insert(a.clone()));
        assert_eq!(ours, theirs, "{output}");
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the two differ, each difference by a key that names the field
/// (`kubelet-args --v`, `kubelet-config authentication.webhook.enabled`,
/// `sysctl kernel.panic`), with both values.
fn differences(charm: &Configured, library: &Configured) -> Vec<(String, String)> {
    let mut out = Vec::new();
    map_differences(
        "kubelet-args --",
        &charm.kubelet_args,
        &library.kubelet_args,
        &mut out,
    );
    map_differences(
        "proxy-args --",
        &charm.proxy_args,
        &library.proxy_args,
        &mut out,
    );
    tree_differences(
        "kubelet-config",
        "",
        &charm.kubelet_config,
        &library.kubelet_config,
        &mut out,
    );
    tree_differences(
        "proxy-config",
        "",
        &charm.proxy_config,
        &library.proxy_config,
        &mut out,
    );
    match (&charm.sysctl, &library.sysctl) {
        (Some(ours), Some(theirs)) => map_differences("sysctl ", ours, theirs, &mut out),
        (ours, theirs) if ours.is_some() != theirs.is_some() => out.push((
            "sysctl-file".into(),
            format!(
                "charm writes one: {}, library: {}",
                ours.is_some(),
                theirs.is_some()
            ),
        )),
        _ => {}
    }
    if charm.lxd_kernel_params != library.lxd_kernel_params {
        out.push((
            "lxd-kernel-params".into(),
            "the library binds fake kernel parameters".into(),
        ));
    }
    if charm.sandbox_image != library.sandbox_image {
        out.push((
            "sandbox-image".into(),
            format!(
                "charm {}, library {}",
                charm.sandbox_image, library.sandbox_image
            ),
        ));
    }
    out
}

/// The keys whose values differ between two maps, each as `{prefix}{key}`.
fn map_differences(
    prefix: &str,
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
    out: &mut Vec<(String, String)>,
) {
    let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        if ours.get(key) != theirs.get(key) {
            out.push((
                format!("{prefix}{key}"),
                format!("charm {:?}, library {:?}", ours.get(key), theirs.get(key)),
            ));
        }
    }
}

fn tree_differences(
    what: &str,
    path: &str,
    ours: &Value,
    theirs: &Value,
    out: &mut Vec<(String, String)>,
) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                tree_differences(
                    what,
                    &sub,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push((format!("{what} {path}"), format!("charm {a}, library {b}"))),
        _ => {}
    }
}

/// The deliberate differences docs/operators/differences.md lists under
/// its node-configuration heading: each bullet's first code span is a key,
/// or a key prefix ending in `*`.
fn documented() -> Vec<String> {
    let page = include_str!("../docs/operators/differences.md");
    let section = page
        .split("## The node's configuration, against charms.kubernetes-snaps")
        .nth(1)
        .expect("the node-configuration section of docs/operators/differences.md");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

#[test]
fn the_node_is_configured_as_todays_library_configures_it_but_where_documented() {
    let listed = documented();
    assert!(
        listed.len() >= 5,
        "the documented differences were not found: {listed:?}"
    );
    let mut library = Library::start();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut undocumented = Vec::new();
    let cases = cases();
    for case in &cases {
        let found = match (charm(case), library.configure(case)) {
            (Ok(ours), Ok(theirs)) => differences(&ours, &theirs),
            (Ok(_), Err(crash)) => vec![("library-fails".to_string(), crash)],
            (Err(blocked), Ok(_)) => vec![("charm-blocks".to_string(), blocked)],
            (Err(blocked), Err(crash)) => vec![(
                "both-refuse".to_string(),
                format!("charm: {blocked}; library: {crash}"),
            )],
        };
        for (key, detail) in found {
            match listed.iter().find(|p| matches(p, &key)) {
                Some(pattern) => {
                    seen.insert(pattern.clone());
                }
                None => undocumented.push(format!("{key}: {detail}\n    in {case:?}")),
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "{} differences from charms.kubernetes-snaps that docs/operators/differences.md does not list:\n{}",
        undocumented.len(),
        undocumented.join("\n")
    );
    let stale: Vec<&String> = listed.iter().filter(|p| !seen.contains(*p)).collect();
    assert!(
        stale.is_empty(),
        "docs/operators/differences.md lists differences no case shows any more: {stale:?}"
    );
    assert!(cases.len() >= 100);
    for (list, used) in [
        (
            &KUBELET_EXTRA_ARGS[..],
            cases
                .iter()
                .map(|c| c.kubelet_extra_args)
                .collect::<BTreeSet<_>>(),
        ),
        (
            &KUBELET_EXTRA_CONFIG[..],
            cases.iter().map(|c| c.kubelet_extra_config).collect(),
        ),
        (
            &PROXY_EXTRA_ARGS[..],
            cases.iter().map(|c| c.proxy_extra_args).collect(),
        ),
        (
            &PROXY_EXTRA_CONFIG[..],
            cases.iter().map(|c| c.proxy_extra_config).collect(),
        ),
        (&SYSCTL[..], cases.iter().map(|c| c.sysctl).collect()),
    ] {
        assert_eq!(used.len(), list.len(), "some of {list:?} never came up");
    }
}
