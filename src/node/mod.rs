//! The node: what this unit publishes on its relations, and the files,
//! daemon configuration, services and labels that make it a Kubernetes
//! worker, converged from the recorded relation data and options.
//!
//! One room per concern, each an `impl Node` block that owns its part of
//! the records:
//! - [`inputs`]: what the relations give the daemons, or what is missing;
//! - [`credentials`]: tokens, the secret they come in, private keys;
//! - [`config_files`]: certificates, kubeconfigs, the daemons' config files;
//! - [`services`]: adopting, configuring and (re)starting the daemons;
//! - [`sysctl`]: the kernel tunables;
//! - [`labels`]: the node object's labels and Ready condition;
//! - [`addresses`] and [`publish`]: what this unit tells each relation;
//! - [`cos_agent`]: the COS configuration;
//! - [`ingress_controller`]: the leader's ingress controller;
//! - [`stop`]: leaving the cluster.
//!
//! [`Node::converge`] below runs the node's rooms in their order.

use std::collections::BTreeMap;

use charm::root::MachineRoot;
use charm::HookTools;

use crate::daemons::Version;
use crate::error::Error;
use crate::journal::JournalFile;
use crate::kubeapi::Api;
use crate::problem::{Concern, Problem};
use crate::relations::{self, EndpointData, CERTIFICATES, KUBE_CONTROL};
use crate::unit_state::{NodeOptions, Recorded};

mod addresses;
// For the comparison with today's library (`crate::today`).
#[cfg(test)]
pub(crate) use addresses::BRIDGES;
pub(crate) mod config_files;
mod cos_agent;
mod credentials;
mod ingress_controller;
mod inputs;
mod labels;
pub(crate) mod publish;
mod services;
mod stop;
pub(crate) mod sysctl;

use inputs::Ready;

#[derive(Clone)]
pub struct Node<'a> {
    pub tools: &'a HookTools,
    pub root: &'a MachineRoot,
    /// `kubernetes-worker/0`.
    pub unit: &'a str,
    /// The node's name ([`crate::identity`]).
    pub name: String,
    /// `JUJU_AVAILABILITY_ZONE`, for the zone label.
    pub zone: Option<String>,
}

/// What this hook learnt beyond the charm's cache.
#[derive(Default)]
pub struct Fresh {
    /// kube-control as read in this hook, tokens and all (the cache holds
    /// only their fingerprints).
    pub kube_control: Option<EndpointData>,
    /// The tokens relation as read in this hook, the COS token included.
    pub tokens: Option<EndpointData>,
    /// The certificates relation as read in this hook, private keys and
    /// all (the cache holds only their fingerprints).
    pub certificates: Option<EndpointData>,
    /// Re-read this unit's addresses (they can have changed).
    pub addresses: bool,
    /// Look at the node's Ready condition (update-status).
    pub check_ready: bool,
}

impl Node<'_> {
    pub fn user(&self) -> String {
        format!("system:node:{}", self.name)
    }

    fn cert_name(&self) -> String {
        self.unit.replace('/', "_")
    }

    fn app(&self) -> &str {
        self.unit.split('/').next().unwrap_or(self.unit)
    }

    fn unit_number(&self) -> usize {
        self.unit
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Re-reads `endpoints` into the cache (kube-control and tokens with
    /// their tokens, certificates with its keys, replaced by fingerprints;
    /// what they stand for goes to `fresh`).
    /// `broken`: the relation whose relation-broken hook is running; Juju
    /// still lists it, but it is gone.
    pub fn refresh(
        &self,
        recorded: &mut Recorded,
        endpoints: &[&str],
        broken: Option<&str>,
        fresh: &mut Fresh,
    ) -> Result<(), Error> {
        for endpoint in endpoints {
            let mut data = relations::read(self.tools, endpoint)?;
            if let Some(rid) = broken {
                data.relations.remove(rid);
            }
            recorded.published.retain(|rid, _| {
                !rid.starts_with(&format!("{endpoint}:")) || data.relations.contains_key(rid)
            });
            if *endpoint == KUBE_CONTROL {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_tokens(&data));
                fresh.kube_control = Some(data);
            } else if *endpoint == crate::relations::TOKENS {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_cos_tokens(&data));
                fresh.tokens = Some(data);
            } else if *endpoint == CERTIFICATES {
                recorded
                    .relations
                    .insert(endpoint.to_string(), relations::redact_keys(&data));
                fresh.certificates = Some(data);
            } else {
                recorded.relations.insert(endpoint.to_string(), data);
            }
        }
        Ok(())
    }

    /// Configures and runs the node if everything it needs is there;
    /// records what stands in the way otherwise.
    pub fn converge(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        options: &NodeOptions,
        fresh: &Fresh,
    ) -> Result<(), Error> {
        // The cis-benchmark action's kubelet flags, under the operator's.
        let with_cis;
        let options = if recorded.journal.cis.kubelet_flags.is_empty() {
            options
        } else {
            let mut merged = options.clone();
            for (flag, value) in &recorded.journal.cis.kubelet_flags {
                merged
                    .kubelet_extra_args
                    .entry(flag.clone())
                    .or_insert_with(|| value.clone());
            }
            with_cis = merged;
            &with_cis
        };
        let mut problems = Vec::new();
        self.apply_sysctl(recorded, options)?;
        if let Some(refused) = &recorded.journal.sysctl_refused {
            problems.push(Problem::blocked(format!(
                "sysctl: the kernel refused {refused}"
            )));
        }
        let versions = self.daemon_versions()?;
        match self.ready(recorded, options, versions.map(|v| v[0])) {
            Err(missing) => {
                problems.extend(missing);
                // Labels need only the API server, its CA and the client
                // token, which a node that ran keeps while another relation
                // is missing.
                if let Some((url, ca)) = self.api_target(recorded) {
                    if let Some(token) = self.disk_tokens().map(|t| t.client_token) {
                        let api = || Api::new(&url, &ca, &token);
                        problems.extend(self.label(recorded, &api, options));
                    }
                }
            }
            Ok(ready) => {
                let inputs = (options, fresh, versions);
                problems.extend(self.configure(recorded, journal, ready, inputs)?);
            }
        }
        if problems != recorded.concerns.of(Concern::Node) {
            for p in &problems {
                log::info!("{}", p.message);
            }
        }
        recorded.concerns.set(Concern::Node, problems);
        Ok(())
    }

    /// The node as everything the relations gave makes it: credentials and
    /// keys, the daemons' files, the daemons, labels and readiness, in
    /// that order. Returns what stands in the way.
    fn configure(
        &self,
        recorded: &mut Recorded,
        journal: &mut JournalFile,
        ready: Ready,
        (options, fresh, versions): (&NodeOptions, &Fresh, Option<[Version; 2]>),
    ) -> Result<Vec<Problem>, Error> {
        let (creds, certs) = match (
            self.credentials(recorded, &ready.creds, fresh)?,
            self.private_keys(&ready.certs, fresh)?,
        ) {
            (Err(problem), _) | (_, Err(problem)) => return Ok(vec![problem]),
            (Ok(creds), Ok(certs)) => (creds, certs),
        };
        let ready = Ready { certs, ..ready };
        let Some(versions) = versions else {
            return Ok(Vec::new());
        };
        // Written ahead: `stop` deletes the node by this name.
        if recorded.journal.node_name.as_ref() != Some(&self.name) {
            recorded.journal.node_name = Some(self.name.clone());
            journal.persist(&recorded.journal)?;
        }
        let node_ips = self.node_ips(recorded, fresh.addresses)?;
        // Daemons found running that the charm has no record of are
        // looked at before any file is written.
        let mut adopting = BTreeMap::new();
        let configs = self.write_files(
            &ready,
            &creds,
            (options, versions, &node_ips),
            &mut |new_files, configs| {
                adopting = self.adopt_daemons(recorded, journal, new_files, configs)?;
                Ok(())
            },
        )?;
        // The tokens are in the kubeconfigs: nothing left for a later hook
        // to read again.
        recorded.credentials_stale = false;
        let mut problems = Vec::new();
        let inactive = self.run_daemons(recorded, &configs, &adopting, &mut problems)?;
        if !inactive.is_empty() {
            problems.push(Problem::waiting(format!(
                "Waiting for {} to start.",
                inactive.join(",")
            )));
        }
        // Built only when a call is to be made: setting up TLS is most of
        // what a converged hook would cost.
        let api = || Api::new(&ready.api_url, &ready.certs.ca, &creds.client_token);
        if let Some(problem) = self.label(recorded, &api, options) {
            problems.push(problem);
        } else if fresh.check_ready && inactive.is_empty() {
            self.check_ready(recorded, &api);
        }
        if let Some(why) = &recorded.node_not_ready {
            problems.push(Problem::waiting(format!("Node not Ready: {why}")));
        }
        Ok(problems)
    }

    /// Inside a container (LXD, ...), kube-proxy must not try to set
    /// conntrack limits. systemd records the container type here.
    fn in_container(&self) -> bool {
        std::fs::read_to_string(self.root.path("/run/systemd/container"))
            .is_ok_and(|kind| !kind.trim().is_empty())
    }
}
