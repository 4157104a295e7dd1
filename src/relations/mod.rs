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

mod certificates;
mod cni;
mod http;
mod kube_control;
mod runtime;
mod tokens;

pub use certificates::{cached_certificates, certificates, redact_keys, Certificates};
pub use cni::{cni, Cni};
pub use http::api_urls_from_http;
pub use kube_control::{
    kube_control, redact_tokens, Credentials, CredentialsRef, Dns, KubeControl,
};
pub use runtime::{container_runtime, Runtime};
pub use tokens::redact_cos_tokens;

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
/// The clouds' integrators (see [`crate::cloud`]).
pub const AWS: &str = "aws";
pub const GCP: &str = "gcp";
pub const AZURE: &str = "azure";
/// The endpoints the worker reads or writes.
pub const ENDPOINTS: [&str; 11] = [
    KUBE_API_ENDPOINT,
    KUBE_CONTROL,
    CERTIFICATES,
    CNI,
    CONTAINER_RUNTIME,
    TOKENS,
    COS_AGENT,
    INGRESS_PROXY,
    AWS,
    GCP,
    AZURE,
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
    charm::quote::bounded(&text, 300).into_owned()
}

fn check_url(url: &str) -> Result<(), String> {
    validate::https_url(url)
}

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

#[cfg(test)]
mod tests {
    use super::cni::cluster_cidr;
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
        let metadata = include_str!("../../metadata.yaml");
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
