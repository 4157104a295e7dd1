//! Driving a simulated unit from a test: deploy a charm into a scratch
//! directory, set up config, resources and relations, run hooks and actions
//! through the charm's own `dispatch` the way the agent does, and read back
//! what happened.

use crate::kill::{KillPlan, Moment};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::charmfiles::CharmFiles;
use crate::machine::{Machine, MachineCall};
use crate::model::{
    ActionRecord, Databag, HookRecord, Relation, RunningHook, StatusEntry, ToolCall, UnitState,
};
use crate::store::Layout;
use crate::tools::TOOLS;

/// The charm files a deployed charm carries besides `bin/`.
const CHARM_FILES: &[&str] = &[
    "metadata.yaml",
    "config.yaml",
    "actions.yaml",
    "manifest.yaml",
    "dispatch",
    "hooks",
    "actions",
    "bin",
];

/// Where the charm comes from.
#[derive(Debug, Clone)]
pub enum CharmSource {
    /// The charm's source tree plus binaries to place in it, e.g.
    /// `("bin/kubernetes-worker-amd64", target/debug/kubernetes-worker)`.
    Tree {
        dir: PathBuf,
        binaries: Vec<(String, PathBuf)>,
    },
    /// A packed `.charm` (zip), unpacked as `juju deploy` does.
    Packed(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Debian name of the simulated machine's architecture.
    pub arch: String,
    /// The variable through which the charm learns its machine root.
    pub root_var: Option<String>,
    pub unit_number: u32,
    /// What the machine's `uname -m` says, when it is not this machine's
    /// (a binary for another architecture runs under qemu-user through
    /// binfmt_misc, and reports that architecture itself).
    pub machine: Option<String>,
    /// Runs hooks inside another machine: a command prefix such as
    /// `["lxc", "exec", "c1", "--"]`, with the simulation's directory
    /// mounted there at the same path. The hook runs under `env -i -C`.
    pub exec_in: Option<Vec<String>>,
    /// The machine's own `snap` and `systemctl` serve the charm, not the
    /// simulated ones.
    pub real_machine: bool,
    /// Hooks run as on a machine of this name: in their own UTS and mount
    /// namespaces, with this host name and this `/etc/hosts` bound over
    /// the real one, so the C library's resolver (`getent`, NSS) answers
    /// for it. Needs root ([`Host::possible`]).
    pub host: Option<Host>,
}

/// A machine's names as its resolver knows them.
#[derive(Debug, Clone)]
pub struct Host {
    pub hostname: String,
    /// The whole of its `/etc/hosts`.
    pub hosts: String,
}

impl Host {
    /// Whether hooks can run in namespaces of their own here (root, and a
    /// kernel that lets us): `Err` says why not.
    pub fn possible() -> Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("a host name of its own needs root".into());
        }
        let out = Command::new("/usr/bin/unshare")
            .args([
                "--uts",
                "--mount",
                "/bin/sh",
                "-c",
                "hostname probe && mount --bind /etc/hosts /etc/hosts",
            ])
            .output()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot make namespaces here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            arch: host_arch().to_string(),
            root_var: None,
            unit_number: 0,
            machine: None,
            exec_in: None,
            real_machine: false,
            host: None,
        }
    }
}

/// The Debian name of the architecture this test runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => other,
    }
}

/// `uname -m` on a machine of a Debian architecture.
pub fn kernel_machine(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64",
        "s390x" => "s390x",
        "arm64" => "aarch64",
        "ppc64el" => "ppc64le",
        other => panic!("no kernel name for {other}"),
    }
}

/// What a hook run did.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub name: String,
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
    /// Killed by the plan set with [`Sim::kill_next`].
    pub killed: bool,
    /// The tool and program calls it made (up to the kill, if killed).
    pub calls: u32,
}

impl HookRun {
    /// Panics with the hook's output unless it exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.exit, 0,
            "hook {} exited {}\n--- stdout\n{}--- stderr\n{}",
            self.name, self.exit, self.stdout, self.stderr
        );
        self
    }
}

/// The tool binary: from `JUJU_SIM_BIN`, or built on first use with the
/// cargo that is running the tests (so it is never stale).
pub fn tool_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("JUJU_SIM_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("current_exe");
        if exe.file_name().is_some_and(|n| n == "juju-sim") {
            return exe;
        }
        // Tests live in target/<profile>/deps, binaries in target/<profile>.
        let mut profile_dir = exe.parent().expect("executable's directory");
        if profile_dir.file_name().is_some_and(|n| n == "deps") {
            profile_dir = profile_dir.parent().expect("target/<profile>");
        }
        let target_dir = profile_dir.parent().expect("target dir");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.args(["build", "--quiet", "--bin", "juju-sim", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo to build juju-sim");
        assert!(status.success(), "building juju-sim failed");
        profile_dir.join("juju-sim")
    })
    .clone()
}

/// One simulated unit, on its own simulated machine.
pub struct Sim {
    layout: Layout,
    options: SimOptions,
    charm: CharmFiles,
    /// Set by [`Sim::record_hooks`].
    recorder: std::sync::Mutex<Option<crate::snapshot::Recorder>>,
    /// Set by [`Sim::kill_next_when`].
    kill_when: std::sync::Mutex<Option<KillWhen>>,
    _tmp: Option<tempfile::TempDir>,
}

/// What says that the next hook is to be killed now.
type KillWhen = Box<dyn Fn() -> bool + Send>;

/// When [`Sim::output_killed`] kills the hook.
enum KillTrigger {
    After(std::time::Duration),
    When(KillWhen),
}

impl Sim {
    /// A new unit in a fresh temporary directory.
    pub fn new(charm: &CharmSource, options: SimOptions) -> Sim {
        let tmp = tempfile::Builder::new()
            .prefix("juju-sim.")
            .tempdir()
            .expect("temporary directory");
        let mut sim = Sim::in_dir(tmp.path(), charm, options);
        sim._tmp = Some(tmp);
        sim
    }

    /// A new unit in `dir` (which is kept).
    pub fn in_dir(dir: &Path, charm: &CharmSource, options: SimOptions) -> Sim {
        let layout = Layout::new(dir);
        for d in [
            layout.tools_dir(),
            layout.sbin_dir(),
            layout.charm_dir(),
            layout.root_dir(),
            layout.uploads_dir(),
            layout.agent_dir(),
            dir.join("sim"),
        ] {
            std::fs::create_dir_all(&d).expect("create simulation dirs");
        }
        // Tools are hard links of one copy, so that each finds this
        // directory from its own path (/proc/self/exe), leaving the hook's
        // environment exactly Juju's.
        let sim_bin = dir.join("sim/juju-sim");
        let source = tool_binary();
        if std::fs::hard_link(&source, &sim_bin).is_err() {
            std::fs::copy(&source, &sim_bin).expect("copy juju-sim");
        }
        for tool in TOOLS {
            std::fs::hard_link(&sim_bin, layout.tools_dir().join(tool)).expect("link tool");
        }
        for program in crate::machine::PROGRAMS {
            std::fs::hard_link(&sim_bin, layout.sbin_dir().join(program)).expect("link program");
        }
        if let Some(machine) = &options.machine {
            let uname = layout.sbin_dir().join("uname");
            std::fs::write(
                &uname,
                format!("#!/bin/sh\nif [ \"$*\" = -m ]; then echo {machine}; else exec /bin/uname \"$@\"; fi\n"),
            )
            .expect("uname");
            std::fs::set_permissions(&uname, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        deploy_charm(charm, &layout.charm_dir());
        let files = CharmFiles::load(&layout.charm_dir()).expect("charm metadata");
        let unit = format!("{}/{}", files.name, options.unit_number);
        let state = UnitState {
            unit: unit.clone(),
            model: "test-model".into(),
            model_uuid: "6f7c3a8e-5b0f-4a7e-9a52-000000000001".into(),
            machine_id: options.unit_number.to_string(),
            juju_version: "3.6.1".into(),
            charm_dir: layout.charm_dir(),
            agent_dir: layout.agent_dir(),
            leader: options.unit_number == 0,
            private_address: format!("10.1.0.{}", 10 + options.unit_number),
            public_address: format!("192.0.2.{}", 10 + options.unit_number),
            next_relation_id: 1,
            status: StatusEntry {
                status: "waiting".into(),
                message: "waiting for machine".into(),
                hook: String::new(),
                agent: true,
                run: 0,
            },
            ..UnitState::default()
        };
        write_json(&layout.unit_file(), &state);
        let machine = Machine {
            arch: options.arch.clone(),
            root: layout.root_dir(),
            snapd_version: "2.63".into(),
            interfaces: crate::machine::interfaces(),
            ..Machine::default()
        };
        write_json(&layout.machine_file(), &machine);
        Sim {
            layout,
            options,
            charm: files,
            recorder: Default::default(),
            kill_when: Default::default(),
            _tmp: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// `juju refresh --switch` (or `--path`) to `charm`, up to the hook:
    /// the new charm's files replace the old one's in the charm dir (what
    /// the old charm wrote there itself stays, as Juju leaves it), and
    /// Juju then runs upgrade-charm, which the caller does with [`Sim::hook`].
    pub fn switch_charm(&mut self, charm: &CharmSource) {
        let dir = self.layout.charm_dir();
        for name in CHARM_FILES {
            let path = dir.join(name);
            match path.symlink_metadata() {
                Ok(m) if m.is_dir() => {
                    std::fs::remove_dir_all(&path).expect("remove old charm dir")
                }
                Ok(_) => std::fs::remove_file(&path).expect("remove old charm file"),
                Err(_) => {}
            }
        }
        deploy_charm(charm, &dir);
        let files = CharmFiles::load(&dir).expect("charm metadata");
        assert_eq!(
            files.name, self.charm.name,
            "a switch keeps the application's name"
        );
        self.charm = files;
    }

    /// Runs one of the machine's programs (`snap`, `systemctl`, `sysctl`)
    /// outside any hook, as an operator or an earlier charm on this machine
    /// would; returns its exit code, stdout and stderr.
    pub fn machine_run(&self, program: &str, args: &[&str]) -> (i32, String, String) {
        assert!(
            crate::machine::PROGRAMS.contains(&program),
            "{program} is not one of the simulated machine's programs"
        );
        let out = Command::new(self.layout.sbin_dir().join(program))
            .args(args)
            .output()
            .expect("running a machine program");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The machine root the charm sees (only if `root_var` is set).
    pub fn root(&self) -> PathBuf {
        self.layout.root_dir()
    }

    pub fn charm_dir(&self) -> PathBuf {
        self.layout.charm_dir()
    }

    pub fn unit(&self) -> UnitState {
        self.layout
            .with(&self.layout.unit_file(), |s: &mut UnitState| {
                (s.clone(), false)
            })
            .expect("read unit.json")
    }

    pub fn edit_unit(&self, f: impl FnOnce(&mut UnitState)) {
        self.layout
            .with(&self.layout.unit_file(), |s: &mut UnitState| {
                f(s);
                ((), true)
            })
            .expect("write unit.json")
    }

    pub fn machine(&self) -> Machine {
        self.layout
            .with(&self.layout.machine_file(), |m: &mut Machine| {
                (m.clone(), false)
            })
            .expect("read machine.json")
    }

    pub fn edit_machine(&self, f: impl FnOnce(&mut Machine)) {
        self.layout
            .with(&self.layout.machine_file(), |m: &mut Machine| {
                f(m);
                ((), true)
            })
            .expect("write machine.json")
    }

    // ----- operator actions -------------------------------------------------

    pub fn set_config(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        self.edit_unit(|s| {
            s.config.insert(key.to_string(), value);
        });
    }

    /// Uploads `bytes` as resource `name` (an empty slice is the zero-byte
    /// "none" upload).
    pub fn attach(&self, name: &str, bytes: &[u8]) {
        let dir = self.layout.uploads_dir().join(name);
        std::fs::create_dir_all(&dir).expect("uploads dir");
        let path = dir.join(
            self.charm
                .resources
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
        );
        std::fs::write(&path, bytes).expect("write upload");
        self.edit_unit(|s| {
            s.resources.insert(name.to_string(), path);
        });
    }

    pub fn attach_file(&self, name: &str, file: &Path) {
        self.attach(name, &std::fs::read(file).expect("read resource file"));
    }

    pub fn detach(&self, name: &str) {
        self.edit_unit(|s| {
            s.resources.remove(name);
        });
    }

    // ----- events -----------------------------------------------------------

    /// Runs a non-relation hook (`install`, `config-changed`, ...).
    pub fn hook(&self, name: &str) -> HookRun {
        self.run(Event::plain(name))
    }

    /// Runs a hook as agents before Juju 2.8 did: `hooks/<name>` directly,
    /// with no `JUJU_DISPATCH_PATH`.
    pub fn hook_as_old_agent(&self, name: &str) -> HookRun {
        self.run(Event {
            legacy: true,
            ..Event::plain(name)
        })
    }

    /// The start-up sequence of a new unit, as the agent runs it: install;
    /// the charm's peer relations, which Juju creates with the
    /// application, enter scope (relation-created); then leadership,
    /// config-changed and start.
    pub fn deploy(&self) -> Vec<HookRun> {
        let leader = self.unit().leader;
        let mut runs = vec![self.hook("install")];
        let app = self.unit().app().to_string();
        let peers: Vec<String> = self
            .charm
            .relations
            .iter()
            .filter(|(_, e)| e.role == "peers")
            .map(|(name, _)| name.clone())
            .collect();
        for endpoint in peers {
            if self.unit().relations.iter().all(|r| r.endpoint != endpoint) {
                let id = self.relate_quietly(&endpoint, &app);
                runs.push(self.relation_hook(id, "created", None, None));
            }
        }
        runs.push(self.hook(if leader {
            "leader-elected"
        } else {
            "leader-settings-changed"
        }));
        runs.extend(["config-changed", "start"].map(|h| self.hook(h)));
        runs
    }

    /// `juju config` followed by the hook it fires.
    pub fn configure(&self, key: &str, value: impl Into<Value>) -> HookRun {
        self.set_config(key, value);
        self.hook("config-changed")
    }

    /// `juju integrate`: creates the relation and runs relation-created.
    /// Returns the relation id.
    pub fn relate(&self, endpoint: &str, remote_app: &str) -> u32 {
        let id = self.relate_quietly(endpoint, remote_app);
        self.relation_hook(id, "created", None, None).assert_ok();
        id
    }

    /// The relation, without running relation-created.
    fn relate_quietly(&self, endpoint: &str, remote_app: &str) -> u32 {
        assert!(
            self.charm.relations.contains_key(endpoint),
            "the charm has no endpoint {endpoint}"
        );
        let mut id = 0;
        let scope = self.charm.relations[endpoint].scope.clone();
        let peer = self.charm.relations[endpoint].role == "peers";
        self.edit_unit(|s| {
            id = s.next_relation_id;
            s.next_relation_id += 1;
            let mut local = Databag::new();
            // The agent writes these into the unit's own bag on entering
            // scope: the addresses of the endpoint's binding.
            let address = s.binding_addresses(endpoint)[0].clone();
            let cidr = if address.contains(':') { 128 } else { 32 };
            local.insert("private-address".into(), address.clone());
            local.insert("ingress-address".into(), address.clone());
            local.insert("egress-subnets".into(), format!("{address}/{cidr}"));
            s.relations.push(Relation {
                id,
                endpoint: endpoint.to_string(),
                scope,
                peer,
                remote_app: remote_app.to_string(),
                members: Default::default(),
                remote_units: Default::default(),
                remote_app_data: Default::default(),
                local_unit: local,
                local_app: Default::default(),
            });
        });
        id
    }

    /// A remote unit joins with `data` in its bag: relation-joined, then
    /// relation-changed.
    pub fn join(&self, id: u32, unit: &str, data: &[(&str, &str)]) -> Vec<HookRun> {
        self.edit_unit(|s| {
            let rel = s.relation_mut(id).expect("relation");
            // A container-scoped relation joins the one unit of the other
            // application on this machine.
            assert!(
                rel.scope != "container" || rel.members.iter().all(|m| m == unit),
                "{}: a container-scoped relation has one remote unit, the one on this machine",
                rel.rid()
            );
            rel.members.insert(unit.to_string());
            rel.remote_units.insert(
                unit.to_string(),
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        });
        vec![
            self.relation_hook(id, "joined", Some(unit), None),
            self.relation_hook(id, "changed", Some(unit), None),
        ]
    }

    /// A remote unit changes its bag (keys with "" are deleted).
    pub fn change(&self, id: u32, unit: &str, data: &[(&str, &str)]) -> HookRun {
        self.edit_unit(|s| {
            let rel = s.relation_mut(id).expect("relation");
            let bag = rel.remote_units.entry(unit.to_string()).or_default();
            crate::model::apply_bag(
                bag,
                &data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        });
        self.relation_hook(id, "changed", Some(unit), None)
    }

    /// The remote application's bag changes.
    pub fn change_app(&self, id: u32, data: &[(&str, &str)]) -> HookRun {
        self.edit_unit(|s| {
            let rel = s.relation_mut(id).expect("relation");
            crate::model::apply_bag(
                &mut rel.remote_app_data,
                &data
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        });
        self.relation_hook(id, "changed", None, None)
    }

    /// On a peer relation, the leader changed the application's bag to
    /// `bag`: this (other) unit's copy follows, and relation-changed runs
    /// with no remote unit, as Juju runs it.
    pub fn peer_app_changed(&self, id: u32, bag: &Databag) -> HookRun {
        self.edit_unit(|s| {
            let rel = s.relation_mut(id).expect("relation");
            assert!(rel.peer, "{} is not a peer relation", rel.rid());
            rel.local_app = bag.clone();
        });
        self.relation_hook(id, "changed", None, None)
    }

    /// A remote unit leaves: relation-departed (it is already gone from
    /// relation-list; its data stays readable).
    pub fn depart(&self, id: u32, unit: &str) -> HookRun {
        self.depart_with(id, unit, unit)
    }

    /// relation-departed for remote `unit`, with `departing` as
    /// JUJU_DEPARTING_UNIT: juju's relation resolver names the remote unit
    /// while this unit and its application are alive, and this unit once
    /// either is dying (worker/uniter/relation/resolver.go, `departee`).
    fn depart_with(&self, id: u32, unit: &str, departing: &str) -> HookRun {
        self.edit_unit(|s| {
            s.relation_mut(id).expect("relation").members.remove(unit);
        });
        self.relation_hook(id, "departed", Some(unit), Some(departing))
    }

    /// `juju remove-relation` (or the remote application's removal): every
    /// remote unit departs, then relation-broken; the relation is gone
    /// afterwards.
    pub fn unrelate(&self, id: u32) -> Vec<HookRun> {
        self.leave(id, None)
    }

    /// Every remote unit departs, named as the departing unit unless this
    /// unit (`this`) is the one leaving; then relation-broken.
    fn leave(&self, id: u32, this: Option<&str>) -> Vec<HookRun> {
        let members: Vec<String> = self
            .unit()
            .relation(id)
            .expect("relation")
            .members
            .iter()
            .cloned()
            .collect();
        let mut runs: Vec<HookRun> = members
            .iter()
            .map(|u| self.depart_with(id, u, this.unwrap_or(u)))
            .collect();
        runs.push(self.relation_hook(id, "broken", None, None));
        self.edit_unit(|s| s.relations.retain(|r| r.id != id));
        runs
    }

    fn relation_hook(
        &self,
        id: u32,
        event: &str,
        remote_unit: Option<&str>,
        departing: Option<&str>,
    ) -> HookRun {
        let endpoint = self.unit().relation(id).expect("relation").endpoint.clone();
        let name = format!("{endpoint}-relation-{event}");
        self.run(Event {
            dispatch: format!("hooks/{name}"),
            name,
            relation: Some(id),
            remote_unit: remote_unit.map(str::to_string),
            departing: departing.map(str::to_string),
            action: None,
            legacy: false,
            secret: None,
        })
    }

    /// The first part of `juju remove-unit`: every relation is left, this
    /// unit named as the departing one.
    pub fn leave_every_relation(&self) -> Vec<HookRun> {
        let ids: Vec<u32> = self.unit().relations.iter().map(|r| r.id).collect();
        let this = self.unit().unit.clone();
        let mut runs = Vec::new();
        for id in ids {
            runs.extend(self.leave(id, Some(&this)));
        }
        runs
    }

    /// `juju remove-unit`, in the agent's order: every relation is left
    /// (departed for each remote unit, then broken), then `stop`, then
    /// `remove`. Returns every hook run.
    pub fn remove_unit(&self) -> Vec<HookRun> {
        let mut runs = self.leave_every_relation();
        runs.push(self.hook("stop"));
        runs.push(self.hook("remove"));
        runs
    }

    // ----- secrets ----------------------------------------------------------

    /// Another application (`owner`) creates a secret with `content` and
    /// labels it; `granted`: this unit may read it. Returns its id.
    pub fn add_secret(
        &self,
        owner: &str,
        label: &str,
        content: &[(&str, &str)],
        granted: bool,
    ) -> String {
        let mut id = String::new();
        self.edit_unit(|s| {
            // Juju's ids are 20-character xids.
            id = format!("secret:d{:019}", s.secrets.len() + 1);
            s.secrets.insert(
                id.clone(),
                crate::model::Secret {
                    owner: owner.to_string(),
                    label: label.to_string(),
                    revisions: vec![bag(content)],
                    granted,
                    tracked: None,
                    removed: false,
                },
            );
        });
        id
    }

    /// The owner sets new content: a new revision. A unit tracking an
    /// older revision gets `secret-changed` (returned); one that never read
    /// the secret gets nothing.
    pub fn set_secret_content(&self, id: &str, content: &[(&str, &str)]) -> Option<HookRun> {
        let mut notify = None;
        self.edit_unit(|s| {
            let secret = s.secrets.get_mut(id).expect("secret");
            secret.revisions.push(bag(content));
            if secret.granted && secret.tracked.is_some() {
                notify = Some(secret.label.clone());
            }
        });
        let label = notify?;
        Some(self.run(Event {
            secret: Some((id.to_string(), label)),
            ..Event::plain("secret-changed")
        }))
    }

    /// The owner revokes this unit's access (`secret-revoke`).
    pub fn revoke_secret(&self, id: &str) {
        self.edit_unit(|s| s.secrets.get_mut(id).expect("secret").granted = false);
    }

    /// The owner grants this unit access (`secret-grant`).
    pub fn grant_secret(&self, id: &str) {
        self.edit_unit(|s| s.secrets.get_mut(id).expect("secret").granted = true);
    }

    /// The owner removes the secret (`secret-remove`, every revision).
    pub fn remove_secret(&self, id: &str) {
        self.edit_unit(|s| s.secrets.get_mut(id).expect("secret").removed = true);
    }

    /// Runs an action with `params` (defaults from actions.yaml filled in).
    pub fn action(&self, name: &str, params: Value) -> (HookRun, ActionRecord) {
        let mut all: Map<String, Value> = self
            .charm
            .actions
            .get(name)
            .unwrap_or_else(|| panic!("the charm has no action {name}"))
            .clone();
        if let Value::Object(given) = params {
            all.extend(given);
        }
        let uuid = format!(
            "{:08x}-0000-4000-8000-000000000000",
            self.unit().actions.len() + 1
        );
        let run = self.run(Event {
            name: name.to_string(),
            dispatch: format!("actions/{name}"),
            relation: None,
            remote_unit: None,
            departing: None,
            action: Some(ActionRecord {
                name: name.to_string(),
                uuid,
                params: all,
                status: "running".into(),
                ..ActionRecord::default()
            }),
            legacy: false,
            secret: None,
        });
        let record = self.unit().actions.last().cloned().expect("action record");
        (run, record)
    }

    fn run(&self, event: Event) -> HookRun {
        // Taken out while the hook runs: the agent's retry of a killed
        // hook is part of the same recorded hook.
        let recorder = self.recorder.lock().expect("recorder").take();
        let Some(mut recorder) = recorder else {
            return self.run_once(event);
        };
        let start = recorder.before(self, &event);
        let run = self.run_once(event);
        recorder.after(self, &start, &run);
        *self.recorder.lock().expect("recorder") = Some(recorder);
        run
    }

    pub(crate) fn recorder(&self) -> &std::sync::Mutex<Option<crate::snapshot::Recorder>> {
        &self.recorder
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn run_once(&self, event: Event) -> HookRun {
        let kill_after = self
            .layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                plan.seen = 0;
                plan.matched = 0;
                plan.fired = false;
                (plan.after_time.take(), true)
            })
            .expect("kill plan");
        let hook_number = self.unit().hooks.len() + 1;
        let context_id = format!("{}-{}-{hook_number}", self.unit().unit, event.name);
        let relation = event
            .relation
            .and_then(|id| self.unit().relation(id).cloned());
        self.edit_unit(|s| {
            // The agent's own statuses.
            if event.name == "install" && !s.status_set_by_charm {
                set_agent_status(s, "maintenance", "installing charm software", "install");
            }
            if event.name == "stop" {
                set_agent_status(s, "maintenance", "stopping charm software", "stop");
            }
            let number = s.hooks.len();
            s.pending.clear();
            s.running = Some(RunningHook {
                context_id: context_id.clone(),
                number,
                name: event.name.clone(),
                relation_id: event.relation,
                remote_unit: event.remote_unit.clone(),
                remote_app: relation.as_ref().map(|r| r.remote_app.clone()),
                action: event.action.clone(),
                secret_id: event.secret.as_ref().map(|(id, _)| id.clone()),
            });
        });
        let state = self.unit();
        let is_action = event.action.is_some();
        let mut env: Vec<(String, String)> = vec![
            (
                "JUJU_HOOK_NAME".into(),
                if is_action {
                    String::new()
                } else {
                    event.name.clone()
                },
            ),
            ("JUJU_UNIT_NAME".into(), state.unit.clone()),
            ("JUJU_CHARM_DIR".into(), path_str(&state.charm_dir)),
            ("CHARM_DIR".into(), path_str(&state.charm_dir)),
            ("JUJU_MODEL_NAME".into(), state.model.clone()),
            ("JUJU_MODEL_UUID".into(), state.model_uuid.clone()),
            ("JUJU_VERSION".into(), state.juju_version.clone()),
            ("JUJU_CONTEXT_ID".into(), context_id.clone()),
            (
                "JUJU_AGENT_SOCKET_ADDRESS".into(),
                format!("@{}/agent.socket", path_str(&state.agent_dir)),
            ),
            ("JUJU_AGENT_SOCKET_NETWORK".into(), "unix".into()),
            ("JUJU_MACHINE_ID".into(), state.machine_id.clone()),
            ("JUJU_PRINCIPAL_UNIT".into(), String::new()),
            (
                "JUJU_AVAILABILITY_ZONE".into(),
                state.availability_zone.clone(),
            ),
            ("JUJU_API_ADDRESSES".into(), "10.0.0.2:17070".into()),
            ("JUJU_CHARM_HTTP_PROXY".into(), String::new()),
            ("JUJU_CHARM_HTTPS_PROXY".into(), String::new()),
            ("JUJU_CHARM_NO_PROXY".into(), String::new()),
            ("LANG".into(), "C.UTF-8".into()),
            ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
            (
                "PATH".into(),
                if self.options.real_machine {
                    format!(
                        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        path_str(&self.layout.tools_dir())
                    )
                } else {
                    format!(
                        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        path_str(&self.layout.tools_dir()),
                        path_str(&self.layout.sbin_dir())
                    )
                },
            ),
        ];
        if !event.legacy {
            env.push(("JUJU_DISPATCH_PATH".into(), event.dispatch.clone()));
        }
        env.extend(state.extra_env.clone());
        if let Some(var) = &self.options.root_var {
            env.push((var.clone(), path_str(&self.layout.root_dir())));
        }
        if let Some(rel) = &relation {
            env.push(("JUJU_RELATION".into(), rel.endpoint.clone()));
            env.push(("JUJU_RELATION_ID".into(), rel.rid()));
            env.push((
                "JUJU_REMOTE_UNIT".into(),
                event.remote_unit.clone().unwrap_or_default(),
            ));
            env.push(("JUJU_REMOTE_APP".into(), rel.remote_app.clone()));
            if let Some(departing) = &event.departing {
                env.push(("JUJU_DEPARTING_UNIT".into(), departing.clone()));
            }
        }
        if let Some((id, label)) = &event.secret {
            env.push(("JUJU_SECRET_ID".into(), id.clone()));
            env.push(("JUJU_SECRET_LABEL".into(), label.clone()));
        }
        if let Some(action) = &event.action {
            env.push(("JUJU_ACTION_NAME".into(), action.name.clone()));
            env.push(("JUJU_ACTION_UUID".into(), action.uuid.clone()));
        }
        // The agent runs dispatch when the charm has it (Juju >= 2.8), else
        // hooks/<name> or actions/<name>; no handler at all is a silent
        // success for a hook and a failure for an action.
        let dispatch = state.charm_dir.join("dispatch");
        let direct = state.charm_dir.join(&event.dispatch);
        let handler = if !event.legacy && dispatch.symlink_metadata().is_ok() {
            Some(dispatch)
        } else if direct.symlink_metadata().is_ok() {
            Some(direct)
        } else {
            None
        };
        let (exit, stdout, stderr) = match handler {
            None if is_action => (
                1,
                String::new(),
                format!("action not implemented on unit \"{}\"", state.unit),
            ),
            None => (0, String::new(), String::new()),
            Some(handler) => {
                let mut command = match (&self.options.exec_in, &self.options.host) {
                    (None, None) => {
                        let mut c = Command::new(&handler);
                        c.env_clear().envs(env).current_dir(&state.charm_dir);
                        c
                    }
                    (None, Some(host)) => {
                        let hosts = self.layout.dir.join("etc-hosts");
                        std::fs::write(&hosts, &host.hosts).expect("hosts file");
                        let mut c = Command::new("/usr/bin/unshare");
                        c.args(["--uts", "--mount", "/bin/sh", "-c"])
                            .arg("/bin/hostname \"$1\" && /bin/mount --bind \"$2\" /etc/hosts && shift 2 && exec \"$@\"")
                            .arg("sh")
                            .arg(&host.hostname)
                            .arg(&hosts)
                            .arg(&handler)
                            .env_clear()
                            .envs(env)
                            .current_dir(&state.charm_dir);
                        c
                    }
                    (Some(prefix), _) => {
                        let mut c = Command::new(&prefix[0]);
                        c.args(&prefix[1..])
                            .args(["env", "-i", "-C"])
                            .arg(&state.charm_dir)
                            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
                            .arg(&handler);
                        c
                    }
                };
                // Files that tests write (scripts, copies) can be briefly
                // held open for writing by a child another test thread
                // forked; exec then fails with "Text file busy" before the
                // hook starts, so running it again is safe.
                let trigger = match (kill_after, self.kill_when.lock().unwrap().take()) {
                    (_, Some(when)) => Some(KillTrigger::When(when)),
                    (Some(delay), None) => Some(KillTrigger::After(delay)),
                    (None, None) => None,
                };
                let mut output = match trigger {
                    None => command.stdin(Stdio::null()).output(),
                    Some(trigger) => self.output_killed(&mut command, trigger),
                };
                for _ in 0..20 {
                    let busy = match &output {
                        Ok(out) => {
                            out.status.code() == Some(126)
                                && String::from_utf8_lossy(&out.stderr).contains("Text file busy")
                        }
                        Err(e) => e.raw_os_error() == Some(26),
                    };
                    if !busy {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    output = command.stdin(Stdio::null()).output();
                }
                match output {
                    Ok(out) => (
                        out.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    ),
                    // A handler that exists but cannot be run is a hook error.
                    Err(e) => (
                        -1,
                        String::new(),
                        format!("cannot run {}: {e}", handler.display()),
                    ),
                }
            }
        };
        let (killed, calls) = self
            .layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                if plan.fired {
                    plan.at = None;
                    plan.matching = None;
                }
                ((plan.fired, plan.seen), true)
            })
            .expect("kill plan");
        let run = HookRun {
            name: event.name.clone(),
            exit,
            stdout,
            stderr,
            killed,
            calls,
        };
        self.edit_unit(|s| {
            let running = s.running.take();
            if exit == 0 {
                s.commit_pending();
            } else {
                s.pending.clear();
            }
            if let Some(mut action) = running.and_then(|r| r.action) {
                if exit != 0 {
                    action.status = "failed".into();
                    action.message = format!("exit status {exit}");
                } else if action.status != "failed" {
                    action.status = "completed".into();
                }
                s.actions.push(action);
            } else if exit == 0 {
                s.error = None;
                if event.name == "start" && !s.status_set_by_charm {
                    set_agent_status(s, "unknown", "", "start");
                }
            } else {
                s.error = Some(format!("hook failed: \"{}\"", event.name));
            }
            s.hooks.push(HookRecord {
                name: run.name.clone(),
                exit,
                stdout: run.stdout.clone(),
                stderr: run.stderr.clone(),
            });
        });
        if killed && !run.name.is_empty() && event.action.is_none() {
            // The agent runs a failed hook again (a restarted agent runs
            // the one it was running); an action is not retried.
            let mut again = self.run_once(event.clone());
            again.killed = true;
            again.calls += calls;
            return again;
        }
        run
    }

    /// Runs the hook, killing it as `trigger` says if it is still
    /// running; a kill is recorded in the kill plan as fired.
    fn output_killed(
        &self,
        command: &mut Command,
        trigger: KillTrigger,
    ) -> std::io::Result<std::process::Output> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let done = Arc::new(AtomicBool::new(false));
        let timer = {
            let done = done.clone();
            std::thread::spawn(move || {
                match trigger {
                    KillTrigger::After(delay) => std::thread::sleep(delay),
                    KillTrigger::When(now) => {
                        while !now() {
                            if done.load(Ordering::SeqCst) {
                                return false;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    }
                }
                // Not reaped yet while `done` is false, so the pid is still
                // the hook's.
                !done.load(Ordering::SeqCst)
                    && nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok()
            })
        };
        let mut child = child;
        // Read while it runs: a hook that fills a pipe must not stall.
        let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
        let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
        let status = child.wait();
        done.store(true, Ordering::SeqCst);
        let killed = timer.join().unwrap_or(false);
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if killed {
            self.layout
                .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                    plan.fired = true;
                    ((), true)
                })
                .expect("kill plan");
        }
        Ok(std::process::Output {
            status: status?,
            stdout,
            stderr,
        })
    }

    /// Kills whichever hook makes the `at`-th call (0-based) counted over
    /// all hooks from now, before or after that call; [`Sim::calls_overall`]
    /// counts them.
    pub fn kill_overall(&self, at: Option<(u32, Moment)>) {
        self.layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                plan.at_overall = at;
                plan.overall = 0;
                ((), true)
            })
            .expect("kill plan");
    }

    /// The calls counted since [`Sim::kill_overall`].
    pub fn calls_overall(&self) -> u32 {
        self.layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                (plan.overall, false)
            })
            .expect("kill plan")
    }

    /// Kills the next hook as soon as `now` says so (polled while it
    /// runs), wherever it is then: a kill at a point of what the hook does
    /// that no call marks (an API request), however slowly it runs.
    pub fn kill_next_when(&self, now: impl Fn() -> bool + Send + 'static) {
        *self.kill_when.lock().unwrap() = Some(Box::new(now));
    }

    /// Kills the next hook `delay` after it starts, wherever it is then.
    pub fn kill_next_after(&self, delay: std::time::Duration) {
        self.layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                plan.after_time = Some(delay);
                ((), true)
            })
            .expect("kill plan");
    }

    /// Kills the next hook at its external call number `at` (0-based),
    /// before or after the call, as a machine crash would.
    pub fn kill_next(&self, at: u32, moment: Moment) {
        self.plan_kill(at, moment, None);
    }

    /// Kills the next hook at its first call that starts with `call`
    /// (`open-port`, `snap install kubelet`), before or after it.
    pub fn kill_next_at(&self, call: &str, moment: Moment) {
        self.plan_kill(0, moment, Some(call.to_string()));
    }

    pub(crate) fn plan_kill(&self, at: u32, moment: Moment, matching: Option<String>) {
        self.layout
            .with(&self.layout.kill_file(), |plan: &mut KillPlan| {
                plan.at = Some((at, moment));
                plan.matching = matching;
                ((), true)
            })
            .expect("kill plan");
    }

    // ----- reading back -------------------------------------------------------

    /// The workload status as `juju status` shows it: `error` while a hook
    /// has failed.
    pub fn status(&self) -> (String, String) {
        let s = self.unit();
        match s.error {
            Some(e) => ("error".into(), e),
            None => (s.status.status, s.status.message),
        }
    }

    /// Hook tool calls made by the hooks run after `mark` (see [`Sim::mark`]).
    pub fn tool_calls_since(&self, mark: Mark) -> Vec<ToolCall> {
        self.unit()
            .calls
            .into_iter()
            .skip(mark.tool_calls)
            .collect()
    }

    /// `snap` and `systemctl` calls since `mark`.
    pub fn machine_calls_since(&self, mark: Mark) -> Vec<MachineCall> {
        self.machine()
            .calls
            .into_iter()
            .skip(mark.machine_calls)
            .collect()
    }

    /// A point in the unit's history to compare against later.
    pub fn mark(&self) -> Mark {
        Mark {
            tool_calls: self.unit().calls.len(),
            machine_calls: self.machine().calls.len(),
        }
    }

    /// A readable account of the unit: status history and hook runs.
    pub fn timeline(&self) -> String {
        let s = self.unit();
        let mut out = String::new();
        // Statuses are in order and each names its hook, so they can be
        // walked alongside the hook runs.
        let mut statuses = s
            .status_history
            .iter()
            .filter(|st| !st.hook.is_empty())
            .peekable();
        for (number, hook) in s.hooks.iter().enumerate() {
            out.push_str(&format!("{:<40} exit {}\n", hook.name, hook.exit));
            while let Some(st) = statuses.next_if(|st| st.run == number) {
                let by = if st.agent { " (set by the agent)" } else { "" };
                out.push_str(&format!("    {:<12} {}{by}\n", st.status, st.message));
            }
        }
        out
    }
}

/// A position in the unit's call history.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    tool_calls: usize,
    machine_calls: usize,
}

#[derive(Clone)]
pub(crate) struct Event {
    pub(crate) name: String,
    dispatch: String,
    relation: Option<u32>,
    remote_unit: Option<String>,
    departing: Option<String>,
    action: Option<ActionRecord>,
    /// Run `hooks/<name>` without JUJU_DISPATCH_PATH, as pre-2.8 agents.
    legacy: bool,
    /// The secret's id and label, for secret hooks.
    secret: Option<(String, String)>,
}

impl Event {
    fn plain(name: &str) -> Event {
        Event {
            name: name.to_string(),
            dispatch: format!("hooks/{name}"),
            relation: None,
            remote_unit: None,
            departing: None,
            action: None,
            legacy: false,
            secret: None,
        }
    }
}

fn bag(pairs: &[(&str, &str)]) -> Databag {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The agent's own status, set just before (install, stop) or just after
/// (start) a hook run: either way, before that run is recorded, so it
/// belongs to the run numbered `hooks.len()`.
fn set_agent_status(s: &mut UnitState, status: &str, message: &str, hook: &str) {
    let run = s.hooks.len();
    let entry = StatusEntry {
        status: status.into(),
        message: message.into(),
        hook: hook.into(),
        agent: true,
        run,
    };
    s.status = entry.clone();
    s.status_history.push(entry);
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) {
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("encode")).expect("write state");
}

fn deploy_charm(charm: &CharmSource, dest: &Path) {
    match charm {
        CharmSource::Tree { dir, binaries } => {
            for name in CHARM_FILES {
                let src = dir.join(name);
                if src.symlink_metadata().is_ok() {
                    copy_tree(&src, &dest.join(name));
                }
            }
            for (rel, bin) in binaries {
                let target = dest.join(rel);
                std::fs::create_dir_all(target.parent().expect("parent")).expect("bin dir");
                std::fs::copy(bin, &target)
                    .unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
            }
        }
        CharmSource::Packed(zip) => {
            // `juju deploy` unpacks the archive keeping modes and symlinks.
            let status = Command::new("unzip")
                .args(["-q", "-o"])
                .arg(zip)
                .arg("-d")
                .arg(dest)
                .status()
                .expect("running unzip");
            assert!(status.success(), "unzip {} failed", zip.display());
        }
    }
}

fn copy_tree(src: &Path, dest: &Path) {
    let meta = src.symlink_metadata().expect("stat");
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).expect("readlink");
        std::os::unix::fs::symlink(target, dest).expect("symlink");
    } else if meta.is_dir() {
        std::fs::create_dir_all(dest).expect("mkdir");
        for entry in std::fs::read_dir(src).expect("readdir") {
            let entry = entry.expect("entry");
            copy_tree(&entry.path(), &dest.join(entry.file_name()));
        }
    } else {
        std::fs::copy(src, dest).expect("copy");
    }
}
