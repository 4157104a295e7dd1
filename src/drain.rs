//! Draining a node as `kubectl drain --ignore-daemonsets` does (the rules
//! of k8s.io/kubectl's pkg/drain, filters.go and drain.go): cordon it,
//! evict its pods but DaemonSet and mirror pods, retry the evictions a
//! PodDisruptionBudget refuses for now, and wait for the evicted pods to
//! go, all within one deadline. Used by the `pause` and `upgrade` actions,
//! and by the `stop` hook before the node is deleted.

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

/// What a drain did: the pods evicted, those gone before their eviction
/// (deleted meanwhile: nothing left to do), and those still terminating
/// at the deadline.
pub struct Drained {
    pub evicted: Vec<String>,
    pub gone: Vec<String>,
    pub terminating: Vec<String>,
}

/// What the drain does with the pods on a node, decided as kubectl's
/// filters decide it, in their order, the first refusal standing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The pods it evicts, in the order listed.
    pub evict: Vec<Pod>,
    /// Of those, the finished ones (Succeeded or Failed): they go whatever
    /// the options, as nothing runs in them any more.
    pub finished: Vec<String>,
    /// Pods it will not touch without `force`: no controller recreates them.
    pub needs_force: Vec<String>,
    /// Pods it will not touch without `delete_local_data`: their emptyDir
    /// data is lost.
    pub needs_local_data: Vec<String>,
}

impl Plan {
    /// `daemonset_exists` answers for a running DaemonSet pod's
    /// controller: kubectl skips the pods of an existing DaemonSet (with
    /// `--ignore-daemonsets`) and deletes those of one that is gone only
    /// with `--force`.
    pub fn of(
        pods: Vec<Pod>,
        force: bool,
        delete_local_data: bool,
        daemonset_exists: &dyn Fn(&Pod) -> Result<bool, String>,
    ) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for pod in pods {
            // daemonSetFilter: skipped unless finished, or orphaned and
            // forced.
            if pod.daemonset && !pod.finished {
                if daemonset_exists(&pod)? {
                    continue;
                }
                if !force {
                    plan.needs_force.push(name(&pod));
                    continue;
                }
                log::warn!("{}: its DaemonSet is gone; deleting it", name(&pod));
            }
            // mirrorPodFilter: the API cannot delete them.
            if pod.mirror {
                continue;
            }
            // localStorageFilter, then unreplicatedFilter: any finished
            // pod passes both.
            if pod.local_data && !pod.finished && !delete_local_data {
                plan.needs_local_data.push(name(&pod));
                continue;
            }
            if !pod.controlled && !pod.finished && !force {
                plan.needs_force.push(name(&pod));
                continue;
            }
            if pod.finished {
                plan.finished.push(name(&pod));
            }
            plan.evict.push(pod);
        }
        Ok(plan)
    }

    /// Why the drain refuses, if it does: before evicting anything, so a
    /// refused drain changes nothing but the cordon.
    pub fn refusal(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.needs_force.is_empty() {
            why.push(format!(
                "pods no controller will recreate (run again with force=true to delete them): {}",
                self.needs_force.join(", ")
            ));
        }
        if !self.needs_local_data.is_empty() {
            why.push(format!(
                "pods with local data (run again with delete-local-data=true to lose it): {}",
                self.needs_local_data.join(", ")
            ));
        }
        (!why.is_empty()).then(|| format!("node cordoned, not drained: {}", why.join("; ")))
    }

    /// The plan in one line, for a dry run: what the drain would evict and
    /// what it would need.
    pub fn summary(&self) -> String {
        let mut parts = vec![if self.evict.is_empty() {
            "none".to_string()
        } else {
            self.evict.iter().map(name).collect::<Vec<_>>().join(",")
        }];
        if !self.finished.is_empty() {
            parts.push(format!(
                "finished, they simply go: {}",
                self.finished.join(",")
            ));
        }
        if !self.needs_force.is_empty() {
            parts.push(format!(
                "needing force=true: {}",
                self.needs_force.join(",")
            ));
        }
        if !self.needs_local_data.is_empty() {
            parts.push(format!(
                "needing delete-local-data=true: {}",
                self.needs_local_data.join(",")
            ));
        }
        parts.join("; ")
    }
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
    let plan = Plan::of(
        pods,
        options.force,
        options.delete_local_data,
        &daemonset_exists(api),
    )?;
    if let Some(why) = plan.refusal() {
        return Err(why);
    }
    let evictions = evict_all(api, &plan.evict, deadline);
    if let Some(why) = evictions.stopped {
        return Err(format!("node cordoned; {why}"));
    }
    let terminating = wait_gone(api, node, &evictions.evicted, deadline)
        .map_err(|e| format!("node cordoned, pods evicted; cannot check they terminated: {e}"))?;
    Ok(Drained {
        evicted: evictions.evicted,
        gone: evictions.gone,
        terminating,
    })
}

/// What a drain before the node's removal did: the pods evicted and gone,
/// those still there at the deadline (they go with the node), and what
/// stopped it early, if anything did.
#[derive(Debug, Default)]
pub struct Removal {
    pub evicted: Vec<String>,
    pub left: Vec<String>,
    pub stopped: Option<String>,
}

/// Drains `node` before it is deleted, which cannot be refused: every pod
/// but a live DaemonSet's or a mirror is evicted, as `kubectl drain
/// --ignore-daemonsets --force --delete-emptydir-data` would (they die
/// with the node otherwise, without their budgets or grace period), and
/// what is still there at `deadline` is named, not waited for.
pub fn drain_for_removal(api: &Api, node: &str, deadline: Instant) -> Removal {
    let mut removal = Removal::default();
    if let Err(e) = api.set_unschedulable(node, true) {
        removal.stopped = Some(format!("cannot cordon node {node}: {e}"));
        return removal;
    }
    let plan = api
        .pods_on(node)
        .map_err(|e| format!("cannot list the pods on node {node}: {e}"))
        .and_then(|pods| Plan::of(pods, true, true, &daemonset_exists(api)));
    let plan = match plan {
        Ok(plan) => plan,
        Err(why) => {
            removal.stopped = Some(why);
            return removal;
        }
    };
    let evictions = evict_all(api, &plan.evict, deadline);
    removal.stopped = evictions.stopped;
    removal.left = evictions.left;
    match wait_gone(api, node, &evictions.evicted, deadline) {
        Ok(terminating) => {
            removal.evicted.extend(
                evictions
                    .evicted
                    .into_iter()
                    .filter(|p| !terminating.contains(p)),
            );
            removal.left.extend(terminating);
        }
        Err(e) => {
            removal
                .stopped
                .get_or_insert(format!("cannot check the evicted pods terminated: {e}"));
            removal.left.extend(evictions.evicted);
        }
    }
    removal
}

/// The evictions of a drain.
#[derive(Default)]
struct Evictions {
    /// Evicted (or already going): to be waited for.
    evicted: Vec<String>,
    /// Deleted before their eviction: nothing left to do.
    gone: Vec<String>,
    /// Not evicted: refused until the deadline, or never tried after a
    /// failure.
    left: Vec<String>,
    /// Why not all were evicted: the first failure, or the first refusal
    /// still standing at the deadline.
    stopped: Option<String>,
}

/// Evicts `pods` as kubectl's `evictPods` does, which evicts each in its
/// own goroutine: a pod whose budget says "not now" does not hold up the
/// others. Every pod is tried, then those refused for now (429, or 403
/// while their namespace is being deleted) again, as they are now, until
/// the deadline. Any other answer stops the evictions.
fn evict_all(api: &Api, pods: &[Pod], deadline: Instant) -> Evictions {
    let mut out = Evictions::default();
    let mut pending: Vec<Pod> = pods.to_vec();
    loop {
        let mut refused: Vec<(Pod, String)> = Vec::new();
        let mut tries = std::mem::take(&mut pending).into_iter();
        for pod in tries.by_ref() {
            match api.evict(&pod) {
                Ok(()) => out.evicted.push(name(&pod)),
                // Deleted since the list (scaled down, rolled, a finished
                // Job cleaned up): nothing left to evict.
                Err(e) if e.is_not_found() => {
                    log::info!("{} is already gone", name(&pod));
                    out.gone.push(name(&pod));
                }
                // Its namespace is being deleted, which deletes the pod
                // too: once the pod is marked for deletion, only the wait
                // is left.
                Err(e) if e.is_namespace_terminating() && pod.deleting => {
                    out.evicted.push(name(&pod))
                }
                Err(e) if e.is_too_many_requests() || e.is_namespace_terminating() => {
                    log::debug!("evicting {}: {e}; trying again", name(&pod));
                    refused.push((pod, e.to_string()));
                }
                Err(e) => {
                    out.stopped = Some(format!("evicting {} failed: {e}", name(&pod)));
                    out.left.push(name(&pod));
                    break;
                }
            }
        }
        out.left.extend(tries.map(|p| name(&p)));
        if out.stopped.is_some() || Instant::now() >= deadline {
            if let Some((pod, e)) = refused.first() {
                out.stopped
                    .get_or_insert_with(|| format!("evicting {} failed: {e}", name(pod)));
            }
            out.left.extend(refused.iter().map(|(p, _)| name(p)));
            return out;
        }
        if refused.is_empty() {
            return out;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        for (pod, _) in refused {
            match api.pod(&pod.namespace, &pod.name) {
                Ok(Some(fresh)) => pending.push(fresh),
                Ok(None) => {
                    log::info!("{} is already gone", name(&pod));
                    out.gone.push(name(&pod));
                }
                // As kubectl: the eviction itself says what is wrong.
                Err(_) => pending.push(pod),
            }
        }
    }
}

/// Eviction only asks; as `kubectl drain` does, wait for the evicted pods
/// to go, until the deadline. Returns those still there.
fn wait_gone(
    api: &Api,
    node: &str,
    evicted: &[String],
    deadline: Instant,
) -> Result<Vec<String>, String> {
    loop {
        let left: Vec<String> = api
            .pods_on(node)
            .map_err(|e| e.to_string())?
            .iter()
            .map(name)
            .filter(|n| evicted.contains(n))
            .collect();
        let now = Instant::now();
        if left.is_empty() || now >= deadline {
            return Ok(left);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// What `drain` would do on `node` with `force` and `delete_local_data`,
/// evicting nothing.
pub fn plan(api: &Api, node: &str, force: bool, delete_local_data: bool) -> Result<Plan, String> {
    let pods = api
        .pods_on(node)
        .map_err(|e| format!("cannot list the pods on node {node}: {e}"))?;
    Plan::of(pods, force, delete_local_data, &daemonset_exists(api))
}

/// The lookup of a DaemonSet pod's controller, through `api`.
fn daemonset_exists(api: &Api) -> impl Fn(&Pod) -> Result<bool, String> + '_ {
    move |pod| {
        let Some(owner) = &pod.controller else {
            return Ok(true);
        };
        api.daemonset_exists(&pod.namespace, owner)
            .map_err(|e| format!("cannot look up the DaemonSet of {}: {e}", name(pod)))
    }
}

fn name(p: &Pod) -> String {
    format!("{}/{}", p.namespace, p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, set: &[&str]) -> Pod {
        let has = |flag: &str| set.contains(&flag);
        Pod {
            namespace: "default".into(),
            name: name.into(),
            daemonset: has("daemonset") || has("orphan"),
            controller: (has("daemonset") || has("orphan")).then(|| name.to_string()),
            mirror: has("mirror"),
            controlled: has("controlled") || has("daemonset") || has("orphan"),
            local_data: has("emptydir"),
            finished: has("finished"),
            deleting: has("deleting"),
        }
    }

    /// Each kind of pod, with and without the options, against what
    /// kubectl's filters decide (`--ignore-daemonsets` always).
    #[test]
    fn pods_are_planned_as_kubectl_drain_plans_them() {
        // (pod's traits, force, delete-local-data, expected: evict,
        // finished, needs force, needs delete-local-data, skipped)
        let cases: &[(&[&str], bool, bool, &str)] = &[
            (&["controlled"], false, false, "evict"),
            (&["daemonset"], true, true, "skip"),
            (&["daemonset", "finished"], false, false, "finished"),
            (&["mirror"], true, true, "skip"),
            (&[], false, false, "force"),
            (&[], true, false, "evict"),
            (&["finished"], false, false, "finished"),
            (&["controlled", "emptydir"], false, false, "local"),
            (&["controlled", "emptydir"], false, true, "evict"),
            (&["emptydir", "finished"], false, false, "finished"),
            // The first refusal stands: local data is checked first.
            (&["emptydir"], false, false, "local"),
            (&["emptydir"], false, true, "force"),
            (&["emptydir"], true, true, "evict"),
            (&["controlled", "deleting"], false, false, "evict"),
            // A DaemonSet pod whose DaemonSet is gone: only with force.
            (&["orphan"], false, true, "force"),
            (&["orphan"], true, false, "evict"),
            (&["orphan", "finished"], false, false, "finished"),
        ];
        for (traits, force, local, want) in cases {
            let exists = |p: &Pod| Ok(!traits.contains(&"orphan") || p.controller.is_none());
            let plan = Plan::of(vec![pod("p", traits)], *force, *local, &exists).unwrap();
            let got = match (
                plan.evict.len(),
                plan.finished.len(),
                plan.needs_force.len(),
                plan.needs_local_data.len(),
            ) {
                (1, 0, 0, 0) => "evict",
                (1, 1, 0, 0) => "finished",
                (0, 0, 1, 0) => "force",
                (0, 0, 0, 1) => "local",
                (0, 0, 0, 0) => "skip",
                other => panic!("{traits:?}: {other:?}"),
            };
            assert_eq!(
                got, *want,
                "{traits:?} force={force} delete-local-data={local}"
            );
        }
    }

    #[test]
    fn a_refusal_names_every_pod_and_what_it_needs() {
        let exists = |_: &Pod| Ok(true);
        let plan = Plan::of(
            vec![
                pod("bare", &[]),
                pod("cache", &["controlled", "emptydir"]),
                pod("job-1", &["finished", "emptydir"]),
                pod("web", &["controlled"]),
            ],
            false,
            false,
            &exists,
        )
        .unwrap();
        let why = plan.refusal().unwrap();
        assert!(
            why.contains("force=true to delete them): default/bare"),
            "{why}"
        );
        assert!(
            why.contains("delete-local-data=true to lose it): default/cache"),
            "{why}"
        );
        assert_eq!(
            plan.summary(),
            "default/job-1,default/web; finished, they simply go: default/job-1; \
             needing force=true: default/bare; needing delete-local-data=true: default/cache"
        );
        assert_eq!(
            Plan::of(vec![], false, false, &exists).unwrap().summary(),
            "none"
        );
        assert!(
            Plan::of(vec![pod("web", &["controlled"])], false, false, &exists)
                .unwrap()
                .refusal()
                .is_none()
        );
        // A DaemonSet that cannot be looked up stops the plan, as kubectl.
        let unknown = |_: &Pod| Err("cannot look up the DaemonSet".to_string());
        assert!(Plan::of(vec![pod("ds", &["daemonset"])], true, true, &unknown).is_err());
    }
}
