//! The charm's options, typed, with the defaults config.yaml declares for
//! values the agent did not send.

use charm::HookTools;
use serde_json::{Map, Value};

use crate::args;
use crate::error::{Error, ToolContext};
use crate::unit_state::{NodeOptions, Problem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub channel: String,
    pub require_manual_upgrade: bool,
    /// The node's options, or what is wrong with them.
    pub node: Result<NodeOptions, Vec<Problem>>,
}

impl Config {
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
        let mut parsed = |result: Result<_, String>| {
            result.unwrap_or_else(|message| {
                problems.push(Problem::blocked(message));
                Default::default()
            })
        };
        let kubelet_extra_args = parsed(args::parse_extra_args(
            "kubelet-extra-args",
            &text("kubelet-extra-args", ""),
        ));
        let proxy_extra_args = parsed(args::parse_extra_args(
            "proxy-extra-args",
            &text("proxy-extra-args", ""),
        ));
        let labels = parsed(args::parse_labels(&text("labels", "")));
        let node = if problems.is_empty() {
            Ok(NodeOptions {
                allow_privileged,
                kubelet_extra_args,
                proxy_extra_args,
                labels,
                ingress: flag("ingress", true),
            })
        } else {
            Err(problems)
        };
        Config {
            channel: text("channel", "1.31/stable"),
            require_manual_upgrade: flag("require-manual-upgrade", true),
            node,
        }
    }
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
