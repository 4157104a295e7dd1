//! Draining a node as `kubectl drain --ignore-daemonsets` does (the rules
//! of k8s.io/kubectl's pkg/drain, filters.go and drain.go): cordon it,
//! evict its pods but DaemonSet and mirror pods, retry the evictions a
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
    let mut evicted = Vec::new();
    let mut gone = Vec::new();
    for pod in &plan.evict {
        match evict(api, pod, deadline)? {
            true => evicted.push(name(pod)),
            false => gone.push(name(pod)),
        }
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
        gone,
        terminating,
    })
}

/// Evicts one pod as kubectl's `evictPods` does: true once it is evicted
/// or already going (then waited for), false when it was gone already.
fn evict(api: &Api, pod: &Pod, deadline: Instant) -> Result<bool, String> {
    let mut current = pod.clone();
    loop {
        match api.evict(&current) {
            Ok(()) => return Ok(true),
            // Deleted since the list (scaled down, rolled, a finished Job
            // cleaned up): nothing left to evict.
            Err(e) if e.is_not_found() => {
                log::info!("{} is already gone", name(pod));
                return Ok(false);
            }
            // Its namespace is being deleted, which deletes the pod too:
            // once the pod is marked for deletion, only the wait is left.
            Err(e) if e.is_namespace_terminating() && current.deleting => return Ok(true),
            // A disruption budget says "not now", or the namespace is being
            // deleted and the pod not marked yet: try again until the
            // deadline, with the pod as it is now.
            Err(e)
                if (e.is_too_many_requests() || e.is_namespace_terminating())
                    && Instant::now() < deadline =>
            {
                log::debug!("evicting {}: {e}; trying again", name(pod));
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(POLL.min(left));
                match api.pod(&pod.namespace, &pod.name) {
                    Ok(Some(fresh)) => current = fresh,
                    Ok(None) => {
                        log::info!("{} is already gone", name(pod));
                        return Ok(false);
                    }
                    // As kubectl: the eviction itself says what is wrong.
                    Err(_) => {}
                }
            }
            Err(e) => return Err(format!("node cordoned; evicting {} failed: {e}", name(pod))),
        }
    }
}

/// What `drain` would do on `node`, evicting nothing.
pub fn plan(api: &Api, node: &str, options: &Options) -> Result<Plan, String> {
    let pods = api
        .pods_on(node)
        .map_err(|e| format!("cannot list the pods on node {node}: {e}"))?;
    Plan::of(
        pods,
        options.force,
        options.delete_local_data,
        &daemonset_exists(api),
    )
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
