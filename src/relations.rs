//! The relation data the worker consumes and what it writes back.
//!
//! Remote data is read per endpoint and kept (in the charm's state) as a
//! snapshot; a relation hook re-reads only its own endpoint, since Juju runs
//! a relation hook on this unit for every change of remote data. Parsing
//! is pure: every malformed value is reported naming the relation and key.

use crate::validate;
use std::collections::BTreeMap;

use charm::tools::Databag;
use charm::HookTools;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ToolContext};

pub const KUBE_API_ENDPOINT: &str = "kube-api-endpoint";
pub const KUBE_CONTROL: &str = "kube-control";
pub const CERTIFICATES: &str = "certificates";
pub const CNI: &str = "cni";
pub const CONTAINER_RUNTIME: &str = "container-runtime";
pub const INGRESS_PROXY: &str = "ingress-proxy";
/// The control plane's tokens for COS (see [`crate::cos`]).
pub const TOKENS: &str = "tokens";
/// grafana-agent or opentelemetry-collector (see [`crate::cos`]).
pub const COS_AGENT: &str = "cos-agent";
/// The endpoints the worker reads or writes. The cloud integrations are
/// declared for today's bundles but not served yet.
pub const ENDPOINTS: [&str; 8] = [
    KUBE_API_ENDPOINT,
    KUBE_CONTROL,
    CERTIFICATES,
    CNI,
    CONTAINER_RUNTIME,
    TOKENS,
    COS_AGENT,
    INGRESS_PROXY,
];

/// The image registry when the control plane names none.
pub const DEFAULT_REGISTRY: &str = "rocks.canonical.com:443/cdk";

/// A relation value as sent: charms still on charms.reactive JSON-encode
/// every value (`"unix:///..."` with its quotes), ops charms send plain
/// strings. A JSON string is decoded, other JSON scalars are taken as
/// their text, and anything else as it is.
pub fn decoded(raw: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_))) => v.to_string(),
        _ => raw.to_string(),
    }
}

/// What the remote units of one endpoint have published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointData {
    /// Relation id (`kube-control:3`) -> remote unit -> its databag.
    pub relations: BTreeMap<String, BTreeMap<String, Databag>>,
}

impl EndpointData {
    pub fn is_related(&self) -> bool {
        !self.relations.is_empty()
    }

    /// Every remote unit's bag, in a stable order.
    pub fn bags(&self) -> impl Iterator<Item = (&String, &Databag)> {
        self.relations.values().flat_map(|units| units.iter())
    }

    /// The units of the relation whose remote application sorts first by
    /// name (with several CNI subordinates, the one the Python charm used).
    pub fn first_by_app(&self) -> Option<&BTreeMap<String, Databag>> {
        self.relations
            .values()
            .filter(|units| !units.is_empty())
            .min_by_key(|units| units.keys().next().map(|u| app_of(u).to_string()))
    }
}

fn app_of(unit: &str) -> &str {
    unit.split('/').next().unwrap_or(unit)
}

/// Reads what the remote units of `endpoint` publish now.
pub fn read(tools: &HookTools, endpoint: &str) -> Result<EndpointData, Error> {
    let mut data = EndpointData::default();
    for rel in tools.relation_ids(endpoint).doing("listing relations")? {
        let mut units = BTreeMap::new();
        for unit in tools.relation_list(&rel).doing("listing related units")? {
            let bag = tools
                .relation_get(&rel, &unit)
                .doing("reading relation data")?;
            units.insert(unit, bag);
        }
        data.relations.insert(rel.to_string(), units);
    }
    Ok(data)
}

/// A problem with relation data: `Ok(None)` from a parser means "not there
/// yet"; this means "there, but wrong".
pub type Malformed = String;

fn malformed(endpoint: &str, unit: &str, key: &str, why: impl std::fmt::Display) -> Malformed {
    let text = format!("{endpoint} relation: {key} from {unit} {why}");
    charm::logging::bounded(&text, 300).into_owned()
}

/// `https://<host>:<port>` for every unit of the http relation.
pub fn api_urls_from_http(data: &EndpointData) -> Result<Vec<String>, Malformed> {
    let mut urls = Vec::new();
    for (unit, bag) in data.bags() {
        let host = bag
            .get("hostname")
            .filter(|h| !h.is_empty())
            .or_else(|| bag.get("private-address"));
        let (Some(host), Some(port)) = (host, bag.get("port")) else {
            continue;
        };
        let port =
            validate::port(port).map_err(|why| malformed(KUBE_API_ENDPOINT, unit, "port", why))?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(malformed(
                KUBE_API_ENDPOINT,
                unit,
                "hostname",
                format!("is not a host name: {}", validate::quoted(host)),
            ));
        }
        // An IPv6 literal needs brackets in a URL.
        let url = match host.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => format!("https://[{ip}]:{port}"),
            Err(_) => format!("https://{host}:{port}"),
        };
        check_url(&url).map_err(|why| malformed(KUBE_API_ENDPOINT, unit, "hostname", why))?;
        urls.push(url);
    }
    urls.sort();
    urls.dedup();
    Ok(urls)
}

fn check_url(url: &str) -> Result<(), String> {
    validate::https_url(url)
}

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
const REDACTED: &str = "sha256:";

/// What stands for a secret (a token, a private key) in the charm's
/// cache: its fingerprint, so the cache knows which one should be in force
/// without holding it.
pub fn secret_fingerprint(secret: &str) -> String {
    format!("{REDACTED}{}", charm::resources::Fingerprint::of(secret))
}

/// Whether `secret` is the one `reference` names: the secret itself, or its
/// fingerprint when `reference` came from the cache.
pub fn secret_matches(reference: &str, secret: &str) -> bool {
    if is_fingerprint(reference) {
        secret_fingerprint(secret) == reference
    } else {
        reference == secret
    }
}

/// Whether `value` is a fingerprint that stands for a secret.
pub fn is_fingerprint(value: &str) -> bool {
    value.starts_with(REDACTED)
}

/// The certificates relation as read, kept as the charm may keep it: every
/// private key (this unit's and the others' the CA lists) replaced by its
/// fingerprint. Keys live only in the 0600 files under /root/cdk. One that
/// does not parse (a value that only looks like a fingerprint included)
/// becomes a value that still does not, so it is reported as before.
pub fn redact_keys(read: &EndpointData) -> EndpointData {
    let mut data = read.clone();
    for units in data.relations.values_mut() {
        for bag in units.values_mut() {
            for (key, v) in bag.iter_mut() {
                if !key.ends_with(".key") || v.is_empty() {
                    continue;
                }
                *v = match validate::pem(v, validate::Pem::PrivateKey) {
                    Ok(()) => secret_fingerprint(v),
                    Err(_) => format!("{UNPARSABLE}{}", secret_fingerprint(v)),
                };
            }
        }
    }
    data
}

/// What stands for a private key that does not parse, in the cache.
const UNPARSABLE: &str = "unparsable ";

/// The tokens relation as the charm may keep it: each unit's `tokens`
/// answer replaced by its fingerprint (the COS token is read again when
/// the configuration that carries it is rebuilt).
pub fn redact_cos_tokens(data: &EndpointData) -> EndpointData {
    let mut data = data.clone();
    for units in data.relations.values_mut() {
        for bag in units.values_mut() {
            if let Some(v) = bag.get_mut("tokens") {
                if !v.starts_with(REDACTED) {
                    *v = secret_fingerprint(v);
                }
            }
        }
    }
    data
}

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

/// What the certificate authority gave this unit. Read from the cache,
/// each private key is its fingerprint (see [`redact_keys`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificates {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys never in a log line, whatever prints it.
        f.debug_struct("Certificates")
            .field("ca", &self.ca)
            .field("server_cert", &self.server_cert)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

/// Reads tls-certificates for `cert_name` (`kubernetes-worker_0`), as read
/// from the relation. `None` until all five are published.
pub fn certificates(
    data: &EndpointData,
    cert_name: &str,
) -> Result<Option<Certificates>, Malformed> {
    certificates_in(data, cert_name, false)
}

/// The same from the cache ([`redact_keys`]): each key is its fingerprint,
/// checked before it was replaced.
pub fn cached_certificates(
    data: &EndpointData,
    cert_name: &str,
) -> Result<Option<Certificates>, Malformed> {
    certificates_in(data, cert_name, true)
}

fn certificates_in(
    data: &EndpointData,
    cert_name: &str,
    cached: bool,
) -> Result<Option<Certificates>, Malformed> {
    for (unit, bag) in data.bags() {
        let server_cert_key = format!("{cert_name}.server.cert");
        let server_key_key = format!("{cert_name}.server.key");
        let keys = [
            "ca",
            "client.cert",
            "client.key",
            &server_cert_key,
            &server_key_key,
        ];
        let values: Vec<&String> = keys
            .iter()
            .filter_map(|k| bag.get(*k).filter(|v| !v.is_empty()))
            .collect();
        if values.len() < keys.len() {
            continue;
        }
        for (key, value) in keys.iter().zip(&values) {
            let kind = if key.ends_with(".key") {
                if cached && is_fingerprint(value) {
                    continue;
                }
                validate::Pem::PrivateKey
            } else {
                validate::Pem::Certificates
            };
            validate::pem(value, kind).map_err(|why| malformed(CERTIFICATES, unit, key, why))?;
        }
        return Ok(Some(Certificates {
            ca: values[0].clone(),
            client_cert: values[1].clone(),
            client_key: values[2].clone(),
            server_cert: values[3].clone(),
            server_key: values[4].clone(),
        }));
    }
    Ok(None)
}

/// What the CNI subordinate announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    pub cidr: String,
    /// `10-flannel.conflist`, when the CNI names its config file.
    pub conf_file: Option<String>,
}

/// The cluster CIDR and config file from the CNI relation whose
/// application sorts first by name.
pub fn cni(data: &EndpointData) -> Result<Option<Cni>, Malformed> {
    let Some(units) = data.first_by_app() else {
        return Ok(None);
    };
    let mut first = EndpointData::default();
    first.relations.insert(String::new(), units.clone());
    let Some(cidr) = cluster_cidr(&first)? else {
        return Ok(None);
    };
    let conf_file = units
        .iter()
        .find_map(|(unit, bag)| bag.get("cni-conf-file").map(|v| (unit, decoded(v))))
        .filter(|(_, f)| !f.is_empty());
    if let Some((unit, file)) = &conf_file {
        validate::simple_name(file).map_err(|why| malformed(CNI, unit, "cni-conf-file", why))?;
    }
    let conf_file = conf_file.map(|(_, f)| f);
    Ok(Some(Cni { cidr, conf_file }))
}

/// The cluster CIDR the CNI subordinate announces.
pub fn cluster_cidr(data: &EndpointData) -> Result<Option<String>, Malformed> {
    for (unit, bag) in data.bags() {
        if let Some(cidr) = bag
            .get("cidr")
            .map(|v| decoded(v))
            .filter(|c| !c.is_empty())
        {
            let valid = cidr.split_once('/').is_some_and(|(ip, bits)| {
                let max = if ip.contains(':') { 128 } else { 32 };
                ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !valid {
                return Err(malformed(
                    CNI,
                    unit,
                    "cidr",
                    format!("is not a CIDR: {}", validate::quoted(&cidr)),
                ));
            }
            return Ok(Some(cidr));
        }
    }
    Ok(None)
}

/// What the container runtime subordinate publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `unix:///var/run/containerd/containerd.sock`.
    pub socket: String,
    pub runtime: Option<String>,
    pub nvidia: bool,
}

/// The runtime's socket; `None` until published. A socket that is not a
/// `unix://` or `npipe://` URL is malformed.
pub fn container_runtime(data: &EndpointData) -> Result<Option<Runtime>, Malformed> {
    for (unit, bag) in data.bags() {
        let Some(socket) = bag
            .get("socket")
            .map(|v| decoded(v))
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let path = socket
            .strip_prefix("unix://")
            .or_else(|| socket.strip_prefix("npipe://"));
        // A unix socket's path fits in sun_path (108 bytes with its NUL).
        let valid = path.is_some_and(|p| {
            !p.is_empty()
                && p.len() <= 107
                && !p
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        });
        if !valid {
            return Err(malformed(
                CONTAINER_RUNTIME,
                unit,
                "socket",
                format!(
                    "is not a unix:// or npipe:// URL: {}",
                    validate::quoted(&socket)
                ),
            ));
        }
        return Ok(Some(Runtime {
            socket,
            runtime: bag
                .get("runtime")
                .map(|v| decoded(v))
                .filter(|r| !r.is_empty()),
            nvidia: bag
                .get("nvidia_enabled")
                .map(|v| decoded(v))
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(units: &[(&str, &[(&str, &str)])]) -> EndpointData {
        let mut rel = BTreeMap::new();
        for (unit, kv) in units {
            rel.insert(
                unit.to_string(),
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        let mut d = EndpointData::default();
        d.relations.insert("x:1".into(), rel);
        d
    }

    #[test]
    fn http_endpoints() {
        let d = data(&[
            (
                "lb/0",
                &[
                    ("hostname", "lb.example"),
                    ("port", "443"),
                    ("private-address", "10.0.0.9"),
                ],
            ),
            ("m/0", &[("private-address", "10.0.0.5"), ("port", "6443")]),
            ("m/1", &[("private-address", "10.0.0.6")]),
        ]);
        assert_eq!(
            api_urls_from_http(&d).unwrap(),
            vec!["https://10.0.0.5:6443", "https://lb.example:443"]
        );
        let bad = data(&[("m/0", &[("private-address", "10.0.0.5"), ("port", "sixty")])]);
        assert_eq!(
            api_urls_from_http(&bad).unwrap_err(),
            "kube-api-endpoint relation: port from m/0 is not a port number (1-65535): \"sixty\""
        );
        let v6 = data(&[("m/0", &[("private-address", "fd00::5"), ("port", "6443")])]);
        assert_eq!(
            api_urls_from_http(&v6).unwrap(),
            vec!["https://[fd00::5]:6443"]
        );
        let bracketed = data(&[("m/0", &[("hostname", "[fd00::6]"), ("port", "443")])]);
        assert_eq!(
            api_urls_from_http(&bracketed).unwrap(),
            vec!["https://[fd00::6]:443"]
        );
        let bad = data(&[("m/0", &[("hostname", "a b"), ("port", "1")])]);
        assert!(api_urls_from_http(&bad)
            .unwrap_err()
            .contains("hostname from m/0"));
    }

    #[test]
    fn kube_control_forms() {
        let flat = data(&[(
            "m/0",
            &[
                ("kubelet_token", "k"),
                ("proxy_token", "p"),
                ("client_token", "c"),
                ("sdn-ip", "10.152.183.10"),
                ("domain", "cluster.local"),
                ("port", "53"),
            ],
        )]);
        let k = kube_control(&flat, "system:node:w0").unwrap().unwrap();
        let Some(CredentialsRef::Tokens(c)) = k.credentials else {
            panic!("flat tokens")
        };
        assert_eq!(c.proxy_token, "p");
        assert_eq!(k.registry, DEFAULT_REGISTRY);
        assert!(!k.has_xcp);
        assert_eq!(
            k.dns,
            Dns::Ready {
                ip: "10.152.183.10".into(),
                domain: "cluster.local".into(),
                port: 53
            }
        );
        let creds = r#"{"system:node:w0": {"scope": "kubernetes-worker/0", "kubelet_token": "k0", "proxy_token": "p0", "client_token": "c0"},
                        "system:node:w1": {"scope": "kubernetes-worker/1", "kubelet_token": "k1", "proxy_token": "p1", "client_token": "c1"}}"#;
        let json = data(&[(
            "m/0",
            &[
                ("creds", creds),
                ("enable-kube-dns", "False"),
                ("api-endpoints", r#"["https://10.0.0.5:6443"]"#),
            ],
        )]);
        let k = kube_control(&json, "system:node:w1").unwrap().unwrap();
        let Some(CredentialsRef::Tokens(c)) = k.credentials else {
            panic!("creds tokens")
        };
        assert_eq!(c.kubelet_token, "k1");
        assert_eq!(k.dns, Dns::Disabled);
        assert_eq!(k.api_urls, vec!["https://10.0.0.5:6443"]);
        assert!(kube_control(&json, "system:node:other")
            .unwrap()
            .unwrap()
            .credentials
            .is_none());
        let pending = data(&[("m/0", &[("domain", "cluster.local")])]);
        assert_eq!(
            kube_control(&pending, "x").unwrap().unwrap().dns,
            Dns::Pending
        );
    }

    #[test]
    fn today_kube_control() {
        let creds = r#"{"system:node:w0": {"scope": "kubernetes-worker/0", "kubelet_token": "", "proxy_token": "", "client_token": "", "secret-id": "secret:cu1u0g7mp25c77c7p8tg"}}"#;
        let d = data(&[(
            "kcp/0",
            &[
                ("creds", creds),
                (
                    "api-endpoints",
                    r#"["https://10.0.0.5:6443", "https://10.0.0.6:6443"]"#,
                ),
                ("cluster-tag", "kubernetes-abc"),
                ("registry-location", "registry.example:5000/cdk"),
                ("has-xcp", "true"),
                ("default-cni", "\"\""),
                ("labels", "[]"),
                ("taints", "[]"),
                ("sdn-ip", "10.152.183.10"),
            ],
        )]);
        let k = kube_control(&d, "system:node:w0").unwrap().unwrap();
        assert_eq!(
            k.credentials,
            Some(CredentialsRef::Secret {
                id: "secret:cu1u0g7mp25c77c7p8tg".into(),
                from: "kcp/0".into()
            })
        );
        assert_eq!(k.cluster_tag.as_deref(), Some("kubernetes-abc"));
        assert_eq!(k.registry, "registry.example:5000/cdk");
        assert!(k.has_xcp);
        assert_eq!(k.api_urls.len(), 2);
        let d = data(&[("kcp/0", &[("has-xcp", "maybe")])]);
        assert!(kube_control(&d, "u")
            .unwrap_err()
            .contains("has-xcp from kcp/0"));
    }

    #[test]
    fn cached_kube_control_holds_only_fingerprints() {
        let creds = r#"{"system:node:w0": {"kubelet_token": "k0", "proxy_token": "p0", "client_token": "c0"}, "system:node:w1": {"kubelet_token": "k1", "proxy_token": "p1", "client_token": "c1"}}"#;
        let d = data(&[(
            "m/0",
            &[
                ("creds", creds),
                ("kubelet_token", "flat-k"),
                ("domain", "cluster.local"),
            ],
        )]);
        let cached = redact_tokens(&d);
        let text = serde_json::to_string(&cached).unwrap();
        for token in ["k0", "p0", "c0", "k1", "p1", "c1", "flat-k"] {
            assert!(
                !text.contains(&format!("\\\"{token}\\\"")),
                "{token} in {text}"
            );
            assert!(!text.contains(&format!("\"{token}\"")), "{token} in {text}");
        }
        assert_eq!(
            redact_tokens(&cached),
            cached,
            "redacting twice changes nothing"
        );
        let Some(CredentialsRef::Tokens(refs)) = kube_control(&cached, "system:node:w0")
            .unwrap()
            .unwrap()
            .credentials
        else {
            panic!("tokens")
        };
        assert!(secret_matches(&refs.kubelet_token, "k0"));
        assert!(!secret_matches(&refs.kubelet_token, "k1"));
        assert!(secret_matches("plain", "plain"));
        // A malformed creds value (which may hold tokens) is kept only as
        // a fingerprint, and still reported as malformed.
        let bad = redact_tokens(&data(&[("m/0", &[("creds", "{\"k0")])]));
        assert!(!serde_json::to_string(&bad).unwrap().contains("k0"));
        assert!(kube_control(&bad, "u").is_err());
    }

    #[test]
    fn json_encoded_values_are_decoded() {
        assert_eq!(decoded("\"unix:///run/x.sock\""), "unix:///run/x.sock");
        assert_eq!(decoded("unix:///run/x.sock"), "unix:///run/x.sock");
        assert_eq!(decoded("true"), "true");
        assert_eq!(decoded("[1]"), "[1]");
        assert_eq!(decoded("\"unterminated"), "\"unterminated");
    }

    #[test]
    fn container_runtime_socket() {
        let r = container_runtime(&data(&[(
            "containerd/0",
            &[
                ("socket", "\"unix:///var/run/containerd/containerd.sock\""),
                ("runtime", "\"remote\""),
                ("nvidia_enabled", "false"),
            ],
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(r.socket, "unix:///var/run/containerd/containerd.sock");
        assert_eq!(r.runtime.as_deref(), Some("remote"));
        assert!(!r.nvidia);
        assert_eq!(
            container_runtime(&data(&[("containerd/0", &[])])).unwrap(),
            None
        );
        for bad in [
            "/var/run/containerd.sock",
            "tcp://1.2.3.4:5",
            "unix://",
            "\"unix://a b\"",
        ] {
            let err =
                container_runtime(&data(&[("containerd/0", &[("socket", bad)])])).unwrap_err();
            assert!(
                err.starts_with("container-runtime relation: socket from containerd/0 is not a unix:// or npipe:// URL"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_first_cni_by_application_name_counts() {
        let mut d = EndpointData::default();
        for (rid, unit, cidr) in [
            ("cni:4", "flannel/0", "10.1.0.0/16"),
            ("cni:2", "calico/0", "192.168.0.0/16"),
        ] {
            let bag: Databag = [
                ("cidr".to_string(), format!("\"{cidr}\"")),
                (
                    "cni-conf-file".to_string(),
                    format!("\"10-{}.conflist\"", app_of(unit)),
                ),
            ]
            .into();
            d.relations
                .insert(rid.into(), [(unit.to_string(), bag)].into());
        }
        let cni = cni(&d).unwrap().unwrap();
        assert_eq!(cni.cidr, "192.168.0.0/16");
        assert_eq!(cni.conf_file.as_deref(), Some("10-calico.conflist"));
    }

    #[test]
    fn kube_control_malformed_keys_are_named() {
        for (key, value, expected) in [
            ("creds", "{not json", "creds from m/0 is not valid JSON"),
            (
                "api-endpoints",
                "[\"ftp://x\"]",
                "api-endpoints from m/0 is not an https URL",
            ),
            (
                "api-endpoints",
                "https://x",
                "api-endpoints from m/0 is not a JSON list",
            ),
            (
                "enable-kube-dns",
                "maybe",
                "enable-kube-dns from m/0 is not True or False",
            ),
            ("sdn-ip", "ten", "sdn-ip from m/0 is not an IP address"),
        ] {
            let d = data(&[("m/0", &[(key, value)])]);
            let err = kube_control(&d, "u").unwrap_err();
            assert!(err.starts_with("kube-control relation: "), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let d = data(&[("m/0", &[("sdn-ip", "10.0.0.10"), ("port", "x")])]);
        assert!(kube_control(&d, "u").unwrap_err().contains("port from m/0"));
    }

    #[test]
    fn certificates_need_all_five_and_each_must_parse() {
        let pki = juju_sim::cluster::Pki::new();
        let ca = pki.ca_pem();
        let (cert, key, _, _) = pki.issue(&["w"]);
        let mut kv = vec![
            ("ca", ca.as_str()),
            ("client.cert", cert.as_str()),
            ("client.key", key.as_str()),
            ("w_0.server.cert", cert.as_str()),
        ];
        assert_eq!(certificates(&data(&[("ca/0", &kv)]), "w_0").unwrap(), None);
        kv.push(("w_0.server.key", key.as_str()));
        assert!(certificates(&data(&[("ca/0", &kv)]), "w_0")
            .unwrap()
            .is_some());
        let good = kv.clone();
        kv[0] = ("ca", "garbage");
        assert_eq!(
            certificates(&data(&[("ca/0", &kv)]), "w_0").unwrap_err(),
            "certificates relation: ca from ca/0 holds no PEM certificate"
        );
        // PEM armour around something that is not a certificate.
        let fake = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
        let mut kv = good.clone();
        kv[3] = ("w_0.server.cert", fake);
        assert!(certificates(&data(&[("ca/0", &kv)]), "w_0")
            .unwrap_err()
            .starts_with("certificates relation: w_0.server.cert from ca/0 holds a certificate that does not parse"));
        // A certificate where the key should be; the key is never quoted.
        let mut kv = good;
        kv[4] = ("w_0.server.key", cert.as_str());
        assert_eq!(
            certificates(&data(&[("ca/0", &kv)]), "w_0").unwrap_err(),
            "certificates relation: w_0.server.key from ca/0 is not a PEM private key"
        );
        // Kept in the cache, the keys are fingerprints; a bad one stays bad.
        let cached = redact_keys(&data(&[("ca/0", &kv)]));
        let text = serde_json::to_string(&cached).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert_eq!(
            cached_certificates(&cached, "w_0").unwrap_err(),
            "certificates relation: w_0.server.key from ca/0 is not a PEM private key"
        );
        // A key that only looks like a fingerprint is no key, read or kept.
        let fake = secret_fingerprint(&key);
        kv[4] = ("w_0.server.key", fake.as_str());
        assert!(certificates(&data(&[("ca/0", &kv)]), "w_0").is_err());
        assert!(cached_certificates(&redact_keys(&data(&[("ca/0", &kv)])), "w_0").is_err());
        kv[4] = ("w_0.server.key", key.as_str());
        let cached = redact_keys(&data(&[("ca/0", &kv)]));
        assert!(!serde_json::to_string(&cached)
            .unwrap()
            .contains("PRIVATE KEY"));
        assert!(
            certificates(&cached, "w_0").is_err(),
            "fingerprints are accepted only from the cache"
        );
        let from_cache = cached_certificates(&cached, "w_0").unwrap().unwrap();
        assert!(secret_matches(&from_cache.server_key, &key));
        assert!(secret_matches(&from_cache.client_key, &key));
        assert_eq!(from_cache.server_cert, cert);
        assert!(!format!("{from_cache:?}").contains("server_key"));
    }

    #[test]
    fn values_that_would_reach_flags_and_files_are_checked() {
        let bad = |kv: &[(&str, &str)]| kube_control(&data(&[("m/0", kv)]), "u").unwrap_err();
        let dns = [("sdn-ip", "10.152.183.10")];
        let with = |extra: (&'static str, &'static str)| {
            let mut kv = dns.to_vec();
            kv.push(extra);
            kv
        };
        assert_eq!(
            bad(&with(("domain", "cluster.local\n--v=9"))),
            r#"kube-control relation: domain from m/0 is not a DNS name: "cluster.local\n--v=9""#
        );
        assert!(bad(&with(("port", "0"))).contains("port from m/0 is not a port number (1-65535)"));
        assert!(bad(&[("registry-location", "r.example --x")]).contains("registry-location"));
        assert!(bad(&[("cluster-tag", "a/../b")]).contains("cluster-tag"));
        assert!(
            bad(&[("api-endpoints", r#"["https://10.0.0.1:6443\n"]"#)]).contains("api-endpoints")
        );
        let why = bad(&[
            ("kubelet_token", "good-token"),
            ("proxy_token", "bad token\nwith newline"),
            ("client_token", "good"),
        ]);
        assert_eq!(
            why,
            "kube-control relation: proxy_token from m/0 is not a token (character 4 is not printable ASCII)"
        );
        let creds =
            r#"{"u": {"kubelet_token": "k", "proxy_token": "p", "client_token": "c\u0007"}}"#;
        let why = bad(&[("creds", creds)]);
        assert!(
            why.contains("creds from m/0 for u: its client token is not a token"),
            "{why}"
        );
        assert!(!why.contains('\u{7}'));
        // Very long values are quoted short.
        let long = "x".repeat(300_000);
        let why = bad(&with(("domain", Box::leak(long.into_boxed_str()))));
        assert!(why.len() <= 320, "{}", why.len());
    }

    #[test]
    fn a_secret_id_secret_get_would_refuse_is_malformed() {
        let with_id = |id: &str| {
            let creds = serde_json::json!({"u": {"kubelet_token": "", "proxy_token": "", "client_token": "",
                                      "secret-id": id}})
            .to_string();
            kube_control(&data(&[("kcp/0", &[("creds", creds.as_str())])]), "u")
        };
        for good in [
            "secret:cu1u0g7mp25c77c7p8tg",
            "secret://6f7c3a8e-5b0f-4a7e-9a52-000000000001/cu1u0g7mp25c77c7p8tg",
        ] {
            assert!(
                matches!(
                    with_id(good),
                    Ok(Some(KubeControl {
                        credentials: Some(CredentialsRef::Secret { .. }),
                        ..
                    }))
                ),
                "{good}"
            );
        }
        for bad in [
            "cu1u0g7mp25c77c7p8tg",
            "secret:cu1u0g7mp25c77c7p8t",
            "secret:cu1u0g7mp25c77c7p8tz",
            "secret:CU1U0G7MP25C77C7P8TG",
            "secret://model/cu1u0g7mp25c77c7p8tg",
            "secret:cu1u0g7mp25c77c7p8tg\n",
            "vault:cu1u0g7mp25c77c7p8tg",
        ] {
            let why = with_id(bad).unwrap_err();
            assert!(
                why.starts_with("kube-control relation: creds from kcp/0 for u: its secret-id is not a Juju secret URI: "),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn cidr() {
        assert_eq!(
            cluster_cidr(&data(&[("f/0", &[("cidr", "10.1.0.0/16")])])).unwrap(),
            Some("10.1.0.0/16".into())
        );
        assert!(cluster_cidr(&data(&[("f/0", &[("cidr", "10.1.0.0/40")])])).is_err());
        assert!(cluster_cidr(&data(&[("f/0", &[("cidr", "fd00::/64")])]))
            .unwrap()
            .is_some());
        assert_eq!(cluster_cidr(&data(&[("f/0", &[])])).unwrap(), None);
    }

    /// metadata.yaml is what an operator reads first: an endpoint the
    /// charm serves is not described as one it does not.
    #[test]
    fn metadata_does_not_call_a_served_endpoint_unserved() {
        let metadata = include_str!("../metadata.yaml");
        let lines: Vec<&str> = metadata.lines().collect();
        for endpoint in ENDPOINTS {
            let at = lines
                .iter()
                .position(|l| l.trim_end() == format!("  {endpoint}:"))
                .unwrap_or_else(|| panic!("{endpoint} is not declared"));
            let comments = lines[at + 1..]
                .iter()
                .take_while(|l| l.starts_with("    "))
                .chain(
                    lines[..at]
                        .iter()
                        .rev()
                        .take_while(|l| l.trim_start().starts_with('#')),
                )
                .filter(|l| l.trim_start().starts_with('#'));
            for comment in comments {
                assert!(
                    !comment.contains("not served yet") && !comment.contains("not read yet"),
                    "{endpoint}: {comment}"
                );
            }
        }
    }
}
