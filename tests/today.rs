//! Issue 10: joining today's Charmed Kubernetes (1.29 - 1.32): containerd
//! on container-runtime, tokens in a Juju secret, the `args` snap option,
//! node IPs, sysctl, held snaps, the charm's own labels and the node's
//! Ready condition; through the real binary in the simulated unit.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use common::cluster::{self, Cluster, Master, CIDR, CONTAINERD_SOCKET, DNS_IP, REGISTRY};
use common::{assert_active, read, starts, yaml};
use juju_sim::Sim;
use serde_json::json;

fn args(sim: &Sim, snap: &str) -> BTreeMap<String, String> {
    let config = sim.machine().snap_config[snap].clone();
    assert_eq!(
        config.keys().collect::<Vec<_>>(),
        vec!["args"],
        "{snap}: every flag in args"
    );
    common::bash_args(config["args"].as_str().unwrap())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A unit deployed next to today's control plane, containerd, flannel and
/// easyrsa, on a machine with an IPv6 address and in a zone.
fn today() -> (Sim, tempfile::TempDir, Cluster, cluster::Relations) {
    let (sim, scratch) = common::provisioned();
    sim.edit_unit(|u| {
        u.ipv6_address = Some("fd00::a".into());
        u.availability_zone = "zone-a".into();
    });
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Today);
    (sim, scratch, c, rels)
}

#[test]
fn a_node_next_to_todays_control_plane_ends_active() {
    let (sim, _s, c, rels) = today();
    assert_active(&sim);
    let unit = sim.unit();

    // kubelet and kube-proxy: every flag in `args`, as the daemons get it.
    let kubelet = args(&sim, "kubelet");
    let want: BTreeMap<String, String> = [
        ("config", "/root/cdk/kubelet/config.yaml"),
        ("container-runtime-endpoint", CONTAINERD_SOCKET),
        ("hostname-override", c.node.as_str()),
        ("kubeconfig", "/root/cdk/kubeconfig"),
        ("node-ip", &format!("{},fd00::a", unit.private_address)),
        ("v", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(kubelet, want);
    let proxy = args(&sim, "kube-proxy");
    assert_eq!(
        proxy.into_iter().collect::<Vec<_>>(),
        vec![
            ("config".into(), "/root/cdk/kubeproxy/config.yaml".into()),
            ("v".into(), "0".into())
        ]
    );

    // The configuration files.
    let config = yaml(&sim, "/root/cdk/kubelet/config.yaml");
    assert_eq!(config["readOnlyPort"], 0);
    assert_eq!(config["protectKernelDefaults"], true);
    assert_eq!(config["clusterDNS"][0], DNS_IP);
    assert_eq!(config["authorization"]["mode"], "Webhook");
    assert!(config.get("resolvConf").is_none(), "no resolved stub here");
    let proxy_config = yaml(&sim, "/root/cdk/kubeproxy/config.yaml");
    assert_eq!(proxy_config["hostnameOverride"], c.node.as_str());
    assert_eq!(proxy_config["clusterCIDR"], CIDR);

    // The tokens came from the secret, and live only in the kubeconfigs.
    for (path, token) in [
        ("/root/cdk/kubeconfig", &c.kubelet_token),
        ("/root/cdk/kubeproxyconfig", &c.proxy_token),
        ("/root/.kube/config", &c.client_token),
    ] {
        assert_eq!(
            yaml(&sim, path)["users"][0]["user"]["token"],
            token.as_str()
        );
    }
    let secret_reads: Vec<Vec<String>> = unit
        .calls
        .iter()
        .filter(|t| t.tool == "secret-get")
        .map(|t| t.args.clone())
        .collect();
    assert!(!secret_reads.is_empty());
    assert!(
        secret_reads
            .iter()
            .all(|a| a.contains(&"--refresh".to_string())
                && a.contains(rels.secret.as_ref().unwrap()))
    );
    let state =
        std::fs::read_to_string(sim.charm_dir().join(".kubernetes-worker-state.json")).unwrap();
    let logged: String = unit
        .hooks
        .iter()
        .map(|h| format!("{}{}", h.stdout, h.stderr))
        .chain(unit.logs.iter().map(|l| l.message.clone()))
        .collect();
    for token in [&c.kubelet_token, &c.proxy_token, &c.client_token] {
        assert!(!state.contains(token.as_str()), "a token in the state file");
        assert!(!logged.contains(token.as_str()), "a token in the log");
    }

    // What this unit published on each relation.
    let bag = |id: u32| unit.relation(id).unwrap().local_unit.clone();
    let control = bag(rels.control);
    assert_eq!(control["kubelet_user"], format!("system:node:{}", c.node));
    assert_eq!(control["auth_group"], "system:nodes");
    assert_eq!(control["schema_vers"], "[0, 1]");
    let cni = bag(rels.cni);
    assert_eq!(
        cni["kubeconfig-hash"],
        sha256_hex(read(&sim, "/root/.kube/config").as_bytes())
    );
    assert_eq!(cni["image-registry"], REGISTRY);
    assert_eq!(cni["is_master"], "False");
    assert_eq!(cni["kubeconfig_path"], "/root/cdk/kubeconfig");
    let runtime = bag(rels.runtime.unwrap());
    assert_eq!(runtime["sandbox_image"], format!("{REGISTRY}/pause:3.9"));

    // The node's labels.
    let labels = c.api.node(&c.node).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["juju-application"], "kubernetes-worker");
    assert_eq!(labels["juju-charm"], "kubernetes-worker");
    assert_eq!(labels["topology.kubernetes.io/zone"], "zone-a");

    // The kernel tunables, and the snaps held from automatic refreshes.
    let machine = sim.machine();
    assert_eq!(machine.sysctl["net.ipv4.conf.all.forwarding"], "1");
    assert_eq!(machine.sysctl["fs.inotify.max_user_watches"], "1048576");
    assert_eq!(machine.sysctl.len(), 14);
    let file = sim.root().join("etc/sysctl.d/50-kubernetes-charm.conf");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        assert!(machine.snaps[snap].held, "{snap} held");
    }
}

#[test]
fn a_converged_node_next_to_todays_cluster_is_left_alone() {
    let (sim, _s, c, rels) = today();
    let data = c.kube_control_data_with(Master::Today, rels.secret.as_deref());
    let refs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for run in [
        Box::new(|| sim.hook("update-status")) as Box<dyn Fn() -> juju_sim::HookRun>,
        Box::new(|| sim.hook("config-changed")),
        Box::new(|| sim.change(rels.control, "kubernetes-control-plane/0", &refs)),
        Box::new(|| {
            sim.change(
                rels.runtime.unwrap(),
                "containerd/0",
                &[("runtime", "\"remote\"")],
            )
        }),
    ] {
        run().assert_ok();
        let mark = sim.mark();
        let api_before = c.api.requests().len();
        run().assert_ok();
        let mutating: Vec<_> = sim
            .machine_calls_since(mark)
            .into_iter()
            .filter(|c| c.is_mutating())
            .collect();
        assert!(mutating.is_empty(), "{mutating:?}");
        let writes: Vec<_> = sim
            .tool_calls_since(mark)
            .into_iter()
            .filter(|t| ["relation-set", "status-set", "open-port"].contains(&t.tool.as_str()))
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
        assert!(c.api.requests()[api_before..]
            .iter()
            .all(|r| r.method == "GET"));
        assert_active(&sim);
    }
    // update-status: one look at the node, no hook tool.
    let mark = sim.mark();
    let before = c.api.requests().len();
    sim.hook("update-status").assert_ok();
    assert!(sim.tool_calls_since(mark).is_empty());
    let gets: Vec<String> = c.api.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(gets, vec![format!("GET /api/v1/nodes/{}", c.node)]);
}

#[test]
fn rotated_tokens_restart_only_the_daemons_that_use_them() {
    let (sim, _s, c, rels) = today();
    let id = rels.secret.unwrap();
    let (kubelet, proxy) = (starts(&sim, "kubelet"), starts(&sim, "kube-proxy"));
    let run = sim
        .set_secret_content(
            &id,
            &[
                ("kubelet-token", "kubelet-token-rotated"),
                ("proxy-token", &c.proxy_token),
                ("client-token", "admin-token-0123"),
            ],
        )
        .expect("the unit tracks the secret: it gets secret-changed");
    run.assert_ok();
    assert_eq!(
        yaml(&sim, "/root/cdk/kubeconfig")["users"][0]["user"]["token"],
        "kubelet-token-rotated"
    );
    assert_eq!(starts(&sim, "kubelet"), kubelet + 1);
    assert_eq!(
        starts(&sim, "kube-proxy"),
        proxy,
        "its token did not change"
    );
    let unit = sim.unit();
    let last = unit
        .calls
        .iter()
        .rev()
        .find(|t| t.tool == "secret-get")
        .unwrap();
    assert!(last.args.contains(&"--refresh".to_string()));
    assert_eq!(
        unit.secrets[&id].tracked,
        Some(2),
        "moved to the new revision"
    );
    assert_active(&sim);
    // Rotated once more, client token only: nothing restarts.
    sim.set_secret_content(
        &id,
        &[
            ("kubelet-token", "kubelet-token-rotated"),
            ("proxy-token", &c.proxy_token),
            ("client-token", "admin-token-0123-b"),
        ],
    )
    .unwrap()
    .assert_ok();
    assert_eq!(starts(&sim, "kubelet"), kubelet + 1);
    assert_eq!(starts(&sim, "kube-proxy"), proxy);
    assert_eq!(
        yaml(&sim, "/root/.kube/config")["users"][0]["user"]["token"],
        "admin-token-0123-b"
    );
}

#[test]
fn a_secret_this_unit_may_not_read_or_that_is_gone_is_waited_for() {
    let (sim, _s, c, rels) = today();
    let control_unit = "kubernetes-control-plane/0";
    // The grant is revoked: the next read says so, the node keeps running
    // on the tokens it has.
    let first = rels.secret.clone().unwrap();
    sim.revoke_secret(&first);
    sim.change(
        rels.control,
        control_unit,
        &[("cluster-tag", "kubernetes-y")],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            format!("Waiting for credentials: cannot read secret {first} (kube-control relation: secret-id from {control_unit}): permission denied")
        )
    );
    let still = sim.machine().services["snap.kubelet.daemon.service"].active;
    assert!(still, "kubelet keeps running");
    // Retried on the next hook, whatever it is.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(sim
        .tool_calls_since(mark)
        .iter()
        .any(|t| t.tool == "secret-get"));
    sim.grant_secret(&first);
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    // The control plane issues a new secret but has not granted it yet.
    let user = format!("system:node:{}", c.node);
    let new = sim.add_secret(
        "kubernetes-control-plane",
        &format!("{user}-creds"),
        &c.secret_content(),
        false,
    );
    let creds = json!({user.clone(): {"kubelet_token": "", "proxy_token": "", "client_token": "",
        "scope": "kubernetes-worker/0", "secret-id": new}})
    .to_string();
    let files_before = read(&sim, "/root/cdk/kubeconfig");
    sim.change(rels.control, control_unit, &[("creds", &creds)])
        .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            format!("Waiting for credentials: cannot read secret {new} (kube-control relation: secret-id from {control_unit}): permission denied")
        )
    );
    assert_eq!(read(&sim, "/root/cdk/kubeconfig"), files_before);
    // Granted: the next hook, whatever it is, reads it.
    sim.grant_secret(&new);
    sim.hook("update-status").assert_ok();
    assert_active(&sim);

    // The secret is removed: waiting again, then a new one.
    sim.remove_secret(&new);
    sim.change(
        rels.control,
        control_unit,
        &[("cluster-tag", "kubernetes-x")],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            format!("Waiting for credentials: cannot read secret {new} (kube-control relation: secret-id from {control_unit}): secret {new:?} not found")
        )
    );
    let third = sim.add_secret("kubernetes-control-plane", "x", &c.secret_content(), true);
    let creds = json!({user: {"kubelet_token": "", "proxy_token": "", "client_token": "",
        "secret-id": third}})
    .to_string();
    sim.change(rels.control, control_unit, &[("creds", &creds)])
        .assert_ok();
    assert_active(&sim);
}

/// A running unit on the 1.15 track (one snap option per flag), with
/// containerd related ahead of a move to a current track.
fn on_the_1_15_track(manual_upgrade: bool) -> (Sim, tempfile::TempDir, Cluster) {
    let (sim, scratch) = common::provisioned();
    sim.set_config("channel", "1.15/stable");
    sim.set_config("require-manual-upgrade", manual_upgrade);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Current);
    assert!(rels.runtime.is_none(), "1.15 has a built-in runtime");
    assert_active(&sim);
    let per_flag = sim.machine().snap_config["kubelet"].clone();
    assert!(!per_flag.contains_key("args"));
    assert_eq!(per_flag["kubeconfig"], "/root/cdk/kubeconfig");
    assert_eq!(per_flag["config"], "/root/cdk/kubelet/config.yaml");
    let runtime = sim.relate("container-runtime", "containerd");
    for run in sim.join(
        runtime,
        "containerd/0",
        &[("socket", &json!(CONTAINERD_SOCKET).to_string())],
    ) {
        run.assert_ok();
    }
    assert_active(&sim);
    (sim, scratch, c)
}

#[test]
fn a_unit_moved_from_a_1_15_track_to_1_31_gets_args() {
    let (sim, _scratch, _c) = on_the_1_15_track(false);
    let runs_before: BTreeMap<String, usize> = ["kubelet", "kube-proxy"]
        .iter()
        .map(|s| {
            let unit = format!("snap.{s}.daemon.service");
            (s.to_string(), sim.machine().services[&unit].runs.len())
        })
        .collect();
    let mark = sim.mark();
    sim.configure("channel", "1.31/stable").assert_ok();
    assert_active(&sim);
    for snap in ["kubelet", "kube-proxy"] {
        let flags = args(&sim, snap);
        assert!(flags["config"].starts_with("/root/cdk/"), "{flags:?}");
    }
    assert_eq!(
        args(&sim, "kubelet")["container-runtime-endpoint"],
        CONTAINERD_SOCKET
    );
    let calls = sim.machine_calls_since(mark);
    for snap in ["kubelet", "kube-proxy"] {
        let sets: Vec<&Vec<String>> = calls
            .iter()
            .filter(|c| c.args.first().is_some_and(|a| a == "set") && c.args[1] == snap)
            .map(|c| &c.args)
            .collect();
        assert_eq!(sets.len(), 1, "{snap}: one snap set: {sets:?}");
        assert!(
            sets[0].iter().any(|a| a == "config!") && sets[0].iter().any(|a| a == "v!"),
            "{snap}: the per-flag options unset in the same call: {sets:?}"
        );
        // Started once, by the new revision on its new options: never the
        // new binary on the 1.15 options.
        let service = &sim.machine().services[&format!("snap.{snap}.daemon.service")];
        let runs = &service.runs[runs_before[snap]..];
        assert_eq!(runs.len(), 1, "{snap} started once: {runs:?}");
        assert_eq!(runs[0].revision, sim.machine().snaps[snap].revision);
        assert!(
            runs[0].config.keys().collect::<Vec<_>>() == vec!["args"],
            "{snap} started on its final options: {:?}",
            runs[0].config
        );
        assert!(service.active && service.enabled, "{snap}");
    }
    // Converged: nothing more on the next hooks.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    sim.hook("config-changed").assert_ok();
    assert!(sim
        .machine_calls_since(mark)
        .iter()
        .all(|c| !c.is_mutating()));
}

#[test]
fn container_runtime_states() {
    let (sim, _scratch) = common::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Today);
    let runtime = rels.runtime.unwrap();
    for run in sim.unrelate(runtime) {
        run.assert_ok();
    }
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "Relate kubernetes-worker:container-runtime to a container runtime (containerd)".into()
        )
    );
    let runtime = sim.relate("container-runtime", "containerd");
    for run in sim.join(runtime, "containerd/0", &[("runtime", "\"remote\"")]) {
        run.assert_ok();
    }
    assert_eq!(
        sim.status(),
        ("waiting".into(), "Waiting for the container runtime".into())
    );
    sim.change(
        runtime,
        "containerd/0",
        &[("socket", "\"/run/containerd.sock\"")],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "container-runtime relation: socket from containerd/0 is not a unix:// or npipe:// URL: \"/run/containerd.sock\"".into()
        )
    );
    sim.change(
        runtime,
        "containerd/0",
        &[("socket", "\"unix:///run/k3s/containerd.sock\"")],
    )
    .assert_ok();
    assert_active(&sim);
    assert_eq!(
        args(&sim, "kubelet")["container-runtime-endpoint"],
        "unix:///run/k3s/containerd.sock"
    );
}

#[test]
fn without_a_cni_relation_when_told_to_ignore_it() {
    let (sim, _scratch) = common::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Today);
    for run in sim.unrelate(rels.cni) {
        run.assert_ok();
    }
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "Relate kubernetes-worker:cni to a CNI subordinate (flannel, calico)".into()
        )
    );
    sim.configure("ignore-missing-cni", true).assert_ok();
    assert_active(&sim);
    let proxy_config = yaml(&sim, "/root/cdk/kubeproxy/config.yaml");
    assert!(proxy_config.get("clusterCIDR").is_none());
}

#[test]
fn an_external_cloud_provider_and_extra_config() {
    let (sim, _s, _c, rels) = today();
    let (kubelet, proxy) = (starts(&sim, "kubelet"), starts(&sim, "kube-proxy"));
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("has-xcp", "true")],
    )
    .assert_ok();
    assert_eq!(args(&sim, "kubelet")["cloud-provider"], "external");
    assert_eq!(starts(&sim, "kubelet"), kubelet + 1);
    sim.configure(
        "kubelet-extra-config",
        "{evictionHard: {memory.available: 650Mi}, readOnlyPort: 10255}",
    )
    .assert_ok();
    let config = yaml(&sim, "/root/cdk/kubelet/config.yaml");
    assert_eq!(config["evictionHard"]["memory.available"], "650Mi");
    assert_eq!(config["readOnlyPort"], 10255);
    assert_eq!(config["authentication"]["webhook"]["enabled"], true);
    assert_eq!(starts(&sim, "kube-proxy"), proxy);
    sim.configure("kubelet-extra-args", "eviction-hard=memory.available<650Mi")
        .assert_ok();
    assert_eq!(
        args(&sim, "kubelet")["eviction-hard"],
        "memory.available<650Mi",
        "reaches the daemon unchanged"
    );
    sim.configure("proxy-extra-config", "[not, a, map]")
        .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "proxy-extra-config must be a YAML map, not a list".into()
        )
    );
    sim.configure("proxy-extra-config", "{mode: ipvs}")
        .assert_ok();
    assert_active(&sim);
    assert_eq!(
        yaml(&sim, "/root/cdk/kubeproxy/config.yaml")["mode"],
        "ipvs"
    );
    assert_eq!(starts(&sim, "kube-proxy"), proxy + 1);
}

#[test]
fn resolv_conf_skips_the_resolved_stub() {
    let (sim, _scratch, _c) = common::active_today_with(&[(
        "/etc/resolv.conf",
        "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\n",
    )]);
    assert_eq!(
        yaml(&sim, "/root/cdk/kubelet/config.yaml")["resolvConf"],
        "/run/systemd/resolve/resolv.conf"
    );
}

#[test]
fn sysctl_refusals_block_on_a_machine_and_are_logged_in_a_container() {
    let (sim, _scratch) = common::provisioned();
    sim.edit_machine(|m| {
        m.sysctl_refused.insert("kernel.panic".into());
    });
    for run in sim.deploy() {
        run.assert_ok();
    }
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "sysctl: the kernel refused sysctl: permission denied on key \"kernel.panic\"".into()
        )
    );
    assert_eq!(
        sim.machine().sysctl["vm.overcommit_memory"],
        "1",
        "the rest is set"
    );
    // Loaded once per content: the next hook does not try again.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(sim
        .machine_calls_since(mark)
        .iter()
        .all(|c| c.program != "sysctl"));
    sim.configure("sysctl", "{vm.overcommit_memory: 1}")
        .assert_ok();
    assert!(!sim.status().1.starts_with("sysctl"), "{:?}", sim.status());
    assert_eq!(
        read(&sim, "/etc/sysctl.d/50-kubernetes-charm.conf"),
        "# Written by the kubernetes-worker charm from its sysctl option.\nvm.overcommit_memory = 1\n"
    );

    // Inside a container the same refusal is not a problem.
    let (sim, _scratch) = common::provisioned();
    std::fs::create_dir_all(sim.root().join("run/systemd")).unwrap();
    std::fs::write(sim.root().join("run/systemd/container"), "lxc\n").unwrap();
    sim.edit_machine(|m| {
        m.sysctl_refused.insert("kernel.panic".into());
    });
    for run in sim.deploy() {
        run.assert_ok();
    }
    Cluster::new().relate(&sim, Master::Today);
    assert_active(&sim);
    assert_eq!(
        yaml(&sim, "/root/cdk/kubelet/config.yaml")["protectKernelDefaults"],
        false
    );
}

#[test]
fn update_status_tells_a_node_that_is_not_ready() {
    let (sim, _s, c, _rels) = today();
    c.api.set_ready(
        &c.node,
        false,
        "KubeletNotReady",
        "container runtime network not ready: cni plugin not initialized",
    );
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            "Node not Ready: container runtime network not ready: cni plugin not initialized"
                .into()
        )
    );
    c.api.set_ready(
        &c.node,
        true,
        "KubeletReady",
        "kubelet is posting ready status",
    );
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    let tools: Vec<String> = sim
        .tool_calls_since(mark)
        .into_iter()
        .map(|t| t.tool)
        .collect();
    assert!(tools.contains(&"status-set".to_string()));
    assert!(
        tools.iter().all(|t| t == "status-set" || t == "juju-log"),
        "only the status changed, and is logged: {tools:?}"
    );
}

#[test]
fn snapd_too_old_to_hold_is_said_once() {
    let (sim, _scratch) = common::provisioned();
    sim.edit_machine(|m| m.snapd_version = "2.57.6".into());
    for run in sim.deploy() {
        run.assert_ok();
    }
    let holds = |sim: &Sim| {
        sim.machine()
            .calls
            .iter()
            .filter(|c| c.args.iter().any(|a| a == "--hold"))
            .count()
    };
    assert_eq!(holds(&sim), 1);
    assert!(sim.machine().snaps.values().all(|s| !s.held));
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(holds(&sim), 1, "not tried again");
    assert!(sim
        .unit()
        .logs
        .iter()
        .any(|l| l.level == "WARNING" && l.message.contains("cannot hold snaps")));
}

#[test]
fn the_2017_relations_still_bring_up_a_1_7_node() {
    // Beside today's keys, a 2017 master still works (and a 1.7 kubelet
    // has a built-in runtime).
    let (sim, _scratch) = common::provisioned();
    sim.set_config("channel", "1.7/stable");
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    let rels = c.relate(&sim, Master::Sep2017);
    assert!(rels.runtime.is_none());
    assert_active(&sim);
    let config = sim.machine().snap_config["kubelet"].clone();
    assert!(!config.contains_key("args"));
    assert_eq!(config["require-kubeconfig"], true);
}

#[test]
fn the_upgrade_action_configures_the_new_snaps_at_once() {
    let (sim, _scratch, _c) = on_the_1_15_track(true);
    sim.configure("channel", "1.31/stable").assert_ok();
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
    );
    let runs = |snap: &str| {
        sim.machine().services[&format!("snap.{snap}.daemon.service")]
            .runs
            .clone()
    };
    let before = [runs("kubelet").len(), runs("kube-proxy").len()];
    let (run, action) = sim.action("upgrade", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    // In the action itself, not at the next hook: 1.31 takes args.
    assert_eq!(
        args(&sim, "kubelet")["container-runtime-endpoint"],
        CONTAINERD_SOCKET
    );
    // Each daemon started once, on the new version's options.
    for (snap, before) in ["kubelet", "kube-proxy"].iter().zip(before) {
        let started = &runs(snap)[before..];
        assert_eq!(started.len(), 1, "{snap} once: {started:?}");
        assert!(
            started[0].config.contains_key("args"),
            "{snap}: {started:?}"
        );
    }
    assert_active(&sim);
}

#[test]
fn an_availability_zone_that_is_not_a_label_value_is_left_out() {
    // MAAS zones are free text; the API server refuses the whole label
    // patch for one bad value, the application's label with it.
    let (sim, scratch) = common::provisioned();
    sim.edit_unit(|u| u.availability_zone = "rack 1 (east)".into());
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    c.relate(&sim, Master::Today);
    assert_active(&sim);
    let labels = c.api.node(&c.node).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["juju-application"], "kubernetes-worker");
    assert_eq!(labels["juju-charm"], "kubernetes-worker");
    assert!(labels.get("topology.kubernetes.io/zone").is_none());
    let said: Vec<String> = sim
        .unit()
        .logs
        .iter()
        .filter(|l| l.message.contains("availability zone"))
        .map(|l| format!("{} {}", l.level, l.message))
        .collect();
    assert_eq!(
        said,
        vec![format!(
            "WARNING not labelling node {} with its availability zone \"rack 1 (east)\": not a valid label value",
            c.node
        )]
    );
    drop(scratch);
}

/// The control plane rotates the kubelet and proxy tokens (the client
/// token stays: the stand-in API server knows only the one): a new
/// revision of the secret, and the secret-changed hook it fires.
fn rotate(sim: &Sim, c: &Cluster, secret: &str) -> juju_sim::HookRun {
    let content = [
        ("kubelet-token", "kubelet-token-rotated"),
        ("proxy-token", "proxy-token-rotated"),
        ("client-token", c.client_token.as_str()),
        ("endpoint", "kube-control"),
    ];
    sim.set_secret_content(secret, &content)
        .expect("secret-changed")
}

fn token_in(sim: &Sim, path: &str) -> String {
    yaml(sim, path)["users"][0]["user"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_token_rotation_while_blocked_is_applied_once_the_unit_can() {
    let (sim, _s, c, rels) = today();
    let secret = rels.secret.clone().unwrap();
    sim.configure("labels", "not-a-label").assert_ok();
    assert_eq!(sim.status().0, "blocked");
    rotate(&sim, &c, &secret).assert_ok();
    assert_eq!(sim.status().0, "blocked");
    // secret-changed is not fired again for this revision: the option's
    // fix is the first hook that can act on it.
    sim.configure("labels", "").assert_ok();
    assert_active(&sim);
    assert_eq!(
        token_in(&sim, "/root/cdk/kubeconfig"),
        "kubelet-token-rotated"
    );
    assert_eq!(
        token_in(&sim, "/root/cdk/kubeproxyconfig"),
        "proxy-token-rotated"
    );
}

#[test]
fn a_token_rotation_in_a_hook_that_fails_is_applied_by_the_next_hook() {
    let (sim, _s, c, rels) = today();
    let secret = rels.secret.clone().unwrap();
    // The first file the node writes cannot be replaced: the hook fails
    // after reading the new revision and before writing the kubeconfigs.
    let ca = sim.root().join("root/cdk/ca.crt");
    let saved = std::fs::read(&ca).unwrap();
    std::fs::remove_file(&ca).unwrap();
    std::fs::create_dir_all(ca.join("in-the-way")).unwrap();
    let run = rotate(&sim, &c, &secret);
    assert_ne!(run.exit, 0, "the hook fails");
    assert_eq!(token_in(&sim, "/root/cdk/kubeconfig"), c.kubelet_token);
    // The operator clears the way and resolves without a retry.
    std::fs::remove_dir_all(&ca).unwrap();
    std::fs::write(&ca, saved).unwrap();
    sim.edit_unit(|u| u.error = None);
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    assert_eq!(
        token_in(&sim, "/root/cdk/kubeconfig"),
        "kubelet-token-rotated"
    );
}

#[test]
fn a_secret_id_secret_get_would_refuse_blocks_naming_the_relation() {
    let (sim, _s, c, rels) = today();
    let before = token_in(&sim, "/root/cdk/kubeconfig");
    let user = format!("system:node:{}", c.node);
    let creds = json!({user.clone(): {"kubelet_token": "", "proxy_token": "", "client_token": "",
        "scope": "kubernetes-worker/0", "secret-id": "secret:not-an-id"}})
    .to_string();
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("creds", &creds)],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            format!("kube-control relation: creds from kubernetes-control-plane/0 for {user}: its secret-id is not a Juju secret URI: \"secret:not-an-id\"")
        )
    );
    assert_eq!(token_in(&sim, "/root/cdk/kubeconfig"), before);
    assert!(sim.machine().services["snap.kubelet.daemon.service"].active);
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status().0, "blocked");
    // Mended: running again.
    let creds = json!({user: {"kubelet_token": "", "proxy_token": "", "client_token": "",
        "scope": "kubernetes-worker/0", "secret-id": rels.secret.unwrap()}})
    .to_string();
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("creds", &creds)],
    )
    .assert_ok();
    assert_active(&sim);
}

#[test]
fn values_past_what_their_readers_take_are_refused_and_the_last_good_stays() {
    let (sim, _s, c, rels) = today();
    let kubeconfig = read(&sim, "/root/cdk/kubeconfig");
    let kubelet_args = sim.machine().snap_config["kubelet"].clone();

    // An API endpoint on port 0: no server listens there.
    let url = "https://127.0.0.1:0";
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("api-endpoints", &json!([url]).to_string())],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            format!("kube-control relation: api-endpoints from kubernetes-control-plane/0 has a port outside 1-65535: \"{url}\"")
        )
    );
    assert_eq!(read(&sim, "/root/cdk/kubeconfig"), kubeconfig);
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("api-endpoints", &json!([c.api.url]).to_string())],
    )
    .assert_ok();
    assert_active(&sim);

    // A socket path longer than a unix socket's can be.
    let socket = format!("unix:///run/{}.sock", "s".repeat(200));
    sim.change(
        rels.runtime.unwrap(),
        "containerd/0",
        &[("socket", &json!(socket).to_string())],
    )
    .assert_ok();
    assert_eq!(sim.status().0, "blocked");
    assert!(
        sim.status().1.starts_with(
            "container-runtime relation: socket from containerd/0 is not a unix:// or npipe:// URL"
        ),
        "{:?}",
        sim.status()
    );
    assert_eq!(sim.machine().snap_config["kubelet"], kubelet_args);
    sim.change(
        rels.runtime.unwrap(),
        "containerd/0",
        &[("socket", &json!(CONTAINERD_SOCKET).to_string())],
    )
    .assert_ok();
    assert_active(&sim);

    // An extra argument longer than the kernel takes for one argument.
    let huge = format!("feature-gates={}", "A".repeat(200_000));
    sim.configure("kubelet-extra-args", huge.as_str())
        .assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            format!(
                "kubelet-extra-args is {} bytes long; at most 32768 fit in the daemon's arguments",
                huge.len()
            )
        )
    );
    assert_eq!(sim.machine().snap_config["kubelet"], kubelet_args);
    sim.configure("kubelet-extra-args", "").assert_ok();
    assert_active(&sim);
}

#[test]
fn a_snap_set_the_snap_refuses_is_a_status_naming_the_option() {
    let (sim, _s, _c, _rels) = today();
    sim.edit_machine(|m| {
        m.faults.push(juju_sim::machine::Fault {
            command: "set".into(),
            target: Some("kubelet".into()),
            remaining: 1,
            exit: 1,
            stderr: "error: cannot perform the following tasks:\n- Run configure hook of \"kubelet\" snap (invalid value)\n".into(),
        })
    });
    let run = sim.configure("kubelet-extra-args", "v=3");
    run.assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "snap set kubelet refused its configuration (error: cannot perform the following tasks: - Run configure hook of \"kubelet\" snap (invalid value)); check kubelet-extra-args".into()
        )
    );
    // The next hook tries again.
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    assert_eq!(args(&sim, "kubelet")["v"], "3");
}
