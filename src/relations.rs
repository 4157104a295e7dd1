//! The relation data the worker consumes and what it writes back.
//!
//! Remote data is read per endpoint and kept (in the charm's state) as a
//! snapshot; a relation hook re-reads only its own endpoint, since Juju runs
//! a relation hook on this unit for every change of remote data. Parsing
//! is pure: every malformed value is reported naming the relation and key.

use std::collections::BTreeMap;

use charm::tools::Databag;
use charm::HookTools;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ToolContext};

pub const KUBE_API_ENDPOINT: &str = "kube-api-endpoint";
pub const KUBE_CONTROL: &str = "kube-control";
pub const CERTIFICATES: &str = "certificates";
pub const CNI: &str = "cni";
pub const ENDPOINTS: [&str; 4] = [KUBE_API_ENDPOINT, KUBE_CONTROL, CERTIFICATES, CNI];

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
    format!("{endpoint} relation: {key} from {unit} {why}")
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
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            malformed(
                KUBE_API_ENDPOINT,
                unit,
                "port",
                format!("is not a port number: {port:?}"),
            )
        })?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(malformed(
                KUBE_API_ENDPOINT,
                unit,
                "hostname",
                format!("is not a host name: {host:?}"),
            ));
        }
        let url = format!("https://{host}:{port}");
        check_url(&url).map_err(|why| malformed(KUBE_API_ENDPOINT, unit, "hostname", why))?;
        urls.push(url);
    }
    urls.sort();
    urls.dedup();
    Ok(urls)
}

fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(format!("is not an https URL: {url:?}")),
        Err(e) => Err(format!("is not a URL: {url:?} ({e})")),
    }
}

/// The tokens this node uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub kubelet_token: String,
    pub proxy_token: String,
    pub client_token: String,
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
    pub credentials: Option<Credentials>,
    pub dns: Dns,
    pub api_urls: Vec<String>,
}

#[derive(Deserialize)]
struct CredsEntry {
    kubelet_token: String,
    proxy_token: String,
    client_token: String,
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
                let all: BTreeMap<String, CredsEntry> = serde_json::from_str(json)
                    .map_err(|e| bad("creds", format!("is not valid JSON: {e}")))?;
                all.get(node_user).map(|c| Credentials {
                    kubelet_token: c.kubelet_token.clone(),
                    proxy_token: c.proxy_token.clone(),
                    client_token: c.client_token.clone(),
                })
            }
            None => match (
                bag.get("kubelet_token"),
                bag.get("proxy_token"),
                bag.get("client_token"),
            ) {
                (Some(k), Some(p), Some(c)) => Some(Credentials {
                    kubelet_token: k.clone(),
                    proxy_token: p.clone(),
                    client_token: c.clone(),
                }),
                _ => None,
            },
        };
        let enabled = match bag.get("enable-kube-dns").map(String::as_str) {
            None | Some("True") | Some("true") => true,
            Some("False") | Some("false") => false,
            Some(other) => {
                return Err(bad(
                    "enable-kube-dns",
                    format!("is not True or False: {other:?}"),
                ))
            }
        };
        let dns = if !enabled {
            Dns::Disabled
        } else {
            match bag.get("sdn-ip").filter(|ip| !ip.is_empty()) {
                None => Dns::Pending,
                Some(ip) => {
                    ip.parse::<std::net::IpAddr>()
                        .map_err(|_| bad("sdn-ip", format!("is not an IP address: {ip:?}")))?;
                    let port = match bag.get("port") {
                        None => 53,
                        Some(p) => p
                            .parse()
                            .map_err(|_| bad("port", format!("is not a port number: {p:?}")))?,
                    };
                    let domain = bag
                        .get("domain")
                        .cloned()
                        .unwrap_or_else(|| "cluster.local".into());
                    Dns::Ready {
                        ip: ip.clone(),
                        domain,
                        port,
                    }
                }
            }
        };
        let api_urls = match bag.get("api-endpoints") {
            None => Vec::new(),
            Some(json) => {
                let urls: Vec<String> = serde_json::from_str(json).map_err(|e| {
                    bad("api-endpoints", format!("is not a JSON list of URLs: {e}"))
                })?;
                for url in &urls {
                    check_url(url).map_err(|why| bad("api-endpoints", why))?;
                }
                urls
            }
        };
        let candidate = KubeControl {
            credentials,
            dns,
            api_urls,
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

/// What the certificate authority gave this unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificates {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

/// Reads tls-certificates for `cert_name` (`kubernetes-worker_0`). `None`
/// until all five are published.
pub fn certificates(
    data: &EndpointData,
    cert_name: &str,
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
            if !value.contains("-----BEGIN ") {
                return Err(malformed(CERTIFICATES, unit, key, "is not PEM"));
            }
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

/// The cluster CIDR the CNI subordinate announces.
pub fn cluster_cidr(data: &EndpointData) -> Result<Option<String>, Malformed> {
    for (unit, bag) in data.bags() {
        if let Some(cidr) = bag.get("cidr").filter(|c| !c.is_empty()) {
            let valid = cidr.split_once('/').is_some_and(|(ip, bits)| {
                let max = if ip.contains(':') { 128 } else { 32 };
                ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !valid {
                return Err(malformed(
                    CNI,
                    unit,
                    "cidr",
                    format!("is not a CIDR: {cidr:?}"),
                ));
            }
            return Ok(Some(cidr.clone()));
        }
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
            "kube-api-endpoint relation: port from m/0 is not a port number: \"sixty\""
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
        assert_eq!(k.credentials.unwrap().proxy_token, "p");
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
        assert_eq!(k.credentials.unwrap().kubelet_token, "k1");
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
    fn certificates_need_all_five() {
        let pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let mut kv = vec![
            ("ca", pem),
            ("client.cert", pem),
            ("client.key", pem),
            ("w_0.server.cert", pem),
        ];
        assert_eq!(certificates(&data(&[("ca/0", &kv)]), "w_0").unwrap(), None);
        kv.push(("w_0.server.key", pem));
        assert!(certificates(&data(&[("ca/0", &kv)]), "w_0")
            .unwrap()
            .is_some());
        kv[0] = ("ca", "garbage");
        assert_eq!(
            certificates(&data(&[("ca/0", &kv)]), "w_0").unwrap_err(),
            "certificates relation: ca from ca/0 is not PEM"
        );
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
}
