//! The rolling upgrade (issue 21): the operator runs `upgrade all-units=true`
//! once on the leader, and the units upgrade one at a time through the
//! `coordinator` peer relation, the leader last; the first unit that fails
//! stops the roll. Several simulated units, each on a machine with its own
//! host name (so each is its own node in one API server), pass relation
//! data to each other as Juju does ([`juju_sim::application`]).
//!
//! The host names need root (hooks in their own UTS namespace); where that
//! cannot be had the tests say they are skipped.

mod common;

use common::assert_active;
use common::cluster::{Cluster, Master};
use juju_sim::application::Application;
use juju_sim::{Host, Sim};
use serde_json::json;

struct Workers {
    app: Application,
    /// The cluster as unit 0 sees it; `views[n]` as unit n does.
    c: Cluster,
    views: Vec<Cluster>,
    _scratch: Vec<tempfile::TempDir>,
}

fn host(n: u32) -> Host {
    Host {
        hostname: format!("worker-{n}"),
        hosts: format!("127.0.0.1 localhost\n10.1.0.{} worker-{n}\n", 10 + n),
    }
}

/// Unit `n` on 1.31, held back from upgrades, deployed and related to the
/// cluster, its channel already `channel`.
fn deployed(n: u32, c: &Cluster, channel: &str) -> (Sim, tempfile::TempDir, Cluster) {
    let (sim, scratch) = common::provisioned_as(n, Some(host(n)));
    sim.set_config("channel", channel);
    sim.set_config("require-manual-upgrade", true);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let view = c.peer(&format!("worker-{n}"));
    view.relate(&sim, Master::Today);
    assert_active(&sim);
    (sim, scratch, view)
}

/// Three units on 1.31, their channel then moved to 1.32 (held back), the
/// control plane on 1.32.
fn three_held_back() -> Option<Workers> {
    if let Err(why) = Host::possible() {
        eprintln!("skipped: {why}");
        return None;
    }
    let c = Cluster::for_node("worker-0");
    let (mut sims, mut scratch, mut views) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..3 {
        let (sim, dir, view) = deployed(n, &c, "1.31/stable");
        sims.push(sim);
        scratch.push(dir);
        views.push(view);
    }
    let app = Application::new(sims, "coordinator");
    c.api.set_version("v1.32.0");
    for sim in &app.units {
        sim.configure("channel", "1.32/stable").assert_ok();
        assert_eq!(
            sim.status(),
            (
                "blocked".into(),
                "Needs manual upgrade, run the upgrade action".into()
            )
        );
    }
    for run in app.settle() {
        run.assert_ok();
    }
    Some(Workers {
        app,
        c,
        views,
        _scratch: scratch,
    })
}

/// The `upgrade` action with `params`, which must complete; its results.
fn upgraded(sim: &Sim, params: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let (run, action) = sim.action("upgrade", params);
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    action.results
}

/// Juju propagates every unit's relation changes until none is left.
fn settle(w: &Workers) {
    for run in w.app.settle() {
        run.assert_ok();
    }
}

fn kubelet(sim: &Sim) -> String {
    sim.machine().snaps["kubelet"].version.clone()
}

/// Every cordon and uncordon the API server saw, in order: (node, cordoned).
fn cordons(c: &Cluster) -> Vec<(String, bool)> {
    c.api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with("/api/v1/nodes/"))
        .filter_map(|r| {
            let node = r.path.trim_start_matches("/api/v1/nodes/");
            let node = node.split('?').next().unwrap_or(node).to_string();
            r.body["spec"]["unschedulable"]
                .as_bool()
                .map(|cordoned| (node, cordoned))
        })
        .collect()
}

fn statuses(sim: &Sim) -> Vec<(String, String)> {
    sim.unit()
        .status_history
        .iter()
        .map(|s| (s.status.clone(), s.message.clone()))
        .collect()
}

fn roll_in_app_bag(w: &Workers) -> Option<String> {
    let leader = w.app.units[0].unit();
    leader
        .relation(w.app.id(0))
        .unwrap()
        .local_app
        .get("upgrade-roll")
        .cloned()
}

#[test]
fn the_units_upgrade_one_at_a_time_in_order_the_leader_last() {
    let Some(mut w) = three_held_back() else {
        return;
    };
    let results = upgraded(&w.app.units[0], json!({"all-units": true}));
    assert_eq!(
        results["order"],
        json!("kubernetes-worker/1,kubernetes-worker/2,kubernetes-worker/0")
    );
    assert_eq!(results["to"], json!("1.32.0"));
    // Nothing changed in the action itself: the first turn is unit 1's,
    // taken in its own hook.
    assert_eq!(kubelet(&w.app.units[0]), "1.31.2");
    assert_eq!(
        w.app.units[0].status(),
        (
            "waiting".into(),
            "Upgrade to 1.32.0 queued (2 ahead)".into()
        )
    );

    // A unit added while the roll runs installs 1.32 directly and is no
    // part of the roll.
    let (newcomer, dir, view) = deployed(3, &w.c, "1.32/stable");
    assert_eq!(kubelet(&newcomer), "1.32.0");
    w._scratch.push(dir);
    w.views.push(view);
    for run in w.app.add(newcomer) {
        run.assert_ok();
    }

    assert_eq!(
        cordons(&w.c),
        [
            ("worker-1".to_string(), true),
            ("worker-1".to_string(), false),
            ("worker-2".to_string(), true),
            ("worker-2".to_string(), false),
            ("worker-0".to_string(), true),
            ("worker-0".to_string(), false),
        ],
        "{}",
        w.app.units[0].timeline()
    );
    for sim in &w.app.units {
        assert_eq!(kubelet(sim), "1.32.0");
        assert_active(sim);
    }
    // While it waited, each unit said how many were ahead of it.
    let queued = |ahead: usize| {
        (
            "waiting".to_string(),
            format!("Upgrade to 1.32.0 queued ({ahead} ahead)"),
        )
    };
    assert!(statuses(&w.app.units[2]).contains(&queued(1)));
    assert!(statuses(&w.app.units[0]).contains(&queued(1)));
    assert!(!statuses(&w.app.units[3])
        .iter()
        .any(|(_, m)| m.contains("queued")));
    // The roll is over: the leader removed it.
    assert_eq!(roll_in_app_bag(&w), None);
}

/// A roll of every unit that unit 2 stops: its new kubelet exits as soon
/// as it starts, and its node is not Ready within 3 s.
fn stopped_by_unit_2(w: &Workers) {
    w.app.units[2].edit_machine(|m| {
        m.crashing.insert("snap.kubelet.daemon.service".into());
    });
    let (run, action) =
        w.app.units[0].action("upgrade", json!({"all-units": true, "ready-timeout": 3}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    settle(w);
}

#[test]
fn a_unit_that_fails_stops_the_roll_and_the_others_say_why() {
    let Some(w) = three_held_back() else {
        return;
    };
    stopped_by_unit_2(&w);
    let why = "Upgrade stopped: node worker-2 not Ready on kubelet 1.32.0 after 3 s (Kubelet stopped posting node status.); it stays cordoned. Fix the node, then run the upgrade action again";
    assert_eq!(kubelet(&w.app.units[1]), "1.32.0");
    assert_active(&w.app.units[1]);
    assert_eq!(w.app.units[2].status(), ("blocked".into(), why.into()));
    // The leader granted no further turn: it was never touched.
    assert_eq!(kubelet(&w.app.units[0]), "1.31.2");
    assert!(!cordons(&w.c).iter().any(|(n, _)| n == "worker-0"));
    assert_eq!(
        w.app.units[0].status(),
        (
            "blocked".into(),
            format!("Upgrade to 1.32.0 stopped by kubernetes-worker/2: {why}. Fix it, then run the upgrade action with all-units=true on the leader again")
        )
    );

    // The operator fixes unit 2 and upgrades it by hand, then starts the
    // roll again: only the leader is left, and upgrades in the action.
    w.app.units[2].edit_machine(|m| {
        m.crashing.clear();
    });
    upgraded(&w.app.units[2], json!({}));
    settle(&w);
    let results = upgraded(&w.app.units[0], json!({"all-units": true}));
    assert_eq!(results["order"], json!("kubernetes-worker/0"));
    settle(&w);
    for sim in &w.app.units {
        assert_eq!(kubelet(sim), "1.32.0");
        assert_active(sim);
    }
    assert_eq!(roll_in_app_bag(&w), None);
    let _ = &w.views;
}

/// A unit waiting in a stopped roll that the operator upgrades by hand
/// says at once that it is upgraded: after its own action, and in every
/// hook after that, without waiting for a peer's bag to change. Then the
/// operator goes back instead of fixing the unit that stopped the roll:
/// the channel back to 1.31, the units on 1.32 upgraded back by hand. The
/// next all-units run finds nothing to do and clears the stopped roll, so
/// no unit stays blocked on it.
#[test]
fn a_waiting_unit_follows_its_own_version_and_nothing_to_do_clears_a_stopped_roll() {
    let Some(w) = three_held_back() else {
        return;
    };
    stopped_by_unit_2(&w);
    let leader = &w.app.units[0];
    assert!(leader
        .status()
        .1
        .starts_with("Upgrade to 1.32.0 stopped by kubernetes-worker/2"));
    upgraded(leader, json!({}));
    assert_eq!(kubelet(leader), "1.32.0");
    assert_active(leader);
    leader.hook("update-status").assert_ok();
    assert_active(leader);
    assert_active(&w.app.units[1]);
    assert!(w.app.units[2]
        .status()
        .1
        .starts_with("Upgrade stopped: node worker-2"));

    w.app.units[2].edit_machine(|m| {
        m.crashing.clear();
    });
    for sim in &w.app.units {
        sim.configure("channel", "1.31/stable").assert_ok();
    }
    for n in [0, 1, 2] {
        upgraded(&w.app.units[n], json!({}));
    }
    settle(&w);
    let results = upgraded(&w.app.units[0], json!({"all-units": true}));
    assert_eq!(results["order"], json!("none: every unit runs it"));
    assert_eq!(results["cleared"], json!("the upgrade to 1.32.0"));
    settle(&w);
    assert_eq!(roll_in_app_bag(&w), None);
    for sim in &w.app.units {
        assert_eq!(kubelet(sim), "1.31.2");
        assert_active(sim);
    }
}

#[test]
fn all_units_runs_on_the_leader_only_and_a_dry_run_changes_nothing() {
    let Some(w) = three_held_back() else {
        return;
    };
    let (run, action) = w.app.units[1].action("upgrade", json!({"all-units": true}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert_eq!(
        action.message,
        "upgrade refused, nothing changed: all-units runs on the leader only (the unit juju status marks with *)"
    );
    let before = w.c.api.requests().len();
    let (run, action) =
        w.app.units[0].action("upgrade", json!({"all-units": true, "dry-run": true}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert_eq!(
        action.results["order"],
        json!("kubernetes-worker/1,kubernetes-worker/2,kubernetes-worker/0")
    );
    assert!(w.app.settle().is_empty());
    assert_eq!(roll_in_app_bag(&w), None);
    let writes: Vec<_> = w.c.api.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn a_turn_killed_part_way_is_finished_when_juju_runs_its_hook_again() {
    let Some(w) = three_held_back() else {
        return;
    };
    // Unit 1's agent dies just after its kube-proxy refresh.
    w.app.units[1].kill_next_at("snap refresh kube-proxy", juju_sim::kill::Moment::After);
    upgraded(&w.app.units[0], json!({"all-units": true}));
    // Juju runs the killed hook again: it finishes the turn, and the
    // roll goes on.
    let runs = w.app.settle();
    let killed = runs
        .iter()
        .position(|r| r.killed)
        .expect("the turn was killed");
    assert_eq!(runs[killed + 1].name, runs[killed].name);
    runs[killed + 1].assert_ok();
    for run in &runs[killed + 1..] {
        run.assert_ok();
    }
    for sim in &w.app.units {
        assert_eq!(kubelet(sim), "1.32.0");
        assert_active(sim);
    }
    assert_eq!(
        cordons(&w.c)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["worker-1", "worker-1", "worker-2", "worker-2", "worker-0", "worker-0"]
    );
    assert_eq!(roll_in_app_bag(&w), None);
}
