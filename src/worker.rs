//! The event handlers.

use charm::context::{Event, HookKind};
use charm::{HookContext, HookTools, Status};

use crate::arch::{self, Arch};
use crate::error::{Error, ToolContext};
use crate::unit_state;

/// Runs the handler for the context's event.
pub fn handle(ctx: &HookContext) -> Result<(), Error> {
    let tools = HookTools;
    let mut recorded = unit_state::load(&ctx.charm_dir)?;
    let always_set = matches!(ctx.event, Event::Hook(HookKind::Install | HookKind::Stop));
    let status = match &ctx.event {
        Event::Hook(HookKind::Other(name)) => {
            log::debug!("nothing to do for hook {name}");
            None
        }
        Event::Unknown(path) => {
            log::warn!("unknown event {path:?}; nothing to do");
            None
        }
        Event::Action(name) => {
            log::warn!("action {name} is not implemented yet");
            tools
                .action_fail(&format!("action {name} is not implemented yet"))
                .doing("failing the action")?;
            None
        }
        Event::Hook(_) => Some(assess()),
    };
    if let Some(status) = status {
        let key = (status.kind.as_str().to_string(), status.message.clone());
        if always_set || recorded.get().status.as_ref() != Some(&key) {
            log::info!("status: {status}");
            tools
                .status_set(&status)
                .doing("setting the unit's status")?;
            recorded.get_mut().status = Some(key);
        }
    }
    recorded.save()?;
    Ok(())
}

/// What the unit's status should be.
fn assess() -> Status {
    match arch::detect() {
        (machine, None) => Status::blocked(format!("Unsupported architecture: {machine}")),
        (_, Some(arch)) => ready_on(arch),
    }
}

fn ready_on(arch: Arch) -> Status {
    Status::blocked(format!(
        "Detected {arch}; this build does not install Kubernetes yet"
    ))
}
