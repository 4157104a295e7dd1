//! Failure injection: a whole deployment (install to active, a config
//! change, a relation change, an upgrade, a removal) is run once to learn
//! its final state and how many external calls the charm makes; then once
//! more for every one of those calls, with the hook killed just before it
//! (one test) or just after it (the other) and retried as Juju does. Every
//! run must end in the same state: files (path, kind, mode, owner,
//! content), snaps and their options, services, published relation data,
//! ports, status, the node in the API server, and the charm's journal (what
//! it knows of the machine: a retried hook must not record its own work as
//! someone else's).
//!
//! The points are counted by the simulated tools and programs themselves,
//! so a new external call is covered without a change here. The number of
//! points is printed (`--nocapture`) and quoted in
//! docs/operators/when-things-go-wrong.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cluster::{Cluster, Master};
use juju_sim::kill::Moment;
use juju_sim::Sim;

/// What an operator (or the cluster) can observe of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct World {
    files: BTreeMap<String, String>,
    snaps: BTreeMap<String, String>,
    snap_config: String,
    services: BTreeMap<String, (bool, bool)>,
    relations: BTreeMap<String, BTreeMap<String, String>>,
    ports: BTreeSet<String>,
    status: (String, String),
    workload_version: String,
    node: Option<String>,
    /// The objects applied through the API server (the ingress controller).
    objects: BTreeMap<String, String>,
    /// The charm's journal, as JSON.
    journal: String,
}

fn files(root: &Path) -> BTreeMap<String, String> {
    common::tree(root)
        .into_iter()
        .map(|rel| {
            let path = root.join(&rel);
            let meta = path.symlink_metadata().unwrap();
            let what = if meta.is_dir() {
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else {
                charm::resources::Fingerprint::of(std::fs::read(&path).unwrap())
            };
            let desc = format!(
                "{:o} {}:{} {what}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            );
            (rel, desc)
        })
        .collect()
}

fn world(sim: &Sim, cluster: &Cluster) -> World {
    let machine = sim.machine();
    let unit = sim.unit();
    World {
        files: files(&sim.root()),
        snaps: machine
            .snaps
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    format!(
                        "{} {} {:?} held={}",
                        s.version, s.revision, s.channel, s.held
                    ),
                )
            })
            .collect(),
        snap_config: serde_json::to_string(&machine.snap_config).unwrap(),
        services: machine
            .services
            .iter()
            .map(|(name, s)| (name.clone(), (s.active, s.enabled)))
            .collect(),
        relations: unit
            .relations
            .iter()
            .map(|r| (r.rid(), r.local_unit.clone()))
            .collect(),
        ports: unit.ports.clone(),
        status: sim.status(),
        workload_version: unit.workload_version.clone(),
        node: cluster
            .api
            .node(&cluster.node)
            .map(|n| serde_json::to_string(&n["metadata"]["labels"]).unwrap()),
        objects: cluster
            .api
            .objects()
            .into_iter()
            .map(|(path, body)| (path, charm::resources::Fingerprint::of(body.to_string())))
            .collect(),
        journal: journal(sim),
    }
}

/// The journal, one field a line. Nothing in it may differ between a
/// killed and an unkilled run: it holds facts (sources, fingerprints of
/// content, names), no inode numbers or times.
fn journal(sim: &Sim) -> String {
    let path = sim.charm_dir().join(".kubernetes-worker-journal.json");
    let value: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    serde_json::to_string_pretty(&value).unwrap()
}

/// The deployment, step by step; the state after the upgrade (with its
/// relations) and at the end (removed).
fn scenario(cluster: &Cluster, kill: Option<(u32, Moment)>) -> (World, World, u32) {
    cluster.api.reset();
    // kubelet registers the node as it starts.
    cluster.api.add_node(&cluster.node);
    let (sim, _scratch) = common::provisioned();
    // Small tarballs, made once: the point is the calls around them.
    sim.attach_file(&format!("cni-{}", common::arch()), tarballs().0);
    sim.kill_overall(kill);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let rels = cluster.relate(&sim, Master::Today);
    // Observability: grafana-agent, and the COS token from the control plane.
    let agent = sim.relate("cos-agent", "grafana-agent");
    for run in sim.join(agent, "grafana-agent/0", &[]) {
        run.assert_ok();
    }
    let tokens = sim.relate("tokens", "kubernetes-control-plane");
    let answer = serde_json::json!({ format!("system:cos:{}", cluster.node): "uid-9::cos" });
    for run in sim.join(
        tokens,
        "kubernetes-control-plane/0",
        &[("tokens", &answer.to_string())],
    ) {
        run.assert_ok();
    }
    sim.configure("kubelet-extra-args", "v=3").assert_ok();
    // The ingress controller, re-applied with a changed ConfigMap.
    sim.configure("ingress-use-forwarded-headers", true)
        .assert_ok();
    sim.change(rels.cni, "flannel/0", &[("cidr", "\"10.2.0.0/16\"")])
        .assert_ok();
    sim.attach_file(&format!("cni-{}", common::arch()), tarballs().1);
    sim.hook("upgrade-charm").assert_ok();
    sim.hook("config-changed").assert_ok();
    sim.hook("update-status").assert_ok();
    let upgraded = world(&sim, cluster);
    for run in sim.remove_unit() {
        run.assert_ok();
    }
    let removed = world(&sim, cluster);
    (upgraded, removed, sim.calls_overall())
}

/// A three-plugin tarball to deploy with and a two-plugin one to upgrade
/// to, built once per test process.
fn tarballs() -> (&'static Path, &'static Path) {
    static TARBALLS: std::sync::OnceLock<(
        tempfile::TempDir,
        std::path::PathBuf,
        std::path::PathBuf,
    )> = std::sync::OnceLock::new();
    let (_, three, two) = TARBALLS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, plugins: &[&str]| {
            let sub = dir.path().join(name);
            std::fs::create_dir(&sub).unwrap();
            common::cni_tgz(&sub, common::arch(), Some(plugins))
        };
        let three = make("three", &["bridge", "host-local", "loopback"]);
        let two = make("two", &["bridge", "loopback"]);
        (dir, three, two)
    });
    (three, two)
}

fn diff(a: &World, b: &World) -> String {
    let mut out = String::new();
    let (da, db) = (format!("{a:#?}"), format!("{b:#?}"));
    let la: Vec<&str> = da.lines().collect();
    let lb: Vec<&str> = db.lines().collect();
    for line in la.iter().filter(|l| !lb.contains(l)) {
        out.push_str(&format!("- {line}\n"));
    }
    for line in lb.iter().filter(|l| !la.contains(l)) {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

fn every_point(moment: Moment) {
    if std::env::var_os("KW_TEST_BINARY").is_some() {
        // The points are the charm's logic, the same on every
        // architecture: run with the native binary (make unit-tests), not
        // again under qemu for each shipped one.
        println!("failure injection runs with the native test binary only");
        return;
    }
    let cluster = Cluster::new();
    let (upgraded, removed, points) = scenario(&cluster, None);
    assert_eq!(upgraded.status.0, "active", "{:?}", upgraded.status);
    // Deterministic: the same run twice ends the same.
    let again = scenario(&cluster, None);
    assert_eq!(
        (&again.0, &again.1),
        (&upgraded, &removed),
        "{}",
        diff(&upgraded, &again.0)
    );
    println!("failure injection: {points} external calls, each killed {moment:?}");
    let mut failures = Vec::new();
    for at in 0..points {
        let (u, r, _) = scenario(&cluster, Some((at, moment)));
        if u != upgraded {
            failures.push(format!(
                "call {at} {moment:?}: after the upgrade\n{}",
                diff(&upgraded, &u)
            ));
        }
        if r != removed {
            failures.push(format!(
                "call {at} {moment:?}: after removal\n{}",
                diff(&removed, &r)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {points} kill points diverged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn killed_before_any_call_the_deployment_ends_the_same() {
    every_point(Moment::Before);
}

#[test]
fn killed_after_any_call_the_deployment_ends_the_same() {
    every_point(Moment::After);
}
