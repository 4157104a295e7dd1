//! The COS configuration this unit publishes on cos-agent.

use charm::files::{self};
use charm::resources::Fingerprint;
use charm::tools::Databag;
use charm::RelationId;

use crate::cos;
use crate::daemons::{self};
use crate::error::{Error, ToolContext};
use crate::problem::{Concern, Problem};
use crate::relations::EndpointData;
use crate::unit_state::Recorded;

use super::{Fresh, Node};

impl Node<'_> {
    /// Publishes the COS configuration on every cos-agent relation, where
    /// its content changed, and records what keeps it from being
    /// published. Needs the tokens relation as read in this hook (`fresh`).
    pub fn publish_cos(&self, recorded: &mut Recorded, fresh: &mut Fresh) -> Result<(), Error> {
        let rids: Vec<String> = recorded
            .relations
            .get(crate::relations::COS_AGENT)
            .map(|d| d.relations.keys().cloned().collect())
            .unwrap_or_default();
        if rids.is_empty() {
            // Without cos-agent, the tokens relation is nothing to wait on.
            recorded.concerns.clear(Concern::Cos);
            return Ok(());
        }
        let ca = files::read_optional(&self.root.path(daemons::CA))?
            .map(|pem| String::from_utf8_lossy(&pem).into_owned());
        let max_pods = recorded
            .options
            .as_ref()
            .map(|o| cos::max_pods(&o.kubelet_extra_config))
            .unwrap_or(cos::DEFAULT_MAX_PODS);
        let inputs = self.cos_inputs(recorded, ca.as_deref(), max_pods);
        let kept: Databag = [("config-inputs".to_string(), inputs)].into();
        if recorded.concerns.is_clear(Concern::Cos)
            && rids
                .iter()
                .all(|r| recorded.published.get(r) == Some(&kept))
        {
            return Ok(());
        }
        if fresh.tokens.is_none() {
            self.refresh(recorded, &[crate::relations::TOKENS], None, fresh)?;
        }
        let Some(tokens) = &fresh.tokens else {
            return Ok(());
        };
        let (token, tag) = match self.cos_token(recorded, tokens) {
            Ok(found) => found,
            Err(problem) => {
                recorded.concerns.set(Concern::Cos, vec![problem]);
                return Ok(());
            }
        };
        if ca.is_none() {
            log::info!(
                "COS scrape jobs skip checking kubelet's certificate until the cluster CA is known"
            );
        }
        let config = cos::config(&cos::Inputs {
            node: &self.name,
            token: &token,
            cluster_tag: &tag,
            ca: ca.as_deref(),
            max_pods,
        })
        .map_err(|why| Error::Io {
            doing: "building the COS configuration".into(),
            source: std::io::Error::other(why),
        })?;
        for rid in rids {
            if recorded.published.get(&rid) == Some(&kept) {
                continue;
            }
            let id: RelationId = rid.parse().map_err(|why: String| Error::Io {
                doing: format!("publishing on {rid}"),
                source: std::io::Error::other(why),
            })?;
            let bag: Databag = [("config".to_string(), config.clone())].into();
            self.tools
                .relation_set(&id, &bag)
                .doing("publishing the COS configuration")?;
            log::info!(
                "published the COS configuration on {rid} ({} bytes)",
                config.len()
            );
            recorded.published.insert(rid, kept.clone());
        }
        recorded.concerns.clear(Concern::Cos);
        Ok(())
    }

    /// A fingerprint of everything the configuration is made of, the token
    /// by the fingerprint the cache keeps: while it is what every
    /// cos-agent relation was given, nothing is read or built again.
    fn cos_inputs(&self, recorded: &Recorded, ca: Option<&str>, max_pods: u64) -> String {
        let mut hash = Fingerprint::default();
        let tokens = recorded
            .relations
            .get(crate::relations::TOKENS)
            .cloned()
            .unwrap_or_default();
        let tag = self.control(recorded).and_then(|c| c.cluster_tag);
        hash.update(serde_json::to_string(&tokens).unwrap_or_default());
        hash.update(format!("{}\n{tag:?}\n{max_pods}\n", self.name));
        hash.update(ca.unwrap_or_default());
        hash.update(cos::content_version());
        hash.hex()
    }

    /// This node's COS token and the cluster tag COS labels by, or what
    /// to wait for.
    fn cos_token(
        &self,
        recorded: &Recorded,
        tokens: &EndpointData,
    ) -> Result<(String, String), Problem> {
        let token = match cos::token(tokens, &cos::user(&self.name)) {
            Err(why) => Err(format!("Waiting for the COS token: {why}")),
            Ok(None) if !tokens.is_related() => Err(format!(
                "Waiting for the COS token: relate {}:tokens to the control plane",
                self.app()
            )),
            Ok(None) => Err("Waiting for the COS token".into()),
            Ok(Some(token)) => Ok(token),
        }
        .map_err(Problem::waiting)?;
        match self.control(recorded).and_then(|c| c.cluster_tag) {
            None => Err(Problem::waiting(
                "Waiting for the cluster-tag from kube-control (COS labels by it)",
            )),
            Some(tag) => Ok((token, tag)),
        }
    }
}
