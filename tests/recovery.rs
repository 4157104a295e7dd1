//! Hooks that do not end as planned: a program that never answers, a hook
//! killed half-way, a unit removed in Juju's order. Each must end in a
//! status that says what happened and converge on a later hook.

mod common;

use std::time::{Duration, Instant};

use common::cluster;
use juju_sim::cluster::Master;
use juju_sim::kill::Moment;
use juju_sim::Sim;

const INTENT_FILE: &str = ".kubernetes-worker-hook-running";

/// Programs are given up on after this long in these tests (the charm's
/// own deadlines are seconds for hook tools, minutes for snapd).
fn short_deadlines(sim: &Sim) {
    sim.edit_unit(|s| {
        s.extra_env
            .insert("CHARM_EXEC_DEADLINE_CAP_MS".into(), "1500".into());
    });
}

#[test]
fn a_wedged_snapd_is_given_up_on_and_the_next_hook_installs() {
    let (sim, _scratch) = common::provisioned();
    short_deadlines(&sim);
    sim.edit_machine(|m| m.hangs = vec!["snap install kubelet".into()]);
    let started = Instant::now();
    let install = sim.hook("install");
    install.assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let (status, message) = sim.status();
    assert_eq!(status, "waiting", "{message}");
    assert!(
        message.contains("snap install kubelet") && message.contains("no answer within 1.5s"),
        "{message}"
    );
    assert!(message.ends_with("retrying on the next hook"), "{message}");
    assert!(sim.charm_dir().join(INTENT_FILE).exists());
    assert!(!sim.machine().snaps.contains_key("kubelet"));

    // snapd answers again: the next hook, whatever it is, does the work.
    sim.edit_machine(|m| m.hangs.clear());
    sim.hook("update-status").assert_ok();
    assert!(sim.machine().snaps.contains_key("kubelet"));
    assert!(sim.machine().snaps.contains_key("kube-proxy"));
    assert!(!sim.charm_dir().join(INTENT_FILE).exists());
    let (status, message) = sim.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.starts_with("Relate kubernetes-worker:"),
        "{message}"
    );
}

#[test]
fn a_wedged_hook_tool_is_given_up_on() {
    let (sim, _scratch, _c, _rels) = cluster::running(Master::Today);
    short_deadlines(&sim);
    sim.edit_unit(|s| {
        s.tool_hangs.insert("config-get".into());
    });
    sim.set_config("labels", "disk=ssd");
    let started = Instant::now();
    sim.hook("config-changed").assert_ok();
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, message) = sim.status();
    assert_eq!(status, "waiting", "{message}");
    assert!(
        message.starts_with("config-get --format=json: no answer within 1.5s"),
        "{message}"
    );

    sim.edit_unit(|s| s.tool_hangs.clear());
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
}

#[test]
fn a_wedged_restart_is_given_up_on_and_redone() {
    let (sim, _scratch, _c, _rels) = cluster::running(Master::Today);
    short_deadlines(&sim);
    let starts = |sim: &Sim| sim.machine().services["snap.kubelet.daemon.service"].starts;
    let before = starts(&sim);
    sim.edit_machine(|m| m.hangs = vec!["systemctl restart snap.kubelet.daemon".into()]);
    sim.configure("kubelet-extra-args", "v=3").assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "waiting", "{message}");
    assert!(
        message.contains("systemctl restart snap.kubelet.daemon"),
        "{message}"
    );

    sim.edit_machine(|m| m.hangs.clear());
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    assert_eq!(starts(&sim), before + 1, "restarted once, by the retry");
    // And then nothing more.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(sim
        .machine_calls_since(mark)
        .iter()
        .all(|c| !c.is_mutating()));
}

/// The number of external calls `hook` makes on a twin of a unit set up
/// by `setup`: runs are deterministic, so the same call has the same
/// number on the unit under test.
fn calls_of(setup: impl Fn() -> Sim, hook: impl Fn(&Sim) -> juju_sim::HookRun) -> u32 {
    let twin = setup();
    let run = hook(&twin);
    run.assert_ok();
    run.calls
}

#[test]
fn ports_dropped_with_a_killed_install_are_opened_again() {
    let setup = || common::provisioned().0;
    let n = calls_of(setup, |s| s.hook("install"));
    // Killed after its last call: the charm had recorded the ports open,
    // and Juju dropped the open-port with the failed hook.
    let sim = setup();
    sim.kill_next(n - 1, Moment::After);
    let run = sim.hook("install");
    assert!(run.killed);
    run.assert_ok();
    assert_eq!(
        sim.unit().ports,
        ["443/tcp", "80/tcp"].map(String::from).into()
    );
}

#[test]
fn relation_data_dropped_with_a_killed_hook_is_published_again() {
    let cluster = juju_sim::cluster::Cluster::new();
    let setup = || {
        let (sim, scratch) = common::provisioned();
        for run in sim.deploy() {
            run.assert_ok();
        }
        // The unit keeps the CNI tarball it was given; the scratch copy
        // outlives the test.
        std::mem::forget(scratch);
        sim
    };
    let data = cluster.kube_control_data(Master::Today);
    let refs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let relate = |sim: &Sim| sim.relate("kube-control", "kubernetes-control-plane");
    // relation-created publishes this unit's side.
    let twin = setup();
    let mark = twin.mark();
    relate(&twin);
    let n = twin.tool_calls_since(mark).len() + twin.machine_calls_since(mark).len();
    let sim = setup();
    // Killed after its last call (its status): the charm had recorded its
    // data published, and Juju dropped the relation-set.
    sim.kill_next(n as u32 - 1, Moment::After);
    let id = relate(&sim);
    assert!(
        sim.unit()
            .hooks
            .iter()
            .rev()
            .nth(1)
            .is_some_and(|h| h.exit != 0),
        "relation-created was killed once"
    );
    for run in sim.join(id, "kubernetes-control-plane/0", &refs) {
        run.assert_ok();
    }
    let rel = sim.unit().relation(id).cloned().unwrap();
    assert_eq!(
        rel.local_unit.get("kubelet_user").map(String::as_str),
        Some(format!("system:node:{}", juju_sim::cluster::hostname()).as_str()),
        "{:?}",
        rel.local_unit
    );
    assert_eq!(
        rel.local_unit.get("auth_group").map(String::as_str),
        Some("system:nodes")
    );
}

#[test]
fn a_lost_cache_is_read_again_and_changes_nothing_on_the_machine() {
    let (sim, _scratch, c, _rels) = cluster::running(Master::Today);
    sim.configure("labels", "disk=ssd").assert_ok();
    let starts = |sim: &Sim| {
        let m = sim.machine();
        (
            m.services["snap.kubelet.daemon.service"].starts,
            m.services["snap.kube-proxy.daemon.service"].starts,
        )
    };
    let before = (starts(&sim), common::tree(&sim.root()));
    let cache = sim.charm_dir().join(".kubernetes-worker-state.json");
    let journal = sim.charm_dir().join(".kubernetes-worker-journal.json");
    std::fs::remove_file(&cache).unwrap();
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
    assert!(
        sim.machine_calls_since(mark)
            .iter()
            .all(|c| !c.is_mutating()),
        "{:?}",
        sim.machine_calls_since(mark)
    );
    assert_eq!((starts(&sim), common::tree(&sim.root())), before);
    assert!(cache.exists() && journal.exists());
    assert_eq!(
        c.api.node(&c.node).unwrap()["metadata"]["labels"]["disk"],
        "ssd"
    );
    // And it is a cache again: the next update-status makes no call.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(
        sim.tool_calls_since(mark).is_empty(),
        "{:?}",
        sim.tool_calls_since(mark)
    );
}

#[test]
fn an_unreadable_cache_is_moved_aside_and_read_again() {
    let (sim, _scratch, _c, _rels) = cluster::running(Master::Today);
    let starts = |sim: &Sim| sim.machine().services["snap.kubelet.daemon.service"].starts;
    let before = (starts(&sim), common::tree(&sim.root()));
    let cache = sim.charm_dir().join(".kubernetes-worker-state.json");
    let text = std::fs::read(&cache).unwrap();
    // Truncated, as a full disk or a crash in the middle of a copy leaves it.
    std::fs::write(&cache, &text[..text.len() / 2]).unwrap();
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
    assert!(sim
        .machine_calls_since(mark)
        .iter()
        .all(|c| !c.is_mutating()));
    assert_eq!((starts(&sim), common::tree(&sim.root())), before);
    let aside = sim
        .charm_dir()
        .join(".kubernetes-worker-state.json.corrupt");
    assert_eq!(std::fs::read(&aside).unwrap(), &text[..text.len() / 2]);
    let warned = sim.unit().logs.iter().any(|l| {
        l.level == "WARNING"
            && l.message.contains("could not be read")
            && l.message.contains(".kubernetes-worker-state.json.corrupt")
    });
    assert!(warned, "{:#?}", sim.unit().logs.last());
}

/// A tmpfs of a given size mounted over a directory of the simulated
/// machine, standing in for a full disk; unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` (the test says it is skipped) where this process may not
    /// mount (not root, or a container that forbids it); `make test` runs
    /// as root.
    fn mount(path: &std::path::Path, size: &str) -> Option<SmallDisk> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SmallDisk(path.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_blocks_naming_what_was_written_and_the_next_hook_finishes() {
    let (sim, _scratch) = common::provisioned();
    let cni = sim.root().join("opt/cni");
    let Some(disk) = SmallDisk::mount(&cni, "64k") else {
        return;
    };
    for run in sim.deploy() {
        run.assert_ok();
    }
    let (status, message) = sim.status();
    assert_eq!(status, "blocked", "{message}");
    // The path on the machine (the simulated one is under a directory).
    let message = message.replace(sim.root().to_str().unwrap(), "");
    assert!(
        message.starts_with("writing /opt/cni/.kubernetes-worker-staging.")
            && message.ends_with(": no space left on device; free some, the next hook tries again"),
        "{message}"
    );
    assert!(!cni.join("bin/loopback").exists());

    // Space again: the next hook, whichever it is, finishes the unpack and
    // leaves nothing of the failed one.
    disk.resize("256m");
    sim.hook("update-status").assert_ok();
    assert!(cni.join("bin/loopback").exists());
    let debris: Vec<_> = std::fs::read_dir(&cni)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
    let (_, message) = sim.status();
    assert!(!message.contains("no space"), "{message}");
}

fn journal(sim: &Sim) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(sim.charm_dir().join(".kubernetes-worker-journal.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn an_install_killed_after_snapd_installed_records_its_snap_as_its_own() {
    let unkilled = {
        let (sim, _scratch) = common::provisioned();
        sim.hook("install").assert_ok();
        journal(&sim)
    };
    assert!(unkilled["snaps"]["kubelet"].get("adopted").is_none());
    for call in [
        "snap install kubelet",
        "snap install kube-proxy",
        "snap install kubectl",
    ] {
        let (sim, _scratch) = common::provisioned();
        sim.kill_next_at(call, Moment::After);
        let killed = sim.hook("install");
        assert!(killed.killed, "{call}");
        // Juju runs the hook again.
        sim.hook("install").assert_ok();
        let retried = journal(&sim);
        assert_eq!(retried["snaps"], unkilled["snaps"], "killed after {call}");
        assert_eq!(retried["snap_pending"], serde_json::json!({}), "{call}");
    }
}
