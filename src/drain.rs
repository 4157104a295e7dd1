//! Draining a node as `kubectl drain` does: cordon it, evict its pods
//! (DaemonSet and mirror pods stay), retry the evictions a
//! PodDisruptionBudget refuses for now, and wait for the evicted pods to
//! go, all within one deadline. Used by the `pause` and `upgrade` actions.

use std::time::{Duration, Instant};

use crate::kubeapi::{Api, Pod};

const POLL: Duration = Duration::from_secs(2);

pub struct Options {
    /// Evict pods that use emptyDir volumes (their data is lost).
    pub delete_local_data: bool,
    /// Also evict pods no controller will recreate.
    pub force: bool,
    pub timeout: Duration,
}

/// What a drain did: the pods evicted, and those still terminating at
/// the deadline.
pub struct Drained {
    pub evicted: Vec<String>,
    pub terminating: Vec<String>,
}

/// Cordons `node` and evicts its pods. Refuses before evicting anything
/// when a pod needs `force` or `delete_local_data` and they are not
/// given, so a refused drain changes nothing but the cordon. `Err` says
/// what stopped it, for the operator.
pub fn drain(api: &Api, node: &str, options: &Options) -> Result<Drained, String> {
    // One deadline for the whole drain: evictions a disruption budget
    // refuses for now are retried, then the wait for the pods to go.
    let deadline = Instant::now() + options.timeout;
    if let Err(e) = api.set_unschedulable(node, true) {
        return Err(format!("cannot cordon node {node}: {e}"));
    }
    let pods = api
        .pods_on(node)
        .map_err(|e| format!("cannot list the pods on node {node}: {e}"))?;
    let evictable: Vec<Pod> = pods
        .into_iter()
        .filter(|p| !p.daemonset && !p.mirror)
        .collect();
    let unmanaged: Vec<String> = evictable
        .iter()
        .filter(|p| !p.controlled)
        .map(name)
        .collect();
    if !unmanaged.is_empty() && !options.force {
        return Err(format!(
            "node cordoned, not drained: pods not managed by a controller (run again with force=true to delete them): {}",
            unmanaged.join(", ")
        ));
    }
    let local: Vec<String> = evictable
        .iter()
        .filter(|p| p.local_data)
        .map(name)
        .collect();
    if !local.is_empty() && !options.delete_local_data {
        return Err(format!(
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
                // does, try again until the deadline.
                Err(e) if e.is_too_many_requests() && Instant::now() < deadline => {
                    log::debug!("evicting {}: {e}; trying again", name(pod));
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(POLL.min(left));
                }
                Err(e) => return Err(format!("node cordoned; evicting {} failed: {e}", name(pod))),
            }
        }
        evicted.push(name(pod));
    }
    // Eviction only asks; as `kubectl drain` does, wait for the pods to go.
    let terminating = loop {
        let left: Vec<String> = match api.pods_on(node) {
            Ok(pods) => pods
                .iter()
                .map(name)
                .filter(|n| evicted.contains(n))
                .collect(),
            Err(e) => {
                return Err(format!(
                    "node cordoned, pods evicted; cannot check they terminated: {e}"
                ))
            }
        };
        let now = Instant::now();
        if left.is_empty() || now >= deadline {
            break left;
        }
        std::thread::sleep(POLL.min(deadline - now));
    };
    Ok(Drained {
        evicted,
        terminating,
    })
}

/// The pods `drain` would evict from `node`, without evicting any.
pub fn evictable(api: &Api, node: &str) -> Result<Vec<String>, String> {
    let pods = api
        .pods_on(node)
        .map_err(|e| format!("cannot list the pods on node {node}: {e}"))?;
    Ok(pods
        .iter()
        .filter(|p| !p.daemonset && !p.mirror)
        .map(name)
        .collect())
}

fn name(p: &Pod) -> String {
    format!("{}/{}", p.namespace, p.name)
}
