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
use crate::node::{self, Fresh, Node};
use crate::relations::{CERTIFICATES, ENDPOINTS, KUBE_CONTROL};
use crate::unit_state::{self, ProblemKind, Recorded};
use crate::{actions, install};

/// The variable that moves the machine's root (for tests).
pub const ROOT_VAR: &str = "KUBERNETES_WORKER_ROOT";

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
    let mut state = unit_state::load(&ctx.charm_dir)?;
    let (machine, arch) = arch::detect();
    let node = Node {
        tools: &tools,
        root: &root,
        unit: &ctx.unit,
        name: node::node_name(),
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
            &tools,
            &root,
            &node,
            arch,
            state.get_mut(),
            &mut announce,
        ),
    };
    if let Some(status) = announced {
        state.get_mut().status = Some(status_key(&status));
    }
    if work.is_err() {
        (state.get_mut().published, state.get_mut().ingress_open) = transactional;
    }
    // What was done to the machine is recorded even if the hook then fails.
    state.save()?;
    work?;

    let status = assess(state.get(), &machine, arch);
    let always = matches!(hook, Some(HookKind::Install | HookKind::Stop));
    let key = status_key(&status);
    if always || state.get().status.as_ref() != Some(&key) {
        log::info!("status: {status}");
        tools
            .status_set(&status)
            .doing("setting the unit's status")?;
        state.get_mut().status = Some(key);
        state.save()?;
    }
    Ok(())
}

fn run(
    ctx: &HookContext,
    tools: &HookTools,
    root: &MachineRoot,
    node: &Node,
    arch: Arch,
    recorded: &mut Recorded,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    match &ctx.event {
        Event::Action(name) => match name.as_str() {
            "upgrade" => {
                upgrade_action(tools, root, arch, recorded, announce)?;
                // The new snaps may take other flags: configure them now.
                if let (false, true, Some(options)) = (
                    recorded.stopped,
                    recorded.config_problems.is_empty(),
                    recorded.options.clone(),
                ) {
                    node.converge(recorded, &options, &Fresh::default())?;
                }
            }
            "pause" => return actions::pause(tools, node, recorded),
            "resume" => return actions::resume(tools, node, recorded),
            other => {
                log::warn!("unknown action {other}");
                return tools
                    .action_fail(&format!("unknown action {other}"))
                    .doing("failing the action");
            }
        },
        Event::Hook(HookKind::Stop) => return node.stop(recorded),
        Event::Hook(kind) => {
            let reads_config = matches!(
                kind,
                HookKind::Install | HookKind::UpgradeCharm | HookKind::ConfigChanged
            );
            let config = if reads_config
                || recorded.options.is_none() && recorded.config_problems.is_empty()
            {
                let config = Config::read(tools)?;
                match &config.node {
                    Ok(options) => {
                        recorded.options = Some(options.clone());
                        recorded.config_problems.clear();
                    }
                    Err(problems) => recorded.config_problems = problems.clone(),
                }
                Some(config)
            } else {
                None
            };
            // Resources are new only after attach-resource, which fires
            // upgrade-charm; config-changed looks again when the options
            // that choose the snaps changed; and a store failure is retried
            // on whatever hook comes next.
            let options_changed = config.as_ref().is_some_and(|c| {
                recorded.resources_for != Some((c.channel.clone(), c.require_manual_upgrade))
            });
            let look = matches!(kind, HookKind::Install | HookKind::UpgradeCharm)
                || options_changed
                || recorded.wants_retry();
            if look {
                let config = match config {
                    Some(config) => config,
                    None => Config::read(tools)?,
                };
                install::converge(tools, root, arch, &config, recorded, false, announce)?;
            }
            let endpoints: Vec<&str> = match kind {
                HookKind::Relation { endpoint, .. } => ENDPOINTS
                    .iter()
                    .copied()
                    .filter(|e| e == endpoint)
                    .collect(),
                HookKind::Install | HookKind::UpgradeCharm => ENDPOINTS.to_vec(),
                _ => ENDPOINTS
                    .iter()
                    .copied()
                    .filter(|e| {
                        !recorded.relations.contains_key(*e) && *kind != HookKind::UpdateStatus
                    })
                    .collect(),
            };
            let broken = match kind {
                HookKind::Relation {
                    event: RelationEvent::Broken,
                    ..
                } => ctx.relation.as_ref().map(|r| r.id.to_string()),
                _ => None,
            };
            let mut fresh = Fresh {
                secret_changed: *kind == HookKind::SecretChanged,
                addresses: reads_config
                    || matches!(kind, HookKind::Relation { endpoint, .. }
                        if endpoint == KUBE_CONTROL || endpoint == CERTIFICATES),
                check_ready: *kind == HookKind::UpdateStatus,
                ..Fresh::default()
            };
            node.refresh(recorded, &endpoints, broken.as_deref(), &mut fresh)?;
            if fresh.addresses {
                // A re-addressed machine needs a certificate for its new
                // addresses: read them again where they can have changed.
                recorded.addresses = None;
            }
            if !recorded.stopped && recorded.config_problems.is_empty() {
                if let Some(options) = recorded.options.clone() {
                    node.converge(recorded, &options, &fresh)?;
                }
            }
            // After converging: the cni relation carries the kubeconfig's hash.
            node.publish_all(recorded)?;
            if reads_config {
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
    if recorded.stopped {
        return Status::maintenance(
            "Stopped: node removed from the cluster, kubelet and kube-proxy stopped",
        );
    }
    let all = || {
        recorded
            .problems
            .iter()
            .chain(&recorded.config_problems)
            .chain(&recorded.node_problems)
    };
    for kind in [ProblemKind::Blocked, ProblemKind::ManualUpgrade] {
        if let Some(p) = all().find(|p| p.kind == kind) {
            return Status::blocked(p.message.clone());
        }
    }
    if let Some(p) = all().find(|p| matches!(p.kind, ProblemKind::Retry | ProblemKind::Waiting)) {
        return Status::waiting(p.message.clone());
    }
    if !(recorded.snaps.contains_key("kubelet") && recorded.snaps.contains_key("kube-proxy")) {
        return Status::waiting(format!("Installing Kubernetes on {arch}"));
    }
    if recorded.daemons.is_empty() {
        return Status::waiting("Waiting for the node's configuration");
    }
    Status::active("Kubernetes worker running.")
}

/// The `upgrade` action: applies what require-manual-upgrade held back,
/// and reports item by item.
fn upgrade_action(
    tools: &HookTools,
    root: &MachineRoot,
    arch: Arch,
    recorded: &mut Recorded,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    let config = Config::read(tools)?;
    let report = install::converge(tools, root, arch, &config, recorded, true, announce)?;
    tools
        .action_set(&report)
        .doing("reporting the upgrade's results")?;
    let trouble: Vec<&str> = recorded
        .problems
        .iter()
        .map(|p| p.message.as_str())
        .collect();
    if !trouble.is_empty() {
        tools
            .action_fail(&format!("upgrade incomplete: {}", trouble.join("; ")))
            .doing("failing the action")?;
    }
    Ok(())
}
