//! The `upgrade` action's checks before it changes anything: the target
//! snaps' versions against the control plane's oldest API server
//! (Kubernetes' version-skew policy), a dry run, and a channel the store
//! does not have.

mod common;

use common::assert_active;
use common::cluster::{Cluster, Master};
use juju_sim::cluster::{pod, ApiServer, PodChange};
use juju_sim::Sim;
use serde_json::json;

/// A running unit on `channel`, held back from upgrades, next to today's
/// control plane.
fn held_on(channel: &str) -> (Sim, tempfile::TempDir, Cluster) {
    let (sim, scratch) = common::provisioned();
    sim.set_config("channel", channel);
    sim.set_config("require-manual-upgrade", true);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    c.relate(&sim, Master::Today);
    assert_active(&sim);
    (sim, scratch, c)
}

fn versions(sim: &Sim) -> Vec<String> {
    let m = sim.machine();
    ["kubectl", "kubelet", "kube-proxy"]
        .iter()
        .map(|s| m.snaps[*s].version.clone())
        .collect()
}

/// The action ran, failed with `says`, and changed nothing on the machine.
fn refused(sim: &Sim, params: serde_json::Value, says: &str) {
    let before = versions(sim);
    let mark = sim.mark();
    let (run, action) = sim.action("upgrade", params);
    run.assert_ok();
    assert_eq!(action.status, "failed", "{action:?}");
    assert!(
        action
            .message
            .starts_with("upgrade refused, nothing changed: "),
        "{}",
        action.message
    );
    assert!(action.message.contains(says), "{}", action.message);
    let changed: Vec<_> = sim
        .machine_calls_since(mark)
        .into_iter()
        .filter(|c| c.is_mutating())
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(versions(sim), before);
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
    );
}

#[test]
fn a_kubelet_newer_than_the_api_server_is_refused() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.31.2");
    sim.configure("channel", "1.32/stable").assert_ok();
    refused(
        &sim,
        json!({}),
        "version skew: kubelet 1.32 is newer than the API server's 1.31: upgrade the control plane first (v1.31.2 at https://127.0.0.1:",
    );
}

#[test]
fn a_kubelet_more_than_three_minors_behind_is_refused() {
    let (sim, _scratch, c) = held_on("1.15/stable");
    c.api.set_version("v1.35.0");
    sim.configure("channel", "1.31/stable").assert_ok();
    refused(
        &sim,
        json!({}),
        "kubelet 1.31 is more than 3 minor versions older than the API server's 1.35",
    );
    // Within the policy, the same upgrade goes ahead.
    c.api.set_version("v1.34.1");
    let (run, action) = sim.action("upgrade", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert_eq!(
        action.results["skew"],
        json!(format!(
            "allowed against the API server's v1.34.1 at {}",
            c.api.url
        ))
    );
    assert_eq!(versions(&sim), ["1.31.2", "1.31.2", "1.31.2"]);
    // 1.15 had its own runtime; 1.31 needs containerd.
    assert_eq!(
        sim.status().1,
        "Relate kubernetes-worker:container-runtime to a container runtime (containerd)"
    );
}

#[test]
fn in_an_ha_control_plane_the_oldest_api_server_counts() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    let second = ApiServer::start(&c.pki, &c.client_token);
    second.set_version("v1.31.2");
    let urls = json!([c.api.url, second.url]).to_string();
    let (id, unit) = sim
        .unit()
        .relations
        .iter()
        .find(|r| r.endpoint == "kube-control")
        .map(|r| (r.id, r.members.iter().next().unwrap().clone()))
        .unwrap();
    sim.change(id, &unit, &[("api-endpoints", &urls)])
        .assert_ok();
    sim.configure("channel", "1.32/stable").assert_ok();
    refused(
        &sim,
        json!({}),
        &format!(
            "newer than the API server's 1.31: upgrade the control plane first (v1.31.2 at {})",
            second.url
        ),
    );
}

#[test]
fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    let before = versions(&sim);
    let mark = sim.mark();
    let asked = c.api.requests().len();
    let (run, action) = sim.action("upgrade", json!({"dry-run": true}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        assert_eq!(action.results[snap], json!("from 1.31.2 to 1.32.0"));
    }
    assert_eq!(action.results["dry-run"], json!("true"));
    assert!(action.results["skew"]
        .as_str()
        .unwrap()
        .starts_with("allowed against the API server's v1.32.0"));
    let changed: Vec<_> = sim
        .machine_calls_since(mark)
        .into_iter()
        .filter(|c| c.is_mutating())
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(versions(&sim), before);
    // Nothing that needs the cluster either: it was only read.
    let writes: Vec<String> = c.api.requests()[asked..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
    );
}

#[test]
fn an_unreachable_store_is_refused_before_anything_changes() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    sim.edit_machine(|m| m.store_unreachable = true);
    refused(
        &sim,
        json!({}),
        "cannot reach the snap store to learn which kubectl 1.32/stable serves",
    );
}

#[test]
fn a_channel_the_store_does_not_have_is_refused_before_anything_changes() {
    let (sim, _scratch, _c) = held_on("1.31/stable");
    sim.configure("channel", "1.40/stable").assert_ok();
    refused(
        &sim,
        json!({}),
        "the snap store has no kubectl on channel 1.40/stable",
    );
}

fn cordoned(c: &Cluster) -> bool {
    c.api.node(&c.node).unwrap()["spec"]["unschedulable"] == json!(true)
}

fn posted_kubelet(c: &Cluster) -> serde_json::Value {
    c.api.node(&c.node).unwrap()["status"]["nodeInfo"]["kubeletVersion"].clone()
}

#[test]
fn the_node_is_drained_upgraded_and_uncordoned_once_ready_on_the_new_kubelet() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    // Two replicas behind a budget of one healthy pod: the other is not
    // Ready yet, so this node's may not go until it is.
    c.api.web_behind_a_budget(&c.node);
    c.api
        .add_pod(pod("flannel-x", "flannel", &c.node, Some("DaemonSet")));
    // A finished Job's pod goes with no option; a bare running pod would
    // need force=true.
    let mut done = pod("done-1", "done", &c.node, None);
    done["status"]["phase"] = json!("Succeeded");
    c.api.add_pod(done);
    c.api.add_pod(pod("debug", "debug", &c.node, None));
    sim.configure("channel", "1.32/stable").assert_ok();

    let (run, action) = sim.action("upgrade", json!({"dry-run": true}));
    run.assert_ok();
    assert_eq!(
        action.results["evicts"],
        json!("default/web-1,default/done-1; finished, they simply go: default/done-1; needing force=true: default/debug")
    );
    assert!(!cordoned(&c));
    // With force=true the same dry run needs nothing more.
    let (_, action) = sim.action("upgrade", json!({"dry-run": true, "force": true}));
    assert_eq!(
        action.results["evicts"],
        json!(
            "default/web-1,default/done-1,default/debug; finished, they simply go: default/done-1"
        )
    );
    c.api.delete_pod("default", "debug");

    // The other replica comes up while the drain waits.
    c.api.on_refusal(
        ("default", "web-1"),
        1,
        ("default", "web-2"),
        PodChange::Ready,
    );
    let (run, action) = sim.action("upgrade", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert_eq!(
        action.results["drain"]
            .as_str()
            .unwrap()
            .split(" in ")
            .next(),
        Some("2 pods evicted")
    );
    assert!(action.results["ready"]
        .as_str()
        .unwrap()
        .starts_with("Ready on kubelet 1.32.0 after "));
    assert_eq!(action.results["uncordoned"], json!("true"));
    assert_eq!(posted_kubelet(&c), json!("v1.32.0"));
    assert!(!cordoned(&c));
    // The DaemonSet's pod stays; the budget's was retried, then evicted.
    let pods: Vec<String> = c
        .api
        .pods()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pods, ["web-2", "flannel-x"]);
    let requests = c.api.requests();
    let evictions = requests
        .iter()
        .filter(|r| r.path.ends_with("/web-1/eviction"))
        .count();
    assert!(
        evictions >= 2,
        "refused while web-2 was not Ready: {evictions}"
    );
    // Cordoned before the evictions, uncordoned last.
    let cordon = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.body["spec"]["unschedulable"] == json!(true))
        .unwrap();
    let first_eviction = requests
        .iter()
        .position(|r| r.path.ends_with("/eviction"))
        .unwrap();
    assert!(cordon < first_eviction);
    let statuses: Vec<String> = sim
        .unit()
        .status_history
        .iter()
        .map(|s| s.message.clone())
        .collect();
    for step in [
        format!("Draining node {} for its upgrade", c.node),
        format!("Waiting for node {} to be Ready on kubelet 1.32.0", c.node),
        format!("Uncordoning node {}", c.node),
    ] {
        assert!(statuses.contains(&step), "{step}: {statuses:?}");
    }
    assert_eq!(versions(&sim), ["1.32.0", "1.32.0", "1.32.0"]);
    assert_active(&sim);
}

#[test]
fn a_node_that_never_becomes_ready_stays_cordoned_and_the_unit_blocked() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    // The new kubelet exits as soon as it starts.
    sim.edit_machine(|m| {
        m.crashing.insert("snap.kubelet.daemon.service".into());
    });
    let (run, action) = sim.action("upgrade", json!({"ready-timeout": 3}));
    run.assert_ok();
    assert_eq!(action.status, "failed", "{action:?}");
    let said = format!(
        "Upgrade stopped: node {} not Ready on kubelet 1.32.0 after 3 s (Kubelet stopped posting node status.); it stays cordoned. Fix the node, then run the upgrade action again",
        c.node
    );
    assert_eq!(action.message, said);
    assert!(cordoned(&c));
    assert_eq!(sim.status(), ("blocked".into(), said.clone()));
    // Hooks keep saying so, and never uncordon it.
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status(), ("blocked".into(), said));
    assert!(cordoned(&c));
    // Fixed, and run again: the node comes back.
    sim.edit_machine(|m| {
        m.crashing.clear();
    });
    let (run, action) = sim.action("upgrade", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert!(!cordoned(&c));
    assert_eq!(posted_kubelet(&c), json!("v1.32.0"));
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
}

#[test]
fn an_upgrade_killed_after_the_refresh_is_finished_by_the_next_hook() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    sim.kill_next_at("snap refresh kube-proxy", juju_sim::kill::Moment::After);
    let (run, _) = sim.action("upgrade", json!({}));
    assert!(run.killed);
    assert!(cordoned(&c));
    // Juju's next hook after a kill: the node is configured for the new
    // version, found Ready on it, and uncordoned.
    sim.hook("update-status").assert_ok();
    assert!(!cordoned(&c), "{}", sim.timeline());
    assert_eq!(posted_kubelet(&c), json!("v1.32.0"));
    assert_active(&sim);
}

#[test]
fn an_upgrade_killed_on_a_node_that_does_not_come_back_says_where_it_stopped() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    sim.edit_machine(|m| {
        m.crashing.insert("snap.kubelet.daemon.service".into());
    });
    sim.kill_next_at("snap refresh kube-proxy", juju_sim::kill::Moment::After);
    let (run, _) = sim.action("upgrade", json!({}));
    assert!(run.killed);
    sim.hook("update-status").assert_ok();
    assert!(cordoned(&c));
    let (kind, message) = sim.status();
    assert_eq!(kind, "blocked");
    assert!(
        message.starts_with(&format!(
            "Upgrade interrupted before node {} was Ready on kubelet 1.32.0 (",
            c.node
        )),
        "{message}"
    );
    assert!(message.ends_with("; it stays cordoned. Run the upgrade action again"));
}

/// Killed at each step (as each step's status is set, and around the
/// refreshes), the upgrade converges: the next hook finishes it if the
/// node is Ready on the new kubelet, else says where it stopped with the
/// node still cordoned, and the action run again finishes it. Never an
/// active status on a cordoned node.
#[test]
fn an_upgrade_killed_at_any_step_converges() {
    use juju_sim::kill::Moment;
    for (call, moment) in [
        ("status-set maintenance -- Draining node", Moment::After),
        ("snap refresh kubectl", Moment::Before),
        ("snap refresh kubelet", Moment::After),
        ("status-set maintenance -- Waiting for node", Moment::After),
        ("status-set maintenance -- Uncordoning node", Moment::After),
    ] {
        let (sim, _scratch, c) = held_on("1.31/stable");
        c.api.set_version("v1.32.0");
        c.api
            .add_pod(pod("web-1", "web", &c.node, Some("ReplicaSet")));
        sim.configure("channel", "1.32/stable").assert_ok();
        sim.kill_next_at(call, moment);
        let (run, _) = sim.action("upgrade", json!({}));
        assert!(run.killed, "{call}: not reached\n{}", sim.timeline());
        sim.hook("update-status").assert_ok();
        let (status, message) = sim.status();
        if status == "active" {
            assert!(!cordoned(&c), "{call}: active while cordoned");
        } else {
            assert_eq!(status, "blocked", "{call}: {message}");
            assert!(
                message.starts_with(&format!(
                    "Upgrade interrupted before node {} was Ready on kubelet 1.32.0",
                    c.node
                )),
                "{call}: {message}"
            );
            // It says whether the node is cordoned, as it is.
            assert_eq!(
                message.contains("; it stays cordoned"),
                cordoned(&c),
                "{call}: {message}"
            );
            let (run, action) = sim.action("upgrade", json!({}));
            run.assert_ok();
            assert_eq!(action.status, "completed", "{call}: {action:?}");
            sim.hook("update-status").assert_ok();
        }
        assert_active(&sim);
        assert!(!cordoned(&c), "{call}");
        assert_eq!(posted_kubelet(&c), json!("v1.32.0"), "{call}");
        assert_eq!(versions(&sim), ["1.32.0", "1.32.0", "1.32.0"], "{call}");
    }
}

/// The store publishes a new patch on the channel while the drain waits:
/// the refresh installs it, the node posts it, and the wait for Ready
/// looks for the version installed, not the one the plan read.
#[test]
fn the_wait_for_ready_looks_for_the_kubelet_the_refresh_installed() {
    let (sim, _scratch, c) = held_on("1.31/stable");
    c.api.set_version("v1.32.0");
    c.api.web_behind_a_budget(&c.node);
    sim.configure("channel", "1.32/stable").assert_ok();
    let (run, action) = std::thread::scope(|scope| {
        // While the drain waits on the budget, the store publishes a new
        // patch; then the other replica comes up.
        scope.spawn(|| {
            c.api.wait_for_refusals("default", "web-1", 1);
            sim.edit_machine(|m| {
                let kubelet = m
                    .store
                    .get_mut("kubelet")
                    .and_then(|channels| channels.get_mut("1.32/stable"))
                    .unwrap();
                kubelet.version = "1.32.1".into();
                kubelet.revision += 1;
            });
            c.api.set_pod_ready("default", "web-2", true);
        });
        sim.action("upgrade", json!({"ready-timeout": 20}))
    });
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert_eq!(
        action.results["kubelet"],
        json!("installed kubelet from the store (1.32/stable): version 1.32.1")
    );
    assert!(
        action.results["ready"]
            .as_str()
            .unwrap()
            .starts_with("Ready on kubelet 1.32.1 after "),
        "{action:?}"
    );
    assert_eq!(posted_kubelet(&c), json!("v1.32.1"));
    assert!(!cordoned(&c));
}
