//! The `upgrade` action's checks before it changes anything: the target
//! snaps' versions against the control plane's oldest API server
//! (Kubernetes' version-skew policy), a dry run, and a channel the store
//! does not have.

mod common;

use common::assert_active;
use common::cluster::{Cluster, Master};
use juju_sim::cluster::ApiServer;
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
    // Nothing that needs the cluster either: no write reached it.
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
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
