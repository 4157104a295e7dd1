//! Issue 7: the packed charm's real hook binary against real snapd and a
//! real systemd as PID 1, in the LXD system container `make test-lxd`
//! brings up (tests/lxd/setup.sh). The Juju side is still the simulated
//! agent: there is no Juju here. Ignored by a plain `cargo test`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use juju_sim::cluster::{Cluster, Master};
use juju_sim::fixtures::{TestSnap, RECORDING_DAEMON, SLOW_CONFIGURE};
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
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        let mut snap = TestSnap::daemon(name, "1.31.2", arch);
        if name == "kubectl" {
            snap.apps.retain(|(_, daemon)| daemon.is_none());
        }
        snap.daemon_script = Some(RECORDING_DAEMON.into());
        snap.configure_script = Some(SLOW_CONFIGURE.into());
        sim.attach_file(name, &snap.build(&scratch));
    }

    for run in sim.deploy() {
        run.assert_ok();
    }
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

    let cluster = Cluster::for_node(c.ok(&["hostname"]).trim());
    cluster.relate(&sim, Master::Current);
    assert_eq!(
        sim.status(),
        (
            "active".to_string(),
            "Kubernetes worker running.".to_string()
        )
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
    // reading what the charm set.
    let starts = c.wait_for_starts("kubelet", 2);
    let last = starts.last().unwrap();
    assert!(
        last.contains("\"config\":\"/root/cdk/kubelet/config.yaml\""),
        "{last}"
    );
    assert!(
        last.contains("\"kubeconfig\":\"/root/cdk/kubeconfig\""),
        "{last}"
    );
    let config = c.ok(&["cat", "/root/cdk/kubelet/config.yaml"]);
    assert!(config.contains("KubeletConfiguration"), "{config}");

    // A flag change: kubelet restarts once and reads the new value.
    let before = c.daemon_starts("kubelet").len();
    let proxy_before = c.daemon_starts("kube-proxy").len();
    sim.configure("kubelet-extra-args", "v=2").assert_ok();
    let starts = c.wait_for_starts("kubelet", before + 1);
    assert_eq!(starts.len(), before + 1, "{starts:?}");
    assert!(starts.last().unwrap().contains("\"v\":2"), "{starts:?}");
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

    // snapd busy with another change of the same snap: the charm waits.
    c.ok(&["snap", "set", "--no-wait", "kubelet", "slow-configure=true"]);
    let run = sim.configure("kubelet-extra-args", "v=3");
    run.assert_ok();
    assert!(
        run.stdout.contains("another change is in progress"),
        "the busy path was not taken:\n{}",
        run.stdout
    );
    let starts = c.wait_for_starts("kubelet", before + 2);
    assert!(starts.last().unwrap().contains("\"v\":3"), "{starts:?}");
    c.ok(&["snap", "set", "kubelet", "slow-configure=false"]);

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
