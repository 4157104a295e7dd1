//! The charm's options, typed, with the defaults config.yaml declares for
//! values the agent did not send.

use charm::HookTools;
use serde_json::{Map, Value};

use crate::error::{Error, ToolContext};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub channel: String,
    pub require_manual_upgrade: bool,
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
        Config {
            channel: text("channel", "1.31/stable"),
            require_manual_upgrade: map
                .get("require-manual-upgrade")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }
}
