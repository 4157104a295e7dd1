//! Issue 12: switching a running node from the Python charm to this one
//! (`juju refresh --switch`), and a unit of this charm whose records were
//! lost: the charm adopts what the machine holds and changes only what
//! differs. Through the real binary in the simulated unit.
//!
//! The Python charm is a stand-in here (its metadata, its config, a hook
//! that does nothing) so that Juju's side (relations, secrets, config) is
//! built as the agent builds it; the machine is laid out as that charm's
//! code leaves it (charm-lib-kubernetes-snaps for today's ops charm, the
//! 2017 reactive charm's per-flag options), through the simulated snapd
//! and systemd.

mod common;

use serde_json::json;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::cluster::{self, Cluster, Master, CIDR, CONTAINERD_SOCKET, DNS_IP};
use common::read;
use juju_sim::machine::MachineCall;
use juju_sim::{CharmSource, Mark, Sim, SimOptions};

const SNAPS: [&str; 3] = ["kubectl", "kubelet", "kube-proxy"];

/// The ops charm's config options that matter here (charmcraft.yaml of
/// charm-kubernetes-worker): no require-manual-upgrade.
const OPS_CONFIG: &str = "options:
  channel: {type: string, default: latest/edge}
  ignore-missing-cni: {type: boolean, default: false}
  ingress: {type: boolean, default: true}
  kubelet-extra-args: {type: string, default: ''}
  proxy-extra-args: {type: string, default: ''}
  labels: {type: string, default: ''}
";

/// The 2017 reactive charm's options.
const REACTIVE_CONFIG: &str = "options:
  channel: {type: string, default: 1.7/stable}
  require-manual-upgrade: {type: boolean, default: true}
  allow-privileged: {type: string, default: auto}
  ingress: {type: boolean, default: true}
  labels: {type: string, default: ''}
  kubelet-extra-args: {type: string, default: ''}
  proxy-extra-args: {type: string, default: ''}
";

/// The Python charm, as far as Juju sees it: this charm's name and
/// endpoints, its own options, hooks that change nothing.
struct Predecessor {
    sim: Sim,
    scratch: tempfile::TempDir,
    _src: tempfile::TempDir,
}

fn predecessor(config: &str) -> Predecessor {
    let src = tempfile::tempdir().unwrap();
    let repo = common::repo();
    std::fs::copy(repo.join("metadata.yaml"), src.path().join("metadata.yaml")).unwrap();
    std::fs::write(src.path().join("config.yaml"), config).unwrap();
    let dispatch = src.path().join("dispatch");
    std::fs::write(&dispatch, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        &dispatch,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let arch = common::arch();
    let sim = Sim::new(
        &CharmSource::Tree {
            dir: src.path().to_path_buf(),
            binaries: vec![],
        },
        SimOptions {
            arch: arch.to_string(),
            root_var: Some(common::ROOT_VAR.into()),
            machine: (arch != juju_sim::host_arch())
                .then(|| juju_sim::kernel_machine(arch).to_string()),
            ..SimOptions::default()
        },
    );
    sim.edit_machine(|m| m.store = juju_sim::fixtures::kubernetes_store());
    Predecessor {
        sim,
        scratch: tempfile::tempdir().unwrap(),
        _src: src,
    }
}

fn run(sim: &Sim, program: &str, args: &[&str]) {
    let (code, out, err) = sim.machine_run(program, args);
    assert_eq!(code, 0, "{program} {args:?}: {out}{err}");
}

fn write(sim: &Sim, path: &str, content: &str, mode: u32) {
    let full = sim.root().join(path.trim_start_matches('/'));
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, content).unwrap();
    std::fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A kubeconfig as charm-lib-kubernetes-snaps writes it (`yaml.safe_dump`
/// of its dict: keys sorted, block style). The 2017 charm's, made with
/// `kubectl config`, has the same keys.
fn python_kubeconfig(server: &str, ca: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: juju-cluster\ncontexts:\n- context:\n    cluster: juju-cluster\n    user: {user}\n  name: juju-context\ncurrent-context: juju-context\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    token: {token}\n"
    )
}

/// What the certificates relation gave, written as both Python charms
/// wrote it to /root/cdk.
fn write_certs(sim: &Sim, c: &Cluster) {
    let cert_name = sim.unit().unit.replace('/', "_");
    let data: BTreeMap<String, String> = c.cert_data(&cert_name).into_iter().collect();
    for (key, path, mode) in [
        ("ca".to_string(), "/root/cdk/ca.crt", 0o644),
        (
            format!("{cert_name}.server.cert"),
            "/root/cdk/server.crt",
            0o644,
        ),
        (
            format!("{cert_name}.server.key"),
            "/root/cdk/server.key",
            0o600,
        ),
        ("client.cert".to_string(), "/root/cdk/client.crt", 0o644),
        ("client.key".to_string(), "/root/cdk/client.key", 0o600),
    ] {
        write(sim, path, &data[&key], mode);
    }
}

/// The certificates and the three kubeconfigs, as both Python charms
/// left them.
fn write_credentials(sim: &Sim, c: &Cluster) {
    write_certs(sim, c);
    let ca = read(sim, "/root/cdk/ca.crt");
    for (path, user, token) in [
        ("/root/cdk/kubeconfig", "kubelet", &c.kubelet_token),
        ("/root/cdk/kubeproxyconfig", "kube-proxy", &c.proxy_token),
        ("/root/.kube/config", "root", &c.client_token),
    ] {
        write(
            sim,
            path,
            &python_kubeconfig(&c.api.url, &ca, user, token),
            0o600,
        );
    }
}

/// The Python charm's relation data in this unit's bags.
fn publish(sim: &Sim, id: u32, data: &[(&str, &str)]) {
    sim.edit_unit(|u| {
        let rel = u.relation_mut(id).unwrap();
        for (k, v) in data {
            rel.local_unit.insert(k.to_string(), v.to_string());
        }
    });
}

fn untar_plugins(sim: &Sim, tarball: &Path) {
    let bin = sim.root().join("opt/cni/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&bin)
        .arg("--no-same-owner")
        .status()
        .unwrap();
    assert!(status.success());
    // flannel's own binary, placed by the subordinate.
    std::fs::write(bin.join("flannel"), b"the flannel subordinate's").unwrap();
}

/// A node as today's ops charm leaves it after a full deployment next to
/// today's control plane, containerd, flannel and easyrsa, on `channel`.
fn ops_node(channel: &str) -> (Predecessor, Cluster, cluster::Relations) {
    let c = Cluster::new();
    let (p, rels) = ops_node_of(&c, channel);
    (p, c, rels)
}

/// [`ops_node`] in cluster `c`.
fn ops_node_of(c: &Cluster, channel: &str) -> (Predecessor, cluster::Relations) {
    let p = predecessor(OPS_CONFIG);
    let sim = &p.sim;
    sim.set_config("channel", channel);
    // kubernetes_snaps.install(): snap install <name> --channel <c> --classic
    for snap in SNAPS {
        run(
            sim,
            "snap",
            &["install", snap, "--channel", channel, "--classic"],
        );
    }
    let cni = common::cni_tgz(p.scratch.path(), common::arch(), None);
    untar_plugins(sim, &cni);
    let rels = c.relate(sim, Master::Today);
    let unit = sim.unit();
    let node_ip = unit.private_address.clone();
    publish(
        sim,
        rels.control,
        &[
            ("kubelet_user", &format!("system:node:{}", c.node)),
            ("auth_group", "system:nodes"),
            ("schema_vers", "[0, 1]"),
        ],
    );
    publish(
        sim,
        rels.certs,
        &[
            ("unit_name", "kubernetes-worker_0"),
            (
                "cert_requests",
                &format!(
                    r#"{{"{}": {{"sans": ["{node_ip}"]}}}}"#,
                    unit.public_address
                ),
            ),
            (
                "client_cert_requests",
                r#"{"system:kubelet": {"sans": []}}"#,
            ),
        ],
    );
    publish(
        sim,
        rels.cni,
        &[
            ("image-registry", cluster::REGISTRY),
            ("kubeconfig-hash", "0"),
        ],
    );
    if let Some(id) = rels.runtime {
        publish(
            sim,
            id,
            &[("sandbox_image", &format!("{}/pause:3.9", cluster::REGISTRY))],
        );
    }
    write_credentials(sim, c);
    // configure_kubelet() / configure_kube_proxy(): yaml.dump after a
    // comment line; the flags in its own order, '--%s="%s"'.
    write(
        sim,
        "/root/cdk/kubelet/config.yaml",
        &format!(
            "# Generated by charm, do not edit\naddress: 0.0.0.0\napiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  x509:\n    clientCAFile: /root/cdk/ca.crt\nauthorization:\n  mode: Webhook\nclusterDNS:\n- {DNS_IP}\nclusterDomain: cluster.local\nfailSwapOn: false\nkind: KubeletConfiguration\nport: 10250\nprotectKernelDefaults: true\nreadOnlyPort: 0\ntlsCertFile: /root/cdk/server.crt\ntlsPrivateKeyFile: /root/cdk/server.key\n"
        ),
        0o644,
    );
    write(
        sim,
        "/root/cdk/kubeproxy/config.yaml",
        &format!(
            "# Generated by kubernetes-common library, do not edit\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection:\n  kubeconfig: /root/cdk/kubeproxyconfig\nclusterCIDR: {CIDR}\nhostnameOverride: {}\nkind: KubeProxyConfiguration\n",
            c.node
        ),
        0o644,
    );
    let kubelet_args = format!(
        "--kubeconfig=\"/root/cdk/kubeconfig\" --v=\"0\" --node-ip=\"{node_ip}\" --container-runtime-endpoint=\"{CONTAINERD_SOCKET}\" --hostname-override=\"{}\" --config=\"/root/cdk/kubelet/config.yaml\"",
        c.node
    );
    run(
        sim,
        "snap",
        &["set", "kubelet", &format!("args={kubelet_args}")],
    );
    run(sim, "systemctl", &["restart", "snap.kubelet.daemon"]);
    let proxy_args = "--config=\"/root/cdk/kubeproxy/config.yaml\" --v=\"0\"";
    run(
        sim,
        "snap",
        &["set", "kube-proxy", &format!("args={proxy_args}")],
    );
    run(sim, "systemctl", &["restart", "snap.kube-proxy.daemon"]);
    (p, rels)
}

const APP: &str = "kubernetes-worker";

fn ingress_daemonset_path() -> String {
    format!(
        "/apis/apps/v1/namespaces/ingress-nginx-{APP}/daemonsets/nginx-ingress-controller-{APP}"
    )
}

/// The ingress objects the ops charm's leader made with `kubectl apply`
/// (client-side) from its templates/ingress-daemon-set.yaml, as rendered
/// for `nginx-image=auto` with its v1.11.5: the container is named
/// `nginx-ingress-controller<application>`, no dash.
fn python_ingress(c: &Cluster) {
    let ns = format!("ingress-nginx-{APP}");
    let part = json!({"app.kubernetes.io/name": ns, "app.kubernetes.io/part-of": ns});
    let mut labels = part.clone();
    labels[format!("cdk-{APP}-ingress")] = json!("true");
    let objects = [
        (
            format!("/api/v1/namespaces/{ns}"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {format!("cdk-{APP}-ingress"): "true"}}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/configmaps/nginx-configuration"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "nginx-configuration", "namespace": ns, "labels": labels},
                   "data": {"use-forwarded-headers": "false", "proxy-real-ip-cidr": "0.0.0.0/0"}}),
        ),
        (
            format!("/api/v1/namespaces/{ns}/serviceaccounts/nginx-ingress-serviceaccount-{APP}"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": format!("nginx-ingress-serviceaccount-{APP}"),
                                "namespace": ns, "labels": labels}}),
        ),
        (
            ingress_daemonset_path(),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": format!("nginx-ingress-controller-{APP}"), "namespace": ns,
                    "labels": {"app.kubernetes.io/name": ns, "app.kubernetes.io/part-of": ns,
                               "juju-application": format!("nginx-ingress-{APP}"),
                               format!("cdk-{APP}-ingress"): "true",
                               "cdk-restart-on-ca-change": "true"}},
                "spec": {"selector": {"matchLabels": part},
                    "template": {"metadata": {"labels": part,
                            "annotations": {"prometheus.io/port": "10254", "prometheus.io/scrape": "true"}},
                        "spec": {"serviceAccountName": format!("nginx-ingress-serviceaccount-{APP}"),
                            "nodeSelector": {"juju-application": APP},
                            "terminationGracePeriodSeconds": 60, "hostNetwork": true,
                            "containers": [{
                                "name": format!("nginx-ingress-controller{APP}"),
                                "image": format!("{}/ingress-nginx/controller:v1.11.5", cluster::REGISTRY),
                                "args": ["/nginx-ingress-controller",
                                         "--configmap=$(POD_NAMESPACE)/nginx-configuration",
                                         "--tcp-services-configmap=$(POD_NAMESPACE)/tcp-services",
                                         "--udp-services-configmap=$(POD_NAMESPACE)/udp-services",
                                         "--annotations-prefix=nginx.ingress.kubernetes.io",
                                         "--enable-ssl-chain-completion=False",
                                         "--enable-ssl-passthrough=False"],
                                "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                                    "runAsUser": 101},
                                "env": [
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                                "ports": [{"name": "http", "containerPort": 80},
                                          {"name": "https", "containerPort": 443}],
                                "livenessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                                                  "initialDelaySeconds": 10, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                                "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                                                   "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}}]}}}}),
        ),
        (
            "/apis/networking.k8s.io/v1/ingressclasses/nginx-ingress-controller".to_string(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                   "metadata": {"name": "nginx-ingress-controller", "labels": labels,
                                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                   "spec": {"controller": "k8s.io/ingress-nginx"}}),
        ),
    ];
    for (path, object) in objects {
        c.api.client_side_apply(&path, &object);
    }
}

/// The 2017 reactive charm's node: 1.7 snaps with one snap option per
/// flag, next to a December 2017 master.
fn reactive_node() -> (Predecessor, Cluster, cluster::Relations) {
    let p = predecessor(REACTIVE_CONFIG);
    let sim = &p.sim;
    // Set by the bundle (the canonical-kubernetes bundle of 2017 did): an
    // option left at the old charm's default would take this charm's.
    sim.set_config("channel", "1.7/stable");
    for snap in SNAPS {
        run(
            sim,
            "snap",
            &["install", snap, "--channel=1.7/stable", "--classic"],
        );
    }
    let cni = common::cni_tgz(p.scratch.path(), common::arch(), None);
    untar_plugins(sim, &cni);
    let c = Cluster::new();
    let rels = c.relate(sim, Master::Dec2017);
    publish(
        sim,
        rels.control,
        &[
            ("kubelet_user", &format!("system:node:{}", c.node)),
            ("auth_group", "system:nodes"),
        ],
    );
    publish(
        sim,
        rels.cni,
        &[
            ("is_master", "False"),
            ("kubeconfig_path", "/root/cdk/kubeconfig"),
        ],
    );
    write_credentials(sim, &c);
    let kubelet = [
        "kubeconfig=/root/cdk/kubeconfig",
        "network-plugin=cni",
        "v=0",
        "address=0.0.0.0",
        "port=10250",
        &format!("cluster-dns={DNS_IP}"),
        "cluster-domain=cluster.local",
        "anonymous-auth=false",
        "client-ca-file=/root/cdk/ca.crt",
        "tls-cert-file=/root/cdk/server.crt",
        "tls-private-key-file=/root/cdk/server.key",
        "logtostderr=true",
        "allow-privileged=false",
        "fail-swap-on=false",
        "require-kubeconfig=true",
    ]
    .map(String::from);
    let mut args = vec!["set", "kubelet"];
    args.extend(kubelet.iter().map(String::as_str));
    run(sim, "snap", &args);
    run(sim, "systemctl", &["restart", "snap.kubelet.daemon"]);
    let master = format!("master={}", c.api.url);
    let cidr = format!("cluster-cidr={CIDR}");
    run(
        sim,
        "snap",
        &[
            "set",
            "kube-proxy",
            &cidr,
            "kubeconfig=/root/cdk/kubeproxyconfig",
            "logtostderr=true",
            "v=0",
            &master,
        ],
    );
    run(sim, "systemctl", &["restart", "snap.kube-proxy.daemon"]);
    // charms.reactive's own record, which this charm ignores.
    std::fs::write(sim.charm_dir().join(".unit-state.db"), b"SQLite format 3\0").unwrap();
    (p, c, rels)
}

fn starts(sim: &Sim) -> BTreeMap<String, u32> {
    sim.machine()
        .services
        .iter()
        .map(|(name, s)| (name.clone(), s.starts))
        .collect()
}

/// Calls that would change a snap's revision, or restart or stop a daemon.
fn disruptive(calls: &[MachineCall]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            let verb = c.args.first().map(String::as_str);
            match c.program.as_str() {
                "snap" => {
                    matches!(verb, Some("install" | "remove"))
                        || verb == Some("refresh") && !c.args.iter().any(|a| a == "--hold")
                }
                "systemctl" => matches!(verb, Some("restart" | "stop" | "disable")),
                _ => false,
            }
        })
        .map(|c| format!("{} {}", c.program, c.args.join(" ")))
        .collect()
}

fn logs_since(sim: &Sim, from: usize) -> Vec<String> {
    sim.unit().logs[from..]
        .iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect()
}

/// Switches to this charm and runs what Juju runs after a refresh.
fn switch(p: &mut Predecessor) -> (Mark, usize) {
    let sim = &mut p.sim;
    // The operator attaches this charm's resources with the refresh.
    sim.attach_file(
        &format!("cni-{}", common::arch()),
        &common::cni_tgz(p.scratch.path(), common::arch(), None),
    );
    for snap in SNAPS {
        sim.attach(snap, b"");
    }
    let mark = sim.mark();
    let logs = sim.unit().logs.len();
    sim.switch_charm(&common::charm());
    sim.hook("upgrade-charm").assert_ok();
    sim.hook("config-changed").assert_ok();
    (mark, logs)
}

fn plugins_owned(sim: &Sim) -> Vec<String> {
    let journal: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sim.charm_dir().join(".kubernetes-worker-journal.json")).unwrap(),
    )
    .unwrap();
    journal["cni"]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_node_the_ops_charm_runs_is_taken_over_without_a_restart() {
    let (mut p, c, rels) = ops_node("1.31/stable");
    python_ingress(&c);
    let before = starts(&p.sim);
    let flannel = p.sim.root().join("opt/cni/bin/flannel");
    let (mark, logs) = switch(&mut p);
    let sim = &p.sim;
    let calls = sim.machine_calls_since(mark);
    let log = logs_since(sim, logs);
    assert_eq!(disruptive(&calls), Vec::<String>::new(), "{log:#?}");
    assert_eq!(starts(sim), before, "no daemon restarted");
    common::assert_active(sim);
    for snap in SNAPS {
        let line = format!("INFO adopted {snap} 1.31.2 from 1.31/stable");
        assert!(log.contains(&line), "{line} not in {log:#?}");
    }
    let plugins = plugins_owned(sim);
    assert!(
        log.contains(&format!("INFO adopted {} CNI plugins", plugins.len())),
        "{log:#?}"
    );
    assert!(plugins.contains(&"bridge".to_string()));
    assert!(!plugins.contains(&"flannel".to_string()));
    assert_eq!(
        std::fs::read(&flannel).unwrap(),
        b"the flannel subordinate's"
    );
    // snapd's automatic refreshes are held from now on: the gate holds.
    assert!(sim.machine().snaps.values().all(|s| s.held));

    // Its own keys published again; the ops charm's others left alone.
    let unit = sim.unit();
    let bag = |id: u32| {
        unit.relations
            .iter()
            .find(|r| r.id == id)
            .unwrap()
            .local_unit
            .clone()
    };
    assert_eq!(bag(rels.control)["schema_vers"], "[0, 1]");
    assert_eq!(
        bag(rels.control)["kubelet_user"],
        format!("system:node:{}", c.node)
    );
    assert!(bag(rels.certs).contains_key("cert_requests"));
    assert_ne!(bag(rels.cni)["kubeconfig-hash"], "0", "the real hash now");

    // The ingress controller: one container (the ops charm's, taken over),
    // running this charm's image; the ops charm's manager keeps only what
    // this charm does not set.
    let ds = c.api.objects()[&ingress_daemonset_path()].clone();
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(containers.len(), 1, "{containers:#?}");
    assert_eq!(
        containers[0]["image"],
        format!("{}/ingress-nginx/controller:v1.14.4", cluster::REGISTRY)
    );
    assert_eq!(
        containers[0]["ports"].as_array().unwrap().len(),
        2,
        "{:#?}",
        containers[0]["ports"]
    );
    let managers: Vec<String> = ds["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        managers.contains(&"kubernetes-worker Apply".to_string()),
        "{managers:?}"
    );

    // And from here on, a hook that has nothing to do does nothing.
    let mark = sim.mark();
    sim.hook("config-changed").assert_ok();
    sim.hook("update-status").assert_ok();
    let calls = sim.machine_calls_since(mark);
    assert!(calls.iter().all(|c| !c.is_mutating()), "{:?}", calls);
}

#[test]
fn a_different_channel_waits_for_the_upgrade_action_which_then_refreshes_exactly() {
    let (mut p, c, _rels) = ops_node("1.31/stable");
    // The control plane is at 1.32 already, as the version-skew policy
    // asks before a worker goes there.
    c.api.set_version("v1.32.0");
    // The operator's channel was the ops charm's; this charm's option says
    // 1.32 (or the operator changes it with the switch).
    p.sim.set_config("channel", "1.32/stable");
    let before = starts(&p.sim);
    let (mark, _) = switch(&mut p);
    let sim = &p.sim;
    assert_eq!(
        disruptive(&sim.machine_calls_since(mark)),
        Vec::<String>::new()
    );
    assert_eq!(starts(sim), before);
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "Needs manual upgrade, run the upgrade action".into()
        ),
        "{}",
        sim.timeline()
    );
    let mark = sim.mark();
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    let refreshes: Vec<String> = disruptive(&sim.machine_calls_since(mark))
        .into_iter()
        .filter(|c| c.starts_with("snap "))
        .collect();
    assert_eq!(
        refreshes,
        SNAPS
            .iter()
            .map(|s| format!("snap refresh {s} --channel=1.32/stable --classic"))
            .collect::<Vec<_>>()
    );
    assert!(sim.machine().snaps.values().all(|s| s.version == "1.32.0"));
}

#[test]
fn a_node_the_2017_charm_runs_is_taken_over_without_a_restart() {
    let (mut p, _c, rels) = reactive_node();
    let before = starts(&p.sim);
    let (mark, logs) = switch(&mut p);
    let sim = &p.sim;
    assert_eq!(
        disruptive(&sim.machine_calls_since(mark)),
        Vec::<String>::new(),
        "{}",
        sim.timeline()
    );
    assert_eq!(starts(sim), before, "no daemon restarted");
    common::assert_active(sim);
    let log = logs_since(sim, logs);
    assert!(
        log.contains(&"INFO adopted kubelet 1.7.16 from 1.7/stable".to_string()),
        "{log:#?}"
    );
    // The 2017 CNI keys stay: still true, and old CNI charms read them.
    let unit = sim.unit();
    let cni = &unit
        .relations
        .iter()
        .find(|r| r.id == rels.cni)
        .unwrap()
        .local_unit;
    assert_eq!(cni["kubeconfig_path"], "/root/cdk/kubeconfig");
    assert!(sim.charm_dir().join(".unit-state.db").exists());
}

#[test]
fn a_flag_that_differs_in_effect_restarts_only_its_daemon() {
    let (mut p, _c, _rels) = ops_node("1.31/stable");
    // The ops charm ran kubelet at --v=2 (kubelet-extra-args), which this
    // charm's option no longer asks for.
    let sim = &p.sim;
    let args = sim.machine().snap_config["kubelet"]["args"]
        .as_str()
        .unwrap()
        .replace("--v=\"0\"", "--v=\"2\"");
    run(sim, "snap", &["set", "kubelet", &format!("args={args}")]);
    let before = starts(sim);
    let (mark, logs) = switch(&mut p);
    let sim = &p.sim;
    let restarts = disruptive(&sim.machine_calls_since(mark));
    assert_eq!(restarts, vec!["systemctl restart snap.kubelet.daemon"]);
    let after = starts(sim);
    assert_eq!(
        after["snap.kube-proxy.daemon.service"],
        before["snap.kube-proxy.daemon.service"]
    );
    let log = logs_since(sim, logs);
    assert!(
        log.iter()
            .any(|l| l.contains("kubelet: its flags differ in effect (--v changed)")),
        "{log:#?}"
    );
}

/// A unit this charm deployed, next to today's control plane.
fn deployed() -> (Sim, tempfile::TempDir, Cluster, cluster::Relations) {
    common::cluster::running(Master::Today)
}

fn assert_nothing_changed(
    sim: &Sim,
    mark: Mark,
    before: &BTreeMap<String, u32>,
    plugins: &[String],
) {
    let calls = sim.machine_calls_since(mark);
    let changes: Vec<&MachineCall> = calls
        .iter()
        .filter(|c| c.is_mutating() && c.program == "snap")
        .collect();
    assert!(changes.is_empty(), "{changes:?}\n{}", sim.timeline());
    assert_eq!(disruptive(&calls), Vec::<String>::new());
    assert_eq!(&starts(sim), before);
    assert_eq!(plugins_owned(sim), plugins);
    common::assert_active(sim);
}

#[test]
fn a_lost_or_unreadable_record_changes_nothing_on_the_machine() {
    for (file, damage) in [
        (".kubernetes-worker-journal.json", None),
        (
            ".kubernetes-worker-journal.json",
            Some(&b"{\"format\": 1, \"sna"[..]),
        ),
        (".kubernetes-worker-state.json", None),
        (".kubernetes-worker-state.json", Some(&b""[..])),
    ] {
        let (sim, _s, _c, _r) = deployed();
        let plugins = plugins_owned(&sim);
        let before = starts(&sim);
        let path = sim.charm_dir().join(file);
        match damage {
            None => std::fs::remove_file(&path).unwrap(),
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
        }
        let logs = sim.unit().logs.len();
        let mark = sim.mark();
        sim.hook("update-status").assert_ok();
        sim.hook("config-changed").assert_ok();
        assert_nothing_changed(&sim, mark, &before, &plugins);
        let log = logs_since(&sim, logs);
        if damage.is_some() {
            let aside = format!("{}.corrupt", path.display());
            assert!(Path::new(&aside).exists(), "{file} moved aside");
            assert!(
                log.iter()
                    .any(|l| l.starts_with("WARNING") && l.contains(&aside)),
                "a WARNING names {aside}: {log:#?}"
            );
        }
        if file.contains("journal") {
            let warnings = log
                .iter()
                .filter(|l| l.starts_with("WARNING") && l.contains("journal"))
                .count();
            assert_eq!(warnings, 1, "the journal's loss said once: {log:#?}");
        }
        // Converged again: the next hook writes nothing at all.
        let mark = sim.mark();
        sim.hook("config-changed").assert_ok();
        assert!(sim
            .machine_calls_since(mark)
            .iter()
            .all(|c| !c.is_mutating()));
    }
}

/// What the takeover leaves: the files under /root/cdk and /opt/cni, the
/// snaps' options and holds, the daemons (running, and whether each was
/// restarted since the Python charm left the node), the status.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    files: BTreeMap<String, Vec<u8>>,
    snap_config: String,
    held: Vec<bool>,
    restarted: BTreeMap<String, bool>,
    status: (String, String),
}

fn outcome(sim: &Sim, before: &BTreeMap<String, u32>) -> Outcome {
    let mut files = BTreeMap::new();
    for dir in ["root/cdk", "opt/cni"] {
        let base = sim.root().join(dir);
        for rel in common::tree(&base) {
            let path = base.join(&rel);
            if path.is_file() {
                files.insert(format!("{dir}/{rel}"), std::fs::read(&path).unwrap());
            }
        }
    }
    let machine = sim.machine();
    Outcome {
        files,
        snap_config: serde_json::to_string(&machine.snap_config).unwrap(),
        held: machine.snaps.values().map(|s| s.held).collect(),
        restarted: machine
            .services
            .iter()
            .map(|(name, s)| (name.clone(), s.active && s.starts > before[name]))
            .collect(),
        status: sim.status(),
    }
}

/// One hook of the recorded switch: where it started (the unit's state is
/// saved with it, the API server's here), its calls, what it left.
struct SwitchHook {
    start: juju_sim::snapshot::HookStart,
    api: cluster::ApiState,
    exit: i32,
    calls: u32,
    after: Option<Outcome>,
}

/// The switch of a node whose kubelet runs with a flag this charm does
/// not set (upgrade-charm and the config-changed after it, then the next
/// hook), each hook recorded; then every call of each hook killed, from
/// that hook's saved start, and retried as Juju retries: after the retry
/// the node must be as the unkilled hook left it.
fn every_point_of_the_switch(moment: juju_sim::kill::Moment) {
    if common::arch() != juju_sim::host_arch() {
        println!("failure injection runs with the native binary only");
        return;
    }
    let began = std::time::Instant::now();
    let c = Cluster::new();
    let (mut p, _rels) = ops_node_of(&c, "1.31/stable");
    let args = p.sim.machine().snap_config["kubelet"]["args"]
        .as_str()
        .unwrap()
        .replace("--v=\"0\"", "--v=\"2\"");
    run(&p.sim, "snap", &["set", "kubelet", &format!("args={args}")]);
    let before = starts(&p.sim);
    let snapshots = tempfile::tempdir().unwrap();
    let hooks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<SwitchHook>::new()));
    {
        let (hooks, api, before) = (hooks.clone(), c.api.clone(), before.clone());
        p.sim.record_hooks(snapshots.path(), move |sim, recorded| {
            let mut hooks = hooks.lock().unwrap();
            match recorded {
                juju_sim::snapshot::Recorded::Before(start) => hooks.push(SwitchHook {
                    start: start.clone(),
                    api: api.save(),
                    exit: -1,
                    calls: 0,
                    after: None,
                }),
                juju_sim::snapshot::Recorded::After(start, run) => {
                    let hook = &mut hooks[start.index];
                    hook.exit = run.exit;
                    hook.calls = run.calls;
                    hook.after = Some(outcome(sim, &before));
                }
            }
        });
    }
    p.sim.kill_overall(None);
    switch(&mut p);
    // Whatever hook comes next finishes what a killed one left.
    p.sim.hook("update-status").assert_ok();
    p.sim.stop_recording();
    let points = p.sim.calls_overall();
    let hooks = std::mem::take(&mut *hooks.lock().unwrap());
    let reference = outcome(&p.sim, &before);
    assert_eq!(reference.status.0, "active", "{:?}", reference.status);
    assert!(reference.restarted["snap.kubelet.daemon.service"]);
    assert!(!reference.restarted["snap.kube-proxy.daemon.service"]);
    assert_eq!(hooks.iter().map(|h| h.calls).sum::<u32>(), points);
    println!(
        "takeover: {points} external calls in {} hooks, each killed {moment:?}",
        hooks.len()
    );
    let mut diverged = Vec::new();
    for hook in &hooks {
        let expected = hook.after.as_ref().unwrap();
        for at in 0..hook.calls {
            c.api.restore(&hook.api);
            let run = p.sim.replay(&hook.start, Some((at, moment)));
            let got = outcome(&p.sim, &before);
            let name = format!("{} call {at} {moment:?}", hook.start.name);
            if !run.killed || run.exit != hook.exit {
                diverged.push(format!(
                    "{name}: killed {}, the retry exited {}",
                    run.killed, run.exit
                ));
            }
            if &got != expected {
                let differs: Vec<&String> = got
                    .files
                    .keys()
                    .chain(expected.files.keys())
                    .filter(|k| got.files.get(*k) != expected.files.get(*k))
                    .collect();
                diverged.push(format!(
                    "{name}: files {differs:?}, restarted {:?}, status {:?}, options equal {}",
                    got.restarted,
                    got.status,
                    got.snap_config == expected.snap_config
                ));
            }
        }
    }
    println!(
        "takeover: {points} kill points checked {moment:?} their call in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert!(diverged.is_empty(), "{}", diverged.join("\n"));
}

#[test]
fn a_switch_killed_before_any_call_ends_as_one_never_killed() {
    every_point_of_the_switch(juju_sim::kill::Moment::Before);
}

#[test]
fn a_switch_killed_after_any_call_ends_as_one_never_killed() {
    every_point_of_the_switch(juju_sim::kill::Moment::After);
}

#[test]
fn snaps_installed_from_attached_files_are_matched_by_their_content() {
    let (sim, scratch) = common::provisioned();
    let dir = scratch.path().join("snaps");
    std::fs::create_dir_all(&dir).unwrap();
    for snap in SNAPS {
        let mut test_snap = juju_sim::fixtures::TestSnap::daemon(snap, "1.31.9", common::arch());
        if snap == "kubectl" {
            test_snap.apps.retain(|(_, daemon)| daemon.is_none());
        }
        sim.attach_file(snap, &test_snap.build(&dir));
    }
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    c.relate(&sim, Master::Today);
    assert!(sim.machine().snaps.values().all(|s| s.revision == "x1"));
    assert_eq!(sim.status().0, "active", "{}", sim.timeline());

    // The journal is lost: the files snapd keeps are the attached ones.
    std::fs::remove_file(sim.charm_dir().join(".kubernetes-worker-journal.json")).unwrap();
    let logs = sim.unit().logs.len();
    let mark = sim.mark();
    sim.hook("config-changed").assert_ok();
    assert_eq!(
        disruptive(&sim.machine_calls_since(mark)),
        Vec::<String>::new()
    );
    let log = logs_since(&sim, logs);
    assert!(
        log.iter()
            .any(|l| l.starts_with("INFO adopted kubelet 1.31.9 from the attached resource")),
        "{log:#?}"
    );

    // Lost again, and the operator attached another kubelet meanwhile: an
    // upgrade like any other, behind the gate.
    std::fs::remove_file(sim.charm_dir().join(".kubernetes-worker-journal.json")).unwrap();
    let newer = dir.join("newer");
    std::fs::create_dir_all(&newer).unwrap();
    sim.attach_file(
        "kubelet",
        &juju_sim::fixtures::TestSnap::daemon("kubelet", "1.31.10", common::arch()).build(&newer),
    );
    let logs = sim.unit().logs.len();
    let mark = sim.mark();
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        disruptive(&sim.machine_calls_since(mark)),
        Vec::<String>::new()
    );
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "Needs manual upgrade, run the upgrade action".into()
        )
    );
    let log = logs_since(&sim, logs);
    assert!(
        log.contains(
            &"INFO adopted kubelet 1.31.9 from revision x1 found on the machine".to_string()
        ),
        "{log:#?}"
    );
    let (run, _) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(sim.machine().snaps["kubelet"].version, "1.31.10");
    assert_eq!(
        sim.machine().snaps["kubectl"].revision,
        "x1",
        "only kubelet changed"
    );
}

/// Issue 22: a node the ops charm ran on AWS, related to aws-integrator,
/// which had fulfilled that charm's request. The switch asks for nothing
/// again (not the metadata service, not the integrator) and the answer
/// stands: the unit is active at once.
#[test]
fn a_switched_unit_keeps_what_the_python_charm_requested_of_the_integrator() {
    use juju_sim::clouds::{self, Cloud, Instance, Integrator, MetadataService};
    let (mut p, c, _rels) = ops_node("1.31/stable");
    python_ingress(&c);
    clouds::provision(&p.sim, Cloud::Aws);
    let metadata = MetadataService::start(&Instance::on(Cloud::Aws));
    metadata.serve_to(&p.sim);
    let mut integrator = Integrator::relate(&p.sim, Cloud::Aws);
    // The bag the ops charm's interface library left (tests/data/cloud,
    // made by python-requests.py), for this instance and cluster.
    let fixture = std::fs::read_to_string(common::repo().join("tests/data/cloud/aws-bag.json"))
        .unwrap()
        .replace("i-0123456789abcdef0", &Instance::on(Cloud::Aws).id)
        .replace(
            "kubernetes-4ypskxahbu3rnfgsds3pksvwe3uh0lxt",
            "kubernetes-4c7bx1p2ut6bbmwbyhd2yuucf9rwwnnq",
        );
    let python: BTreeMap<String, String> = serde_json::from_str(&fixture).unwrap();
    let requested: Vec<(&str, &str)> = python
        .iter()
        .filter(|(k, _)| !k.ends_with("-address") && *k != "egress-subnets")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    publish(&p.sim, integrator.relation, &requested);
    assert!(
        integrator.handle(&p.sim),
        "the integrator fulfils the ops charm's request"
    );

    let (mark, _) = switch(&mut p);
    let sim = &p.sim;
    let sets: Vec<_> = sim
        .tool_calls_since(mark)
        .into_iter()
        .filter(|t| {
            t.tool == "relation-set" && t.args.contains(&format!("aws:{}", integrator.relation))
        })
        .collect();
    assert!(sets.is_empty(), "nothing requested again: {sets:?}");
    assert!(
        metadata.requests().is_empty(),
        "the instance is known from the bag"
    );
    assert!(!integrator.handle(sim));
    assert_eq!(integrator.fulfilled, 1);
    common::assert_active(sim);
}
