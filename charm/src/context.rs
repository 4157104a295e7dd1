//! The event being run and the unit it runs for, read from the environment
//! the agent sets (it replaces the environment, so nothing else is there).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ContextError {
    #[error("environment variable {0} is not set; is this running under a Juju unit agent?")]
    Missing(&'static str),
    #[error("environment variable {var} has an unexpected value {value:?}: {why}")]
    Invalid {
        var: &'static str,
        value: String,
        why: String,
    },
}

/// A relation as the hook tools name it: `<endpoint>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationId {
    pub endpoint: String,
    pub id: u32,
}

impl fmt::Display for RelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.id)
    }
}

impl FromStr for RelationId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Juju uses only the number after the last ':'; the endpoint may not
        // contain ':' anyway.
        let (endpoint, id) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("relation id {s:?} is not of the form <endpoint>:<number>"))?;
        let id = id
            .parse()
            .map_err(|_| format!("relation id {s:?} does not end in a number"))?;
        Ok(RelationId {
            endpoint: endpoint.to_string(),
            id,
        })
    }
}

/// What happened to a relation, from the hook name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationEvent {
    Created,
    Joined,
    Changed,
    Departed,
    Broken,
}

impl RelationEvent {
    const ALL: [(RelationEvent, &'static str); 5] = [
        (RelationEvent::Created, "created"),
        (RelationEvent::Joined, "joined"),
        (RelationEvent::Changed, "changed"),
        (RelationEvent::Departed, "departed"),
        (RelationEvent::Broken, "broken"),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, s)| *s)
            .unwrap_or("changed")
    }
}

/// The hooks a machine charm may be run for. Hooks this crate does not name
/// (storage, secrets, series upgrades, ...) arrive as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    Install,
    Start,
    Stop,
    Remove,
    ConfigChanged,
    UpgradeCharm,
    UpdateStatus,
    LeaderElected,
    LeaderSettingsChanged,
    /// A secret this unit reads has a new revision (`JUJU_SECRET_ID`).
    SecretChanged,
    Relation {
        endpoint: String,
        event: RelationEvent,
    },
    Other(String),
}

impl HookKind {
    /// Parses a hook name exactly: `kube-control-relation-changed` is a
    /// relation hook for endpoint `kube-control`; a name is never matched
    /// by substring.
    pub fn parse(name: &str) -> HookKind {
        match name {
            "install" => return HookKind::Install,
            "start" => return HookKind::Start,
            "stop" => return HookKind::Stop,
            "remove" => return HookKind::Remove,
            "config-changed" => return HookKind::ConfigChanged,
            "upgrade-charm" => return HookKind::UpgradeCharm,
            "update-status" => return HookKind::UpdateStatus,
            "leader-elected" => return HookKind::LeaderElected,
            "leader-settings-changed" => return HookKind::LeaderSettingsChanged,
            "secret-changed" => return HookKind::SecretChanged,
            _ => {}
        }
        for (event, suffix) in RelationEvent::ALL {
            if let Some(endpoint) = name.strip_suffix(&format!("-relation-{suffix}")) {
                if !endpoint.is_empty() {
                    return HookKind::Relation {
                        endpoint: endpoint.to_string(),
                        event,
                    };
                }
            }
        }
        HookKind::Other(name.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Hook(HookKind),
    Action(String),
    /// A dispatch path that is neither `hooks/<name>` nor `actions/<name>`.
    Unknown(String),
}

impl Event {
    /// From `JUJU_DISPATCH_PATH` (`hooks/install`, `actions/pause`).
    pub fn from_dispatch_path(path: &str) -> Event {
        let path = path.trim_start_matches("./");
        if let Some(hook) = path.strip_prefix("hooks/") {
            Event::Hook(HookKind::parse(hook))
        } else if let Some(action) = path.strip_prefix("actions/") {
            Event::Action(action.to_string())
        } else {
            Event::Unknown(path.to_string())
        }
    }

    /// The name Juju gives the event in its logs: the dispatch path.
    pub fn name(&self) -> String {
        match self {
            Event::Hook(kind) => format!("hooks/{}", hook_name(kind)),
            Event::Action(name) => format!("actions/{name}"),
            Event::Unknown(path) => path.clone(),
        }
    }
}

fn hook_name(kind: &HookKind) -> String {
    match kind {
        HookKind::Install => "install".into(),
        HookKind::Start => "start".into(),
        HookKind::Stop => "stop".into(),
        HookKind::Remove => "remove".into(),
        HookKind::ConfigChanged => "config-changed".into(),
        HookKind::UpgradeCharm => "upgrade-charm".into(),
        HookKind::UpdateStatus => "update-status".into(),
        HookKind::LeaderElected => "leader-elected".into(),
        HookKind::LeaderSettingsChanged => "leader-settings-changed".into(),
        HookKind::SecretChanged => "secret-changed".into(),
        HookKind::Relation { endpoint, event } => {
            format!("{endpoint}-relation-{}", event.as_str())
        }
        HookKind::Other(name) => name.clone(),
    }
}

/// The relation a relation hook runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationContext {
    pub id: RelationId,
    /// Empty in relation-created and relation-broken.
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    /// Only in relation-departed.
    pub departing_unit: Option<String>,
}

/// Everything the agent tells a hook about itself.
#[derive(Debug, Clone)]
pub struct HookContext {
    pub event: Event,
    /// `kubernetes-worker/0`.
    pub unit: String,
    pub charm_dir: PathBuf,
    pub model: String,
    pub juju_version: String,
    pub relation: Option<RelationContext>,
    pub action_uuid: Option<String>,
    /// `JUJU_SECRET_ID` in the secret hooks.
    pub secret_id: Option<String>,
    /// `JUJU_AVAILABILITY_ZONE`, when the cloud has zones.
    pub availability_zone: Option<String>,
    /// `JUJU_MODEL_UUID`.
    pub model_uuid: Option<String>,
}

impl HookContext {
    /// Reads the context from this process's environment. `argv0` is the
    /// fallback for the event when `JUJU_DISPATCH_PATH` is not set (an agent
    /// older than 2.8 running `hooks/<name>` directly).
    pub fn from_env(argv0: Option<&str>) -> Result<HookContext, ContextError> {
        Self::from_lookup(|var| std::env::var(var).ok(), argv0)
    }

    /// As [`from_env`](Self::from_env), from any variable lookup.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        argv0: Option<&str>,
    ) -> Result<HookContext, ContextError> {
        let nonempty = |var: &str| get(var).filter(|v| !v.is_empty());
        let event = match nonempty("JUJU_DISPATCH_PATH") {
            Some(path) => Event::from_dispatch_path(&path),
            None => {
                let argv0 = argv0.ok_or(ContextError::Missing("JUJU_DISPATCH_PATH"))?;
                event_from_argv0(argv0).ok_or(ContextError::Missing("JUJU_DISPATCH_PATH"))?
            }
        };
        let unit = nonempty("JUJU_UNIT_NAME").ok_or(ContextError::Missing("JUJU_UNIT_NAME"))?;
        if !unit.contains('/') {
            return Err(ContextError::Invalid {
                var: "JUJU_UNIT_NAME",
                value: unit,
                why: "a unit name is <application>/<number>".into(),
            });
        }
        let charm_dir = nonempty("JUJU_CHARM_DIR")
            .or_else(|| nonempty("CHARM_DIR"))
            .ok_or(ContextError::Missing("JUJU_CHARM_DIR"))?;
        let relation = match nonempty("JUJU_RELATION_ID") {
            None => None,
            Some(raw) => {
                let id = raw.parse().map_err(|why| ContextError::Invalid {
                    var: "JUJU_RELATION_ID",
                    value: raw.clone(),
                    why,
                })?;
                Some(RelationContext {
                    id,
                    remote_unit: nonempty("JUJU_REMOTE_UNIT"),
                    remote_app: nonempty("JUJU_REMOTE_APP"),
                    departing_unit: nonempty("JUJU_DEPARTING_UNIT"),
                })
            }
        };
        Ok(HookContext {
            event,
            unit,
            charm_dir: PathBuf::from(charm_dir),
            model: nonempty("JUJU_MODEL_NAME").unwrap_or_default(),
            juju_version: nonempty("JUJU_VERSION").unwrap_or_default(),
            relation,
            action_uuid: nonempty("JUJU_ACTION_UUID"),
            secret_id: nonempty("JUJU_SECRET_ID"),
            availability_zone: nonempty("JUJU_AVAILABILITY_ZONE"),
            model_uuid: nonempty("JUJU_MODEL_UUID"),
        })
    }

    /// The application part of the unit name.
    pub fn app(&self) -> &str {
        self.unit.split('/').next().unwrap_or(&self.unit)
    }
}

/// `.../hooks/install` or `.../actions/pause`: the last two path components.
fn event_from_argv0(argv0: &str) -> Option<Event> {
    let mut parts = argv0.rsplit('/');
    let name = parts.next()?;
    let dir = parts.next()?;
    match dir {
        "hooks" | "actions" => Some(Event::from_dispatch_path(&format!("{dir}/{name}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn relation_hooks_parse_by_exact_suffix() {
        assert_eq!(
            HookKind::parse("kube-control-relation-changed"),
            HookKind::Relation {
                endpoint: "kube-control".into(),
                event: RelationEvent::Changed
            }
        );
        assert_eq!(
            HookKind::parse("kube-api-endpoint-relation-departed"),
            HookKind::Relation {
                endpoint: "kube-api-endpoint".into(),
                event: RelationEvent::Departed
            }
        );
        // Not a substring match: these are other hooks.
        assert_eq!(
            HookKind::parse("-relation-changed"),
            HookKind::Other("-relation-changed".into())
        );
        assert_eq!(
            HookKind::parse("config-changed-extra"),
            HookKind::Other("config-changed-extra".into())
        );
        assert_eq!(
            HookKind::parse("data-storage-attached"),
            HookKind::Other("data-storage-attached".into())
        );
    }

    #[test]
    fn hook_names_round_trip() {
        for name in [
            "install",
            "leader-settings-changed",
            "cni-relation-broken",
            "certificates-relation-created",
            "secret-changed",
        ] {
            let event = Event::from_dispatch_path(&format!("hooks/{name}"));
            assert_eq!(event.name(), format!("hooks/{name}"));
        }
    }

    #[test]
    fn relation_ids_use_the_number_after_the_last_colon() {
        let id: RelationId = "kube-control:12".parse().unwrap();
        assert_eq!(id.endpoint, "kube-control");
        assert_eq!(id.id, 12);
        assert!("kube-control".parse::<RelationId>().is_err());
        assert!("kube-control:x".parse::<RelationId>().is_err());
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn context_from_a_relation_hook_environment() {
        let ctx = HookContext::from_lookup(
            env(&[
                ("JUJU_DISPATCH_PATH", "hooks/kube-control-relation-departed"),
                ("JUJU_UNIT_NAME", "kubernetes-worker/3"),
                (
                    "JUJU_CHARM_DIR",
                    "/var/lib/juju/agents/unit-kubernetes-worker-3/charm",
                ),
                ("JUJU_RELATION", "kube-control"),
                ("JUJU_RELATION_ID", "kube-control:4"),
                ("JUJU_REMOTE_UNIT", "kubernetes-master/0"),
                ("JUJU_REMOTE_APP", "kubernetes-master"),
                ("JUJU_DEPARTING_UNIT", "kubernetes-master/0"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(ctx.app(), "kubernetes-worker");
        let rel = ctx.relation.unwrap();
        assert_eq!(rel.id.to_string(), "kube-control:4");
        assert_eq!(rel.departing_unit.as_deref(), Some("kubernetes-master/0"));
    }

    #[test]
    fn empty_remote_unit_means_none() {
        let ctx = HookContext::from_lookup(
            env(&[
                ("JUJU_DISPATCH_PATH", "hooks/cni-relation-broken"),
                ("JUJU_UNIT_NAME", "kubernetes-worker/0"),
                ("JUJU_CHARM_DIR", "/charm"),
                ("JUJU_RELATION_ID", "cni:1"),
                ("JUJU_REMOTE_UNIT", ""),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(ctx.relation.unwrap().remote_unit, None);
    }

    #[test]
    fn secret_hooks_carry_the_secret_id() {
        let ctx = HookContext::from_lookup(
            env(&[
                ("JUJU_DISPATCH_PATH", "hooks/secret-changed"),
                ("JUJU_UNIT_NAME", "kubernetes-worker/0"),
                ("JUJU_CHARM_DIR", "/charm"),
                ("JUJU_SECRET_ID", "secret:cu1u0g7mp25c77c7p8tg"),
                ("JUJU_SECRET_LABEL", ""),
                ("JUJU_AVAILABILITY_ZONE", ""),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(ctx.event, Event::Hook(HookKind::SecretChanged));
        assert_eq!(
            ctx.secret_id.as_deref(),
            Some("secret:cu1u0g7mp25c77c7p8tg")
        );
        assert_eq!(ctx.availability_zone, None);
    }

    #[test]
    fn argv0_is_the_fallback_for_old_agents() {
        let ctx = HookContext::from_lookup(
            env(&[("JUJU_UNIT_NAME", "w/0"), ("CHARM_DIR", "/charm")]),
            Some("/var/lib/juju/agents/unit-w-0/charm/hooks/upgrade-charm"),
        )
        .unwrap();
        assert_eq!(ctx.event, Event::Hook(HookKind::UpgradeCharm));
    }

    #[test]
    fn missing_variables_are_errors_not_panics() {
        let err = HookContext::from_lookup(env(&[("JUJU_DISPATCH_PATH", "hooks/install")]), None)
            .unwrap_err();
        assert!(err.to_string().contains("JUJU_UNIT_NAME"));
        let err = HookContext::from_lookup(env(&[]), Some("kubernetes-worker")).unwrap_err();
        assert!(err.to_string().contains("JUJU_DISPATCH_PATH"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn relation_ids_read_back_and_anything_else_is_refused(endpoint in "[a-z][a-z0-9-]{0,30}", id in any::<u32>(), junk in any::<String>()) {
            let rid = RelationId { endpoint, id };
            prop_assert_eq!(rid.to_string().parse::<RelationId>(), Ok(rid));
            let _ = junk.parse::<RelationId>();
        }
    }
}

#[cfg(test)]
mod event_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_hook_name_or_dispatch_path_is_an_event(name in any::<String>(), path in "(hooks|actions|x)?/?\\PC{0,40}") {
            let _ = HookKind::parse(&name);
            let _ = Event::from_dispatch_path(&path);
            let _ = Event::from_dispatch_path(&name);
        }
    }
}
