//! Issue 7: the packed charm's real hook binary against real snapd and a
//! real systemd as PID 1, in the LXD system container `make test-lxd`
//! brings up (tests/lxd/setup.sh). The Juju side is still the simulated
//! agent: there is no Juju here. Ignored by a plain `cargo test`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use juju_sim::cluster::{Cluster, Master};
use std::collections::BTreeMap;

use juju_sim::fixtures::{TestSnap, CDK_CONFIGURE, CDK_DAEMON};
use juju_sim::{CharmSource, Sim, SimOptions};

struct Container(String);

impl Container {
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new("lxc")
            .args(["exec", &self.0, "--"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {text}");
        text
    }

    fn daemon_starts(&self, snap: &str) -> Vec<String> {
        let (_, log) = self.run(&["cat", &format!("/var/snap/{snap}/common/daemon.log")]);
        log.lines()
            .filter(|l| l.starts_with("start "))
            .map(str::to_string)
            .collect()
    }

    /// The argv the daemon last started with, as `--key=value` pairs.
    fn argv(&self, snap: &str) -> BTreeMap<String, String> {
        let out = Command::new("lxc")
            .args(["exec", &self.0, "--", "cat"])
            .arg(format!("/var/snap/{snap}/common/argv"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(|arg| {
                let flag = arg.strip_prefix("--").unwrap_or(arg);
                let (k, v) = flag.split_once('=').unwrap_or((flag, "true"));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// Writes `content` to `path` in the container.
    fn write(&self, path: &str, content: &str) {
        use std::io::Write;
        let mut child = Command::new("lxc")
            .args(["exec", &self.0, "--", "sh", "-c"])
            .arg(format!("cat > '{path}'"))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "writing {path}");
    }

    /// Waits (up to 20 s) for the daemon's start count to reach `n`.
    fn wait_for_starts(&self, snap: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let starts = self.daemon_starts(snap);
            if starts.len() >= n || Instant::now() > deadline {
                return starts;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
#[ignore = "needs the LXD container that `make test-lxd` provides"]
fn a_node_on_real_snapd_and_systemd() {
    let c = Container(std::env::var("KW_LXD_CONTAINER").expect("KW_LXD_CONTAINER"));
    let work = PathBuf::from(std::env::var("KW_LXD_WORK").expect("KW_LXD_WORK"));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let arch = juju_sim::host_arch();
    let sim_dir = work.join("sim/unit");
    std::fs::create_dir_all(&sim_dir).unwrap();
    let sim = Sim::in_dir(
        &sim_dir,
        &CharmSource::Packed(repo.join("build/kubernetes-worker.charm")),
        SimOptions {
            exec_in: Some(vec!["lxc".into(), "exec".into(), c.0.clone(), "--".into()]),
            real_machine: true,
            ..SimOptions::default()
        },
    );
    let scratch = work.join("sim/files");
    std::fs::create_dir_all(&scratch).unwrap();
    let plugins = juju_sim::fixtures::cni_plugins_dir(&repo, arch);
    let tgz = juju_sim::fixtures::cni_tarball(&plugins, &scratch.join("cni.tgz"), None);
    sim.attach_file(&format!("cni-{arch}"), &tgz);
    attach_snaps(&sim, "1.31.2", arch, &scratch);

    // Only tunables of the container's own network namespace: a privileged
    // container must not change the host kernel's.
    sim.set_config(
        "sysctl",
        "{net.ipv4.conf.all.forwarding: 1, net.ipv4.neigh.default.gc_thresh3: 32768}",
    );
    for run in sim.deploy() {
        run.assert_ok();
    }
    assert_eq!(
        c.ok(&["cat", "/proc/sys/net/ipv4/conf/all/forwarding"])
            .trim(),
        "1"
    );
    // The neighbour table limits exist only in the host's namespace: inside
    // a container the kernel has no such key, and the charm says so.
    let (code, _) = c.run(&["cat", "/proc/sys/net/ipv4/neigh/default/gc_thresh3"]);
    assert_ne!(code, 0);
    assert!(
        sim.unit().logs.iter().any(|l| l
            .message
            .contains("inside a container the kernel keeps some tunables")
            && l.message.contains("gc_thresh3")),
        "{:?}",
        sim.unit().logs
    );
    let list = c.ok(&["snap", "list"]);
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        let row = list
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not installed: {list}"));
        assert!(
            row.contains(" x1 "),
            "{name} not from the attached file: {row}"
        );
    }
    assert_eq!(c.ok(&["sh", "-c", "ls /opt/cni/bin | wc -l"]).trim(), "16");

    // An interface with an address of its own (the container has no
    // network, so a veth pair inside it): the charm reads the real `ip`'s
    // answer and the certificate request names that address.
    c.ok(&[
        "sh",
        "-c",
        "ip link add kw0 type veth peer name kw1 && ip addr add 198.51.100.9/24 dev kw0 \
         && ip link set kw0 up && ip link set kw1 up",
    ]);
    let cluster = Cluster::for_node(c.ok(&["hostname"]).trim());
    let rels = cluster.relate(&sim, Master::Current);
    let certs = sim.unit().relation(rels.certs).unwrap().local_unit.clone();
    let sans: Vec<String> = serde_json::from_str(&certs["sans"]).unwrap();
    assert!(sans.contains(&"198.51.100.9".to_string()), "{sans:?}");
    // The node is configured and running; the container has no network,
    // so the API server (on this machine's loopback) is out of its reach
    // and the charm's own labels wait, saying why.
    let (status, message) = sim.status();
    assert_eq!(status, "waiting", "{message}");
    assert!(
        message.starts_with(&format!(
            "Waiting to apply node labels: the API server at {} is unreachable",
            cluster.api.url
        )),
        "{message}"
    );
    assert_eq!(
        c.ok(&[
            "systemctl",
            "is-active",
            "snap.kubelet.daemon",
            "snap.kube-proxy.daemon"
        ]),
        "active\nactive\n"
    );
    // Started once by snapd at install and once by the charm once configured,
    // with every flag from `args` as the CDK snaps' wrapper reads it.
    c.wait_for_starts("kubelet", 2);
    let argv = c.argv("kubelet");
    let node = c.ok(&["hostname"]).trim().to_lowercase();
    for (key, value) in [
        ("config", "/root/cdk/kubelet/config.yaml"),
        ("kubeconfig", "/root/cdk/kubeconfig"),
        ("v", "0"),
        (
            "container-runtime-endpoint",
            juju_sim::cluster::CONTAINERD_SOCKET,
        ),
        ("hostname-override", node.as_str()),
    ] {
        assert_eq!(argv.get(key).map(String::as_str), Some(value), "{argv:?}");
    }
    assert!(argv.contains_key("node-ip"), "{argv:?}");
    let config = c.ok(&["cat", "/root/cdk/kubelet/config.yaml"]);
    assert!(config.contains("KubeletConfiguration"), "{config}");
    assert!(
        config.contains("protectKernelDefaults: false"),
        "in a container: {config}"
    );

    // A flag change: kubelet restarts once and its flags arrive verbatim,
    // spaces, `<`, `$` and quotes included.
    let before = c.daemon_starts("kubelet").len();
    let proxy_before = c.daemon_starts("kube-proxy").len();
    sim.configure(
        "kubelet-extra-args",
        r#"v=2 node-labels="a=b c=d" eviction-hard=memory.available<650Mi dollar=$HOME quote=it's"q" esc="say \"hi\" \\ `x`""#,
    )
    .assert_ok();
    let starts = c.wait_for_starts("kubelet", before + 1);
    assert_eq!(starts.len(), before + 1, "{starts:?}");
    let argv = c.argv("kubelet");
    for (key, value) in [
        ("v", "2"),
        ("node-labels", "a=b c=d"),
        ("eviction-hard", "memory.available<650Mi"),
        ("dollar", "$HOME"),
        ("quote", r#"it's"q""#),
        ("esc", r#"say "hi" \ `x`"#),
    ] {
        assert_eq!(argv.get(key).map(String::as_str), Some(value), "{argv:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.daemon_starts("kubelet").len(),
        before + 1,
        "restarted more than once"
    );
    assert_eq!(
        c.daemon_starts("kube-proxy").len(),
        proxy_before,
        "kube-proxy restarted"
    );

    // A converged update-status restarts nothing.
    for _ in 0..2 {
        sim.hook("update-status").assert_ok();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.daemon_starts("kubelet").len(), before + 1);

    cis_benchmark(&c, &sim);

    // snapd busy with another change of the same snap: the charm waits.
    c.ok(&["snap", "set", "--no-wait", "kubelet", "slow-configure=true"]);
    let run = sim.configure("kubelet-extra-args", "v=3");
    run.assert_ok();
    assert!(
        run.stdout.contains("another change is in progress"),
        "the busy path was not taken:\n{}",
        run.stdout
    );
    c.wait_for_starts("kubelet", before + 2);
    assert_eq!(c.argv("kubelet")["v"], "3");
    c.ok(&["snap", "set", "kubelet", "slow-configure=false"]);

    // Issue 12: the same node as the ops charm would have left it, then
    // `juju refresh --switch` to this charm on a unit with no record of
    // its own: nothing restarts.
    let sim = take_over(&c, &work, &repo, &sim, &cluster);

    upgrade_with_drain(&c, &scratch, &sim, &cluster, arch);

    sim.hook("stop").assert_ok();
    let (code, states) = c.run(&[
        "systemctl",
        "is-active",
        "snap.kubelet.daemon",
        "snap.kube-proxy.daemon",
    ]);
    assert_ne!(code, 0);
    assert_eq!(states, "inactive\ninactive\n");
    assert_eq!(sim.unit().error, None);
}

/// Issue 22: the cis-benchmark action on a real machine: kubelet found in
/// the real process table with its real flags, snapd's real unit file,
/// the container's kubelet config. Then `dangerous` restarts kubelet once
/// with its two flags, and `reset` once without them.
fn cis_benchmark(c: &Container, sim: &Sim) {
    let run = |apply: &str| {
        let (run, action) = sim.action("cis-benchmark", serde_json::json!({ "apply": apply }));
        run.assert_ok();
        assert_eq!(action.status, "completed", "{action:?}");
        action.results
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let results = run("none");
    // In a container kubelet cannot protect the kernel's defaults (4.2.6);
    // 4.2.8 warns only if the running kubelet's --hostname-override was
    // seen in the process table.
    assert_eq!(
        text(&results["checks"]),
        "FAIL: 4.2.6; WARN: 4.2.8, 4.2.9, 4.2.13",
        "{results:?}"
    );
    let report = text(&results["report"]);
    let path = report
        .strip_prefix("juju scp kubernetes-worker/0:")
        .and_then(|p| p.strip_suffix(" ."))
        .unwrap();
    let saved = c.ok(&["cat", path]);
    assert!(saved.contains("[PASS] 4.1.1 "), "{saved}");
    assert!(saved.contains("[WARN] 4.2.8 "), "{saved}");
    assert_eq!(
        c.ok(&["stat", "-c", "%a %U:%G", path]).trim(),
        "644 root:root"
    );

    let before = c.daemon_starts("kubelet").len();
    let results = run("dangerous");
    assert_eq!(
        text(&results["summary"]),
        "Applied 2 remediations. Re-run with \"apply=none\" to generate a new report."
    );
    c.wait_for_starts("kubelet", before + 1);
    assert_eq!(c.argv("kubelet")["event-qps"], "0");
    let results = run("none");
    assert_eq!(
        text(&results["checks"]),
        "FAIL: 4.2.6; WARN: 4.2.8",
        "{results:?}"
    );
    run("reset");
    c.wait_for_starts("kubelet", before + 2);
    assert!(!c.argv("kubelet").contains_key("event-qps"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.daemon_starts("kubelet").len(), before + 2);
}

/// YAML as Python's `yaml.dump` orders it (keys sorted, at every level),
/// after a comment line, as charm-lib-kubernetes-snaps writes its files.
fn python_style(yaml: &str, header: &str) -> String {
    fn sorted(v: serde_yaml::Value) -> serde_yaml::Value {
        match v {
            serde_yaml::Value::Mapping(m) => {
                let mut pairs: Vec<(serde_yaml::Value, serde_yaml::Value)> =
                    m.into_iter().collect();
                pairs.sort_by_key(|(k, _)| k.as_str().unwrap_or_default().to_string());
                serde_yaml::Value::Mapping(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            serde_yaml::Value::Sequence(s) => {
                serde_yaml::Value::Sequence(s.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    format!("{header}{}", serde_yaml::to_string(&sorted(value)).unwrap())
}

/// Lays the running node out as today's ops charm leaves it (its file
/// style, its `args` order and quoting, both daemons restarted at the end
/// as it does), takes the unit to a stand-in of that charm (no record of
/// this charm's), then switches to this charm and runs upgrade-charm and
/// config-changed. The daemons' start counts must not change. Returns the
/// new unit.
///
/// The values are those this charm computed in this container: the ops
/// charm would write `protectKernelDefaults: true` and fake the kernel's
/// tunables with bind mounts inside LXD, where this charm writes false (a
/// deliberate difference, in docs/operators/switching.md, which would restart kubelet once);
/// using the container's value keeps this test about the takeover.
fn take_over(
    c: &Container,
    work: &std::path::Path,
    repo: &std::path::Path,
    old: &Sim,
    cluster: &Cluster,
) -> Sim {
    // The test snap's own knob (used above), not a flag the ops charm sets.
    c.ok(&["snap", "unset", "kubelet", "slow-configure"]);
    for (path, header) in [
        (
            "/root/cdk/kubelet/config.yaml",
            "# Generated by charm, do not edit\n",
        ),
        (
            "/root/cdk/kubeproxy/config.yaml",
            "# Generated by kubernetes-common library, do not edit\n",
        ),
        ("/root/cdk/kubeconfig", ""),
        ("/root/cdk/kubeproxyconfig", ""),
        ("/root/.kube/config", ""),
    ] {
        let text = c.ok(&["cat", path]);
        let python = python_style(&text, header);
        assert_ne!(python, text, "{path} is laid out differently");
        c.write(path, &python);
    }
    for snap in ["kubelet", "kube-proxy"] {
        let args = c.ok(&["snap", "get", snap, "args"]);
        // '--%s="%s"' in the ops charm's own order (not sorted).
        let flags = juju_sim::fixtures::bash_argv(args.trim());
        let python: Vec<String> = flags
            .iter()
            .rev()
            .map(|f| {
                let (k, v) = f.trim_start_matches("--").split_once('=').unwrap();
                format!("--{k}=\"{v}\"")
            })
            .collect();
        let python = python.join(" ");
        assert_ne!(python, args.trim());
        c.ok(&["snap", "set", snap, &format!("args={python}")]);
        c.ok(&["systemctl", "restart", &format!("snap.{snap}.daemon")]);
    }
    c.wait_for_starts("kube-proxy", c.daemon_starts("kube-proxy").len());
    std::thread::sleep(Duration::from_secs(1));
    let kubelet_starts = c.daemon_starts("kubelet").len();
    let proxy_starts = c.daemon_starts("kube-proxy").len();

    // The Python charm's unit: same name, same relations, its own charm
    // dir (none of this charm's records).
    let src = work.join("sim/python-charm");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(repo.join("metadata.yaml"), src.join("metadata.yaml")).unwrap();
    std::fs::write(
        src.join("config.yaml"),
        "options:\n  channel: {type: string, default: latest/edge}\n",
    )
    .unwrap();
    std::fs::write(src.join("dispatch"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        src.join("dispatch"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = work.join("sim/switched");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sim = Sim::in_dir(
        &dir,
        &CharmSource::Tree {
            dir: src,
            binaries: vec![],
        },
        SimOptions {
            exec_in: Some(vec!["lxc".into(), "exec".into(), c.0.clone(), "--".into()]),
            real_machine: true,
            ..SimOptions::default()
        },
    );
    let old_unit = old.unit();
    for (key, value) in &old_unit.config {
        sim.set_config(key, value.clone());
    }
    cluster.relate(&sim, Master::Current);
    // The refresh attaches this charm's resources: the same files.
    for (name, file) in &old_unit.resources {
        sim.attach_file(name, file);
    }
    sim.switch_charm(&CharmSource::Packed(
        repo.join("build/kubernetes-worker.charm"),
    ));
    sim.hook("upgrade-charm").assert_ok();
    sim.hook("config-changed").assert_ok();
    std::thread::sleep(Duration::from_secs(2));
    let logs: Vec<String> = sim.unit().logs.iter().map(|l| l.message.clone()).collect();
    assert_eq!(
        c.daemon_starts("kubelet").len(),
        kubelet_starts,
        "kubelet restarted: {logs:#?}"
    );
    assert_eq!(
        c.daemon_starts("kube-proxy").len(),
        proxy_starts,
        "kube-proxy restarted: {logs:#?}"
    );
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        assert!(
            logs.iter().any(
                |l| l.starts_with(&format!("adopted {name} 1.31.2 from the attached resource"))
            ),
            "{logs:#?}"
        );
    }
    let list = c.ok(&["snap", "list"]);
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains(" x1 ")),
            "{name} reinstalled: {list}"
        );
    }
    sim
}

/// Issue 21: one real upgrade of the snaps, drained first. The stand-in
/// API server becomes reachable from the container through an LXD proxy
/// device (the container has no network), and the real kubelet's state
/// (the version of the snap it runs, whether its service is active) is
/// what the node posts, as its kubelet would.
fn upgrade_with_drain(
    c: &Container,
    scratch: &std::path::Path,
    sim: &Sim,
    cluster: &Cluster,
    arch: &str,
) {
    let port = cluster.api.port;
    let out = Command::new("lxc")
        .args(["config", "device", "add", &c.0, "kwapi", "proxy"])
        .arg(format!("listen=tcp:127.0.0.1:{port}"))
        .arg(format!("connect=tcp:127.0.0.1:{port}"))
        .arg("bind=container")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lxc proxy device: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = c.ok(&["hostname"]).trim().to_lowercase();
    let posting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let kubelet = {
        let (name, api, node, posting) = (
            c.0.clone(),
            cluster.api.clone(),
            node.clone(),
            posting.clone(),
        );
        std::thread::spawn(move || {
            let c = Container(name);
            while posting.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, list) = c.run(&["snap", "list", "kubelet"]);
                let version = list
                    .lines()
                    .find(|l| l.starts_with("kubelet "))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .map(str::to_string);
                let (_, active) = c.run(&["systemctl", "is-active", "snap.kubelet.daemon"]);
                api.post_kubelet(&node, version.as_deref(), active.trim() == "active");
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    cluster.api.add_pod(juju_sim::cluster::pod(
        "web-1",
        "web",
        &node,
        Some("ReplicaSet"),
    ));
    cluster.api.add_pod(juju_sim::cluster::pod(
        "flannel-x",
        "flannel",
        &node,
        Some("DaemonSet"),
    ));
    // Now in reach, the node's labels are applied.
    sim.hook("update-status").assert_ok();
    cluster.api.set_version("v1.32.0");
    attach_snaps(sim, "1.32.0", arch, scratch);
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".into(),
            "Needs manual upgrade, run the upgrade action".into()
        )
    );
    let (run, action) = sim.action(
        "upgrade",
        serde_json::json!({"drain-timeout": 60, "ready-timeout": 60}),
    );
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}\n{}", sim.timeline());
    assert!(
        action.results["drain"]
            .as_str()
            .is_some_and(|d| d.starts_with("1 pods evicted")),
        "{action:?}"
    );
    assert_eq!(action.results["uncordoned"], serde_json::json!("true"));
    let list = c.ok(&["snap", "list"]);
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        let row = list
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not installed: {list}"));
        assert!(row.contains(" 1.32.0 "), "{name} not upgraded: {row}");
    }
    assert_eq!(
        c.ok(&[
            "systemctl",
            "is-active",
            "snap.kubelet.daemon",
            "snap.kube-proxy.daemon"
        ]),
        "active\nactive\n"
    );
    let pods: Vec<String> = cluster
        .api
        .pods()
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(pods, ["flannel-x"]);
    let node_now = cluster.api.node(&node).unwrap();
    assert_eq!(node_now["spec"]["unschedulable"], serde_json::json!(false));
    assert_eq!(
        node_now["status"]["nodeInfo"]["kubeletVersion"],
        serde_json::json!("v1.32.0")
    );
    posting.store(false, std::sync::atomic::Ordering::Relaxed);
    kubelet.join().unwrap();
}

/// kubelet, kube-proxy and kubectl of `version`, built like the CDK snaps
/// (their daemon wrapper and configure hook) and attached.
fn attach_snaps(sim: &Sim, version: &str, arch: &str, dir: &std::path::Path) {
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        let mut snap = TestSnap::daemon(name, version, arch);
        if name == "kubectl" {
            snap.apps.retain(|(_, daemon)| daemon.is_none());
        }
        snap.daemon_script = Some(CDK_DAEMON.into());
        snap.configure_script = Some(CDK_CONFIGURE.into());
        sim.attach_file(name, &snap.build(dir));
    }
}
