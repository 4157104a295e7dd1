//! Taking over daemons this charm did not configure (the Python charm's,
//! before `juju refresh --switch`), or whose record was lost: what they
//! run with now is compared with what the charm computes, in effect, so
//! that a running node restarts only for a real difference.
//!
//! In effect means: the flags as the daemon receives them (per-flag snap
//! options and the `args` string alike, in any order and quoting), the
//! configuration files and kubeconfigs as the YAML they parse to (comments,
//! key order and style aside; KubeletConfiguration defaults the charm
//! spells out counted as set), and certificates and keys as their text.

use std::collections::BTreeMap;

use charm::snap::SnapConfig;

use crate::daemons;

/// The flags a daemon of the CDK snaps starts with, from its snap options:
/// each option but `args` is one flag, and `args` is read as the snap's
/// wrapper reads it. `None` when `args` holds what only a shell could
/// expand (`$`, backquotes): it cannot be compared, so it differs.
pub fn flags_in_effect(config: &SnapConfig) -> Option<BTreeMap<String, String>> {
    let mut flags: BTreeMap<String, String> = config
        .iter()
        .filter(|(key, _)| *key != "args")
        .map(|(key, value)| (key.clone(), value_text(value)))
        .collect();
    if let Some(args) = config.get("args") {
        flags.extend(daemons::parse_args(&value_text(args))?);
    }
    Some(flags)
}

/// A snap option's value as the text `snap set` was given: snapd keeps
/// `v=0` as the number 0 and `x=true` as a boolean.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How `now` differs from `wanted`, flag by flag, for the log; empty when
/// they are the same.
pub fn flag_differences(
    now: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in wanted {
        match now.get(key) {
            None => out.push(format!("--{key} added")),
            Some(old) if old != value => out.push(format!("--{key} changed")),
            Some(_) => {}
        }
    }
    out.extend(
        now.keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| format!("--{k} dropped")),
    );
    out
}

/// Whether the file at machine path `path` had, before the charm wrote it
/// (`before`), the same effect as its content now (`after`).
pub fn same_in_effect(path: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> bool {
    let (before, after) = match (before, after) {
        (None, None) => return true,
        (Some(b), Some(a)) => (b, a),
        _ => return false,
    };
    if before == after {
        return true;
    }
    let is_yaml = path.ends_with(".yaml")
        || path == daemons::KUBELET_KUBECONFIG
        || path == daemons::PROXY_KUBECONFIG;
    if is_yaml {
        let parse = |bytes: &[u8]| serde_yaml::from_slice::<serde_yaml::Value>(bytes).ok();
        return match (parse(before), parse(after)) {
            (Some(mut b), Some(mut a)) => {
                if path == daemons::KUBELET_CONFIG {
                    with_kubelet_defaults(&mut b);
                    with_kubelet_defaults(&mut a);
                }
                b == a
            }
            _ => false,
        };
    }
    String::from_utf8_lossy(before).trim() == String::from_utf8_lossy(after).trim()
}

/// The `kubelet.config.k8s.io/v1beta1` defaults of the settings the charm
/// writes out although they are defaults (the Python charm leaves some of
/// them to the default): filled in where absent, so that spelling one out
/// is no difference.
const KUBELET_DEFAULTS: [(&[&str], &str); 6] = [
    (&["address"], "0.0.0.0"),
    (&["port"], "10250"),
    (&["readOnlyPort"], "0"),
    (&["authentication", "anonymous", "enabled"], "false"),
    (&["authentication", "webhook", "enabled"], "true"),
    (&["authorization", "mode"], "Webhook"),
];

fn with_kubelet_defaults(config: &mut serde_yaml::Value) {
    for (path, default) in KUBELET_DEFAULTS {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut node = &mut *config;
        for key in parents {
            let serde_yaml::Value::Mapping(map) = node else {
                break;
            };
            node = map
                .entry(serde_yaml::Value::from(*key))
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        }
        if let serde_yaml::Value::Mapping(map) = node {
            map.entry(serde_yaml::Value::from(*last))
                .or_insert_with(|| serde_yaml::from_str(default).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> SnapConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn args_in_any_order_and_quoting_are_the_same_flags() {
        // As the ops charm renders them ('--%s="%s"', its own order).
        let ops = config(
            r#"{"args": "--kubeconfig=\"/root/cdk/kubeconfig\" --v=\"0\" --node-ip=\"10.0.0.7\""}"#,
        );
        let mut ours = BTreeMap::new();
        ours.insert("v".to_string(), "0".to_string());
        ours.insert("node-ip".to_string(), "10.0.0.7".to_string());
        ours.insert("kubeconfig".to_string(), "/root/cdk/kubeconfig".to_string());
        assert_eq!(flags_in_effect(&ops), Some(ours.clone()));
        let rendered =
            config(&serde_json::json!({ "args": daemons::render_args(&ours) }).to_string());
        assert_eq!(flags_in_effect(&rendered), Some(ours.clone()));
        // The 2017 snaps: one option per flag, numbers and booleans as
        // snapd keeps them.
        let per_flag =
            config(r#"{"kubeconfig": "/root/cdk/kubeconfig", "v": 0, "node-ip": "10.0.0.7"}"#);
        assert_eq!(flags_in_effect(&per_flag), Some(ours.clone()));
        let mut other = ours.clone();
        other.insert("v".into(), "2".into());
        assert_eq!(
            flag_differences(&ours, &other),
            vec!["--v changed".to_string()]
        );
        assert!(flags_in_effect(&config(r#"{"args": "--v=$(id)"}"#)).is_none());
    }

    #[test]
    fn yaml_files_are_compared_as_what_they_parse_to() {
        let python = b"# Generated by charm, do not edit\naddress: 0.0.0.0\nauthentication:\n  anonymous:\n    enabled: false\n  x509:\n    clientCAFile: /root/cdk/ca.crt\nport: 10250\n";
        let ours = b"port: 10250\naddress: 0.0.0.0\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: /root/cdk/ca.crt\n";
        assert!(same_in_effect(
            daemons::KUBELET_CONFIG,
            Some(python),
            Some(ours)
        ));
        let webhook_off = b"port: 10250\naddress: 0.0.0.0\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: false\n  x509:\n    clientCAFile: /root/cdk/ca.crt\n";
        assert!(!same_in_effect(
            daemons::KUBELET_CONFIG,
            Some(python),
            Some(webhook_off)
        ));
        assert!(same_in_effect(
            daemons::CA,
            Some(b"-----BEGIN X-----\nAA\n-----END X-----"),
            Some(b"-----BEGIN X-----\nAA\n-----END X-----\n")
        ));
        assert!(!same_in_effect(daemons::CA, None, Some(b"x")));
        assert!(same_in_effect(daemons::KUBELET_CONFIG, None, None));
    }
}
