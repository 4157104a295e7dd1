//! `kube-control`: credentials (flat tokens, `creds` with tokens or a
//! secret id), DNS, API endpoints, the cluster tag, the registry, whether
//! an external cloud provider runs; and what of it the cache may keep.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    check_url, decoded, malformed, secret_fingerprint, EndpointData, Malformed, DEFAULT_REGISTRY,
    KUBE_CONTROL, REDACTED,
};
use crate::validate;

/// Every token must be one, before it reaches a kubeconfig.
fn check_tokens(creds: &Credentials) -> Result<(), (&'static str, String)> {
    for (which, token) in [
        ("kubelet", &creds.kubelet_token),
        ("proxy", &creds.proxy_token),
        ("client", &creds.client_token),
    ] {
        validate::token(token).map_err(|why| (which, why))?;
    }
    Ok(())
}

/// The tokens this node uses.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub kubelet_token: String,
    pub proxy_token: String,
    pub client_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log line, whatever prints it.
        f.write_str("Credentials { .. }")
    }
}

/// Where this node's tokens are, as kube-control says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsRef {
    /// In the relation data (schema 0, and the 2017 flat keys). Read from
    /// the cache, each token is its fingerprint (see [`redact_tokens`]).
    Tokens(Credentials),
    /// In a Juju secret (schema 1): its URI, and the unit that named it.
    Secret { id: String, from: String },
}

const TOKEN_KEYS: [&str; 3] = ["kubelet_token", "proxy_token", "client_token"];
/// The kube-control data as the charm may keep it: every token (flat keys
/// and each `creds` entry, this node's and others') replaced by its
/// fingerprint. Tokens live only in the 0600 kubeconfigs.
pub fn redact_tokens(data: &EndpointData) -> EndpointData {
    let mut data = data.clone();
    for units in data.relations.values_mut() {
        for bag in units.values_mut() {
            for key in TOKEN_KEYS {
                if let Some(v) = bag.get_mut(key) {
                    if !v.starts_with(REDACTED) {
                        *v = secret_fingerprint(v);
                    }
                }
            }
            let Some(creds) = bag.get_mut("creds") else {
                continue;
            };
            let Ok(mut all) =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(creds)
            else {
                // Malformed: kept whole to be reported, but its text may
                // hold tokens, so only a fingerprint is kept.
                *creds = secret_fingerprint(creds);
                continue;
            };
            for entry in all.values_mut().filter_map(|e| e.as_object_mut()) {
                for key in TOKEN_KEYS {
                    if let Some(serde_json::Value::String(v)) = entry.get_mut(key) {
                        if !v.is_empty() && !v.starts_with(REDACTED) {
                            *v = secret_fingerprint(v);
                        }
                    }
                }
            }
            *creds = serde_json::Value::Object(all).to_string();
        }
    }
    data
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dns {
    /// The master said `enable-kube-dns: False`.
    Disabled,
    /// Enabled, address not published yet.
    Pending,
    Ready {
        ip: String,
        domain: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeControl {
    pub credentials: Option<CredentialsRef>,
    pub dns: Dns,
    pub api_urls: Vec<String>,
    pub cluster_tag: Option<String>,
    /// `registry-location`, or [`DEFAULT_REGISTRY`].
    pub registry: String,
    /// An external cloud provider runs the cloud integration.
    pub has_xcp: bool,
}

#[derive(Deserialize)]
struct CredsEntry {
    #[serde(default)]
    kubelet_token: String,
    #[serde(default)]
    proxy_token: String,
    #[serde(default)]
    client_token: String,
    #[serde(rename = "secret-id", default)]
    secret_id: Option<String>,
}

/// Reads kube-control in every form masters have sent: flat tokens
/// (September 2017), `creds` JSON keyed by user (December 2017 on), and
/// `api-endpoints` (current masters). `None` until a unit has published.
pub fn kube_control(
    data: &EndpointData,
    node_user: &str,
) -> Result<Option<KubeControl>, Malformed> {
    let mut best: Option<KubeControl> = None;
    for (unit, bag) in data.bags() {
        let bad = |key: &str, why: String| malformed(KUBE_CONTROL, unit, key, why);
        let credentials = match bag.get("creds") {
            Some(json) => {
                let all: BTreeMap<String, CredsEntry> =
                    serde_json::from_str(json).map_err(|e| {
                        // serde's text may quote the value, which holds tokens.
                        bad(
                            "creds",
                            format!(
                                "is not valid JSON ({:?} error at line {} column {})",
                                e.classify(),
                                e.line(),
                                e.column()
                            ),
                        )
                    })?;
                match all.get(node_user) {
                    None => None,
                    Some(c) => match c.secret_id.as_deref().filter(|id| !id.is_empty()) {
                        Some(id) => {
                            validate::secret_uri(id).map_err(|why| {
                                bad("creds", format!("for {node_user}: its secret-id {why}"))
                            })?;
                            Some(CredentialsRef::Secret {
                                id: id.to_string(),
                                from: unit.to_string(),
                            })
                        }
                        None if [&c.kubelet_token, &c.proxy_token, &c.client_token]
                            .iter()
                            .all(|t| !t.is_empty()) =>
                        {
                            let creds = Credentials {
                                kubelet_token: c.kubelet_token.clone(),
                                proxy_token: c.proxy_token.clone(),
                                client_token: c.client_token.clone(),
                            };
                            check_tokens(&creds).map_err(|(which, why)| {
                                bad("creds", format!("for {node_user}: its {which} token {why}"))
                            })?;
                            Some(CredentialsRef::Tokens(creds))
                        }
                        None => None,
                    },
                }
            }
            None => match (
                bag.get("kubelet_token"),
                bag.get("proxy_token"),
                bag.get("client_token"),
            ) {
                (Some(k), Some(p), Some(c)) => {
                    let creds = Credentials {
                        kubelet_token: k.clone(),
                        proxy_token: p.clone(),
                        client_token: c.clone(),
                    };
                    check_tokens(&creds)
                        .map_err(|(which, why)| bad(&format!("{which}_token"), why))?;
                    Some(CredentialsRef::Tokens(creds))
                }
                _ => None,
            },
        };
        let enabled = match bag.get("enable-kube-dns").map(|v| decoded(v)).as_deref() {
            None | Some("True") | Some("true") => true,
            Some("False") | Some("false") => false,
            Some(other) => {
                return Err(bad(
                    "enable-kube-dns",
                    format!("is not True or False: {}", validate::quoted(other)),
                ))
            }
        };
        let dns = if !enabled {
            Dns::Disabled
        } else {
            match bag
                .get("sdn-ip")
                .map(|v| decoded(v))
                .filter(|ip| !ip.is_empty())
            {
                None => Dns::Pending,
                Some(ip) => {
                    validate::ip(&ip).map_err(|why| bad("sdn-ip", why))?;
                    let port = match bag.get("port").map(|v| decoded(v)) {
                        None => 53,
                        Some(p) => validate::port(&p).map_err(|why| bad("port", why))?,
                    };
                    let domain = bag
                        .get("domain")
                        .map(|v| decoded(v))
                        .unwrap_or_else(|| "cluster.local".into());
                    validate::dns_name(&domain).map_err(|why| bad("domain", why))?;
                    Dns::Ready { ip, domain, port }
                }
            }
        };
        let api_urls = match bag.get("api-endpoints") {
            None => Vec::new(),
            Some(json) => {
                let urls: Vec<String> = serde_json::from_str(json).map_err(|e| {
                    bad(
                        "api-endpoints",
                        format!("is not a JSON list of URLs ({:?} error)", e.classify()),
                    )
                })?;
                for url in &urls {
                    check_url(url).map_err(|why| bad("api-endpoints", why))?;
                }
                urls
            }
        };
        let has_xcp = match bag.get("has-xcp").map(|v| decoded(v)).as_deref() {
            None | Some("") | Some("false") | Some("False") => false,
            Some("true") | Some("True") => true,
            Some(other) => {
                return Err(bad(
                    "has-xcp",
                    format!("is not true or false: {}", validate::quoted(other)),
                ))
            }
        };
        let cluster_tag = bag
            .get("cluster-tag")
            .map(|v| decoded(v))
            .filter(|t| !t.is_empty());
        if let Some(tag) = &cluster_tag {
            validate::simple_name(tag).map_err(|why| bad("cluster-tag", why))?;
        }
        let registry = bag
            .get("registry-location")
            .map(|v| decoded(v))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        validate::registry(&registry).map_err(|why| bad("registry-location", why))?;
        let candidate = KubeControl {
            credentials,
            dns,
            api_urls,
            cluster_tag,
            registry,
            has_xcp,
        };
        // With several masters, the most complete answer counts.
        let score = |k: &KubeControl| {
            k.credentials.is_some() as u8 * 2 + !matches!(k.dns, Dns::Pending) as u8
        };
        if best.as_ref().is_none_or(|b| score(&candidate) > score(b)) {
            best = Some(candidate);
        }
    }
    Ok(best)
}
