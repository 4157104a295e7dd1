//! Several simulated units of one application, joined by a peer relation,
//! with Juju's propagation of relation data between them: when a hook
//! commits a change to a unit's bag, every other unit in the relation runs
//! relation-changed for it; when the leader changes the application's bag,
//! every other unit runs relation-changed with no remote unit. Hooks run
//! one at a time, in unit order: one of the interleavings Juju may choose.
//! A hook that fails or is killed is run again at once, as the agent
//! retries it before anything else.

use crate::cluster::Cluster;
use crate::harness::{HookRun, Sim};
use crate::model::Databag;

pub struct Application {
    pub units: Vec<Sim>,
    pub endpoint: String,
    /// Each unit's id for the peer relation.
    ids: Vec<u32>,
}

impl Application {
    /// Deployed units, every one joined to every other on their peer
    /// relation `endpoint`.
    pub fn new(units: Vec<Sim>, endpoint: &str) -> Application {
        let mut app = Application {
            units: Vec::new(),
            endpoint: endpoint.to_string(),
            ids: Vec::new(),
        };
        for sim in units {
            app.add(sim);
        }
        app
    }

    /// `juju add-unit`, once the unit is deployed: it enters the peer
    /// relation, and it and every other unit see each other join.
    pub fn add(&mut self, sim: Sim) -> Vec<HookRun> {
        let name = sim.unit().unit;
        // Juju created the peer relation with the unit (see Sim::deploy).
        let id = sim
            .unit()
            .relations
            .iter()
            .find(|r| r.endpoint == self.endpoint)
            .map(|r| r.id)
            .unwrap_or_else(|| {
                let app = sim.unit().app().to_string();
                sim.relate(&self.endpoint, &app)
            });
        let mut runs = Vec::new();
        for (other, other_id) in self.units.iter().zip(&self.ids) {
            let theirs = other.unit();
            let bag = theirs.relation(*other_id).expect("peer").local_unit.clone();
            runs.extend(sim.join(id, &theirs.unit, &refs(&pairs(&bag))));
            let mine = sim.unit().relation(id).expect("peer").local_unit.clone();
            runs.extend(other.join(*other_id, &name, &refs(&pairs(&mine))));
            if theirs.leader {
                let bag = theirs.relation(*other_id).expect("peer").local_app.clone();
                if !bag.is_empty() {
                    runs.push(sim.peer_app_changed(id, &bag));
                }
            }
        }
        self.units.push(sim);
        self.ids.push(id);
        runs.extend(self.settle());
        runs
    }

    pub fn id(&self, unit: usize) -> u32 {
        self.ids[unit]
    }

    /// Propagates every committed change of the units' bags to the others,
    /// running their relation-changed hooks, until nothing changes.
    /// Returns each hook run with the index of its unit.
    pub fn settle(&self) -> Vec<HookRun> {
        let mut runs = Vec::new();
        for _round in 0..100 {
            let mut fired = false;
            for (i, sim) in self.units.iter().enumerate() {
                let me = sim.unit();
                let rel = me.relation(self.ids[i]).expect("peer").clone();
                for (j, other) in self.units.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let theirs = other.unit();
                    let seen = theirs.relation(self.ids[j]).expect("peer").clone();
                    if seen.members.contains(&me.unit)
                        && seen.remote_units.get(&me.unit) != Some(&rel.local_unit)
                    {
                        let old = seen.remote_units.get(&me.unit).cloned().unwrap_or_default();
                        let mut change = pairs(&rel.local_unit);
                        for k in old.keys().filter(|k| !rel.local_unit.contains_key(*k)) {
                            change.push((k.clone(), String::new()));
                        }
                        runs.extend(until_done(|| {
                            other.change(self.ids[j], &me.unit, &refs(&change))
                        }));
                        fired = true;
                    }
                    if me.leader && seen.local_app != rel.local_app {
                        runs.extend(until_done(|| {
                            other.peer_app_changed(self.ids[j], &rel.local_app)
                        }));
                        fired = true;
                    }
                }
            }
            if !fired {
                return runs;
            }
        }
        panic!("the units' relation data never settled");
    }
}

/// Runs a hook as the agent does: one that fails or is killed (the agent
/// restarted) is run again, before any other hook of that unit. Every run
/// is returned.
fn until_done(hook: impl Fn() -> HookRun) -> Vec<HookRun> {
    let mut runs = vec![hook()];
    while runs.len() < 5 && runs.last().is_some_and(|r| r.killed || r.exit != 0) {
        runs.push(hook());
    }
    runs
}

fn pairs(bag: &Databag) -> Vec<(String, String)> {
    bag.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The unit (the leader, deployed and related to `cluster` on 1.31) and
/// one other unit on 1.31 in its peer relation: the leader starts a
/// rolling upgrade to 1.32 and waits for the other unit's turn. What
/// `make bench` measures a waiting unit's update-status on.
pub fn leader_waiting_in_a_roll(sim: &Sim, cluster: &Cluster) {
    cluster.api.set_version("v1.32.0");
    sim.configure("channel", "1.32/stable").assert_ok();
    let peers = sim
        .unit()
        .relations
        .iter()
        .find(|r| r.endpoint == "coordinator")
        .map(|r| r.id)
        .expect("the peer relation, created at deploy");
    for run in sim.join(
        peers,
        "kubernetes-worker/1",
        &[("kubelet-version", "1.31.2")],
    ) {
        run.assert_ok();
    }
    let (run, action) = sim.action("upgrade", serde_json::json!({"all-units": true}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            "Upgrade to 1.32.0 queued (1 ahead)".into()
        )
    );
}
