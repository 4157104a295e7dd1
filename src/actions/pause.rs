//! The `pause` and `resume` actions: cordon and drain the node, uncordon it.

use std::collections::BTreeMap;

use charm::HookTools;
use serde::Deserialize;

use crate::drain;
use crate::error::{Error, ToolContext};
use crate::kubeapi::Api;
use crate::node::Node;
use crate::unit_state::Recorded;

#[derive(Deserialize)]
struct PauseParams {
    #[serde(rename = "delete-local-data", default)]
    delete_local_data: bool,
    #[serde(default)]
    force: bool,
    #[serde(default = "default_timeout")]
    timeout: i64,
}

fn default_timeout() -> i64 {
    60
}

/// The longest `timeout` pause takes: a day. Longer would hold the
/// machine lock (and every other charm on the machine) for longer still.
const MAX_TIMEOUT: i64 = 86_400;

fn api_or_fail(tools: &HookTools, node: &Node, recorded: &Recorded) -> Result<Option<Api>, Error> {
    match node.api(recorded) {
        Some(Ok(api)) => Ok(Some(api)),
        Some(Err(e)) => {
            tools
                .action_fail(&e.to_string())
                .doing("failing the action")?;
            Ok(None)
        }
        None => {
            tools
                .action_fail("the node is not configured yet: no API server, CA or credentials from the relations")
                .doing("failing the action")?;
            Ok(None)
        }
    }
}

/// Cordons the node and evicts its pods, except DaemonSet and mirror pods.
/// Pods with local data need `delete-local-data`; pods no controller will
/// recreate need `force`. Refuses before evicting anything if either is
/// missing, so a refused pause changes nothing but the cordon.
pub fn pause(tools: &HookTools, node: &Node, recorded: &Recorded) -> Result<(), Error> {
    let params: PauseParams = tools
        .action_get()
        .doing("reading the action's parameters")?;
    let fail = |message: String| tools.action_fail(&message).doing("failing the action");
    if !(0..=MAX_TIMEOUT).contains(&params.timeout) {
        return fail(format!(
            "timeout must be from 0 to {MAX_TIMEOUT} seconds, not {}",
            params.timeout
        ));
    }
    let options = drain::Options {
        delete_local_data: params.delete_local_data,
        force: params.force,
        timeout: std::time::Duration::from_secs(params.timeout.unsigned_abs()),
    };
    let Some(api) = api_or_fail(tools, node, recorded)? else {
        return Ok(());
    };
    let drain::Drained {
        evicted,
        gone,
        terminating: remaining,
    } = match drain::drain(&api, &node.name, &options) {
        Ok(drained) => drained,
        Err(message) => return fail(message),
    };
    let mut results = BTreeMap::from([
        ("cordoned".to_string(), "true".to_string()),
        (
            "evicted".to_string(),
            if evicted.is_empty() {
                "none".into()
            } else {
                evicted.join(",")
            },
        ),
    ]);
    if !gone.is_empty() {
        results.insert("already-gone".to_string(), gone.join(","));
    }
    if !remaining.is_empty() {
        results.insert("terminating".to_string(), remaining.join(","));
        tools
            .action_set(&results)
            .doing("reporting the action's results")?;
        return fail(format!(
            "node cordoned and drained, but these pods had not terminated after {} s: {}",
            params.timeout,
            remaining.join(", ")
        ));
    }
    log::info!(
        "paused node {}: cordoned, {} pods evicted",
        node.name,
        evicted.len()
    );
    tools
        .action_set(&results)
        .doing("reporting the action's results")
}

/// Uncordons the node.
pub fn resume(tools: &HookTools, node: &Node, recorded: &Recorded) -> Result<(), Error> {
    let Some(api) = api_or_fail(tools, node, recorded)? else {
        return Ok(());
    };
    match api.set_unschedulable(&node.name, false) {
        Ok(()) => {
            log::info!("resumed node {}", node.name);
            tools
                .action_set(&BTreeMap::from([(
                    "uncordoned".to_string(),
                    "true".to_string(),
                )]))
                .doing("reporting the action's results")
        }
        Err(e) => tools
            .action_fail(&format!("cannot uncordon node {}: {e}", node.name))
            .doing("failing the action"),
    }
}
