//! The event handlers: route each event to the work it can require, then
//! set the one status that says how the unit stands.
//!
//! Hooks look only at what their event can have changed: resources in
//! install, upgrade-charm (fired by attach-resource) and config-changed;
//! config in those three; a relation's data in that relation's hooks. The
//! rest comes from what the charm recorded, so update-status in a converged
//! unit makes no hook-tool call at all.

use charm::context::{Event, HookKind, RelationEvent};
use charm::root::MachineRoot;
use charm::{HookContext, HookTools, Status};

use crate::arch::{self, Arch};
use crate::config::Config;
use crate::error::{Error, ToolContext};
use crate::journal::{self, JournalFile};
use crate::node::{Fresh, Node};
use crate::problem::{Concern, ProblemKind};
use crate::reads::{self, Reads};
use crate::relations::{ENDPOINTS, KUBE_CONTROL};
use crate::unit_state::{self, Recorded};
use crate::{actions, identity, install, roll, upgrade};

/// The variable that moves the machine's root (for tests).
pub const ROOT_VAR: &str = "KUBERNETES_WORKER_ROOT";

/// The mark a hook leaves in the charm dir while it changes the machine
/// (see [`charm::intent`]).
pub const INTENT_FILE: &str = ".kubernetes-worker-hook-running";

const INGRESS_PORTS: [&str; 2] = ["80/tcp", "443/tcp"];

/// Runs the handler for the context's event.
pub fn handle(ctx: &HookContext) -> Result<(), Error> {
    let hook = match &ctx.event {
        Event::Hook(HookKind::Other(name)) => {
            log::debug!("nothing to do for hook {name}");
            return Ok(());
        }
        Event::Unknown(path) => {
            log::warn!("unknown event {path:?}; nothing to do");
            return Ok(());
        }
        Event::Hook(kind) => Some(kind),
        Event::Action(_) => None,
    };
    let tools = HookTools;
    let root = MachineRoot::from_env(ROOT_VAR);
    let intent = charm::intent::Intent::arm(ctx.charm_dir.join(INTENT_FILE), &ctx.event.name())?;
    // A hook killed half-way (a reboot, the agent restarted) left its mark:
    // Juju dropped its relation data and ports, and what it had begun may
    // be half done. The work of every hook is redone once.
    let recovering = match (&intent.unfinished, hook) {
        (Some(earlier), Some(_)) => {
            log::warn!(
                "the {} hook did not finish; looking at everything again",
                earlier.hook
            );
            true
        }
        _ => false,
    };
    let (mut journal, mut state, lost) = open_records(&ctx.charm_dir)?;
    let recovering = recovering || lost && hook.is_some();
    if hook.is_some_and(|kind| Reads::of(kind, false).credentials) {
        // Juju fires secret-changed once per revision: that a new one is to
        // be read is recorded before anything can stop this hook, and
        // stands until the tokens are in place, whichever hook that is.
        state.get_mut().credentials_stale = true;
        state.save()?;
    }
    let (machine, arch) = arch::detect();
    let node = Node {
        tools: &tools,
        root: &root,
        unit: &ctx.unit,
        name: {
            let cached = state.get_mut();
            identity::node_name(
                &root,
                cached.relations.get(KUBE_CONTROL),
                &mut cached.fqdn,
                identity::Look::Never,
            )?
        },
        zone: ctx.availability_zone.clone(),
    };

    let mut announced: Option<Status> = None;
    let mut announce = |message: &str| -> Result<(), Error> {
        let status = Status::maintenance(message);
        tools
            .status_set(&status)
            .doing("setting the unit's status")?;
        announced = Some(status);
        Ok(())
    };
    // Juju drops a failed hook's relation-set and port changes: so are
    // their records.
    let transactional = (state.get().published.clone(), state.get().ingress_open);
    let work = match arch {
        None => Ok(()),
        Some(arch) => run(
            ctx,
            &node,
            arch,
            recovering,
            state.get_mut(),
            &mut journal,
            &mut announce,
        ),
    };
    if let Some(status) = announced {
        state.get_mut().status = Some(status_key(&status));
    }
    // A program past its deadline (a wedged snapd or tool), a full disk:
    // the unit says what stopped it, and the next hook, whatever it is,
    // redoes this one's work (its mark stays).
    if work.is_ok() {
        roll::follow_own_version(state.get_mut());
    }
    let work = match work {
        Err(e) => match e.interruption() {
            Some(problem) => {
                log::warn!("{} stopped: {e}", ctx.event.name());
                charm::intent::before_change()?;
                state.get_mut().concerns.set(Concern::Hook, vec![problem]);
                Ok(())
            }
            None => Err(e),
        },
        Ok(()) => {
            state.get_mut().concerns.clear(Concern::Hook);
            Ok(())
        }
    };
    if work.is_err() {
        (state.get_mut().published, state.get_mut().ingress_open) = transactional;
    }
    // What was done to the machine is recorded even if the hook then fails.
    journal.persist(&state.get().journal)?;
    state.save()?;
    work?;

    let status = assess(state.get(), &machine, arch);
    // A killed hook may have set a status the record does not know of.
    let always = recovering || matches!(hook, Some(HookKind::Install | HookKind::Stop));
    let key = status_key(&status);
    if always || state.get().status.as_ref() != Some(&key) {
        log::info!("status: {status}");
        tools
            .status_set(&status)
            .doing("setting the unit's status")?;
        state.get_mut().status = Some(key);
        state.save()?;
    }
    // The work is done and recorded, unless a program timed out or an
    // action ran where a hook's work is still to be redone.
    let redone = state.get().concerns.is_clear(Concern::Hook)
        && (hook.is_some() || !intent_was_left(&intent));
    if redone {
        intent.finish()?;
    }
    Ok(())
}

/// The journal and the cache, the journal inside the cache's record; and
/// whether either was lost on a unit that ran, so that everything is
/// looked at again.
fn open_records(
    charm_dir: &std::path::Path,
) -> Result<(JournalFile, charm::state::StateFile<Recorded>, bool), Error> {
    // The journal first: it takes over facts an earlier revision kept in
    // the state file, which forgets them when it is next saved.
    let (mut journal, facts, journal_afresh) = journal::load(charm_dir)?;
    journal.persist(&facts)?;
    // The cache of Juju inputs may be lost or unreadable: everything is
    // read again.
    let cache_existed = charm_dir.join(unit_state::STATE_FILE).exists();
    // A journal lost or unreadable on a unit that ran: what the machine
    // holds is adopted again, which takes a look at everything. (An
    // unreadable one was reported where it was moved aside.)
    let journal_lost = match journal_afresh {
        Some(journal::Afresh::Missing) if cache_existed => {
            log::warn!("the charm's journal is gone; taking over what the machine holds");
            true
        }
        Some(journal::Afresh::SetAside) => cache_existed,
        _ => false,
    };
    let (mut state, corrupt) = unit_state::load(charm_dir)?;
    let installed = facts.cni.is_some() || !facts.snaps.is_empty();
    let cache_lost = match corrupt {
        Some(why) => {
            log::warn!("the charm's cache of Juju inputs {why}; reading everything again");
            true
        }
        None if !cache_existed && installed => {
            log::warn!("the charm's cache of Juju inputs is gone; reading everything again");
            true
        }
        None => false,
    };
    state.get_mut().journal = facts;
    Ok((journal, state, cache_lost || journal_lost))
}

fn intent_was_left(intent: &charm::intent::Intent) -> bool {
    intent.unfinished.is_some()
}

fn run(
    ctx: &HookContext,
    node: &Node,
    arch: Arch,
    recovering: bool,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    let (tools, root) = (node.tools, node.root);
    if recovering {
        // Re-sent below: Juju may have dropped them with the killed hook.
        recorded.published.clear();
        recorded.ingress_open = None;
    }
    match &ctx.event {
        Event::Action(name) => {
            let target = install::Target { tools, root, arch };
            let room = actions::Room {
                target: &target,
                node,
                id: ctx.action_uuid.as_deref().unwrap_or(name),
            };
            // The new snaps may take other flags, the benchmark's
            // remediations other flags too: the node is configured as every
            // hook configures it.
            let mut configure = |r: &mut Recorded, j: &mut JournalFile| {
                converge_node(node, r, j, &Fresh::default())
            };
            return actions::run(name, &room, recorded, journal, announce, &mut configure);
        }
        Event::Hook(HookKind::Stop) => return node.stop(recorded, journal),
        Event::Hook(kind) => {
            // What this event can have changed is read; the rest is as
            // recorded.
            let reads = Reads::of(kind, recovering);
            let config = read_config(tools, recorded, &reads)?;
            let ssl_key = config.as_ref().map(|c| c.ingress_ssl_key.0.clone());
            let target = install::Target { tools, root, arch };
            look_at_resources(&target, recorded, journal, &reads, config, announce)?;
            let mut fresh = read_relations(ctx, node, recorded, kind, &reads)?;
            note_departures(ctx, recorded);
            let renamed = rename(node, recorded, &reads)?;
            let node = renamed.as_ref().unwrap_or(node);

            // Each concern converges, in this order.
            converge_node(node, recorded, journal, &fresh)?;
            upgrade::recover(node, recorded)?;
            if reads.peers {
                let mut configure = |r: &mut Recorded, j: &mut JournalFile| {
                    converge_node(node, r, j, &Fresh::default())
                };
                let mut turn = roll::Turn {
                    target: &target,
                    node,
                    journal,
                    announce,
                    configure: &mut configure,
                };
                roll::converge(&mut turn, recorded)?;
            } else if reads.config {
                // A channel change can have upgraded the snaps.
                roll::publish_version(node, recorded)?;
            }
            // After the node: the cni relation carries the kubeconfig's hash.
            node.publish_all(recorded)?;
            if reads.cos {
                publish_cos(node, recorded, kind, &mut fresh)?;
            }
            converge_ingress(node, recorded, journal, &reads, ssl_key)?;
            if reads.cloud || crate::cloud::retry_due(recorded) {
                let model = ctx.model_uuid.as_deref().unwrap_or_default();
                crate::cloud::converge(node, recorded, model)?;
            }
            node.remember_api_server(recorded);
            if reads.ports {
                if let Some(options) = &recorded.options {
                    set_ingress(tools, recorded.ingress_open, options.ingress)?;
                    recorded.ingress_open = Some(options.ingress);
                }
            }
        }
        Event::Unknown(_) => {}
    }
    Ok(())
}

/// The options, where this event can have changed them (or none were
/// read yet).
fn read_config(
    tools: &HookTools,
    recorded: &mut Recorded,
    reads: &Reads,
) -> Result<Option<Config>, Error> {
    let unread = recorded.options.is_none() && recorded.concerns.is_clear(Concern::Config);
    if !(reads.config || unread) {
        return Ok(None);
    }
    let config = Config::read(tools)?;
    match &config.node {
        Ok(options) => {
            recorded.options = Some(options.clone());
            recorded.concerns.clear(Concern::Config);
        }
        Err(problems) => recorded.concerns.set(Concern::Config, problems.clone()),
    }
    Ok(Some(config))
}

/// The resources and snaps. They are new only after attach-resource,
/// which fires upgrade-charm; config-changed looks again when the options
/// that choose the snaps changed; and a store failure is retried on
/// whatever hook comes next.
fn look_at_resources(
    target: &install::Target,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    reads: &Reads,
    config: Option<Config>,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    let options_changed = config.as_ref().is_some_and(|c| {
        recorded.resources_for != Some((c.channel.clone(), c.require_manual_upgrade))
    });
    let look_all = reads.resources == reads::Resources::All || options_changed;
    let look = match (look_all, recorded.wants_retry(), &recorded.resources_for) {
        (true, _, _) | (false, true, None) => install::Look::All,
        (false, true, Some(_)) => install::Look::Retries,
        (false, false, _) => return Ok(()),
    };
    // A retry is of what failed, with the options it failed with: one
    // resource-get, no config-get.
    let config = match (config, &recorded.resources_for) {
        (Some(config), _) => config,
        (None, Some((channel, manual))) if look == install::Look::Retries => Config {
            channel: channel.clone(),
            require_manual_upgrade: *manual,
            node: Err(Vec::new()),
            ingress_ssl_key: Default::default(),
        },
        (None, _) => Config::read(target.tools)?,
    };
    install::converge(target, &config, recorded, journal, false, look, announce)?;
    Ok(())
}

/// The relation data this event can have changed, into the cache; what
/// the cache does not keep (tokens, keys) is returned with it.
fn read_relations(
    ctx: &HookContext,
    node: &Node,
    recorded: &mut Recorded,
    kind: &HookKind,
    reads: &Reads,
) -> Result<Fresh, Error> {
    let endpoints: Vec<&str> = match &reads.endpoints {
        reads::Endpoints::All => ENDPOINTS.to_vec(),
        reads::Endpoints::Own(endpoint) => ENDPOINTS
            .iter()
            .copied()
            .filter(|e| e == endpoint)
            .collect(),
        reads::Endpoints::Unread => ENDPOINTS
            .iter()
            .copied()
            .filter(|e| !recorded.relations.contains_key(*e))
            .collect(),
        reads::Endpoints::None => Vec::new(),
    };
    let broken = match kind {
        HookKind::Relation {
            event: RelationEvent::Broken,
            ..
        } => ctx.relation.as_ref().map(|r| r.id.to_string()),
        _ => None,
    };
    let mut fresh = Fresh {
        addresses: reads.addresses,
        check_ready: reads.node_ready,
        ..Fresh::default()
    };
    node.refresh(recorded, &endpoints, broken.as_deref(), &mut fresh)?;
    if fresh.addresses {
        // A re-addressed machine needs a certificate for its new
        // addresses: read them again where they can have changed.
        recorded.addresses = None;
        recorded.addresses_due = true;
    }
    Ok(fresh)
}

/// Who is leaving, as Juju's relation-departed says (juju's relation
/// resolver names the local unit as the departing one once the unit or
/// its application is dying, and the remote unit otherwise): this unit,
/// whose removal has begun, or the control plane, once kube-control has
/// no unit left while this unit is not leaving.
fn note_departures(ctx: &HookContext, recorded: &mut Recorded) {
    let departing = ctx
        .relation
        .as_ref()
        .and_then(|r| r.departing_unit.as_deref());
    if departing == Some(ctx.unit.as_str()) && !recorded.leaving {
        log::info!("this unit is being removed: its relations are leaving first");
        recorded.leaving = true;
    }
    if recorded.leaving {
        return;
    }
    if let Some(control) = recorded.relations.get(KUBE_CONTROL) {
        let left = control.relations.values().all(|units| units.is_empty());
        if left && !recorded.control_plane_left && departing.is_some() {
            log::info!("the control plane has left: no kube-control unit remains");
        }
        recorded.control_plane_left = left;
    }
}

/// The node under the name it now has, if that changed: the name follows
/// kube-control (has-xcp) and, on AWS, the FQDN. The FQDN is looked up
/// again, on every cloud (the certificate names it), where a machine can
/// have been re-addressed or renamed under the unit: a new revision, or
/// after a kill.
fn rename<'a>(
    node: &Node<'a>,
    recorded: &mut Recorded,
    reads: &Reads,
) -> Result<Option<Node<'a>>, Error> {
    if reads.fqdn_again {
        identity::fqdn(&mut recorded.fqdn, identity::Look::Again)?;
    }
    let name = identity::node_name(
        node.root,
        recorded.relations.get(KUBE_CONTROL),
        &mut recorded.fqdn,
        identity::Look::IfUnknown,
    )?;
    Ok((name != node.name).then(|| Node {
        name,
        ..node.clone()
    }))
}

/// The node's files, daemons and labels, unless it stopped or its options
/// are wrong; daemons stopped for a refresh start again either way.
fn converge_node(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    fresh: &Fresh,
) -> Result<(), Error> {
    if recorded.journal.stopped {
        return Ok(());
    }
    if let (true, Some(options)) = (
        recorded.concerns.is_clear(Concern::Config),
        recorded.options.clone(),
    ) {
        node.converge(recorded, journal, &options, fresh)?;
    }
    node.unpark(recorded)
}

/// The COS configuration carries the token, which the cache does not
/// keep: where its inputs can have changed, it is read again.
fn publish_cos(
    node: &Node,
    recorded: &mut Recorded,
    kind: &HookKind,
    fresh: &mut Fresh,
) -> Result<(), Error> {
    if *kind == HookKind::UpgradeCharm {
        // A new revision may lay the configuration out anew.
        let prefix = format!("{}:", crate::relations::COS_AGENT);
        recorded
            .published
            .retain(|rid, _| !rid.starts_with(&prefix));
    }
    node.publish_cos(recorded, fresh)
}

/// The ingress controller: where what it is made of can have changed,
/// or an earlier try is to be retried. `ssl_key`: the default
/// certificate's key, if this hook read config.
fn converge_ingress(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    reads: &Reads,
    ssl_key: Option<String>,
) -> Result<(), Error> {
    let tools = node.tools;
    let leadership = reads.leadership || recorded.leader.is_none();
    let wanted_not_applied = recorded.leader == Some(true)
        && recorded.options.as_ref().is_some_and(|o| o.ingress)
        && recorded
            .journal
            .ingress
            .as_ref()
            .is_none_or(|r| r.fingerprint.is_empty());
    let due = leadership
        || reads.ingress
        || !recorded.concerns.is_clear(Concern::Ingress)
        || wanted_not_applied;
    let (true, false, true, Some(options)) = (
        due,
        recorded.journal.stopped,
        recorded.concerns.is_clear(Concern::Config),
        recorded.options.clone(),
    ) else {
        return Ok(());
    };
    if leadership {
        recorded.leader = Some(tools.is_leader().doing("asking whether this unit leads")?);
    }
    if recorded.leader != Some(true) {
        node.leave_ingress(recorded);
        return Ok(());
    }
    let key = match ssl_key {
        Some(key) => key,
        None if !options.ingress_settings.ssl_key_fingerprint.is_empty() => {
            Config::read(tools)?.ingress_ssl_key.0
        }
        None => String::new(),
    };
    let key = Some(key.as_str()).filter(|k| !k.is_empty());
    node.converge_ingress(recorded, journal, &options, key, leadership)
}

fn set_ingress(tools: &HookTools, open: Option<bool>, want: bool) -> Result<(), Error> {
    if open == Some(want) {
        return Ok(());
    }
    for port in INGRESS_PORTS {
        if want {
            tools.open_port(port).doing("opening the ingress ports")?;
        } else {
            tools.close_port(port).doing("closing the ingress ports")?;
        }
    }
    Ok(())
}

fn status_key(status: &Status) -> (String, String) {
    (status.kind.as_str().to_string(), status.message.clone())
}

/// The one status that says how the unit stands, most urgent first:
/// what the operator must fix, then what the unit waits for, then running.
fn assess(recorded: &Recorded, machine: &str, arch: Option<Arch>) -> Status {
    let Some(arch) = arch else {
        return Status::blocked(format!("Unsupported architecture: {machine}"));
    };
    if recorded.journal.stopped {
        let node = recorded
            .journal
            .stop_outcome
            .as_deref()
            .unwrap_or("node left to the control plane");
        let sep = if node.ends_with(')') || node.contains(';') {
            ";"
        } else {
            ","
        };
        return Status::maintenance(format!(
            "Stopped: {node}{sep} kubelet and kube-proxy stopped"
        ));
    }
    if let Some(why) = recorded
        .journal
        .upgrade
        .as_ref()
        .and_then(|u| u.stopped.as_ref())
    {
        return Status::blocked(why.clone());
    }
    match recorded.concerns.most_urgent() {
        Some(p) if matches!(p.kind, ProblemKind::Blocked | ProblemKind::ManualUpgrade) => {
            return Status::blocked(p.message.clone())
        }
        Some(p) => return Status::waiting(p.message.clone()),
        None => {}
    }
    if !(recorded.journal.snaps.contains_key("kubelet")
        && recorded.journal.snaps.contains_key("kube-proxy"))
    {
        return Status::waiting(format!("Installing Kubernetes on {arch}"));
    }
    if recorded.journal.daemons.is_empty() {
        return Status::waiting("Waiting for the node's configuration");
    }
    Status::active("Kubernetes worker running.")
}
