//! The rolling upgrade: the application's units upgraded one after
//! another (or `at-once` at a time), each as the `upgrade` action upgrades
//! one ([`crate::upgrade`]), coordinated through the `coordinator` peer
//! relation.
//!
//! The leader keeps the roll in the application's bag: the target version,
//! the parameters, the order and the turns granted so far, and who stopped
//! it. Each unit keeps in its own bag its kubelet version and the outcome
//! of its turn. Every change to a bag fires relation-changed on the other
//! units, so the roll moves with Juju's own events: a unit takes its turn
//! in the hook that shows it granted, the leader grants the next in the
//! hook that shows a turn done. The leader goes last, so that the unit
//! that coordinates the roll is never the one draining.

use std::collections::{BTreeMap, BTreeSet};

use charm::tools::Databag;
use charm::RelationId;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, ToolContext};
use crate::install::Target;
use crate::journal::JournalFile;
use crate::node::Node;
use crate::problem::{Concern, Problem, ProblemKind};
use crate::unit_state::Recorded;
use crate::upgrade::{self, Configure, Params};

pub const COORDINATOR: &str = "coordinator";
/// The leader's roll, in the application's bag.
const ROLL: &str = "upgrade-roll";
/// A unit's installed kubelet version, in its own bag.
const VERSION: &str = "kubelet-version";
/// A unit's outcome of its last turn, in its own bag.
const OUTCOME: &str = "upgrade-outcome";

/// A roll under way, as the leader keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    /// The action that started it: an outcome names the roll it is for.
    pub id: String,
    /// The kubelet version every unit is brought to.
    pub to: String,
    #[serde(rename = "at-once")]
    pub at_once: usize,
    pub params: Params,
    /// The units to upgrade, in their turn's order, the leader last.
    pub order: Vec<String>,
    /// The units granted a turn so far.
    #[serde(default)]
    pub turns: Vec<String>,
    #[serde(default)]
    pub stopped: Option<Stopped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    pub unit: String,
    pub why: String,
}

/// How a unit's turn ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub roll: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// What the peer relation says, read in one go.
#[derive(Debug, Default)]
pub struct Peers {
    pub roll: Option<Roll>,
    /// The units in the relation now, this one included.
    pub units: BTreeSet<String>,
    pub versions: BTreeMap<String, String>,
    pub outcomes: BTreeMap<String, Outcome>,
}

impl Peers {
    /// Whether `unit` needs no (more) turn in `roll`: on its version, its
    /// turn done, or gone from the application.
    fn finished(&self, roll: &Roll, unit: &str) -> bool {
        self.versions.get(unit) == Some(&roll.to)
            || self
                .outcomes
                .get(unit)
                .is_some_and(|o| o.roll == roll.id && o.ok)
            || !self.units.contains(unit)
    }

    fn failed<'a>(&'a self, roll: &Roll) -> Option<(&'a str, &'a Outcome)> {
        roll.order.iter().find_map(|u| {
            let (unit, o) = self.outcomes.get_key_value(u)?;
            (o.roll == roll.id && !o.ok).then_some((unit.as_str(), o))
        })
    }

    /// The roll as the leader moves it on: stopped by the first failed
    /// turn; the next units granted while fewer than `at-once` are
    /// upgrading; `None` once every unit is done.
    pub fn advance(&self, roll: &Roll) -> Option<Roll> {
        let mut next = roll.clone();
        if roll.stopped.is_some() {
            return Some(next);
        }
        if let Some((unit, outcome)) = self.failed(roll) {
            next.stopped = Some(Stopped {
                unit: unit.to_string(),
                why: outcome.why.clone(),
            });
            return Some(next);
        }
        let pending: Vec<&String> = roll
            .order
            .iter()
            .filter(|u| !self.finished(roll, u))
            .collect();
        if pending.is_empty() {
            return None;
        }
        let upgrading = pending.iter().filter(|u| roll.turns.contains(u)).count();
        let free = roll.at_once.saturating_sub(upgrading);
        let grants: Vec<String> = pending
            .iter()
            .filter(|u| !roll.turns.contains(u))
            .take(free)
            .map(|u| u.to_string())
            .collect();
        next.turns.extend(grants);
        Some(next)
    }

    /// Whether `unit` is to take its turn now.
    fn turn_of(&self, roll: &Roll, unit: &str) -> bool {
        roll.stopped.is_none()
            && roll.turns.iter().any(|u| u == unit)
            && !self.finished(roll, unit)
            && self.outcomes.get(unit).is_none_or(|o| o.roll != roll.id)
    }

    /// What the roll means for `unit`'s status.
    pub fn problems(&self, unit: &str) -> Vec<Problem> {
        let Some(roll) = &self.roll else {
            return Vec::new();
        };
        if !roll.order.iter().any(|u| u == unit) || self.finished(roll, unit) {
            return Vec::new();
        }
        if let Some(stop) = &roll.stopped {
            return vec![Problem::blocked(format!(
                "Upgrade to {} stopped by {}: {}. Fix it, then run the upgrade action with all-units=true on the leader again",
                roll.to, stop.unit, stop.why
            ))];
        }
        if roll.turns.iter().any(|u| u == unit) {
            return Vec::new();
        }
        let ahead = roll
            .order
            .iter()
            .take_while(|u| *u != unit)
            .filter(|u| !self.finished(roll, u))
            .count();
        vec![Problem {
            kind: ProblemKind::Queued,
            message: format!("Upgrade to {} queued ({ahead} ahead)", roll.to),
        }]
    }
}

fn app_of(unit: &str) -> &str {
    unit.split_once('/').map_or(unit, |(app, _)| app)
}

fn number(unit: &str) -> u64 {
    unit.rsplit_once('/')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The peer relation's id, if the unit is in it yet.
fn relation(node: &Node) -> Result<Option<RelationId>, Error> {
    Ok(node
        .tools
        .relation_ids(COORDINATOR)
        .doing("listing the coordinator relation")?
        .into_iter()
        .next())
}

fn read(node: &Node, rid: &RelationId, recorded: &Recorded) -> Result<Peers, Error> {
    let tools = node.tools;
    let mut peers = Peers::default();
    let app = tools
        .relation_get_app(rid, app_of(node.unit))
        .doing("reading the coordinator relation's application data")?;
    peers.roll = match app.get(ROLL).filter(|v| !v.is_empty()) {
        None => None,
        Some(text) => match serde_json::from_str(text) {
            Ok(roll) => Some(roll),
            Err(e) => {
                log::warn!("ignoring the coordinator relation's {ROLL}, which does not parse: {e}");
                None
            }
        },
    };
    let mut bags: Vec<(String, Databag)> = Vec::new();
    for unit in tools
        .relation_list(rid)
        .doing("listing the coordinator relation's units")?
    {
        let bag = tools
            .relation_get(rid, &unit)
            .doing("reading a peer's coordinator data")?;
        bags.push((unit, bag));
    }
    bags.push((node.unit.to_string(), own_bag(node, rid, recorded)?));
    for (unit, bag) in bags {
        if let Some(v) = bag.get(VERSION).filter(|v| !v.is_empty()) {
            peers.versions.insert(unit.clone(), v.clone());
        }
        if let Some(o) = bag
            .get(OUTCOME)
            .and_then(|o| serde_json::from_str::<Outcome>(o).ok())
        {
            peers.outcomes.insert(unit.clone(), o);
        }
        peers.units.insert(unit);
    }
    Ok(peers)
}

/// This unit's bag as it published it (or as Juju holds it, when the record
/// was dropped after a killed hook).
fn own_bag(node: &Node, rid: &RelationId, recorded: &Recorded) -> Result<Databag, Error> {
    match recorded.published.get(&rid.to_string()) {
        Some(bag) => Ok(bag.clone()),
        None => node
            .tools
            .relation_get(rid, node.unit)
            .doing("reading this unit's coordinator data"),
    }
}

fn installed(recorded: &Recorded) -> &str {
    recorded.journal.kubelet_version().unwrap_or_default()
}

/// This unit's side: its kubelet version and its last outcome.
fn publish(
    node: &Node,
    rid: &RelationId,
    recorded: &mut Recorded,
    outcome: Option<&Outcome>,
) -> Result<(), Error> {
    let key = rid.to_string();
    let mut bag = own_bag(node, rid, recorded)?;
    let version = installed(recorded).to_string();
    let mut changes = Databag::new();
    if bag.get(VERSION).map_or("", String::as_str) != version {
        changes.insert(VERSION.into(), version);
    }
    if let Some(outcome) = outcome {
        changes.insert(
            OUTCOME.into(),
            serde_json::to_string(outcome).unwrap_or_default(),
        );
    }
    if changes.is_empty() {
        recorded.published.insert(key, bag);
        return Ok(());
    }
    node.tools
        .relation_set(rid, &changes)
        .doing("publishing this unit's coordinator data")?;
    for (k, v) in changes {
        if v.is_empty() {
            bag.remove(&k);
        } else {
            bag.insert(k, v);
        }
    }
    recorded.published.insert(key, bag);
    Ok(())
}

/// This unit's kubelet version, told to its peers where it changed (after
/// an upgrade by hand, or one config-changed made).
pub fn publish_version(node: &Node, recorded: &mut Recorded) -> Result<(), Error> {
    let version = installed(recorded);
    let told = recorded.published.iter().any(|(rid, bag)| {
        rid.starts_with(COORDINATOR)
            && rid[COORDINATOR.len()..].starts_with(':')
            && bag.get(VERSION).map_or("", String::as_str) == version
    });
    if told {
        return Ok(());
    }
    match relation(node)? {
        Some(rid) => publish(node, &rid, recorded, None),
        None => Ok(()),
    }
}

/// What a unit's turn needs besides the roll.
pub struct Turn<'a, 'b> {
    pub target: &'a Target<'a>,
    pub node: &'a Node<'a>,
    pub journal: &'a mut JournalFile,
    pub announce: &'a mut dyn FnMut(&str) -> Result<(), Error>,
    pub configure: &'a mut Configure<'b>,
}

/// Each hook on the peer relation (and after a new revision or leader
/// change): publishes this unit's version, takes this unit's turn if it
/// is granted one, and, on the leader, moves the roll on. The unit's
/// status learns where it stands in the roll.
pub fn converge(turn: &mut Turn, recorded: &mut Recorded) -> Result<(), Error> {
    let node = turn.node;
    let Some(rid) = relation(node)? else {
        wait_for(recorded, None, Vec::new());
        return Ok(());
    };
    publish(node, &rid, recorded, None)?;
    let peers = read(node, &rid, recorded)?;
    let leader = peers.roll.is_some() && node.tools.is_leader().doing("asking for leadership")?;
    step(turn, recorded, &rid, peers, leader)
}

/// Moves the roll on as far as this unit can: the leader may grant itself
/// its turn, take it and finish the roll, all in one hook, so one pass per
/// unit at most.
fn step(
    turn: &mut Turn,
    recorded: &mut Recorded,
    rid: &RelationId,
    mut peers: Peers,
    leader: bool,
) -> Result<(), Error> {
    let node = turn.node;
    for _ in 0..=peers.units.len() {
        let Some(roll) = peers.roll.clone() else {
            break;
        };
        if leader {
            let next = peers.advance(&roll);
            if next.as_ref() != Some(&roll) {
                write_roll(node, rid, next.as_ref())?;
                if next.is_none() {
                    log::info!("the upgrade of every unit to {} is done", roll.to);
                }
                peers.roll = next;
                continue;
            }
        }
        if !peers.turn_of(&roll, node.unit) {
            break;
        }
        let outcome = take_turn(turn, recorded, &roll)?;
        publish(node, rid, recorded, Some(&outcome))?;
        peers.outcomes.insert(node.unit.to_string(), outcome);
        if let Some(v) = recorded.journal.kubelet_version() {
            peers.versions.insert(node.unit.to_string(), v.to_string());
        }
    }
    let problems = peers.problems(node.unit);
    let to = peers.roll.map(|r| r.to);
    wait_for(recorded, to, problems);
    Ok(())
}

/// This unit's place in a roll: waiting for `to`, for the reasons given,
/// or (none given) not waiting.
fn wait_for(recorded: &mut Recorded, to: Option<String>, problems: Vec<Problem>) {
    recorded.roll_waits_for = to.filter(|_| !problems.is_empty());
    recorded.concerns.set(Concern::Roll, problems);
}

/// Run at the end of every hook and action: a unit waiting in a roll
/// whose kubelet is now on the roll's version (upgraded by its own
/// `upgrade` action, or by hand) has no turn to wait for, and says so at
/// once rather than at the next change of the peers' bags.
pub fn follow_own_version(recorded: &mut Recorded) {
    let arrived = recorded
        .roll_waits_for
        .as_deref()
        .is_some_and(|to| recorded.journal.kubelet_version() == Some(to));
    if arrived {
        log::info!("this unit's kubelet is on the roll's version: it waits no more");
        wait_for(recorded, None, Vec::new());
    }
}

fn write_roll(node: &Node, rid: &RelationId, roll: Option<&Roll>) -> Result<(), Error> {
    let text = roll
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .unwrap_or_default();
    let bag: Databag = [(ROLL.to_string(), text)].into_iter().collect();
    node.tools
        .relation_set_app(rid, &bag)
        .doing("writing the roll to the coordinator relation")
}

/// This unit's turn: the upgrade as the action does it, with the roll's
/// parameters; its report goes to the log, its progress to the status.
fn take_turn(turn: &mut Turn, recorded: &mut Recorded, roll: &Roll) -> Result<Outcome, Error> {
    let node = turn.node;
    log::info!("{}: its turn in the upgrade to {}", node.unit, roll.to);
    let config = Config::read(turn.target.tools)?;
    let failed = |why: String| Outcome {
        roll: roll.id.clone(),
        ok: false,
        why,
    };
    let plan = match upgrade::plan(turn.target, node, &config, recorded)? {
        Ok(plan) => plan,
        Err(why) => {
            log::warn!("upgrade refused: {why}");
            return Ok(failed(format!("upgrade refused: {why}")));
        }
    };
    let (report, stopped) = upgrade::run(
        turn.target,
        node,
        (&config, &plan, &roll.params),
        recorded,
        turn.journal,
        turn.announce,
        turn.configure,
    )?;
    for (step, said) in &report {
        log::info!("upgrade {step}: {said}");
    }
    Ok(match stopped {
        Some(why) => failed(why),
        None => Outcome {
            roll: roll.id.clone(),
            ok: true,
            why: String::new(),
        },
    })
}

/// The `upgrade` action with all-units, on the leader: checks the target
/// against the control plane, then writes the roll; the first turns are
/// granted at once (and, when only the leader is left, taken).
pub fn start(
    turn: &mut Turn,
    recorded: &mut Recorded,
    params: &Params,
    id: &str,
) -> Result<Result<BTreeMap<String, String>, String>, Error> {
    let node = turn.node;
    if !node.tools.is_leader().doing("asking for leadership")? {
        return Ok(Err(
            "all-units runs on the leader only (the unit juju status marks with *)".into(),
        ));
    }
    let Some(rid) = relation(node)? else {
        return Ok(Err("the coordinator relation is not there yet".into()));
    };
    publish(node, &rid, recorded, None)?;
    let peers = read(node, &rid, recorded)?;
    if let Some(roll) = peers.roll.as_ref().filter(|r| r.stopped.is_none()) {
        let done = roll
            .order
            .iter()
            .filter(|u| peers.finished(roll, u))
            .count();
        return Ok(Err(format!(
            "an upgrade of every unit to {} is under way ({done} of {} done)",
            roll.to,
            roll.order.len()
        )));
    }
    let config = Config::read(turn.target.tools)?;
    let to = match upgrade::kubelet_target(turn.target, &config, recorded)? {
        Ok(to) => to,
        Err(why) => return Ok(Err(why)),
    };
    let checked =
        match upgrade::skew_verdict(&[("kubelet", &to), ("kube-proxy", &to)], node, recorded) {
            Ok(checked) => checked,
            Err(why) => return Ok(Err(why)),
        };
    let mut order: Vec<String> = peers
        .units
        .iter()
        .filter(|u| peers.versions.get(*u) != Some(&to))
        .filter(|u| *u != node.unit)
        .cloned()
        .collect();
    order.sort_by_key(|u| number(u));
    if peers.versions.get(node.unit) != Some(&to) {
        order.push(node.unit.to_string());
    }
    let mut results = BTreeMap::new();
    results.insert("to".into(), to.clone());
    results.insert(
        "order".into(),
        if order.is_empty() {
            "none: every unit runs it".into()
        } else {
            order.join(",")
        },
    );
    results.insert(
        "skew".into(),
        match checked {
            Some(api) => format!("allowed against the API server's {api}"),
            None => "not checked: no API server known".into(),
        },
    );
    if params.dry_run {
        results.insert("dry-run".into(), "true".into());
        return Ok(Ok(results));
    }
    if order.is_empty() {
        // Nothing to do. A roll that stopped is over: left in the bag, its
        // waiting units would stay blocked on it for good (the operator
        // may have gone back rather than fixed the unit that stopped it).
        if let Some(stopped) = &peers.roll {
            log::info!(
                "every unit runs {to}: the upgrade to {} that stopped is over",
                stopped.to
            );
            write_roll(node, &rid, None)?;
            results.insert("cleared".into(), format!("the upgrade to {}", stopped.to));
            wait_for(recorded, None, Vec::new());
        }
        return Ok(Ok(results));
    }
    let roll = Roll {
        id: id.to_string(),
        to,
        at_once: usize::try_from(params.at_once).unwrap_or(1).max(1),
        params: params.clone(),
        order,
        turns: Vec::new(),
        stopped: None,
    };
    // Written now; the first turns are granted (and, when only the
    // leader is left, taken) below.
    write_roll(node, &rid, Some(&roll))?;
    let mut peers = peers;
    peers.roll = Some(roll);
    step(turn, recorded, &rid, peers, true)?;
    Ok(Ok(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roll(order: &[&str], at_once: usize) -> Roll {
        Roll {
            id: "a1".into(),
            to: "1.32.0".into(),
            at_once,
            params: serde_json::from_str("{}").unwrap(),
            order: order.iter().map(|u| u.to_string()).collect(),
            turns: Vec::new(),
            stopped: None,
        }
    }

    fn peers(units: &[(&str, &str)]) -> Peers {
        Peers {
            roll: None,
            units: units.iter().map(|(u, _)| u.to_string()).collect(),
            versions: units
                .iter()
                .map(|(u, v)| (u.to_string(), v.to_string()))
                .collect(),
            outcomes: BTreeMap::new(),
        }
    }

    #[test]
    fn turns_are_granted_in_order_at_once_at_a_time() {
        let w = ["w/1", "w/2", "w/3", "w/0"];
        let mut p = peers(&[
            ("w/0", "1.31.2"),
            ("w/1", "1.31.2"),
            ("w/2", "1.31.2"),
            ("w/3", "1.31.2"),
        ]);
        let r = p.advance(&roll(&w, 2)).unwrap();
        assert_eq!(r.turns, ["w/1", "w/2"]);
        // Nothing moves until a turn is done.
        assert_eq!(p.advance(&r).unwrap(), r);
        p.versions.insert("w/2".into(), "1.32.0".into());
        let r = p.advance(&r).unwrap();
        assert_eq!(r.turns, ["w/1", "w/2", "w/3"]);
        p.roll = Some(r.clone());
        assert_eq!(
            p.problems("w/0")[0].message,
            "Upgrade to 1.32.0 queued (2 ahead)"
        );
        for u in w {
            p.versions.insert(u.into(), "1.32.0".into());
        }
        assert_eq!(p.advance(&r), None);
    }

    #[test]
    fn a_failed_turn_stops_the_roll_and_says_so_to_those_waiting() {
        let mut p = peers(&[("w/0", "1.31.2"), ("w/1", "1.31.2"), ("w/2", "1.31.2")]);
        let r = p.advance(&roll(&["w/1", "w/2", "w/0"], 1)).unwrap();
        p.outcomes.insert(
            "w/1".into(),
            Outcome {
                roll: "a1".into(),
                ok: false,
                why: "node not Ready".into(),
            },
        );
        let r = p.advance(&r).unwrap();
        assert_eq!(r.turns, ["w/1"]);
        assert_eq!(r.stopped.as_ref().unwrap().unit, "w/1");
        // No further turn is granted, whatever else changes.
        p.versions.insert("w/1".into(), "1.32.0".into());
        assert_eq!(p.advance(&r).unwrap(), r);
        p.roll = Some(r);
        assert_eq!(
            p.problems("w/2")[0].message,
            "Upgrade to 1.32.0 stopped by w/1: node not Ready. Fix it, then run the upgrade action with all-units=true on the leader again"
        );
        // An outcome of an earlier roll counts for nothing.
        let mut later = roll(&["w/2", "w/0"], 1);
        later.id = "b2".into();
        assert_eq!(p.advance(&later).unwrap().turns, ["w/2"]);
    }

    #[test]
    fn a_unit_that_left_is_not_waited_for() {
        let mut p = peers(&[("w/0", "1.31.2"), ("w/1", "1.31.2"), ("w/2", "1.31.2")]);
        let r = p.advance(&roll(&["w/1", "w/2", "w/0"], 1)).unwrap();
        p.units.remove("w/1");
        assert_eq!(p.advance(&r).unwrap().turns, ["w/1", "w/2"]);
    }
}
