//! The `upgrade` action: one unit's drained upgrade, or, from the leader
//! with `all-units`, the start of a rolling upgrade of every unit
//! ([`crate::roll`]).

use crate::config::Config;
use crate::error::{Error, ToolContext};
use crate::journal::JournalFile;
use crate::roll;
use crate::unit_state::Recorded;
use crate::upgrade::{self, Configure};

use super::Room;

/// The `upgrade` action: applies what require-manual-upgrade held back,
/// once the control plane is found to allow it, drained first and
/// uncordoned once Ready on the new kubelet ([`upgrade::run`]), and
/// reports step by step. A dry run reports what it would do and changes
/// nothing.
pub fn run(
    room: &Room,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    announce: &mut dyn FnMut(&str) -> Result<(), Error>,
    configure: &mut Configure,
) -> Result<(), Error> {
    let Room { target, node, id } = *room;
    let tools = target.tools;
    let fail = |message: &str| tools.action_fail(message).doing("failing the action");
    let params: upgrade::Params = tools
        .action_get()
        .doing("reading the action's parameters")?;
    if let Err(why) = params.check() {
        return fail(&why);
    }
    if params.all_units {
        let mut turn = roll::Turn {
            target,
            node,
            journal,
            announce,
            configure,
        };
        return match roll::start(&mut turn, recorded, &params, id)? {
            Ok(results) => tools
                .action_set(&results)
                .doing("reporting the rolling upgrade"),
            Err(why) => {
                log::warn!("rolling upgrade refused: {why}");
                fail(&format!("upgrade refused, nothing changed: {why}"))
            }
        };
    }
    let config = Config::read(tools)?;
    let plan = match upgrade::plan(target, node, &config, recorded)? {
        Ok(plan) => plan,
        Err(why) => {
            log::warn!("upgrade refused: {why}");
            return fail(&format!("upgrade refused, nothing changed: {why}"));
        }
    };
    if params.dry_run {
        let mut results = plan.results();
        results.insert("dry-run".into(), "true".into());
        if !params.skip_drain {
            // The very plan the drain would follow with these options.
            let evicts = match node.api(recorded) {
                Some(Ok(api)) => {
                    crate::drain::plan(&api, &node.name, params.force, params.delete_local_data)
                        .map(|plan| plan.summary())
                        .unwrap_or_else(|why| format!("unknown: {why}"))
                }
                Some(Err(e)) => format!("unknown: {e}"),
                None => "none: the node is in no cluster yet".into(),
            };
            results.insert("evicts".into(), evicts);
        }
        return tools
            .action_set(&results)
            .doing("reporting the upgrade's plan");
    }
    let (report, stopped) = upgrade::run(
        target,
        node,
        (&config, &plan, &params),
        recorded,
        journal,
        announce,
        configure,
    )?;
    tools
        .action_set(&report)
        .doing("reporting the upgrade's results")?;
    // The peers learn this unit's new version: a roll this unit stopped
    // counts it done once started again.
    roll::publish_version(node, recorded)?;
    match stopped {
        Some(why) => fail(&why),
        None => Ok(()),
    }
}
