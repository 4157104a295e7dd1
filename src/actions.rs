//! The `pause` and `resume` actions: cordon and drain the node, uncordon it.

use std::collections::BTreeMap;

use charm::HookTools;
use serde::Deserialize;

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

const POLL: std::time::Duration = std::time::Duration::from_secs(2);

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
    let timeout = std::time::Duration::from_secs(params.timeout.unsigned_abs());
    let Some(api) = api_or_fail(tools, node, recorded)? else {
        return Ok(());
    };
    // One deadline for the whole drain: evictions a disruption budget
    // refuses for now are retried, then the wait for the pods to go.
    let deadline = std::time::Instant::now() + timeout;
    if let Err(e) = api.set_unschedulable(&node.name, true) {
        return fail(format!("cannot cordon node {}: {e}", node.name));
    }
    let pods = match api.pods_on(&node.name) {
        Ok(pods) => pods,
        Err(e) => return fail(format!("cannot list the pods on node {}: {e}", node.name)),
    };
    let evictable: Vec<_> = pods
        .into_iter()
        .filter(|p| !p.daemonset && !p.mirror)
        .collect();
    let name = |p: &crate::kubeapi::Pod| format!("{}/{}", p.namespace, p.name);
    let unmanaged: Vec<String> = evictable
        .iter()
        .filter(|p| !p.controlled)
        .map(name)
        .collect();
    if !unmanaged.is_empty() && !params.force {
        return fail(format!(
            "node cordoned, not drained: pods not managed by a controller (run again with force=true to delete them): {}",
            unmanaged.join(", ")
        ));
    }
    let local: Vec<String> = evictable
        .iter()
        .filter(|p| p.local_data)
        .map(name)
        .collect();
    if !local.is_empty() && !params.delete_local_data {
        return fail(format!(
            "node cordoned, not drained: pods with local data (run again with delete-local-data=true to lose it): {}",
            local.join(", ")
        ));
    }
    let mut evicted = Vec::new();
    for pod in &evictable {
        loop {
            match api.evict(pod) {
                Ok(()) => break,
                // A PodDisruptionBudget says "not now": as `kubectl drain`
                // does, try again until the timeout.
                Err(e) if e.is_too_many_requests() && std::time::Instant::now() < deadline => {
                    log::debug!("evicting {}: {e}; trying again", name(pod));
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    std::thread::sleep(POLL.min(left));
                }
                Err(e) => {
                    return fail(format!("node cordoned; evicting {} failed: {e}", name(pod)))
                }
            }
        }
        evicted.push(name(pod));
    }
    // Eviction only asks; as `kubectl drain` does, wait for the pods to go.
    let remaining = loop {
        let left: Vec<String> = match api.pods_on(&node.name) {
            Ok(pods) => pods
                .iter()
                .map(name)
                .filter(|n| evicted.contains(n))
                .collect(),
            Err(e) => {
                return fail(format!(
                    "node cordoned, pods evicted; cannot check they terminated: {e}"
                ))
            }
        };
        let now = std::time::Instant::now();
        if left.is_empty() || now >= deadline {
            break left;
        }
        std::thread::sleep(POLL.min(deadline - now));
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
