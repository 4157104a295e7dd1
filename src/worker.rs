//! The event handlers: route each event to the work it can require, then
//! set the one status that says how the unit stands.

use charm::context::{Event, HookKind};
use charm::root::MachineRoot;
use charm::{HookContext, HookTools, Status};

use crate::arch::{self, Arch};
use crate::config::Config;
use crate::error::{Error, ToolContext};
use crate::install;
use crate::unit_state::{self, ProblemKind, Recorded};

/// The variable that moves the machine's root (for tests).
pub const ROOT_VAR: &str = "KUBERNETES_WORKER_ROOT";

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

    let mut announced: Option<Status> = None;
    let mut announce = |message: &str| -> Result<(), Error> {
        let status = Status::maintenance(message);
        tools
            .status_set(&status)
            .doing("setting the unit's status")?;
        announced = Some(status);
        Ok(())
    };
    let work = match (arch, &ctx.event) {
        (None, _) => Ok(()),
        (Some(arch), Event::Action(name)) if name == "upgrade" => {
            upgrade_action(&tools, &root, arch, state.get_mut(), &mut announce)
        }
        (Some(_), Event::Action(name)) => {
            log::warn!("action {name} is not implemented yet");
            tools
                .action_fail(&format!("action {name} is not implemented yet"))
                .doing("failing the action")
        }
        (Some(arch), Event::Hook(kind)) => {
            // Resources change only with upgrade-charm (attach-resource),
            // the channel only with config-changed; other hooks look again
            // only to retry what the store failed to deliver.
            let look = matches!(
                kind,
                HookKind::Install | HookKind::UpgradeCharm | HookKind::ConfigChanged
            ) || state.get().wants_retry();
            if look {
                Config::read(&tools).and_then(|config| {
                    install::converge(
                        &tools,
                        &root,
                        arch,
                        &config,
                        state.get_mut(),
                        false,
                        &mut announce,
                    )
                    .map(drop)
                })
            } else {
                Ok(())
            }
        }
        (Some(_), Event::Unknown(_)) => Ok(()),
    };
    if let Some(status) = announced {
        state.get_mut().status = Some(status_key(&status));
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

fn status_key(status: &Status) -> (String, String) {
    (status.kind.as_str().to_string(), status.message.clone())
}

/// The one status that says how the unit stands, most urgent first.
fn assess(recorded: &Recorded, machine: &str, arch: Option<Arch>) -> Status {
    let Some(arch) = arch else {
        return Status::blocked(format!("Unsupported architecture: {machine}"));
    };
    for kind in [ProblemKind::Blocked, ProblemKind::ManualUpgrade] {
        if let Some(p) = recorded.problems.iter().find(|p| p.kind == kind) {
            return Status::blocked(p.message.clone());
        }
    }
    if let Some(p) = recorded
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Retry)
    {
        return Status::waiting(p.message.clone());
    }
    match recorded.snaps.get("kubelet") {
        Some(kubelet) => Status::waiting(format!(
            "Kubernetes {} installed on {arch}; node configuration is not in this build yet",
            kubelet.version
        )),
        None => Status::waiting(format!("Installing Kubernetes on {arch}")),
    }
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
