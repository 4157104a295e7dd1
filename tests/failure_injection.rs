//! Failure injection: a whole deployment (install to active, a config
//! change, a relation change, an upgrade, a removal) is run once, with the
//! unit's state (and the API server's) saved at the start of every hook,
//! to learn what each hook does and how many external calls it makes.
//! Then, for every one of those calls, the hook that makes it is run again
//! from its saved start, killed just before the call (one test) or just
//! after it (the other), and retried as Juju does. After the retry the
//! world must be what it was after the unkilled hook: files (path, kind,
//! mode, owner, content), snaps and their options, services, published
//! relation data, ports, status, the node in the API server, the applied
//! objects, and the charm's journal (what it knows of the machine: a
//! retried hook must not record its own work as someone else's). That is
//! stricter than comparing at the end of the deployment, where a later
//! hook could mend what the retry got wrong, and it costs one hook and its
//! retry per point, not the whole deployment: linear in the calls.
//!
//! The points are counted by the simulated tools and programs themselves,
//! so a new external call is covered without a change here. The number of
//! points and the time taken are printed (`--nocapture`); the count is
//! quoted in docs/operators/when-things-go-wrong.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cluster::{ApiServer, ApiState, Cluster, Master};
use juju_sim::kill::Moment;
use juju_sim::snapshot::{HookStart, Recorded};
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

fn world(sim: &Sim, api: &ApiServer, node: &str) -> World {
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
        node: api
            .node(node)
            .map(|n| serde_json::to_string(&n["metadata"]["labels"]).unwrap()),
        objects: api
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

/// One hook of the recorded deployment: its starting state (the unit's,
/// and the API server's), what it did, and the world after it.
struct Hook {
    start: HookStart,
    api: ApiState,
    exit: i32,
    calls: u32,
    after: Option<World>,
}

/// The deployment, step by step, with every hook recorded under
/// `snapshots`: the unit (kept alive for replays), its hooks, the state
/// after the upgrade (with its relations) and at the end (removed), and
/// the calls counted over the whole deployment.
fn scenario(
    cluster: &Cluster,
    snapshots: &Path,
) -> (Sim, tempfile::TempDir, Vec<Hook>, World, World, u32) {
    cluster.api.reset();
    // kubelet registers the node as it starts.
    cluster.api.add_node(&cluster.node);
    let (sim, scratch) = common::provisioned();
    // Small tarballs, made once: the point is the calls around them.
    sim.attach_file(&format!("cni-{}", common::arch()), tarballs().0);
    let hooks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Hook>::new()));
    {
        let (hooks, api, node) = (hooks.clone(), cluster.api.clone(), cluster.node.clone());
        sim.record_hooks(snapshots, move |sim, recorded| {
            let mut hooks = hooks.lock().unwrap();
            match recorded {
                Recorded::Before(start) => hooks.push(Hook {
                    start: start.clone(),
                    api: api.save(),
                    exit: -1,
                    calls: 0,
                    after: None,
                }),
                Recorded::After(start, run) => {
                    let hook = &mut hooks[start.index];
                    hook.exit = run.exit;
                    hook.calls = run.calls;
                    hook.after = Some(world(sim, &api, &node));
                }
            }
        });
    }
    sim.kill_overall(None);
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
    let upgraded = world(&sim, &cluster.api, &cluster.node);
    for run in sim.remove_unit() {
        run.assert_ok();
    }
    let removed = world(&sim, &cluster.api, &cluster.node);
    sim.stop_recording();
    let calls = sim.calls_overall();
    let hooks = std::mem::take(&mut *hooks.lock().unwrap());
    (sim, scratch, hooks, upgraded, removed, calls)
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
    if common::arch() != juju_sim::host_arch() {
        // The points are the charm's logic, the same on every
        // architecture: run with the native binary (amd64's in make
        // test), not again under qemu for each other one.
        println!("failure injection runs with the native binary only");
        return;
    }
    let began = std::time::Instant::now();
    let cluster = Cluster::new();
    let snapshots = tempfile::tempdir().unwrap();
    let (sim, _scratch, hooks, upgraded, removed, points) = scenario(&cluster, snapshots.path());
    assert_eq!(upgraded.status.0, "active", "{:?}", upgraded.status);
    // Deterministic: the same run twice ends the same, hook by hook.
    {
        let snapshots = tempfile::tempdir().unwrap();
        let (_sim, _scratch, again, upgraded_again, removed_again, points_again) =
            scenario(&cluster, snapshots.path());
        assert_eq!(
            (&upgraded_again, &removed_again, points_again),
            (&upgraded, &removed, points),
            "{}",
            diff(&upgraded, &upgraded_again)
        );
        assert_eq!(again.len(), hooks.len());
        for (a, b) in hooks.iter().zip(&again) {
            assert_eq!(
                a.after, b.after,
                "hook {} ({}) ended differently in a second run",
                a.start.index, a.start.name
            );
        }
    }
    // Every call of the deployment belongs to one recorded hook.
    assert_eq!(
        hooks.iter().map(|h| h.calls).sum::<u32>(),
        points,
        "calls outside the recorded hooks"
    );
    // A hook run again from its saved start does exactly what it did:
    // the snapshot holds all the state the hook reads.
    for hook in &hooks {
        cluster.api.restore(&hook.api);
        let run = sim.replay(&hook.start, None);
        let after = world(&sim, &cluster.api, &cluster.node);
        assert_eq!(
            (run.exit, run.calls),
            (hook.exit, hook.calls),
            "hook {} ({}) replayed from its start",
            hook.start.index,
            hook.start.name
        );
        assert!(
            Some(&after) == hook.after.as_ref(),
            "hook {} ({}) replayed from its start ended differently:\n{}",
            hook.start.index,
            hook.start.name,
            diff(hook.after.as_ref().unwrap(), &after)
        );
    }
    println!(
        "failure injection: {points} external calls in {} hooks, each killed {moment:?}",
        hooks.len()
    );
    // Each point: the hook that makes the call, from its start, killed
    // there and retried as Juju retries it, must leave the world as the
    // unkilled hook left it (a later hook cannot mend it).
    let mut failures = Vec::new();
    let mut checked = 0;
    for hook in &hooks {
        let expected = hook.after.as_ref().unwrap();
        for at in 0..hook.calls {
            cluster.api.restore(&hook.api);
            let run = sim.replay(&hook.start, Some((at, moment)));
            checked += 1;
            let name = format!(
                "hook {} ({}) call {at} of {} {moment:?}",
                hook.start.index, hook.start.name, hook.calls
            );
            if !run.killed {
                failures.push(format!("{name}: never reached the call"));
                continue;
            }
            if run.exit != hook.exit {
                failures.push(format!(
                    "{name}: the retry exited {}\n{}{}",
                    run.exit, run.stdout, run.stderr
                ));
            }
            let after = world(&sim, &cluster.api, &cluster.node);
            if &after != expected {
                failures.push(format!(
                    "{name}: after the retry\n{}",
                    diff(expected, &after)
                ));
            }
        }
    }
    println!(
        "failure injection: {checked} kill points checked {moment:?} their call in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert_eq!(checked, points);
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
