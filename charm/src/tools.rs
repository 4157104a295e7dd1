//! The hook tools: the one place they are called. Every call asks for JSON
//! where the tool offers it, passes relation ids and free text as separate
//! arguments (free text after `--`), and sends values that may hold secrets
//! on stdin rather than on the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::context::RelationId;
use crate::exec::{self, deadline, ExecError};
use crate::status::Status;

#[derive(Debug, Error)]
pub enum ToolError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{tool} {}: unexpected output {output:?}: {source}", args.join(" "))]
    Output {
        tool: String,
        args: Vec<String>,
        output: String,
        source: serde_json::Error,
    },
    /// Output that must not be quoted (it holds a secret's content).
    #[error("{tool} {}: output is not what the tool prints: {why}", args.join(" "))]
    SecretOutput {
        tool: String,
        args: Vec<String>,
        why: String,
    },
    #[error("{tool}: cannot encode the input: {source}")]
    Input {
        tool: String,
        source: serde_yaml::Error,
    },
}

impl ToolError {
    /// The tool's exit code when it ran and failed (1: the command failed,
    /// 2: bad usage).
    pub fn code(&self) -> Option<i32> {
        match self {
            ToolError::Exec(e) => e.code(),
            _ => None,
        }
    }
}

/// A unit's relation data bag.
pub type Databag = BTreeMap<String, String>;

/// Log levels `juju-log` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// The most characters of a status message.
pub const STATUS_MAX: usize = 1024;

/// The hook tools, looked up on `PATH` (the agent puts its tools dir first).
#[derive(Debug, Clone, Copy, Default)]
pub struct HookTools;

impl HookTools {
    fn call(&self, tool: &str, args: &[&str]) -> Result<Vec<u8>, ToolError> {
        Ok(exec::run(tool, args, None, deadline::HOOK_TOOL)?.stdout)
    }

    fn call_with_stdin(&self, tool: &str, args: &[&str], stdin: &[u8]) -> Result<(), ToolError> {
        exec::run(tool, args, Some(stdin), deadline::HOOK_TOOL)?;
        Ok(())
    }

    fn call_json<T: DeserializeOwned>(&self, tool: &str, args: &[&str]) -> Result<T, ToolError> {
        let out = self.call(tool, args)?;
        serde_json::from_slice(&out).map_err(|source| ToolError::Output {
            tool: tool.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            output: String::from_utf8_lossy(&out).into_owned(),
            source,
        })
    }

    fn yaml_stdin<T: serde::Serialize>(tool: &str, value: &T) -> Result<Vec<u8>, ToolError> {
        serde_yaml::to_string(value)
            .map(String::into_bytes)
            .map_err(|source| ToolError::Input {
                tool: tool.to_string(),
                source,
            })
    }

    /// Every option that is set or has a default, with its YAML type.
    pub fn config_get(&self) -> Result<serde_json::Map<String, serde_json::Value>, ToolError> {
        self.call_json("config-get", &["--format=json"])
    }

    /// Whether this unit is its application's leader (for the length of a
    /// lease; a leader change runs leader-elected).
    pub fn is_leader(&self) -> Result<bool, ToolError> {
        self.call_json("is-leader", &["--format=json"])
    }

    /// The path of the resource's file. A zero-byte file is returned like any
    /// other; see [`crate::resources`] for what it means.
    pub fn resource_get(&self, name: &str) -> Result<PathBuf, ToolError> {
        let out = exec::run("resource-get", &[name], None, deadline::DOWNLOAD)?.stdout;
        // Printed without a trailing newline; trim in case that changes.
        let path = String::from_utf8_lossy(&out).trim_end().to_string();
        Ok(PathBuf::from(path))
    }

    pub fn status_set(&self, status: &Status) -> Result<(), ToolError> {
        // A status is one line in `juju status`; a message quoting outside
        // input is cut short rather than refused.
        let message = crate::quote::bounded(&status.message, STATUS_MAX);
        self.call("status-set", &[status.kind.as_str(), "--", &message])?;
        Ok(())
    }

    pub fn juju_log(&self, level: LogLevel, message: &str) -> Result<(), ToolError> {
        self.call("juju-log", &["--log-level", level.as_str(), "--", message])?;
        Ok(())
    }

    pub fn application_version_set(&self, version: &str) -> Result<(), ToolError> {
        self.call("application-version-set", &["--", version])?;
        Ok(())
    }

    /// `80/tcp`, `53/udp`, `8000-8080/tcp`.
    pub fn open_port(&self, port: &str) -> Result<(), ToolError> {
        exec::before_change("open-port", port)?;
        self.call("open-port", &[port])?;
        Ok(())
    }

    pub fn close_port(&self, port: &str) -> Result<(), ToolError> {
        exec::before_change("close-port", port)?;
        self.call("close-port", &[port])?;
        Ok(())
    }

    pub fn relation_ids(&self, endpoint: &str) -> Result<Vec<RelationId>, ToolError> {
        let raw: Vec<String> =
            self.call_json("relation-ids", &["--format=json", "--", endpoint])?;
        raw.iter()
            .map(|id| {
                id.parse().map_err(|why: String| ToolError::Output {
                    tool: "relation-ids".into(),
                    args: vec![endpoint.to_string()],
                    output: id.clone(),
                    source: serde::de::Error::custom(why),
                })
            })
            .collect()
    }

    /// The remote units currently in the relation.
    pub fn relation_list(&self, rel: &RelationId) -> Result<Vec<String>, ToolError> {
        let rid = rel.to_string();
        self.call_json("relation-list", &["--format=json", "-r", &rid])
    }

    /// A unit's databag (a remote unit's, or this unit's own).
    pub fn relation_get(&self, rel: &RelationId, unit: &str) -> Result<Databag, ToolError> {
        let rid = rel.to_string();
        let bag: Option<Databag> =
            self.call_json("relation-get", &["--format=json", "-r", &rid, "-", unit])?;
        Ok(bag.unwrap_or_default())
    }

    /// Sets keys in this unit's databag; an empty value deletes the key. The
    /// data goes on stdin as YAML, so values of any content are passed
    /// whole and never appear in a process listing.
    pub fn relation_set(&self, rel: &RelationId, data: &Databag) -> Result<(), ToolError> {
        let rid = rel.to_string();
        let input = Self::yaml_stdin("relation-set", data)?;
        exec::before_change("relation-set", &rid)?;
        self.call_with_stdin("relation-set", &["-r", &rid, "--file", "-"], &input)
    }

    /// An application's databag: the remote application's, or (the leader
    /// always; every unit on a peer relation) this unit's own.
    pub fn relation_get_app(&self, rel: &RelationId, app: &str) -> Result<Databag, ToolError> {
        let rid = rel.to_string();
        let bag: Option<Databag> = self.call_json(
            "relation-get",
            &["--format=json", "--app", "-r", &rid, "-", app],
        )?;
        Ok(bag.unwrap_or_default())
    }

    /// Sets keys in this application's databag (the leader only); an empty
    /// value deletes the key.
    pub fn relation_set_app(&self, rel: &RelationId, data: &Databag) -> Result<(), ToolError> {
        let rid = rel.to_string();
        let input = Self::yaml_stdin("relation-set", data)?;
        exec::before_change("relation-set", &rid)?;
        self.call_with_stdin(
            "relation-set",
            &["--app", "-r", &rid, "--file", "-"],
            &input,
        )
    }

    /// `private-address` or `public-address`.
    pub fn unit_get(&self, key: &str) -> Result<String, ToolError> {
        self.call_json("unit-get", &["--format=json", key])
    }

    /// The addresses other units reach this one at through `binding` (an
    /// endpoint name): `ingress-addresses` of `network-get`, IPv4 and IPv6
    /// alike, in Juju's order.
    pub fn network_get_ingress(&self, binding: &str) -> Result<Vec<String>, ToolError> {
        #[derive(serde::Deserialize)]
        struct Network {
            #[serde(rename = "ingress-addresses", default)]
            ingress_addresses: Vec<String>,
        }
        let network: Network = self.call_json("network-get", &["--format=json", "--", binding])?;
        Ok(network.ingress_addresses)
    }

    /// A secret's content (Juju >= 3.1). `refresh` moves this unit to the
    /// latest revision (and so stops `secret-changed` for it); otherwise
    /// the revision the unit tracks. The content is never put in an error.
    pub fn secret_get(&self, id: &str, refresh: bool) -> Result<Databag, ToolError> {
        let mut args = vec!["--format=json"];
        if refresh {
            args.push("--refresh");
        }
        args.extend(["--", id]);
        let out = self.call("secret-get", &args)?;
        serde_json::from_slice::<Option<Databag>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| ToolError::SecretOutput {
                tool: "secret-get".into(),
                args: args.iter().map(|a| a.to_string()).collect(),
                // serde_json's own message may quote a value: only say where.
                why: format!(
                    "not a JSON object of strings ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })
    }

    /// The action's parameters, defaults filled in.
    pub fn action_get<T: DeserializeOwned>(&self) -> Result<T, ToolError> {
        self.call_json("action-get", &["--format=json"])
    }

    pub fn action_set(&self, results: &BTreeMap<String, String>) -> Result<(), ToolError> {
        if results.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = results.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.call("action-set", &args)?;
        Ok(())
    }

    pub fn action_fail(&self, message: &str) -> Result<(), ToolError> {
        self.call("action-fail", &["--", message])?;
        Ok(())
    }
}
