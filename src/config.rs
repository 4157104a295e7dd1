//! The charm's options, typed, with the defaults config.yaml declares for
//! values the agent did not send.

use std::collections::BTreeMap;

use charm::HookTools;
use serde_json::{Map, Value};

use crate::args;
use crate::error::{Error, ToolContext};
use crate::problem::Problem;
use crate::unit_state::{IngressSettings, NodeOptions, DEFAULT_REMOVAL_DRAIN_TIMEOUT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub channel: String,
    pub require_manual_upgrade: bool,
    /// The node's options, or what is wrong with them.
    pub node: Result<NodeOptions, Vec<Problem>>,
    /// `ingress-default-ssl-key`, which no record keeps.
    pub ingress_ssl_key: SecretText,
}

/// Text that is never printed (a private key).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<none>"
        } else {
            "<secret>"
        })
    }
}

impl Config {
    /// What is wrong with `channel`, if anything: snapd takes
    /// `[<track>/]<risk>[/<branch>]`, the risk one of stable, candidate,
    /// beta or edge.
    pub fn channel_error(&self) -> Option<String> {
        let channel = &self.channel;
        let word = |s: &str, first: fn(char) -> bool| {
            s.starts_with(first)
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        let risk = |s: &str| ["stable", "candidate", "beta", "edge"].contains(&s);
        let track = |s: &str| word(s, |c| c.is_ascii_alphanumeric());
        let branch = |s: &str| word(s, |c| c.is_ascii_alphanumeric());
        let parts: Vec<&str> = channel.split('/').collect();
        let valid = match parts.as_slice() {
            [r] => risk(r),
            [t, r] => track(t) && risk(r) || risk(t) && branch(r),
            [t, r, b] => track(t) && risk(r) && branch(b),
            _ => false,
        };
        (!valid).then(|| {
            format!(
                "channel {channel:?} is not a snap channel: write [<track>/]<risk>[/<branch>], e.g. 1.31/stable"
            )
        })
    }

    pub fn read(tools: &HookTools) -> Result<Config, Error> {
        Ok(Config::from_map(
            &tools.config_get().doing("reading the charm's config")?,
        ))
    }

    pub fn from_map(map: &Map<String, Value>) -> Config {
        let text = |key: &str, default: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .trim()
                .to_string()
        };
        let flag =
            |key: &str, default: bool| map.get(key).and_then(Value::as_bool).unwrap_or(default);
        let mut problems = Vec::new();
        let allow_privileged = match text("allow-privileged", "auto").to_lowercase().as_str() {
            "true" => true,
            // auto: false on this charm, which does not manage GPUs.
            "false" | "auto" => false,
            other => {
                problems.push(Problem::blocked(format!(
                    "allow-privileged must be true, false or auto, not {other:?}"
                )));
                false
            }
        };
        fn parsed<T: Default>(problems: &mut Vec<Problem>, result: Result<T, String>) -> T {
            result.unwrap_or_else(|message| {
                problems.push(Problem::blocked(message));
                T::default()
            })
        }
        let kubelet_extra_args = parsed(
            &mut problems,
            args::parse_extra_args("kubelet-extra-args", &text("kubelet-extra-args", "")),
        );
        let proxy_extra_args = parsed(
            &mut problems,
            args::parse_extra_args("proxy-extra-args", &text("proxy-extra-args", "")),
        );
        let labels = parsed(&mut problems, args::parse_labels(&text("labels", "")));
        let kubelet_extra_config = parsed(
            &mut problems,
            yaml_map("kubelet-extra-config", &text("kubelet-extra-config", "{}"))
                .and_then(|yaml| fits("kubelet-extra-config", true, yaml)),
        );
        let proxy_extra_config = parsed(
            &mut problems,
            yaml_map("proxy-extra-config", &text("proxy-extra-config", "{}"))
                .and_then(|yaml| fits("proxy-extra-config", false, yaml)),
        );
        let sysctl = parsed(&mut problems, parse_sysctl(&text("sysctl", DEFAULT_SYSCTL)));
        let ingress_settings = parsed(
            &mut problems,
            ingress_settings(&text, &flag).map(|(settings, _)| settings),
        );
        let removal_drain_timeout = match map.get("removal-drain-timeout") {
            None | Some(Value::Null) => DEFAULT_REMOVAL_DRAIN_TIMEOUT,
            Some(v) => match v.as_u64().filter(|s| *s <= MAX_REMOVAL_DRAIN_TIMEOUT) {
                Some(seconds) => seconds,
                None => {
                    problems.push(Problem::blocked(format!(
                        "removal-drain-timeout must be from 0 to {MAX_REMOVAL_DRAIN_TIMEOUT} seconds, not {v}"
                    )));
                    0
                }
            },
        };
        let node = if problems.is_empty() {
            Ok(NodeOptions {
                allow_privileged,
                kubelet_extra_args,
                proxy_extra_args,
                labels: labels.set,
                remove_labels: labels.remove,
                ingress: flag("ingress", true),
                ignore_missing_cni: flag("ignore-missing-cni", false),
                kubelet_extra_config,
                proxy_extra_config,
                sysctl,
                ingress_settings,
                removal_drain_timeout,
            })
        } else {
            Err(problems)
        };
        Config {
            channel: text("channel", "1.31/stable"),
            require_manual_upgrade: flag("require-manual-upgrade", true),
            node,
            ingress_ssl_key: SecretText(ingress_ssl_key(map)),
        }
    }
}

/// The longest drain before a removal: the stop hook holds the machine
/// lock, and every other charm on the machine with it.
const MAX_REMOVAL_DRAIN_TIMEOUT: u64 = 3600;

/// The ingress options, checked, and the default certificate's key.
pub fn ingress_settings(
    text: &dyn Fn(&str, &str) -> String,
    flag: &dyn Fn(&str, bool) -> bool,
) -> Result<(IngressSettings, String), String> {
    use crate::validate::{self, Pem};
    let image = text("nginx-image", "auto");
    if image != "auto" {
        validate::image(&image).map_err(|why| format!("nginx-image {why}"))?;
    }
    let (cert, key) = (
        text("ingress-default-ssl-certificate", ""),
        text("ingress-default-ssl-key", ""),
    );
    match (cert.is_empty(), key.is_empty()) {
        (false, true) => {
            return Err("ingress-default-ssl-certificate is set without ingress-default-ssl-key: set both or neither".into())
        }
        (true, false) => {
            return Err("ingress-default-ssl-key is set without ingress-default-ssl-certificate: set both or neither".into())
        }
        (false, false) => {
            validate::pem(&cert, Pem::Certificates)
                .map_err(|why| format!("ingress-default-ssl-certificate {why}"))?;
            validate::pem(&key, Pem::PrivateKey)
                .map_err(|why| format!("ingress-default-ssl-key {why}"))?;
            validate::key_matches(&cert, &key).map_err(|why| {
                format!("ingress-default-ssl-key {why} in ingress-default-ssl-certificate")
            })?;
        }
        (true, true) => {}
    }
    let real_ip_cidr = text("ingress-proxy-real-ip-cidr", "0.0.0.0/0");
    validate::cidrs(&real_ip_cidr).map_err(|why| format!("ingress-proxy-real-ip-cidr {why}"))?;
    let settings = IngressSettings {
        image,
        ssl_certificate: cert,
        ssl_key_fingerprint: if key.is_empty() {
            String::new()
        } else {
            charm::resources::Fingerprint::of(&key)
        },
        chain_completion: flag("ingress-ssl-chain-completion", false),
        passthrough: flag("ingress-ssl-passthrough", false),
        forwarded_headers: flag("ingress-use-forwarded-headers", false),
        real_ip_cidr,
    };
    Ok((settings, key))
}

/// The default certificate's key, as configured (never cached).
pub fn ingress_ssl_key(map: &Map<String, Value>) -> String {
    map.get("ingress-default-ssl-key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The Python charm's default for `sysctl` (config.yaml declares the same).
pub const DEFAULT_SYSCTL: &str = "{ net.ipv4.conf.all.forwarding: 1, net.ipv4.conf.all.rp_filter: 1, net.ipv4.neigh.default.gc_thresh1: 128, net.ipv4.neigh.default.gc_thresh2: 28672, net.ipv4.neigh.default.gc_thresh3: 32768, net.ipv6.conf.all.forwarding: 1, net.ipv6.neigh.default.gc_thresh1: 128, net.ipv6.neigh.default.gc_thresh2: 28672, net.ipv6.neigh.default.gc_thresh3: 32768, fs.inotify.max_user_instances: 8192, fs.inotify.max_user_watches: 1048576, kernel.panic: 10, kernel.panic_on_oops: 1, vm.overcommit_memory: 1 }";

/// A map where the charm's file has a value would leave the daemon a
/// file it cannot read: refused, naming the key.
fn fits(option: &str, kubelet: bool, yaml: String) -> Result<String, String> {
    let map: serde_yaml::Mapping = serde_yaml::from_str(&yaml).unwrap_or_default();
    match crate::daemons::maps_over_values(kubelet, &map).first() {
        Some(key) => Err(format!(
            "{option} sets {key} to a map, where {} takes a value",
            if kubelet { "kubelet" } else { "kube-proxy" }
        )),
        None => Ok(yaml),
    }
}

/// A YAML map option (`kubelet-extra-config`), as normalised YAML text;
/// empty text is the empty map.
fn yaml_map(option: &str, text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok("{}\n".into());
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("{option} is not valid YAML: {e}"))?;
    match value {
        serde_yaml::Value::Null => Ok("{}\n".into()),
        serde_yaml::Value::Mapping(map) => {
            serde_yaml::to_string(&map).map_err(|e| format!("{option}: {e}"))
        }
        other => Err(format!(
            "{option} must be a YAML map, not {}",
            match other {
                serde_yaml::Value::Sequence(_) => "a list",
                serde_yaml::Value::String(_) => "a string",
                serde_yaml::Value::Number(_) => "a number",
                serde_yaml::Value::Bool(_) => "a boolean",
                _ => "that",
            }
        )),
    }
}

/// `sysctl`: a YAML map of kernel tunable -> value.
pub fn parse_sysctl(text: &str) -> Result<BTreeMap<String, String>, String> {
    let map: BTreeMap<String, serde_yaml::Value> = if text.is_empty() {
        BTreeMap::new()
    } else {
        serde_yaml::from_str::<Option<BTreeMap<String, serde_yaml::Value>>>(text)
            .map_err(|e| format!("sysctl must be a YAML map of tunable: value ({e})"))?
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '*'));
        if !key_ok {
            return Err(format!("sysctl has a bad tunable name {key:?}"));
        }
        let value = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
            _ => {
                return Err(format!(
                    "sysctl: the value of {key} must be a number or a string"
                ))
            }
        };
        if value.is_empty() || value.len() > 4096 || value.chars().any(|c| c.is_control()) {
            return Err(format!(
                "sysctl: the value of {key} is empty or holds a control character"
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Config {
        Config::from_map(v.as_object().unwrap())
    }

    #[test]
    fn defaults_and_typed_values() {
        let c = config(json!({}));
        assert_eq!(c.channel, "1.31/stable");
        assert!(c.require_manual_upgrade);
        let node = c.node.unwrap();
        assert!(!node.allow_privileged);
        assert!(node.ingress);
        let c = config(json!({"allow-privileged": "TRUE", "ingress": false, "labels": "a=b"}));
        let node = c.node.unwrap();
        assert!(node.allow_privileged);
        assert!(!node.ingress);
        assert_eq!(node.labels["a"], "b");
        assert_eq!(node.sysctl["net.ipv4.conf.all.forwarding"], "1");
        assert_eq!(node.sysctl["fs.inotify.max_user_watches"], "1048576");
        assert_eq!(node.sysctl.len(), 14);
        assert_eq!(node.kubelet_extra_config, "{}\n");
        assert!(!node.ignore_missing_cni);
    }

    #[test]
    fn channels_are_checked() {
        for good in [
            "1.31/stable",
            "stable",
            "latest/edge",
            "1.32/candidate/hotfix-1",
            "edge/pr-12",
        ] {
            assert_eq!(
                config(json!({"channel": good})).channel_error(),
                None,
                "{good}"
            );
        }
        for bad in [
            "",
            "1.31",
            "1.31/stabel",
            "/stable",
            "1.31/stable/",
            "a/b/c/d",
            "1.31/stable --classic",
        ] {
            let err = config(json!({"channel": bad})).channel_error().unwrap();
            assert!(
                err.starts_with(&format!("channel {bad:?} is not a snap channel")),
                "{err}"
            );
        }
    }

    #[test]
    fn config_yaml_declares_the_defaults_the_code_assumes() {
        #[derive(serde::Deserialize)]
        struct Options {
            options: BTreeMap<String, serde_yaml::Value>,
        }
        let declared: Options = serde_yaml::from_str(include_str!("../config.yaml")).unwrap();
        let default = |key: &str| declared.options[key]["default"].clone();
        assert_eq!(default("sysctl"), serde_yaml::Value::from(DEFAULT_SYSCTL));
        assert_eq!(default("channel"), serde_yaml::Value::from("1.31/stable"));
        assert_eq!(
            default("ignore-missing-cni"),
            serde_yaml::Value::from(false)
        );
        assert_eq!(
            default("kubelet-extra-config"),
            serde_yaml::Value::from("{}")
        );
        assert_eq!(
            default("removal-drain-timeout"),
            serde_yaml::Value::from(DEFAULT_REMOVAL_DRAIN_TIMEOUT)
        );
    }

    #[test]
    fn the_drain_before_a_removal_is_bounded() {
        let timeout = |v: Value| config(json!({ "removal-drain-timeout": v })).node;
        assert_eq!(timeout(json!(0)).unwrap().removal_drain_timeout, 0);
        assert_eq!(timeout(json!(3600)).unwrap().removal_drain_timeout, 3600);
        assert_eq!(config(json!({})).node.unwrap().removal_drain_timeout, 300);
        for bad in [json!(-1), json!(3601), json!(1.5)] {
            assert_eq!(
                timeout(bad.clone()).unwrap_err()[0].message,
                format!("removal-drain-timeout must be from 0 to 3600 seconds, not {bad}")
            );
        }
    }

    #[test]
    fn yaml_options_must_be_maps() {
        let c = config(json!({"kubelet-extra-config": "evictionHard: {memory.available: 650Mi}"}));
        let node = c.node.unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&node.kubelet_extra_config).unwrap();
        assert_eq!(v["evictionHard"]["memory.available"], "650Mi");
        let c = config(json!({"proxy-extra-config": "[1, 2]", "kubelet-extra-config": "a: [b"}));
        let problems: Vec<String> = c.node.unwrap_err().into_iter().map(|p| p.message).collect();
        assert!(
            problems[0].starts_with("kubelet-extra-config is not valid YAML: "),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "proxy-extra-config must be a YAML map, not a list"
        );
        let c = config(json!({
            "kubelet-extra-config": "{readOnlyPort: {a: 1}, authentication: {x509: {clientCAFile: {b: 2}}}}",
            "proxy-extra-config": "{conntrack: {maxPerCore: {c: 3}}, mode: ipvs}",
        }));
        let problems: Vec<String> = c.node.unwrap_err().into_iter().map(|p| p.message).collect();
        assert_eq!(
            problems,
            [
                "kubelet-extra-config sets readOnlyPort to a map, where kubelet takes a value",
                "proxy-extra-config sets conntrack.maxPerCore to a map, where kube-proxy takes a value"
            ]
        );
        let c = config(
            json!({"kubelet-extra-config": "{authentication: {webhook: {cacheTTL: 2m}}, newKey: {a: 1}}"}),
        );
        assert!(
            c.node.is_ok(),
            "maps merge into maps, and new keys are free"
        );
        let c = config(json!({"sysctl": "{kernel.panic: 10, 'bad key': 1}"}));
        assert_eq!(
            c.node.unwrap_err()[0].message,
            "sysctl has a bad tunable name \"bad key\""
        );
        assert!(parse_sysctl("").unwrap().is_empty());
        assert!(parse_sysctl("[1]").is_err());
    }

    #[test]
    fn every_bad_option_is_reported() {
        let c = config(
            json!({"allow-privileged": "sometimes", "labels": "x", "proxy-extra-args": "--v=2"}),
        );
        let problems: Vec<String> = c.node.unwrap_err().into_iter().map(|p| p.message).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("\"sometimes\""));
    }
}
