//! Observability through COS: the node's scrape jobs, alert rules and
//! dashboard, published on `cos-agent` for a grafana-agent (or
//! opentelemetry-collector) subordinate, with the token the control plane
//! gives on `tokens`.
//!
//! The `config` key is what grafana-agent's cos_agent library reads: a JSON
//! object with `metrics_scrape_jobs`, `metrics_alert_rules`,
//! `log_alert_rules`, `dashboards` (base64 of xz-compressed JSON),
//! `log_slots`, `subordinate` and `tracing_protocols`. Its content is
//! rendered with sorted keys, so the same inputs give the same bytes.

use serde_json::{json, Value};

use crate::relations::{EndpointData, Malformed};
use crate::validate;

use crate::relations::TOKENS;

/// The group the control plane puts COS users in.
pub const GROUP: &str = "system:cos";

/// The alert rules, as Prometheus rule groups; `MAX_PODS` is the node's.
const ALERTS: &str = include_str!("cos/alerts.yaml");

/// `src/cos/dashboard.json`, xz-compressed and base64-encoded by build.rs.
const DASHBOARD: &str = include_str!(concat!(env!("OUT_DIR"), "/dashboard.xz.b64"));

/// kubelet's default `maxPods`.
pub const DEFAULT_MAX_PODS: u64 = 110;

/// The charm's own part of the configuration (the rules and the dashboard
/// it carries). A new revision publishes again in upgrade-charm anyway.
pub fn content_version() -> String {
    format!("{}\n{ALERTS}\n{DASHBOARD}", env!("CARGO_PKG_VERSION"))
}

/// The user whose token scrapes this node.
pub fn user(node: &str) -> String {
    format!("system:cos:{node}")
}

/// What this unit asks for on `tokens`.
pub fn requests(node: &str) -> String {
    json!({ user(node): GROUP }).to_string()
}

/// This node's token from the `tokens` relation: the `tokens` maps of every
/// control-plane unit, merged (the leader answers; others may hold older
/// answers). `Ok(None)`: not there yet.
pub fn token(data: &EndpointData, user: &str) -> Result<Option<String>, Malformed> {
    let mut found = None;
    for (unit, bag) in data.bags() {
        let Some(raw) = bag.get("tokens") else {
            continue;
        };
        let map: serde_json::Map<String, Value> = match serde_json::from_str(raw) {
            Ok(Value::Object(map)) => map,
            // Not quoted: what fails to parse may still hold tokens.
            _ => {
                return Err(format!(
                    "{TOKENS} relation: tokens from {unit} is not a JSON object"
                ))
            }
        };
        match map.get(user) {
            None => {}
            Some(Value::String(token)) => {
                validate::token(token).map_err(|why| {
                    format!("{TOKENS} relation: the token for {user} from {unit} {why}")
                })?;
                found = Some(token.clone());
            }
            Some(_) => {
                return Err(format!(
                    "{TOKENS} relation: the token for {user} from {unit} is not a string"
                ))
            }
        }
    }
    Ok(found)
}

/// What the published configuration depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub node: &'a str,
    pub token: &'a str,
    pub cluster_tag: &'a str,
    /// The cluster CA (PEM): kubelet's serving certificate is checked
    /// against it. `None` (not known yet): the check is skipped.
    pub ca: Option<&'a str>,
    pub max_pods: u64,
}

/// kube-proxy's metrics (plain http on localhost), then kubelet's four
/// metric paths, each its own job, all relabelled `job="kubelet"` with a
/// `metrics_path` label as upstream dashboards and alerts expect.
pub fn scrape_jobs(inputs: &Inputs) -> Vec<Value> {
    let instance = json!({
        "source_labels": ["instance"],
        "target_label": "instance",
        "replacement": inputs.node,
    });
    let labels = json!({ "node": inputs.node, "cluster": inputs.cluster_tag });
    let mut jobs = vec![json!({
        "job_name": "kube-proxy",
        "metrics_path": "/metrics",
        "scheme": "http",
        "static_configs": [{ "targets": ["localhost:10249"], "labels": labels }],
        "relabel_configs": [
            { "target_label": "job", "replacement": "kube-proxy" },
            instance,
        ],
    })];
    // The CA goes inline: the grafana-agent snap is strictly confined and
    // cannot read /root/cdk. The serving certificate names the node, not
    // localhost.
    let tls = match inputs.ca {
        Some(ca) => json!({ "ca": ca, "server_name": inputs.node }),
        None => json!({ "insecure_skip_verify": true }),
    };
    for (name, path) in [
        ("kubelet", "/metrics"),
        ("kubelet-resource", "/metrics/resource"),
        ("kubelet-cadvisor", "/metrics/cadvisor"),
        ("kubelet-probes", "/metrics/probes"),
    ] {
        jobs.push(json!({
            "job_name": name,
            "metrics_path": path,
            "scheme": "https",
            "static_configs": [{ "targets": ["localhost:10250"], "labels": labels }],
            "relabel_configs": [
                { "target_label": "metrics_path", "replacement": path },
                { "target_label": "job", "replacement": "kubelet" },
                instance,
            ],
            "authorization": { "credentials": inputs.token },
            "tls_config": tls,
        }));
    }
    jobs
}

/// The alert rule groups, for a node whose kubelet runs at most
/// `max_pods` pods.
pub fn alert_rules(max_pods: u64) -> Result<Value, String> {
    let text = ALERTS.replace("MAX_PODS", &max_pods.to_string());
    serde_yaml::from_str(&text).map_err(|e| format!("the charm's alert rules do not parse: {e}"))
}

/// The `config` value for cos-agent.
pub fn config(inputs: &Inputs) -> Result<String, String> {
    let config = json!({
        "metrics_scrape_jobs": scrape_jobs(inputs),
        "metrics_alert_rules": alert_rules(inputs.max_pods)?,
        "log_alert_rules": {},
        "dashboards": [DASHBOARD.trim()],
        "log_slots": [],
        "subordinate": false,
        "tracing_protocols": [],
    });
    Ok(config.to_string())
}

/// `maxPods` from the `kubelet-extra-config` option (a YAML map), or
/// kubelet's default.
pub fn max_pods(kubelet_extra_config: &str) -> u64 {
    serde_yaml::from_str::<serde_yaml::Value>(kubelet_extra_config)
        .ok()
        .and_then(|v| v.get("maxPods").and_then(serde_yaml::Value::as_u64))
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_PODS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use charm::tools::Databag;
    use std::collections::BTreeMap;

    fn tokens(units: &[(&str, &str)]) -> EndpointData {
        let mut data = EndpointData::default();
        let bags: BTreeMap<String, Databag> = units
            .iter()
            .map(|(unit, value)| {
                let mut bag = Databag::new();
                bag.insert("tokens".into(), value.to_string());
                (unit.to_string(), bag)
            })
            .collect();
        data.relations.insert("tokens:7".into(), bags);
        data
    }

    #[test]
    fn the_token_is_found_among_the_units_answers() {
        let user = user("node-1");
        assert_eq!(requests("node-1"), r#"{"system:cos:node-1":"system:cos"}"#);
        let data = tokens(&[
            (
                "kubernetes-control-plane/0",
                r#"{"system:cos:other": "x::1"}"#,
            ),
            (
                "kubernetes-control-plane/1",
                r#"{"system:cos:node-1": "uid::abc"}"#,
            ),
        ]);
        assert_eq!(token(&data, &user), Ok(Some("uid::abc".to_string())));
        assert_eq!(token(&tokens(&[]), &user), Ok(None));
        let bad = token(&tokens(&[("cp/0", "[1, 2]")]), &user).unwrap_err();
        assert!(
            bad.contains("tokens from cp/0 is not a JSON object"),
            "{bad}"
        );
        let bad = token(&tokens(&[("cp/0", r#"{"system:cos:node-1": 5}"#)]), &user).unwrap_err();
        assert!(bad.contains("is not a string"), "{bad}");
        let bad = token(
            &tokens(&[("cp/0", "{\"system:cos:node-1\": \"a\\nb\"}")]),
            &user,
        )
        .unwrap_err();
        assert!(bad.contains("the token for system:cos:node-1"), "{bad}");
    }

    #[test]
    fn max_pods_follows_kubelet_extra_config() {
        assert_eq!(max_pods("{}"), 110);
        assert_eq!(max_pods("maxPods: 250"), 250);
        assert_eq!(max_pods("maxPods: 0"), 110);
        let rules = alert_rules(250).unwrap();
        assert!(rules.to_string().contains("0.95 * 250"));
        assert!(!ALERTS.is_empty() && !rules.to_string().contains("MAX_PODS"));
    }
}
