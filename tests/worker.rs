//! Issue 4: the worker as a Kubernetes node, through the real binary, with
//! a loopback HTTPS server standing in for the API server.

mod common;

use std::os::unix::fs::MetadataExt;

use common::cluster::{self, Master, CIDR, DNS_IP};
use common::{assert_active, read, starts, tree, yaml};
use juju_sim::cluster::PodChange;
use juju_sim::machine::{Fault, Interface, InterfaceAddress};
use juju_sim::Sim;
use serde_json::json;

fn mode(sim: &Sim, path: &str) -> u32 {
    std::fs::metadata(sim.root().join(path.trim_start_matches('/')))
        .unwrap()
        .mode()
        & 0o7777
}

fn snap_config(sim: &Sim, snap: &str) -> serde_json::Map<String, serde_json::Value> {
    sim.machine()
        .snap_config
        .get(snap)
        .cloned()
        .unwrap_or_default()
}

/// The flags a daemon starts with: from `args` on today's snaps (as the
/// CDK snaps' wrapper parses it with bash), else one option per flag.
fn flags(sim: &Sim, snap: &str) -> std::collections::BTreeMap<String, String> {
    let config = snap_config(sim, snap);
    match config.get("args").and_then(|a| a.as_str()) {
        Some(args) => common::bash_args(args),
        None => config
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or(v.to_string()),
                )
            })
            .collect(),
    }
}

fn blocked(sim: &Sim, message: &str) {
    assert_eq!(sim.status(), ("blocked".to_string(), message.to_string()));
}

#[test]
fn every_generation_of_master_brings_the_node_up() {
    for form in [Master::Sep2017, Master::Dec2017, Master::Current] {
        let (sim, _s, c, _rels) = cluster::running(form);
        assert_active(&sim);
        let kubeconfig = yaml(&sim, "/root/cdk/kubeconfig");
        assert_eq!(
            kubeconfig["users"][0]["user"]["token"],
            c.kubelet_token.as_str(),
            "{form:?}"
        );
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["server"],
            c.api.url.as_str(),
            "{form:?}"
        );
        let proxy = yaml(&sim, "/root/cdk/kubeproxyconfig");
        assert_eq!(proxy["users"][0]["user"]["token"], c.proxy_token.as_str());
        let root = yaml(&sim, "/root/.kube/config");
        assert_eq!(root["users"][0]["user"]["token"], c.client_token.as_str());
    }
}

#[test]
fn certificates_and_kubeconfigs_are_written_with_the_right_modes() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    for (path, expected) in [
        ("/root/cdk/ca.crt", 0o644),
        ("/root/cdk/server.crt", 0o644),
        ("/root/cdk/server.key", 0o600),
        ("/root/cdk/client.crt", 0o644),
        ("/root/cdk/client.key", 0o600),
        ("/root/cdk/kubeconfig", 0o600),
        ("/root/cdk/kubeproxyconfig", 0o600),
        ("/root/.kube/config", 0o600),
    ] {
        assert_eq!(mode(&sim, path), expected, "{path}");
    }
    assert_eq!(read(&sim, "/root/cdk/ca.crt"), c.pki.ca_pem());
    let kubeconfig = yaml(&sim, "/root/cdk/kubeconfig");
    assert_eq!(kubeconfig["current-context"], "juju-context");
    assert_eq!(
        kubeconfig["contexts"][0]["context"]["cluster"],
        "juju-cluster"
    );
    assert!(
        kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .is_some()
    );
}

#[test]
fn private_keys_and_tokens_are_kept_only_in_their_0600_files() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    let records = [
        ".kubernetes-worker-state.json",
        ".kubernetes-worker-journal.json",
    ];
    let secrets = [
        read(&sim, "/root/cdk/server.key"),
        read(&sim, "/root/cdk/client.key"),
        c.kubelet_token.clone(),
        c.proxy_token.clone(),
        c.client_token.clone(),
    ];
    for record in records {
        let text = std::fs::read_to_string(sim.charm_dir().join(record)).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{record}");
        for secret in &secrets {
            // JSON escapes the PEM's newlines: its base64 body is what leaks.
            let body = secret.lines().nth(1).unwrap_or(secret);
            assert!(!text.contains(body), "{record} holds a secret");
        }
    }

    // A key file lost: the next hook writes the relation's again (the
    // same key, so no restart), and the one after reads nothing.
    let key = secrets[0].clone();
    let starts_before = starts(&sim, "kubelet");
    std::fs::remove_file(sim.root().join("root/cdk/server.key")).unwrap();
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(read(&sim, "/root/cdk/server.key"), key);
    assert_eq!(mode(&sim, "/root/cdk/server.key"), 0o600);
    assert_eq!(starts(&sim, "kubelet"), starts_before);
    let reads = |mark| {
        sim.tool_calls_since(mark)
            .iter()
            .filter(|call| call.tool == "relation-get")
            .count()
    };
    assert!(reads(mark) > 0, "the certificates relation read again");
    assert_active(&sim);
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(reads(mark), 0);
    assert!(sim
        .machine_calls_since(mark)
        .iter()
        .all(|call| !call.is_mutating()));
}

#[test]
fn this_unit_publishes_what_each_relation_expects() {
    let (sim, _s, c, rels) = cluster::running(Master::Current);
    let unit = sim.unit();
    let bag = |id: u32| unit.relation(id).unwrap().local_unit.clone();
    let control = bag(rels.control);
    assert_eq!(control["kubelet_user"], format!("system:node:{}", c.node));
    assert_eq!(control["auth_group"], "system:nodes");
    assert_eq!(control["gpu"], "False");
    let certs = bag(rels.certs);
    assert_eq!(certs["common_name"], unit.public_address);
    // As today's Python charm asks (see tests/cloud_names.rs for the
    // whole list on a machine of known names): sorted, once each.
    let sans: Vec<String> = serde_json::from_str(&certs["sans"]).unwrap();
    let mut sorted = sans.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sans, sorted);
    for name in [
        unit.public_address.as_str(),
        unit.private_address.as_str(),
        "127.0.0.1",
        c.node.as_str(),
    ] {
        assert!(
            sans.iter().any(|s| s.eq_ignore_ascii_case(name)),
            "{name} in {sans:?}"
        );
    }
    assert_eq!(certs["certificate_name"], "kubernetes-worker_0");
    assert_eq!(certs["unit_name"], "kubernetes-worker_0");
    let cni = bag(rels.cni);
    assert_eq!(cni["is_master"], "False");
    assert_eq!(cni["kubeconfig_path"], "/root/cdk/kubeconfig");
}

#[test]
fn a_current_kubelet_gets_a_config_file_and_only_its_flags() {
    let (sim, _s, _c, _rels) = cluster::running(Master::Current);
    let config = snap_config(&sim, "kubelet");
    assert_eq!(
        config.keys().collect::<Vec<_>>(),
        vec!["args"],
        "1.31: all flags in args"
    );
    let kubelet = flags(&sim, "kubelet");
    let keys: Vec<&String> = kubelet.keys().collect();
    assert_eq!(
        keys,
        vec![
            "config",
            "container-runtime-endpoint",
            "hostname-override",
            "kubeconfig",
            "node-ip",
            "v"
        ]
    );
    assert_eq!(kubelet["config"], "/root/cdk/kubelet/config.yaml");
    let config = yaml(&sim, "/root/cdk/kubelet/config.yaml");
    assert_eq!(config["kind"], "KubeletConfiguration");
    assert_eq!(config["clusterDNS"][0], DNS_IP);
    assert_eq!(config["clusterDomain"], "cluster.local");
    assert_eq!(config["tlsCertFile"], "/root/cdk/server.crt");
    let proxy = flags(&sim, "kube-proxy");
    assert_eq!(proxy["config"], "/root/cdk/kubeproxy/config.yaml");
    assert_eq!(proxy.len(), 2, "{proxy:?}");
    let proxy_config = yaml(&sim, "/root/cdk/kubeproxy/config.yaml");
    assert_eq!(proxy_config["clusterCIDR"], CIDR);
    assert!(proxy_config.get("conntrack").is_none());
    let logs = sim.unit().logs;
    assert!(
        !logs.iter().any(|l| l.message.contains("allow-privileged")),
        "detail stays out of juju-log"
    );
}

#[test]
fn a_1_7_kubelet_gets_the_2017_flag_set() {
    let (sim, _scratch) = common::provisioned();
    sim.set_config("channel", "1.7/stable");
    sim.set_config("allow-privileged", "true");
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = cluster::Cluster::new();
    c.relate(&sim, Master::Sep2017);
    assert_active(&sim);
    let kubelet = snap_config(&sim, "kubelet");
    for (key, value) in [
        ("kubeconfig", json!("/root/cdk/kubeconfig")),
        ("network-plugin", json!("cni")),
        ("require-kubeconfig", json!(true)),
        ("allow-privileged", json!(true)),
        ("cluster-dns", json!(DNS_IP)),
        ("cluster-domain", json!("cluster.local")),
        ("client-ca-file", json!("/root/cdk/ca.crt")),
        ("anonymous-auth", json!(false)),
        ("fail-swap-on", json!(false)),
        ("port", json!(10250)),
    ] {
        assert_eq!(kubelet.get(key), Some(&value), "{key}");
    }
    assert!(!kubelet.contains_key("config"));
    assert!(!sim.root().join("root/cdk/kubelet/config.yaml").exists());
    let proxy = snap_config(&sim, "kube-proxy");
    assert_eq!(proxy["cluster-cidr"], CIDR);
    assert_eq!(proxy["kubeconfig"], "/root/cdk/kubeproxyconfig");
}

#[test]
fn inside_a_container_kube_proxy_gets_no_conntrack_limit() {
    let (sim, _scratch) = common::provisioned();
    std::fs::create_dir_all(sim.root().join("run/systemd")).unwrap();
    std::fs::write(sim.root().join("run/systemd/container"), "lxc\n").unwrap();
    for run in sim.deploy() {
        run.assert_ok();
    }
    cluster::Cluster::new().relate(&sim, Master::Current);
    let config = yaml(&sim, "/root/cdk/kubeproxy/config.yaml");
    assert_eq!(config["conntrack"]["maxPerCore"], 0);
}

/// A machine with an `ubuntu` user (uid 1000) and its home; returns the
/// home's path.
fn with_ubuntu(sim: &Sim) -> std::path::PathBuf {
    std::fs::create_dir_all(sim.root().join("etc")).unwrap();
    std::fs::write(
        sim.root().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n",
    )
    .unwrap();
    let home = sim.root().join("home/ubuntu");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
    home
}

#[test]
fn the_ubuntu_user_gets_its_own_kubeconfig() {
    let (sim, _scratch) = common::provisioned();
    with_ubuntu(&sim);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = cluster::Cluster::new();
    c.relate(&sim, Master::Dec2017);
    let path = sim.root().join("home/ubuntu/.kube/config");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (1000, 1000, 0o600)
    );
    let dir = std::fs::metadata(sim.root().join("home/ubuntu/.kube")).unwrap();
    assert_eq!(dir.uid(), 1000);
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(config["users"][0]["name"], "ubuntu");
    assert_eq!(config["users"][0]["user"]["token"], c.client_token.as_str());
}

#[test]
fn ubuntus_kubeconfig_is_never_written_through_a_link() {
    let setup = |prepare: &dyn Fn(&std::path::Path)| {
        let (sim, scratch) = common::provisioned();
        prepare(&with_ubuntu(&sim));
        for run in sim.deploy() {
            run.assert_ok();
        }
        let c = cluster::Cluster::new();
        c.relate(&sim, Master::Today);
        (sim, scratch, c)
    };
    // ubuntu pointed .kube at a directory of root's.
    let (sim, _s, _c) = setup(&|home| {
        std::fs::create_dir_all(home.join("../../etc/secrets")).unwrap();
        std::os::unix::fs::symlink("../../etc/secrets", home.join(".kube")).unwrap();
    });
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    assert!(common::tree(&sim.root().join("etc/secrets")).is_empty());
    assert!(sim.unit().logs.iter().any(|l| l.level == "WARNING"
        && l.message.contains("not writing ubuntu's kubeconfig")
        && l.message.contains("not a real directory")));
    // A .kube that is not ubuntu's.
    let (sim, _s, _c) = setup(&|home| {
        std::fs::create_dir(home.join(".kube")).unwrap();
        std::os::unix::fs::chown(home.join(".kube"), Some(1001), Some(1001)).unwrap();
    });
    assert_eq!(sim.status().0, "active");
    assert!(!sim.root().join("home/ubuntu/.kube/config").exists());
    // A config that is a link: replaced by a file, its target untouched.
    let (sim, _s, c) = setup(&|home| {
        std::fs::create_dir(home.join(".kube")).unwrap();
        std::os::unix::fs::chown(home.join(".kube"), Some(1000), Some(1000)).unwrap();
        std::fs::write(home.join("../../etc/shadow"), b"root's").unwrap();
        std::os::unix::fs::symlink("../../../etc/shadow", home.join(".kube/config")).unwrap();
    });
    let config = sim.root().join("home/ubuntu/.kube/config");
    assert!(config.symlink_metadata().unwrap().is_file());
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains(&c.client_token));
    assert_eq!(
        std::fs::read(sim.root().join("etc/shadow")).unwrap(),
        b"root's"
    );
}

#[test]
fn the_daemons_restart_exactly_when_their_configuration_changes() {
    let (sim, _s, _c, _rels) = cluster::running(Master::Current);
    let (kubelet, proxy) = (starts(&sim, "kubelet"), starts(&sim, "kube-proxy"));
    let mark = sim.mark();
    sim.configure("kubelet-extra-args", "v=2 max-pods=50")
        .assert_ok();
    assert_eq!(starts(&sim, "kubelet"), kubelet + 1);
    assert_eq!(
        starts(&sim, "kube-proxy"),
        proxy,
        "kube-proxy's configuration did not change"
    );
    let config = flags(&sim, "kubelet");
    assert_eq!(config["v"], "2");
    assert_eq!(config["max-pods"], "50");
    // Removing an extra arg drops it from args and restarts once more.
    sim.configure("kubelet-extra-args", "").assert_ok();
    let config = flags(&sim, "kubelet");
    assert_eq!(config["v"], "0");
    assert!(!config.contains_key("max-pods"));
    assert_eq!(starts(&sim, "kubelet"), kubelet + 2);
    let sets: Vec<String> = sim
        .machine_calls_since(mark)
        .iter()
        .filter(|c| c.args.first().is_some_and(|a| a == "set"))
        .map(|c| c.args[..2].join(" "))
        .collect();
    assert_eq!(
        sets,
        vec!["set kubelet", "set kubelet"],
        "one snap set per change"
    );
}

#[test]
fn a_token_change_rewrites_the_kubeconfig_and_restarts_kubelet() {
    let (sim, _s, c, rels) = cluster::running(Master::Sep2017);
    let before = starts(&sim, "kubelet");
    sim.change(
        rels.control,
        "kubernetes-master/0",
        &[("kubelet_token", "rotated-token")],
    )
    .assert_ok();
    assert_eq!(
        yaml(&sim, "/root/cdk/kubeconfig")["users"][0]["user"]["token"],
        "rotated-token"
    );
    assert_eq!(starts(&sim, "kubelet"), before + 1);
    let _ = c;
    assert_active(&sim);
}

#[test]
fn dns_disabled_by_the_master_means_no_cluster_dns() {
    let (sim, _scratch) = common::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = cluster::Cluster::new();
    c.relate(&sim, Master::Current);
    let control = sim
        .unit()
        .relations
        .iter()
        .find(|r| r.endpoint == "kube-control")
        .unwrap()
        .id;
    sim.change(
        control,
        "kubernetes-master/0",
        &[("enable-kube-dns", "False"), ("sdn-ip", "")],
    )
    .assert_ok();
    assert_active(&sim);
    let config = yaml(&sim, "/root/cdk/kubelet/config.yaml");
    assert!(config.get("clusterDNS").is_none());
    // Enabled but not published yet: waiting, as operators know it.
    sim.change(
        control,
        "kubernetes-master/0",
        &[("enable-kube-dns", "True")],
    )
    .assert_ok();
    assert_eq!(
        sim.status(),
        ("waiting".into(), "Waiting for cluster DNS.".into())
    );
}

#[test]
fn departure_and_return_of_the_control_plane() {
    let (sim, _s, c, rels) = cluster::running(Master::Current);
    sim.depart(rels.control, "kubernetes-master/0").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            "Waiting for kube-control relation data".into()
        )
    );
    for run in sim.unrelate(rels.control) {
        run.assert_ok();
    }
    blocked(
        &sim,
        "Relate kubernetes-worker:kube-control to the control plane",
    );
    let control = sim.relate("kube-control", "kubernetes-master");
    let data = c.kube_control_data(Master::Current);
    let refs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for run in sim.join(control, "kubernetes-master/0", &refs) {
        run.assert_ok();
    }
    assert_active(&sim);
    for run in sim.unrelate(rels.certs) {
        run.assert_ok();
    }
    blocked(
        &sim,
        "Relate kubernetes-worker:certificates to a certificate authority",
    );
    for run in sim.unrelate(rels.cni) {
        run.assert_ok();
    }
}

#[test]
fn malformed_relation_data_blocks_naming_the_key_and_writes_nothing() {
    let (sim, _s, _c, rels) = cluster::running(Master::Sep2017);
    let snapshot = |sim: &Sim| -> Vec<(String, Vec<u8>)> {
        tree(&sim.root().join("root"))
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.clone(),
                    std::fs::read(sim.root().join("root").join(&p)).ok()?,
                ))
            })
            .collect()
    };
    let before = snapshot(&sim);
    let api = rels.api.unwrap();
    let cases: Vec<(u32, &str, &str, &str, &str)> = vec![
        (api, "kubernetes-master/0", "port", "sixty", "kube-api-endpoint relation: port from kubernetes-master/0 is not a port number (1-65535): \"sixty\""),
        (api, "kubernetes-master/0", "hostname", "not a host", "kube-api-endpoint relation: hostname from kubernetes-master/0 is not a host name: \"not a host\""),
        (rels.control, "kubernetes-master/0", "creds", "{oops", "kube-control relation: creds from kubernetes-master/0 is not valid JSON"),
        (rels.control, "kubernetes-master/0", "api-endpoints", "not-json", "kube-control relation: api-endpoints from kubernetes-master/0 is not a JSON list of URLs"),
        (rels.control, "kubernetes-master/0", "enable-kube-dns", "Yes", "kube-control relation: enable-kube-dns from kubernetes-master/0 is not True or False: \"Yes\""),
        (rels.control, "kubernetes-master/0", "sdn-ip", "ten.ten", "kube-control relation: sdn-ip from kubernetes-master/0 is not an IP address: \"ten.ten\""),
        (rels.certs, "easyrsa/0", "ca", "not a certificate", "certificates relation: ca from easyrsa/0 holds no PEM certificate"),
        (rels.certs, "easyrsa/0", "ca", "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n", "certificates relation: ca from easyrsa/0 holds a certificate that does not parse"),
        (rels.certs, "easyrsa/0", "client.key", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "certificates relation: client.key from easyrsa/0 is not a PEM private key"),
        (rels.control, "kubernetes-master/0", "domain", "cluster.local\n--v=9", "kube-control relation: domain from kubernetes-master/0 is not a DNS name: \"cluster.local\\n--v=9\""),
        (rels.control, "kubernetes-master/0", "port", "0", "kube-control relation: port from kubernetes-master/0 is not a port number (1-65535): \"0\""),
        (rels.control, "kubernetes-master/0", "kubelet_token", "tok\u{1b}[2Jen", "kube-control relation: kubelet_token from kubernetes-master/0 is not a token (character 4 is not printable ASCII)"),
        (api, "kubernetes-master/0", "port", "0", "kube-api-endpoint relation: port from kubernetes-master/0 is not a port number (1-65535)"),
        (rels.cni, "flannel/0", "cidr", "10.1.0.0/99", "cni relation: cidr from flannel/0 is not a CIDR: \"10.1.0.0/99\""),
    ];
    for (id, unit, key, bad, expected) in cases {
        let good = sim.unit().relation(id).unwrap().remote_units[unit]
            .get(key)
            .cloned();
        sim.change(id, unit, &[(key, bad)]).assert_ok();
        let (status, message) = sim.status();
        assert_eq!(status, "blocked", "{key}: {message}");
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
        assert_eq!(snapshot(&sim), before, "{key}: files changed");
        sim.change(id, unit, &[(key, good.as_deref().unwrap_or(""))])
            .assert_ok();
        assert_active(&sim);
    }
    // A value longer than one argument may be (128 KiB): every hook still
    // succeeds, and what is quoted of it is short.
    let huge = "x".repeat(300 << 10);
    let run = sim.change(rels.control, "kubernetes-master/0", &[("domain", &huge)]);
    run.assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "blocked");
    assert!(
        message.starts_with(
            "kube-control relation: domain from kubernetes-master/0 is not a DNS name: \"xxx"
        ),
        "{}",
        &message[..100]
    );
    assert!(message.len() < 400, "{}", message.len());
    sim.hook("update-status").assert_ok();
    assert!(sim.unit().logs.iter().all(|l| l.message.len() < 10_000));
    assert_eq!(snapshot(&sim), before);
}

#[test]
fn bad_options_block_quoting_the_bad_value() {
    let (sim, _s, _c, _rels) = cluster::running(Master::Current);
    let keys_before = snap_config(&sim, "kubelet");
    for (key, value, expected) in [
        ("allow-privileged", "sometimes", "allow-privileged must be true, false or auto, not \"sometimes\""),
        ("kubelet-extra-args", "v=2 --max-pods=5", "kubelet-extra-args has a bad token \"--max-pods=5\" (write key=value without leading dashes)"),
        ("proxy-extra-args", "=3", "proxy-extra-args has a bad token \"=3\""),
        ("labels", "good=yes Bad/label=x", "labels has a bad label \"Bad/label=x\": the prefix must be a DNS subdomain"),
    ] {
        sim.configure(key, value).assert_ok();
        blocked(&sim, expected);
        assert_eq!(snap_config(&sim, "kubelet"), keys_before, "{key}: config changed");
        sim.configure(key, if key == "allow-privileged" { "auto" } else { "" }).assert_ok();
        assert_active(&sim);
    }
}

#[test]
fn api_operations_need_only_the_api_server_ca_and_token() {
    let (sim, _s, c, rels) = cluster::running(Master::Today);
    // Another relation goes: the node cannot be configured anew, but the
    // API server, its CA and the client token are all still known.
    for run in sim.unrelate(rels.cni) {
        run.assert_ok();
    }
    blocked(
        &sim,
        "Relate kubernetes-worker:cni to a CNI subordinate (flannel, calico)",
    );
    sim.configure("labels", "disk=ssd").assert_ok();
    assert_eq!(
        c.api.node(&c.node).unwrap()["metadata"]["labels"]["disk"],
        "ssd"
    );
    let (run, action) = sim.action("pause", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    assert_eq!(c.api.node(&c.node).unwrap()["spec"]["unschedulable"], true);
    let (_, action) = sim.action("resume", json!({}));
    assert_eq!(action.status, "completed", "{}", action.message);
}

#[test]
fn an_api_server_that_never_answers_costs_a_hook_seconds_and_says_so() {
    let (sim, _s, c, _rels) = cluster::running(Master::Today);
    c.api.set_silent(true);
    let started = std::time::Instant::now();
    sim.configure("labels", "disk=ssd").assert_ok();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let (status, message) = sim.status();
    assert_eq!(status, "waiting", "{message}");
    assert!(
        message.starts_with("Waiting to apply node labels: "),
        "{message}"
    );
    // The server answers again: the next hook applies them.
    c.api.set_silent(false);
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    assert_eq!(
        c.api.node(&c.node).unwrap()["metadata"]["labels"]["disk"],
        "ssd"
    );
}

#[test]
fn labels_are_added_and_removed_leaving_others_alone() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    sim.configure("labels", "disk=ssd topology.kubernetes.io/zone=z1")
        .assert_ok();
    assert_active(&sim);
    let labels = c.api.node(&c.node).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["disk"], "ssd");
    assert_eq!(labels["topology.kubernetes.io/zone"], "z1");
    sim.configure("labels", "disk=hdd").assert_ok();
    let labels = c.api.node(&c.node).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["disk"], "hdd");
    assert!(labels.get("topology.kubernetes.io/zone").is_none());
    assert_eq!(labels["juju-application"], "kubernetes-worker");
    assert_eq!(labels["juju-charm"], "kubernetes-worker");
    assert_eq!(
        labels["kubernetes.io/hostname"],
        c.node.as_str(),
        "a label set by others stays"
    );
    let requests = c.api.requests();
    assert!(requests.iter().all(|r| r.authorized));
    let last = requests.last().unwrap();
    assert_eq!(last.method, "PATCH");
    assert_eq!(
        last.body,
        json!({"metadata": {"labels": {"disk": "hdd", "juju-application": "kubernetes-worker",
            "juju-charm": "kubernetes-worker", "topology.kubernetes.io/zone": null}}})
    );
    // `key-` removes a label someone else set, once.
    sim.configure("labels", "disk=hdd kubernetes.io/hostname-")
        .assert_ok();
    let labels = c.api.node(&c.node).unwrap()["metadata"]["labels"].clone();
    assert!(labels.get("kubernetes.io/hostname").is_none());
    assert_eq!(labels["disk"], "hdd");
    let patches = c.api.requests().len();
    sim.hook("config-changed").assert_ok();
    assert_eq!(
        c.api.requests().len(),
        patches,
        "nothing to do the second time"
    );
    assert_active(&sim);
}

#[test]
fn an_unreachable_api_server_never_hangs_a_hook() {
    let (sim, _s, c, rels) = cluster::running(Master::Current);
    // Point the worker at a port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    sim.change(
        rels.control,
        "kubernetes-master/0",
        &[("api-endpoints", &json!([dead_url]).to_string())],
    )
    .assert_ok();
    let started = std::time::Instant::now();
    sim.configure("labels", "disk=ssd").assert_ok();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (status, message) = sim.status();
    assert_eq!(status, "waiting");
    assert!(
        message.starts_with("Waiting to apply node labels: the API server at"),
        "{message}"
    );
    // The API server is back: the next hook applies them.
    sim.change(
        rels.control,
        "kubernetes-master/0",
        &[("api-endpoints", &json!([c.api.url]).to_string())],
    )
    .assert_ok();
    assert_active(&sim);
    assert_eq!(
        c.api.node(&c.node).unwrap()["metadata"]["labels"]["disk"],
        "ssd"
    );
}

#[test]
fn ingress_opens_and_closes_its_ports() {
    let (sim, _s, _c, _rels) = cluster::running(Master::Current);
    let ports: Vec<String> = sim.unit().ports.into_iter().collect();
    assert_eq!(ports, vec!["443/tcp", "80/tcp"]);
    sim.configure("ingress", false).assert_ok();
    assert!(sim.unit().ports.is_empty());
}

/// A Running, Ready pod labelled `app=` its name's first word, with
/// `extra` annotations or spec fields.
/// The names of the pods the API server holds, in its order.
fn pod_names(c: &cluster::Cluster) -> Vec<String> {
    c.api
        .pods()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn pod(name: &str, node: &str, owner: Option<&str>, extra: serde_json::Value) -> serde_json::Value {
    let app = name.split('-').next().unwrap_or(name);
    let mut p = cluster::pod(name, app, node, owner);
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            if k == "annotations" {
                p["metadata"]["annotations"] = v;
            } else {
                p["spec"][k] = v;
            }
        }
    }
    p
}

#[test]
fn pause_drains_the_node_and_resume_uncordons_it() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    c.api
        .add_pod(pod("web-1", &c.node, Some("ReplicaSet"), json!({})));
    c.api
        .add_pod(pod("flannel-x", &c.node, Some("DaemonSet"), json!({})));
    c.api.add_pod(pod(
        "static",
        &c.node,
        None,
        json!({"annotations": {"kubernetes.io/config.mirror": "1"}}),
    ));
    c.api.add_pod(pod(
        "cache",
        &c.node,
        Some("ReplicaSet"),
        json!({"volumes": [{"name": "s", "emptyDir": {}}]}),
    ));
    c.api.add_pod(pod("debug", &c.node, None, json!({})));
    c.api.add_pod(pod(
        "elsewhere",
        "another-node",
        Some("ReplicaSet"),
        json!({}),
    ));

    let (run, action) = sim.action("pause", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("default/debug"),
        "{}",
        action.message
    );
    assert_eq!(c.api.pods().len(), 6, "nothing evicted when refusing");
    assert_eq!(c.api.node(&c.node).unwrap()["spec"]["unschedulable"], true);

    let (run, action) = sim.action("pause", json!({"force": true}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("default/cache"),
        "{}",
        action.message
    );

    let (run, action) = sim.action("pause", json!({"force": true, "delete-local-data": true}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    let mut left: Vec<String> = c
        .api
        .pods()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    left.sort();
    assert_eq!(left, vec!["elsewhere", "flannel-x", "static"]);
    assert_eq!(action.results["cordoned"], "true");

    let (run, action) = sim.action("resume", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed");
    assert_eq!(c.api.node(&c.node).unwrap()["spec"]["unschedulable"], false);
    assert_eq!(sim.unit().error, None);
}

#[test]
fn pause_waits_for_evicted_pods_and_fails_when_they_linger() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    c.api.add_pod(pod(
        "slow",
        &c.node,
        Some("ReplicaSet"),
        json!({"terminationGracePeriodSeconds": 86400}),
    ));
    let started = std::time::Instant::now();
    let (run, action) = sim.action("pause", json!({"timeout": 1}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action
            .message
            .contains("had not terminated after 1 s: default/slow"),
        "{}",
        action.message
    );
    assert_eq!(action.results["terminating"], "default/slow");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(sim.unit().error, None);
}

#[test]
fn removing_the_unit_deletes_the_node_and_stops_both_daemons() {
    for form in [Master::Current, Master::Today] {
        let (sim, _s, c, _rels) = cluster::running(form);
        assert!(c.api.node(&c.node).is_some());
        // The other nodes take no pods: cordoned, not Ready, or tainted
        // for the control plane only.
        for node in ["cordoned", "not-ready", "control-plane"] {
            c.api.add_node(node);
        }
        c.api
            .set_ready("not-ready", false, "KubeletNotReady", "kubelet stopped");
        c.api
            .patch_node("cordoned", json!({"spec": {"unschedulable": true}}));
        c.api.patch_node(
            "control-plane",
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane",
                                          "effect": "NoSchedule"}]}}),
        );
        c.api
            .add_pod(pod("api-0", &c.node, Some("ReplicaSet"), json!({})));
        // Juju's order: every relation departed and broken, then stop.
        let runs = sim.remove_unit();
        for run in &runs {
            run.assert_ok();
        }
        assert_eq!(runs[runs.len() - 2].name, "stop");
        assert!(c.api.node(&c.node).is_none(), "{form:?}: node deleted");
        let machine = sim.machine();
        for snap in ["kubelet", "kube-proxy"] {
            let svc = &machine.services[&format!("snap.{snap}.daemon.service")];
            assert!(!svc.active && !svc.enabled, "{snap}");
        }
        // Its pods would have nowhere to go.
        assert_eq!(
            sim.status(),
            (
                "maintenance".into(),
                "Stopped: node removed from the cluster; not drained: no other node takes pods; \
                 kubelet and kube-proxy stopped"
                    .into()
            )
        );
        assert!(evictions(&c).is_empty());
    }
}

fn evictions(c: &cluster::Cluster) -> Vec<String> {
    c.api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .map(|r| r.path.clone())
        .collect()
}

/// A node leaving for good is drained first, as `kubectl drain
/// --ignore-daemonsets --force --delete-emptydir-data` would, within
/// removal-drain-timeout: budgets are respected, and what they still hold
/// at the end goes with the node, named.
#[test]
fn removing_the_unit_drains_the_node_before_deleting_it() {
    let (sim, _s, c, _rels) = cluster::running(Master::Today);
    sim.configure("removal-drain-timeout", 2).assert_ok();
    c.api.add_node("worker-b");
    for p in [
        pod("api-0", &c.node, Some("ReplicaSet"), json!({})),
        pod("bare-0", &c.node, None, json!({})),
        pod(
            "cache-0",
            &c.node,
            Some("ReplicaSet"),
            json!({"volumes": [{"name": "scratch", "emptyDir": {}}]}),
        ),
        pod("agent-0", &c.node, Some("DaemonSet"), json!({})),
        pod("db-0", &c.node, Some("StatefulSet"), json!({})),
    ] {
        c.api.add_pod(p);
    }
    // db-0's budget never lets it go.
    c.api.add_pdb(
        "default",
        "db",
        json!({"app": "db"}),
        json!({"maxUnavailable": 0}),
    );
    let before = c.api.requests().len();
    let runs = sim.remove_unit();
    for run in &runs {
        run.assert_ok();
    }
    assert_eq!(pod_names(&c), ["agent-0", "db-0"]);
    let requests = c.api.requests()[before..].to_vec();
    let at = |what: &dyn Fn(&juju_sim::cluster::Request) -> bool| {
        requests.iter().position(what).unwrap()
    };
    let cordon = at(&|r| r.method == "PATCH" && r.path.contains(&c.node));
    let first_eviction = at(&|r| r.path.ends_with("/eviction"));
    let deletion = at(&|r| r.method == "DELETE");
    assert!(cordon < first_eviction && first_eviction < deletion);
    assert!(c.api.node(&c.node).is_none());
    assert_eq!(
        sim.status(),
        (
            "maintenance".into(),
            "Stopped: node removed from the cluster; pods still there after 2 s went with it: \
             default/db-0; kubelet and kube-proxy stopped"
                .into()
        )
    );
    assert!(sim
        .unit()
        .logs
        .iter()
        .any(|l| l.message.contains("evicted from node") && l.message.contains("default/cache-0")));
}

/// When the control plane leaves first (juju names its units as the
/// departing ones), tearing the cluster down is not slowed by a drain.
/// (No other node taking pods: removing_the_unit_deletes_the_node...)
#[test]
fn removal_skips_the_drain_when_the_control_plane_left() {
    // The control plane's application is removed, then this unit.
    let (sim, _s, c, rels) = cluster::running(Master::Today);
    c.api.add_node("worker-b");
    c.api
        .add_pod(pod("api-0", &c.node, Some("ReplicaSet"), json!({})));
    for run in sim.unrelate(rels.control) {
        run.assert_ok();
    }
    for run in sim.remove_unit() {
        run.assert_ok();
    }
    assert!(evictions(&c).is_empty());
    let (_, message) = sim.status();
    assert!(
        message.contains("not drained: the control plane left"),
        "{message}"
    );
}

/// A stop killed mid-drain and run again, as Juju retries it, ends as one
/// never killed, within the bound the first try set.
#[test]
fn a_stop_killed_while_draining_ends_as_one_never_killed() {
    let (sim, _s, c, _rels) = cluster::running(Master::Today);
    sim.configure("removal-drain-timeout", 5).assert_ok();
    c.api.add_node("worker-b");
    c.api.web_behind_a_budget(&c.node);
    c.api
        .add_pod(pod("api-0", &c.node, Some("ReplicaSet"), json!({})));
    for run in sim.leave_every_relation() {
        run.assert_ok();
    }
    // Killed while web-1's budget holds it (its eviction refused twice,
    // the deadline recorded, which is noted as the kill comes); the agent
    // runs it again.
    let first = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (api, noted) = (c.api.clone(), first.clone());
    let journal_file = sim.charm_dir().join(".kubernetes-worker-journal.json");
    sim.kill_next_when(move || {
        if api.refusals("default", "web-1") < 2 {
            return false;
        }
        let journal: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&journal_file).unwrap()).unwrap();
        *noted.lock().unwrap() = journal["stop_drain"]["deadline"].as_f64();
        true
    });
    let killed = sim.hook("stop");
    assert!(killed.killed);
    killed.assert_ok();
    // The retry kept the first try's deadline, where a new one would be
    // 5 s from the retry.
    let journal = read_journal(&sim);
    assert_eq!(journal["stop_drain"]["node"], c.node.as_str());
    let deadline = journal["stop_drain"]["deadline"].as_f64().unwrap();
    assert_eq!(Some(deadline), *first.lock().unwrap());
    assert!(c.api.node(&c.node).is_none());
    assert_eq!(pod_names(&c), ["web-1", "web-2"]);
    let status = sim.status();
    assert_eq!(
        status.1,
        "Stopped: node removed from the cluster; pods still there after 5 s went with it: \
         default/web-1; kubelet and kube-proxy stopped"
    );
    // And once more: nothing changes.
    let requests = c.api.requests().len();
    sim.hook("stop").assert_ok();
    assert_eq!(sim.status(), status);
    assert_eq!(read_journal(&sim), journal);
    assert!(c.api.requests()[requests..]
        .iter()
        .all(|r| r.method == "GET" || r.method == "DELETE"));
}

fn read_journal(sim: &Sim) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(sim.charm_dir().join(".kubernetes-worker-journal.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_stop_that_cannot_reach_the_api_server_says_so() {
    let (sim, _s, c, _rels) = cluster::running(Master::Today);
    // The API server is down when the unit goes: the status must not
    // claim a removal that did not happen.
    c.api.set_down(true);
    for run in sim.remove_unit() {
        run.assert_ok();
    }
    let (status, message) = sim.status();
    assert_eq!(status, "maintenance");
    assert!(
        message.starts_with(&format!(
            "Stopped: could not remove node {} from the cluster (",
            c.node
        )),
        "{message}"
    );
    assert!(
        message.ends_with("); kubelet and kube-proxy stopped"),
        "{message}"
    );
    assert!(c.api.node(&c.node).is_some());
    assert!(!sim.machine().services["snap.kubelet.daemon.service"].active);
}

#[test]
fn a_converged_node_is_left_alone() {
    let (sim, _s, c, rels) = cluster::running(Master::Current);
    sim.configure("labels", "disk=ssd").assert_ok();
    let files = |sim: &Sim| -> Vec<(String, std::time::SystemTime)> {
        let mut f: Vec<_> = tree(&sim.root())
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.clone(),
                    sim.root()
                        .join(&p)
                        .symlink_metadata()
                        .ok()?
                        .modified()
                        .ok()?,
                ))
            })
            .collect();
        let state = sim.charm_dir().join(".kubernetes-worker-state.json");
        f.push((
            "state".into(),
            std::fs::metadata(state).unwrap().modified().unwrap(),
        ));
        f
    };
    let control_data = c.kube_control_data(Master::Current);
    let control_refs: Vec<(&str, &str)> = control_data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    type Run<'a> = Box<dyn Fn() -> juju_sim::HookRun + 'a>;
    let runs: Vec<(&str, Run)> = vec![
        ("update-status", Box::new(|| sim.hook("update-status"))),
        ("config-changed", Box::new(|| sim.hook("config-changed"))),
        (
            "kube-control-relation-changed",
            Box::new(|| sim.change(rels.control, "kubernetes-master/0", &control_refs)),
        ),
        (
            "cni-relation-changed",
            Box::new(|| sim.change(rels.cni, "flannel/0", &[("cidr", CIDR)])),
        ),
        ("upgrade-charm", Box::new(|| sim.hook("upgrade-charm"))),
    ];
    // What the cache holds, so that a rewrite shows what changed in it.
    let record = |sim: &Sim| {
        std::fs::read_to_string(sim.charm_dir().join(".kubernetes-worker-state.json")).unwrap()
    };
    for (name, run) in runs {
        run().assert_ok();
        let before = files(&sim);
        let record_before = record(&sim);
        let api_before = c.api.requests().len();
        let mark = sim.mark();
        run().assert_ok();
        let machine = sim.machine_calls_since(mark);
        assert!(
            machine.iter().all(|m| !m.is_mutating()),
            "{name}: {machine:?}"
        );
        assert_eq!(record(&sim), record_before, "{name}: the cache changed");
        assert_eq!(files(&sim), before, "{name}: files written");
        let writes: Vec<_> = c.api.requests()[api_before..]
            .iter()
            .filter(|r| r.method != "GET")
            .cloned()
            .collect();
        assert!(writes.is_empty(), "{name}: API writes {writes:?}");
        let tools = sim.tool_calls_since(mark);
        assert!(
            tools
                .iter()
                .all(|t| t.tool != "relation-set" && t.tool != "status-set"),
            "{name}: {tools:?}"
        );
        assert_active(&sim);
    }
    // update-status in a converged unit asks the agent nothing.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(sim.tool_calls_since(mark).is_empty());
}

#[test]
fn a_daemon_that_will_not_run_is_reported_and_restarted_by_update_status() {
    let (sim, _s, _c, _rels) = cluster::running(Master::Current);
    sim.edit_machine(|m| {
        m.crashing.insert("snap.kube-proxy.daemon.service".into());
        m.services
            .get_mut("snap.kube-proxy.daemon.service")
            .unwrap()
            .active = false;
    });
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.status(),
        ("waiting".into(), "Waiting for kube-proxy to start.".into())
    );
    // Fixed (say, by a snap refresh): the next update-status starts it.
    sim.edit_machine(|m| {
        m.crashing.clear();
    });
    let before = starts(&sim, "kube-proxy");
    sim.hook("update-status").assert_ok();
    assert_eq!(starts(&sim, "kube-proxy"), before + 1);
    assert_active(&sim);
}

#[test]
fn pause_refuses_a_timeout_it_cannot_keep() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    for timeout in [json!(1_000_000_000_000_u64), json!(-5)] {
        let (run, action) = sim.action("pause", json!({ "timeout": timeout }));
        run.assert_ok();
        assert_eq!(action.status, "failed");
        assert_eq!(
            action.message,
            format!("timeout must be from 0 to 86400 seconds, not {timeout}")
        );
    }
    assert_eq!(sim.unit().error, None);
    assert!(
        c.api.node(&c.node).unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "refused before cordoning"
    );
}

#[test]
fn pause_retries_evictions_a_disruption_budget_refuses() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    // A budget of one healthy web pod, and the other replica Ready only
    // once the drain has been refused.
    c.api.web_behind_a_budget(&c.node);
    c.api.on_refusal(
        ("default", "web-1"),
        1,
        ("default", "web-2"),
        PodChange::Ready,
    );
    let (run, action) = sim.action("pause", json!({"timeout": 20}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    assert_eq!(c.api.pods().len(), 1, "web-1 evicted, web-2 elsewhere");
    let evictions = c
        .api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .count();
    assert!(evictions >= 2, "refused, then done: {evictions}");

    // A budget that never allows it (its only replica): the action fails
    // at the timeout, saying why, and the hook does not fail.
    c.api
        .add_pod(pod("db-0", &c.node, Some("StatefulSet"), json!({})));
    c.api.add_pdb(
        "default",
        "db",
        json!({"app": "db"}),
        json!({"maxUnavailable": 0}),
    );
    let started = std::time::Instant::now();
    let (run, action) = sim.action("pause", json!({"timeout": 1}));
    run.assert_ok();
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("evicting default/db-0 failed")
            && action.message.contains("disruption budget"),
        "{}",
        action.message
    );
}

/// kubectl drain's rules (k8s.io/kubectl pkg/drain): a finished pod
/// always goes, without force for a bare one or delete-local-data for one
/// with an emptyDir; a pod deleted between the list and its eviction (404)
/// is done, not an error.
#[test]
fn pause_lets_finished_pods_go_and_takes_a_pod_deleted_meanwhile_as_done() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    // web-1 behind a budget that holds its eviction until it has been
    // refused once; old-1 scaled away between the list and its eviction
    // (404); lame-1 behind a budget of its own, scaled away as it is
    // refused (gone on the re-read).
    c.api.web_behind_a_budget(&c.node);
    c.api
        .add_pod(pod("old-1", &c.node, Some("ReplicaSet"), json!({})));
    c.api.delete_pod_after_list("default", "old-1");
    c.api
        .add_pod(pod("lame-1", &c.node, Some("ReplicaSet"), json!({})));
    c.api.add_pdb(
        "default",
        "lame",
        json!({"app": "lame"}),
        json!({"maxUnavailable": 0}),
    );
    let mut job = pod(
        "job-1",
        &c.node,
        None,
        json!({"volumes": [{"name": "scratch", "emptyDir": {}}]}),
    );
    job["status"]["phase"] = json!("Succeeded");
    c.api.add_pod(job);
    let mut failed = pod("batch-1", &c.node, None, json!({}));
    failed["status"]["phase"] = json!("Failed");
    c.api.add_pod(failed);
    c.api.on_refusal(
        ("default", "lame-1"),
        1,
        ("default", "lame-1"),
        PodChange::Delete,
    );
    c.api.on_refusal(
        ("default", "web-1"),
        1,
        ("default", "web-2"),
        PodChange::Ready,
    );
    let (run, action) = sim.action("pause", json!({"timeout": 30}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    // Each pod evicted in the first pass but those refused, as kubectl's
    // one goroutine per pod would.
    assert_eq!(
        action.results["evicted"],
        "default/job-1,default/batch-1,default/web-1"
    );
    assert_eq!(
        action.results["already-gone"],
        "default/old-1,default/lame-1"
    );
    assert_eq!(pod_names(&c), ["web-2"]);
}

/// A DaemonSet's pod stays (as with `--ignore-daemonsets`) while its
/// DaemonSet exists; once the DaemonSet is gone nothing recreates it, and
/// like kubectl the drain deletes it only with force.
#[test]
fn pause_deletes_a_pod_whose_daemonset_is_gone_only_with_force() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    c.api
        .add_pod(pod("flannel-x", &c.node, Some("DaemonSet"), json!({})));
    c.api
        .add_pod(pod("agent-x", &c.node, Some("DaemonSet"), json!({})));
    c.api.delete_daemonset("default", "agent");
    let (run, action) = sim.action("pause", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action
            .message
            .contains("run again with force=true to delete them): default/agent-x"),
        "{}",
        action.message
    );
    assert_eq!(c.api.pods().len(), 2, "nothing evicted");
    let (run, action) = sim.action("pause", json!({"force": true}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    assert_eq!(action.results["evicted"], "default/agent-x");
    assert_eq!(pod_names(&c), ["flannel-x"]);
}

/// An eviction in a namespace being deleted is refused (403,
/// NamespaceTerminating): the drain waits for the namespace controller to
/// delete the pod, as kubectl does, rather than failing.
#[test]
fn pause_waits_for_a_pod_whose_namespace_is_being_deleted() {
    let (sim, _s, c, _rels) = cluster::running(Master::Current);
    let mut p = pod("worker-0", &c.node, Some("ReplicaSet"), json!({}));
    p["metadata"]["namespace"] = json!("scratch");
    c.api.add_pod(p);
    c.api.terminate_namespace("scratch");
    // The namespace controller marks the pod for deletion once the drain
    // has been refused, and deletes it as the drain, having seen the mark,
    // tries once more.
    let pod_0 = ("scratch", "worker-0");
    c.api.on_refusal(pod_0, 1, pod_0, PodChange::MarkDeleted);
    c.api.on_refusal(pod_0, 2, pod_0, PodChange::Delete);
    let (run, action) = sim.action("pause", json!({"timeout": 30}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    assert_eq!(action.results["evicted"], "scratch/worker-0");
    assert!(c.api.pods().is_empty());
    let refused = c
        .api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .count();
    assert!(refused >= 2, "refused, then waited for: {refused}");

    // Not deleted by the deadline: the action fails, naming the pod.
    let mut p = pod("worker-1", &c.node, Some("ReplicaSet"), json!({}));
    p["metadata"]["namespace"] = json!("scratch");
    c.api.add_pod(p);
    let (run, action) = sim.action("pause", json!({"timeout": 1}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("evicting scratch/worker-1 failed")
            && action.message.contains("being terminated"),
        "{}",
        action.message
    );
}

#[test]
fn a_readdressed_machine_asks_for_a_certificate_for_its_new_addresses() {
    let (sim, _s, c, rels) = cluster::running(Master::Current);
    let sans = |sim: &Sim| -> Vec<String> {
        let certs = sim.unit().relation(rels.certs).unwrap().local_unit.clone();
        serde_json::from_str(&certs["sans"]).unwrap()
    };
    // Juju's addresses move with the machine's own; another interface
    // comes up with an address of its own (a compose network's bridge),
    // and one of LXD's, which no certificate names.
    sim.edit_unit(|u| {
        u.public_address = "192.0.2.99".into();
        u.private_address = "10.1.0.99".into();
    });
    sim.edit_machine(|m| {
        m.interfaces[1].addresses[0].local = "10.1.0.99".into();
        for (name, address) in [("br-5f2a", "172.18.0.1"), ("lxdbr0", "10.10.0.1")] {
            m.interfaces.push(Interface {
                name: name.into(),
                operstate: "UP".into(),
                link: None,
                addresses: vec![InterfaceAddress::new(address, 16, "global")],
            });
        }
    });
    sim.hook("config-changed").assert_ok();
    let certs = sim.unit().relation(rels.certs).unwrap().local_unit.clone();
    assert_eq!(certs["common_name"], "192.0.2.99");
    let now = sans(&sim);
    for name in ["192.0.2.99", "10.1.0.99", "127.0.0.1", "172.18.0.1"] {
        assert!(now.contains(&name.to_string()), "{name} in {now:?}");
    }
    for old in ["192.0.2.10", "10.1.0.10", "10.10.0.1"] {
        assert!(!now.contains(&old.to_string()), "{old} in {now:?}");
    }
    assert!(now.iter().any(|s| s.eq_ignore_ascii_case(&c.node)));
    let args = sim.machine().snap_config["kubelet"]["args"].clone();
    assert_eq!(
        common::bash_args(args.as_str().unwrap())["node-ip"],
        "10.1.0.99"
    );
    // Nothing changed since: nothing published again.
    let mark = sim.mark();
    sim.hook("config-changed").assert_ok();
    assert!(sim
        .tool_calls_since(mark)
        .iter()
        .all(|t| t.tool != "relation-set"));

    // `ip` and network-get fail for a moment: the certificate keeps the
    // machine's addresses and kubelet its node IP; nothing is asked,
    // restarted or recorded anew.
    let cache = || std::fs::read(sim.charm_dir().join(".kubernetes-worker-state.json")).unwrap();
    let before = cache();
    sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "ip".into(),
            target: None,
            remaining: 1,
            exit: 1,
            stderr: "Cannot open netlink socket: Too many open files\n".into(),
        })
    });
    sim.edit_unit(|u| {
        u.tool_faults
            .insert("network-get".into(), "connection is shut down".into());
    });
    let mark = sim.mark();
    sim.hook("config-changed").assert_ok();
    sim.edit_unit(|u| u.tool_faults.clear());
    assert!(sim
        .tool_calls_since(mark)
        .iter()
        .all(|t| t.tool != "relation-set"));
    let machine = sim.machine_calls_since(mark);
    assert!(machine.iter().any(|m| m.program == "ip" && m.exit == 1));
    assert!(machine.iter().all(|m| !m.is_mutating()), "{machine:?}");
    assert_eq!(sans(&sim), now);
    assert_eq!(cache(), before);
    let warned = |what: &str| {
        sim.unit()
            .logs
            .iter()
            .any(|l| l.level == "WARNING" && l.message.contains(what))
    };
    assert!(warned("cannot read this machine's addresses"));
    assert!(warned("cannot read the kube-control binding's addresses"));
}
