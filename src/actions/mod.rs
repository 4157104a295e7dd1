//! The charm's actions, each in a room of its own: `upgrade` (one unit,
//! or every unit in turn from the leader), `pause` and `resume` (cordon
//! and drain, uncordon), and `cis-benchmark` (whose checks live in
//! [`crate::cis`]). The hook pipeline ([`crate::worker`]) only chooses to
//! run one, here, with what every action may need of the hook.

mod pause;
mod upgrade;

use crate::error::{Error, ToolContext};
use crate::install::Target;
use crate::journal::JournalFile;
use crate::node::Node;
use crate::unit_state::Recorded;
use crate::upgrade::Configure;

/// What an action is run with, besides the records.
#[derive(Clone, Copy)]
pub struct Room<'a> {
    pub target: &'a Target<'a>,
    pub node: &'a Node<'a>,
    /// The action's id (Juju's uuid for it): names its reports.
    pub id: &'a str,
}

/// Runs the action `name`. `configure` configures the node as every
/// hook does, for an action that changed what it depends on (the snaps,
/// kubelet's flags).
pub fn run(
    name: &str,
    room: &Room,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    configure: &mut Configure,
) -> Result<(), Error> {
    let (tools, node) = (room.target.tools, room.node);
    match name {
        "upgrade" => upgrade::run(room, recorded, journal, announce, configure),
        "pause" => pause::pause(tools, node, recorded),
        "resume" => pause::resume(tools, node, recorded),
        "cis-benchmark" => crate::cis::action(node, recorded, journal, room.id, configure),
        other => {
            log::warn!("unknown action {other}");
            tools
                .action_fail(&format!("unknown action {other}"))
                .doing("failing the action")
        }
    }
}
