//! The cloud integrations: on AWS, Google Cloud and Azure, a worker
//! related to that cloud's integrator asks it for what the cloud
//! controller and the storage drivers need on a new node (its tags, read
//! access to the instances, DNS and object storage), as today's charm asks
//! (its `src/cloud_integration.py`, through the interface libraries'
//! requires side).
//!
//! Only the integrator of the cloud the machine runs on is served, the
//! cloud told as today's charm tells it ([`crate::identity::cloud`]); a
//! relation to another cloud's integrator is a blocked status that says so.
//! The request goes into this unit's bag in the libraries' format, values
//! JSON-encoded as Python encodes them, and only what differs from the bag
//! is set: a unit that takes over from the Python charm keeps what that
//! charm requested, and its integrator's answer still holds. The integrator
//! answers with `completed`, a map from the instance to the request it
//! fulfilled; until it matches this unit's request the unit waits.

pub mod metadata;
pub mod pyjson;

use charm::tools::Databag;
use charm::RelationId;
use serde_json::{json, Value};

use crate::error::{Error, ToolContext};
use crate::identity;
use crate::node::Node;
use crate::problem::{Concern, Problem, ProblemKind};
use crate::unit_state::Recorded;

pub use crate::relations::{AWS, AZURE, GCP};

/// Today's status while the integrator has not answered.
pub const WAITING: &str = "Waiting for cloud-integration";

/// The charm's name, as the libraries send it (`charm.meta.name`).
const CHARM: &str = "kubernetes-worker";

/// One cloud's integration.
#[derive(Debug, Clone, Copy)]
pub struct Integration {
    pub endpoint: &'static str,
    /// The cloud as [`identity::cloud`] names it.
    pub cloud: &'static str,
    /// For status messages.
    pub title: &'static str,
    /// The fact that names this instance in the integrator's `completed`.
    id_key: &'static str,
    /// What the library sends about the instance, in its order.
    fact_keys: &'static [&'static str],
    facts: fn() -> Result<metadata::Facts, String>,
}

pub const INTEGRATIONS: [Integration; 3] = [
    Integration {
        endpoint: AWS,
        cloud: "aws",
        title: "AWS",
        id_key: "instance-id",
        fact_keys: &["instance-id", "region"],
        facts: metadata::aws,
    },
    Integration {
        endpoint: GCP,
        cloud: "gce",
        title: "Google Cloud",
        id_key: "instance",
        fact_keys: &["instance", "zone"],
        facts: metadata::gce,
    },
    Integration {
        endpoint: AZURE,
        cloud: "azure",
        title: "Azure",
        id_key: "vm-id",
        fact_keys: &[
            "vm-id",
            "vm-name",
            "vm-location",
            "res-group",
            "subscription-id",
        ],
        facts: metadata::azure,
    },
];

/// Whether this hook should look at the integrations: a retry is due
/// (the metadata service failed), whatever the hook.
pub fn retry_due(recorded: &Recorded) -> bool {
    recorded
        .concerns
        .of(Concern::Cloud)
        .iter()
        .any(|p| p.kind == ProblemKind::Retry)
}

/// The request for this instance, key by key in the order the charm and
/// the library make it, each value as `json.dumps` encodes it.
pub fn request(
    integration: &Integration,
    facts: &[(String, String)],
    model_uuid: &str,
    cluster_tag: Option<&str>,
) -> Vec<(String, String)> {
    let text = |s: &str| pyjson::dumps_sorted(&Value::String(s.to_string()));
    let mut pairs: Vec<(String, String)> = Vec::new();
    if integration.endpoint != AWS {
        pairs.push(("charm".into(), text(CHARM)));
    }
    pairs.extend(facts.iter().map(|(k, v)| (k.clone(), text(v))));
    if integration.endpoint != AWS {
        pairs.push(("model-uuid".into(), text(model_uuid)));
    }
    let Some(tag) = cluster_tag else {
        return pairs;
    };
    let tag_map = |key: String, value: &str| pyjson::dumps_ordered(&[(&key, json!(value))]);
    let yes = || "true".to_string();
    match integration.endpoint {
        AWS => {
            let owned = || tag_map(format!("kubernetes.io/cluster/{tag}"), "owned");
            pairs.extend([
                ("instance-tags".into(), owned()),
                ("instance-security-group-tags".into(), owned()),
                ("instance-subnet-tags".into(), owned()),
                ("enable-object-storage-management".into(), yes()),
                (
                    "object-storage-management-patterns".into(),
                    pyjson::dumps_sorted(&json!(["arn:aws:s3:::kubernetes-*"])),
                ),
                ("enable-instance-inspection".into(), yes()),
                ("enable-dns-management".into(), yes()),
            ]);
        }
        _ => {
            let key = if integration.endpoint == GCP {
                "instance-labels"
            } else {
                "instance-tags"
            };
            pairs.extend([
                (key.into(), tag_map("k8s-io-cluster-name".into(), tag)),
                ("enable-object-storage-management".into(), yes()),
                ("enable-instance-inspection".into(), yes()),
                // The libraries' key for DNS on these two clouds (the
                // integrators read `enable-dns-management`).
                ("enable-dns".into(), yes()),
            ]);
        }
    }
    pairs
}

/// sha256 of the bag as Python's `json.dumps(..., sort_keys=True)` prints
/// it, each value decoded as the libraries decode it first.
pub fn bag_hash(bag: &Databag) -> String {
    let decoded: serde_json::Map<String, Value> = bag
        .iter()
        .map(|(k, v)| (k.clone(), pyjson::loads_or_text(v)))
        .collect();
    charm::resources::Fingerprint::of(pyjson::dumps_sorted(&Value::Object(decoded))).to_string()
}

/// The bag after this request: what differs is set, `requested` last as
/// the library sets it (on AWS `true`; elsewhere the hash of the request,
/// which the integrator echoes back).
pub fn changes(integration: &Integration, bag: &Databag, want: &[(String, String)]) -> Databag {
    let mut changes: Databag = want
        .iter()
        .filter(|(k, v)| bag.get(k) != Some(v))
        .cloned()
        .collect();
    if changes.is_empty() && bag.contains_key("requested") {
        return changes;
    }
    let mut after = bag.clone();
    after.extend(changes.clone());
    after.remove("requested");
    let requested = if integration.endpoint == AWS {
        "true".to_string()
    } else {
        bag_hash(&after)
    };
    if bag.get("requested") != Some(&requested) {
        changes.insert("requested".into(), requested);
    }
    changes
}

/// Whether the integrator's answer covers this unit's request as its bag
/// holds it.
pub fn answered(integration: &Integration, remote: &Databag, own: &Databag) -> bool {
    let id = match own
        .get(integration.id_key)
        .map(|v| pyjson::loads_or_text(v))
    {
        Some(Value::String(id)) => id,
        _ => return false,
    };
    let completed = remote
        .get("completed")
        .and_then(|c| serde_json::from_str::<Value>(c).ok());
    let Some(done) = completed.as_ref().and_then(|c| c.get(&id)) else {
        return false;
    };
    let expected = if integration.endpoint == AWS {
        bag_hash(own)
    } else {
        match own.get("requested") {
            Some(r) if !r.is_empty() => r.clone(),
            _ => return false,
        }
    };
    done.as_str() == Some(expected.as_str())
}

/// The instance's facts: as this unit's bag already holds them (sent by
/// this charm or by the Python charm before it), else as this charm
/// recorded them, else from the metadata service.
fn facts(
    integration: &Integration,
    own: &Databag,
    recorded: &mut Recorded,
) -> Result<metadata::Facts, String> {
    let from_bag: Option<metadata::Facts> = integration
        .fact_keys
        .iter()
        .map(|k| match own.get(*k).map(|v| pyjson::loads_or_text(v)) {
            Some(Value::String(s)) if !s.is_empty() => Some((k.to_string(), s)),
            _ => None,
        })
        .collect();
    if let Some(facts) = from_bag {
        return Ok(facts);
    }
    if let Some((cloud, facts)) = &recorded.cloud_instance {
        if cloud == integration.cloud {
            return Ok(facts.clone());
        }
    }
    let facts = (integration.facts)()?;
    recorded.cloud_instance = Some((integration.cloud.to_string(), facts.clone()));
    Ok(facts)
}

/// Asks the integrator of this machine's cloud for what the node needs,
/// where the request differs from what this unit's bag holds, and finds
/// whether it has answered.
pub fn converge(node: &Node, recorded: &mut Recorded, model_uuid: &str) -> Result<(), Error> {
    let mut problems = Vec::new();
    let related: Vec<&Integration> = INTEGRATIONS
        .iter()
        .filter(|i| {
            recorded
                .relations
                .get(i.endpoint)
                .is_some_and(|d| d.is_related())
        })
        .collect();
    if related.is_empty() {
        recorded.concerns.clear(Concern::Cloud);
        return Ok(());
    }
    let here = identity::cloud(node.root);
    let app = node.unit.split('/').next().unwrap_or(node.unit);
    for integration in related {
        if here != Some(integration.cloud) {
            problems.push(Problem::blocked(format!(
                "{} relation: this machine is not on {} but {}; remove the relation \
                 (juju remove-relation {app}:{})",
                integration.endpoint,
                integration.title,
                match here {
                    Some(cloud) => format!("on {cloud}"),
                    None => "on no cloud the charm knows".to_string(),
                },
                integration.endpoint,
            )));
            continue;
        }
        let tag = node.cluster_tag(recorded);
        let rids: Vec<String> = recorded.relations[integration.endpoint]
            .relations
            .keys()
            .cloned()
            .collect();
        for rid in rids {
            let problem = serve(
                node,
                recorded,
                integration,
                &rid,
                model_uuid,
                tag.as_deref(),
            )?;
            problems.extend(problem);
        }
        if tag.is_none() {
            problems.push(Problem::waiting(format!(
                "Waiting for the cluster-tag from kube-control (the {} integrator tags this instance by it)",
                integration.endpoint
            )));
        }
    }
    recorded.concerns.set(Concern::Cloud, problems);
    Ok(())
}

/// One relation to the integrator: the request set where it differs,
/// and what keeps the unit waiting, if anything.
fn serve(
    node: &Node,
    recorded: &mut Recorded,
    integration: &Integration,
    rid: &str,
    model_uuid: &str,
    tag: Option<&str>,
) -> Result<Option<Problem>, Error> {
    let id: RelationId = rid.parse().map_err(|why: String| Error::Io {
        doing: format!("asking the {} integrator on {rid}", integration.endpoint),
        source: std::io::Error::other(why),
    })?;
    let tools = node.tools;
    let mut own = tools
        .relation_get(&id, node.unit)
        .doing("reading this unit's request to the cloud integrator")?;
    let facts = match facts(integration, &own, recorded) {
        Ok(facts) => facts,
        Err(why) => {
            log::warn!(
                "cannot learn this instance's identity on {}: {why}",
                integration.title
            );
            return Ok(Some(Problem {
                kind: ProblemKind::Retry,
                message: format!(
                    "Waiting for the {} metadata service ({why}); retried on the next hook",
                    integration.title
                ),
            }));
        }
    };
    let want = request(integration, &facts, model_uuid, tag);
    let changes = changes(integration, &own, &want);
    if !changes.is_empty() {
        log::info!(
            "asking the {} integrator on {rid} for {}",
            integration.endpoint,
            changes.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        tools
            .relation_set(&id, &changes)
            .doing("sending the request to the cloud integrator")?;
        own.extend(changes);
    }
    let remotes = recorded.relations[integration.endpoint]
        .relations
        .get(rid)
        .cloned()
        .unwrap_or_default();
    let done = tag.is_some() && remotes.values().any(|bag| answered(integration, bag, &own));
    Ok((!done && tag.is_some()).then(|| Problem::waiting(WAITING)))
}

#[cfg(test)]
mod tests;
