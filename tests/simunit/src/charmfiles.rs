//! What the agent reads from the deployed charm: metadata.yaml, config.yaml
//! and actions.yaml.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct ConfigOption {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub default: Value,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default)]
pub struct CharmFiles {
    pub name: String,
    pub config: BTreeMap<String, ConfigOption>,
    /// Resource name -> the filename Juju stores it under.
    pub resources: BTreeMap<String, String>,
    /// Endpoint name -> interface, for every relation endpoint.
    pub relations: BTreeMap<String, Endpoint>,
    pub endpoints: BTreeSet<String>,
    /// Action name -> parameter defaults.
    pub actions: BTreeMap<String, serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub role: &'static str,
    pub interface: String,
    /// `global`, or `container` for a subordinate on the same machine.
    pub scope: String,
}

#[derive(Deserialize, Default)]
struct Metadata {
    name: String,
    #[serde(default)]
    requires: BTreeMap<String, RelationMeta>,
    #[serde(default)]
    provides: BTreeMap<String, RelationMeta>,
    #[serde(default)]
    peers: BTreeMap<String, RelationMeta>,
    #[serde(default)]
    resources: BTreeMap<String, ResourceMeta>,
    #[serde(default, rename = "extra-bindings")]
    extra_bindings: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct RelationMeta {
    interface: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ResourceMeta {
    filename: Option<String>,
}

#[derive(Deserialize, Default)]
struct ConfigYaml {
    #[serde(default)]
    options: BTreeMap<String, ConfigOption>,
}

#[derive(Deserialize)]
struct ActionMeta {
    #[serde(default)]
    params: BTreeMap<String, ParamMeta>,
}

#[derive(Deserialize)]
struct ParamMeta {
    #[serde(default)]
    default: Value,
}

fn read_yaml<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    required: bool,
) -> Result<T, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl CharmFiles {
    pub fn load(charm_dir: &Path) -> Result<CharmFiles, String> {
        let meta: Metadata = read_yaml(&charm_dir.join("metadata.yaml"), true)?;
        let config: ConfigYaml = read_yaml(&charm_dir.join("config.yaml"), false)?;
        let actions: BTreeMap<String, ActionMeta> =
            read_yaml(&charm_dir.join("actions.yaml"), false)?;
        let mut relations = BTreeMap::new();
        for (role, map) in [
            ("requires", &meta.requires),
            ("provides", &meta.provides),
            ("peers", &meta.peers),
        ] {
            for (name, rel) in map {
                relations.insert(
                    name.clone(),
                    Endpoint {
                        role,
                        interface: rel.interface.clone(),
                        scope: rel.scope.clone().unwrap_or_else(|| "global".into()),
                    },
                );
            }
        }
        let mut endpoints: BTreeSet<String> = relations.keys().cloned().collect();
        endpoints.extend(meta.extra_bindings.keys().cloned());
        Ok(CharmFiles {
            name: meta.name,
            config: config.options,
            resources: meta
                .resources
                .into_iter()
                .map(|(name, r)| {
                    let filename = r.filename.unwrap_or_else(|| name.clone());
                    (name, filename)
                })
                .collect(),
            relations,
            endpoints,
            actions: actions
                .into_iter()
                .map(|(name, a)| {
                    let defaults = a
                        .params
                        .into_iter()
                        .filter(|(_, p)| !p.default.is_null())
                        .map(|(k, p)| (k, p.default))
                        .collect();
                    (name, defaults)
                })
                .collect(),
        })
    }

    /// Every hook Juju may run for this charm.
    pub fn hook_names(&self) -> Vec<String> {
        let mut hooks: Vec<String> = [
            "install",
            "leader-elected",
            "leader-settings-changed",
            "config-changed",
            "start",
            "update-status",
            "upgrade-charm",
            "stop",
            "remove",
            "secret-changed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for endpoint in self.relations.keys() {
            for event in ["created", "joined", "changed", "departed", "broken"] {
                hooks.push(format!("{endpoint}-relation-{event}"));
            }
        }
        hooks
    }
}
