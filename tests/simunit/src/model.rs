//! The simulated unit's state: what the controller and the unit agent know
//! (unit.json), kept apart from what the machine holds (machine.json, see
//! [`crate::machine`]). Tests set it up before a hook and assert on it after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type Databag = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnitState {
    pub unit: String,
    pub model: String,
    pub model_uuid: String,
    pub machine_id: String,
    pub juju_version: String,
    pub charm_dir: PathBuf,
    /// `/var/lib/juju/agents/unit-<app>-<n>` of the simulated agent.
    pub agent_dir: PathBuf,
    pub leader: bool,
    pub private_address: String,
    pub public_address: String,
    /// Values the operator set (`juju config`); defaults come from the
    /// charm's config.yaml.
    pub config: BTreeMap<String, Value>,
    /// Resources the operator attached: name -> the uploaded file. A
    /// resource absent here was never uploaded.
    pub resources: BTreeMap<String, PathBuf>,
    pub relations: Vec<Relation>,
    pub next_relation_id: u32,
    pub status: StatusEntry,
    /// Whether the charm ever called status-set (the agent's automatic
    /// statuses depend on it).
    pub status_set_by_charm: bool,
    pub status_history: Vec<StatusEntry>,
    /// `hook failed: "<hook>"` while the unit is in error.
    pub error: Option<String>,
    pub workload_version: String,
    pub ports: BTreeSet<String>,
    pub charm_state: Databag,
    pub logs: Vec<LogEntry>,
    pub calls: Vec<ToolCall>,
    pub hooks: Vec<HookRecord>,
    pub actions: Vec<ActionRecord>,
    /// The hook or action running now, if any.
    pub running: Option<RunningHook>,
    /// Transactional changes of the running hook, applied if it exits 0.
    pub pending: Vec<PendingOp>,
    /// Tools told to fail (exit 1, `ERROR <message>`), as they do when the
    /// agent cannot serve them: by name (`resource-get`), or by name and
    /// first argument (`resource-get cni-amd64`).
    #[serde(default)]
    pub tool_faults: BTreeMap<String, String>,
    /// Tools that never answer (an agent wedged): the call blocks until
    /// the hook gives up on it.
    #[serde(default)]
    pub tool_hangs: std::collections::BTreeSet<String>,
    /// Added to every hook's environment. Not something Juju does: for
    /// knobs of the charm that only tests turn (shorter deadlines).
    #[serde(default)]
    pub extra_env: BTreeMap<String, String>,
    /// Secrets in the model this unit may know of, by id (`secret:<xid>`).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// The unit's IPv6 address on its bindings, if the network has one.
    #[serde(default)]
    pub ipv6_address: Option<String>,
    /// `JUJU_AVAILABILITY_ZONE`.
    #[serde(default)]
    pub availability_zone: String,
    /// Endpoints bound to a space of their own (`juju deploy --bind
    /// kube-control=internal`): the unit's addresses in that space, first
    /// the one Juju gives as ingress and private address. Others are in
    /// the default space (`private_address`, `ipv6_address`).
    #[serde(default)]
    pub bindings: BTreeMap<String, Vec<String>>,
}

impl UnitState {
    /// The unit's addresses on `endpoint`'s binding, the primary first.
    pub fn binding_addresses(&self, endpoint: &str) -> Vec<String> {
        match self.bindings.get(endpoint) {
            Some(addresses) if !addresses.is_empty() => addresses.clone(),
            _ => std::iter::once(self.private_address.clone())
                .chain(self.ipv6_address.clone())
                .collect(),
        }
    }
}

/// A Juju secret owned by another application.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Secret {
    pub owner: String,
    pub label: String,
    /// Content per revision; revision n is `revisions[n - 1]`.
    pub revisions: Vec<Databag>,
    /// Whether this unit is granted read access.
    pub granted: bool,
    /// The revision this unit tracks (set by its first read).
    pub tracked: Option<usize>,
    /// The owner removed it.
    pub removed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    pub status: String,
    pub message: String,
    /// The hook during which (or, for the agent's own, before which) it was set.
    #[serde(default)]
    pub hook: String,
    /// Set by the agent itself, not the charm.
    #[serde(default)]
    pub agent: bool,
    /// The number of the hook run (its index in `hooks`).
    #[serde(default)]
    pub run: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Relation {
    pub id: u32,
    pub endpoint: String,
    /// `global`, or `container`: the remote side is one subordinate unit
    /// on this machine (or the principal, for a subordinate).
    #[serde(default)]
    pub scope: String,
    /// A peer relation: the remote units are this application's others,
    /// and every unit (not only the leader) reads the application's bag.
    #[serde(default)]
    pub peer: bool,
    pub remote_app: String,
    /// Remote units currently in the relation.
    pub members: BTreeSet<String>,
    /// Every remote unit's databag, departed ones included (still readable).
    pub remote_units: BTreeMap<String, Databag>,
    pub remote_app_data: Databag,
    pub local_unit: Databag,
    pub local_app: Databag,
}

impl Relation {
    pub fn rid(&self) -> String {
        format!("{}:{}", self.endpoint, self.id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
    pub hook: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCall {
    pub hook: String,
    pub tool: String,
    pub args: Vec<String>,
    pub exit: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRecord {
    /// `install`, `kube-control-relation-changed`, or an action name.
    pub name: String,
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionRecord {
    pub name: String,
    pub uuid: String,
    pub params: serde_json::Map<String, Value>,
    pub results: serde_json::Map<String, Value>,
    /// `completed` or `failed`.
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningHook {
    pub context_id: String,
    /// Its index in `hooks` once it ends.
    #[serde(default)]
    pub number: usize,
    pub name: String,
    pub relation_id: Option<u32>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub action: Option<ActionRecord>,
    /// The secret of a secret hook.
    #[serde(default)]
    pub secret_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PendingOp {
    /// Keys with an empty value are deleted.
    RelationSet {
        relation_id: u32,
        app: bool,
        data: Databag,
    },
    OpenPort(String),
    ClosePort(String),
    /// Keys with an empty value are deleted.
    StateSet(Databag),
    /// `secret-get --refresh` (or a first read) moves the unit's tracked
    /// revision when the hook commits.
    SecretTrack {
        id: String,
        revision: usize,
    },
}

impl UnitState {
    pub fn relation(&self, id: u32) -> Option<&Relation> {
        self.relations.iter().find(|r| r.id == id)
    }

    pub fn relation_mut(&mut self, id: u32) -> Option<&mut Relation> {
        self.relations.iter_mut().find(|r| r.id == id)
    }

    pub fn app(&self) -> &str {
        self.unit.split('/').next().unwrap_or(&self.unit)
    }

    /// This unit's own bag in a relation, with the running hook's pending
    /// writes applied (a hook sees its own writes).
    pub fn local_bag(&self, id: u32, app: bool) -> Databag {
        let mut bag = self
            .relation(id)
            .map(|r| {
                if app {
                    r.local_app.clone()
                } else {
                    r.local_unit.clone()
                }
            })
            .unwrap_or_default();
        for op in &self.pending {
            if let PendingOp::RelationSet {
                relation_id,
                app: op_app,
                data,
            } = op
            {
                if *relation_id == id && *op_app == app {
                    apply_bag(&mut bag, data);
                }
            }
        }
        bag
    }

    pub fn effective_ports(&self) -> BTreeSet<String> {
        let mut ports = self.ports.clone();
        for op in &self.pending {
            match op {
                PendingOp::OpenPort(p) => {
                    ports.insert(p.clone());
                }
                PendingOp::ClosePort(p) => {
                    ports.remove(p);
                }
                _ => {}
            }
        }
        ports
    }

    /// The revision of secret `id` this unit tracks, pending reads included.
    pub fn tracked_revision(&self, id: &str) -> Option<usize> {
        self.pending
            .iter()
            .rev()
            .find_map(|op| match op {
                PendingOp::SecretTrack { id: i, revision } if i == id => Some(*revision),
                _ => None,
            })
            .or_else(|| self.secrets.get(id).and_then(|s| s.tracked))
    }

    pub fn effective_charm_state(&self) -> Databag {
        let mut state = self.charm_state.clone();
        for op in &self.pending {
            if let PendingOp::StateSet(data) = op {
                apply_bag(&mut state, data);
            }
        }
        state
    }

    /// Applies the running hook's transactional changes (it exited 0).
    pub fn commit_pending(&mut self) {
        for op in std::mem::take(&mut self.pending) {
            match op {
                PendingOp::RelationSet {
                    relation_id,
                    app,
                    data,
                } => {
                    if let Some(rel) = self.relation_mut(relation_id) {
                        apply_bag(
                            if app {
                                &mut rel.local_app
                            } else {
                                &mut rel.local_unit
                            },
                            &data,
                        );
                    }
                }
                PendingOp::OpenPort(p) => {
                    self.ports.insert(p);
                }
                PendingOp::ClosePort(p) => {
                    self.ports.remove(&p);
                }
                PendingOp::StateSet(data) => apply_bag(&mut self.charm_state, &data),
                PendingOp::SecretTrack { id, revision } => {
                    if let Some(secret) = self.secrets.get_mut(&id) {
                        secret.tracked = Some(revision);
                    }
                }
            }
        }
    }
}

pub fn apply_bag(bag: &mut Databag, changes: &Databag) {
    for (k, v) in changes {
        if v.is_empty() {
            bag.remove(k);
        } else {
            bag.insert(k.clone(), v.clone());
        }
    }
}
