//! Hooks that do not end as planned: a program that never answers, a hook
//! killed half-way, a unit removed in Juju's order. Each must end in a
//! status that says what happened and converge on a later hook.

mod common;

use std::time::{Duration, Instant};

use common::cluster;
use juju_sim::cluster::Master;
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
