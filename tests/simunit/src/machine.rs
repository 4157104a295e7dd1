//! The simulated machine: `snap`, `systemctl`, `sysctl` and `ip` as the
//! charm calls them,
//! behaving like the real CLIs (output, exit codes, snapd's refusals and
//! wording), keeping their state in machine.json and laying out under the
//! machine root what snapd lays out (`/snap/<name>/current/meta/snap.yaml`,
//! `/snap/bin/<app>`). The store is a catalog the test writes; it can be
//! told to fail an operation a number of times, as the real store does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flags::{self, boolean, value};
use crate::store::Layout;

/// The machine's programs this simulation serves.
pub const PROGRAMS: [&str; 4] = ["snap", "systemctl", "sysctl", "ip"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Debian/Juju name of the machine's architecture (amd64, s390x, ...).
    pub arch: String,
    pub root: PathBuf,
    pub snaps: BTreeMap<String, InstalledSnap>,
    pub snap_config: BTreeMap<String, Map<String, Value>>,
    /// systemd units by name (`snap.kubelet.daemon.service`).
    pub services: BTreeMap<String, Service>,
    /// The store: snap -> channel -> what it serves there.
    pub store: BTreeMap<String, BTreeMap<String, StoreRevision>>,
    pub faults: Vec<Fault>,
    /// Calls that never return (a wedged snapd or systemd): any call whose
    /// `program args...` starts with one of these blocks until killed.
    #[serde(default)]
    pub hangs: Vec<String>,
    /// Services that exit as soon as they start (a broken binary, a bad
    /// flag): starting them "succeeds", but they are not active after.
    #[serde(default)]
    pub crashing: std::collections::BTreeSet<String>,
    /// The store cannot be reached (no route, no DNS): `snap info` shows
    /// only what is installed, with no channels, and exits 0, as snapd's
    /// cmd_info.go does when its store query fails; installs and refreshes
    /// from the store fail with snapd's network error.
    #[serde(default)]
    pub store_unreachable: bool,
    /// Kernel tunables as set by sysctl.
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// Tunables the kernel refuses to set (inside a container, many).
    #[serde(default)]
    pub sysctl_refused: std::collections::BTreeSet<String>,
    /// The network interfaces, in the kernel's (ifindex) order, for `ip`.
    #[serde(default = "interfaces")]
    pub interfaces: Vec<Interface>,
    /// snapd's version: `refresh --hold` needs 2.58 or later.
    #[serde(default = "snapd_version")]
    pub snapd_version: String,
    pub calls: Vec<MachineCall>,
}

fn snapd_version() -> String {
    "2.63".into()
}

/// A network interface, as `ip -j addr show` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    /// The kernel's operstate as iproute2 prints it (UP, DOWN, UNKNOWN).
    pub operstate: String,
    /// A veth's peer (iproute2's `link`).
    #[serde(default)]
    pub link: Option<String>,
    pub addresses: Vec<InterfaceAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    pub local: String,
    pub prefixlen: u8,
    /// global, link or host.
    pub scope: String,
}

impl InterfaceAddress {
    pub fn new(local: &str, prefixlen: u8, scope: &str) -> InterfaceAddress {
        InterfaceAddress {
            local: local.into(),
            prefixlen,
            scope: scope.into(),
        }
    }
}

/// A cloud machine's: the loopback, and eth0 with the unit's private
/// address (what Juju reports it from).
pub fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            name: "lo".into(),
            operstate: "UNKNOWN".into(),
            link: None,
            addresses: vec![
                InterfaceAddress::new("127.0.0.1", 8, "host"),
                InterfaceAddress::new("::1", 128, "host"),
            ],
        },
        Interface {
            name: "eth0".into(),
            operstate: "UP".into(),
            link: None,
            addresses: vec![
                InterfaceAddress::new("10.1.0.10", 24, "global"),
                InterfaceAddress::new("fe80::216:3eff:fe12:3456", 64, "link"),
            ],
        },
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum SnapSource {
    Store,
    /// Installed from a local file with --dangerous.
    Local(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledSnap {
    pub version: String,
    /// `123` from the store, `x1`, `x2`, ... for local files.
    pub revision: String,
    /// The channel tracked; `None` for a local install.
    pub channel: Option<String>,
    pub source: SnapSource,
    pub classic: bool,
    /// App name -> daemon type, if it is a daemon.
    pub apps: BTreeMap<String, Option<String>>,
    pub configure_hook: bool,
    /// Held from automatic refreshes (`snap refresh --hold`).
    #[serde(default)]
    pub held: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreRevision {
    pub version: String,
    pub revision: u32,
    #[serde(default = "yes")]
    pub classic: bool,
    #[serde(default = "all_archs")]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub apps: BTreeMap<String, Option<String>>,
}

fn yes() -> bool {
    true
}

fn all_archs() -> Vec<String> {
    vec!["all".into()]
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Service {
    pub active: bool,
    pub enabled: bool,
    /// How many times it was started (or restarted).
    pub starts: u32,
    /// What each start ran: the snap's revision and its options then.
    #[serde(default)]
    pub runs: Vec<Run>,
}

/// One start of a snap's daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub revision: String,
    pub config: Map<String, Value>,
    /// The daemon's argv, as the snap's wrapper passes it.
    #[serde(default)]
    pub argv: Vec<String>,
}

/// Notes what a start of `unit` (`snap.<name>.<app>.service`) runs.
fn note_start(m: &mut Machine, unit: &str) {
    let name = unit
        .strip_prefix("snap.")
        .and_then(|u| u.split('.').next())
        .unwrap_or_default();
    let revision = m
        .snaps
        .get(name)
        .map(|s| s.revision.clone())
        .unwrap_or_default();
    let config = m.snap_config.get(name).cloned().unwrap_or_default();
    let run = Run {
        argv: crate::processes::argv(name, &revision, &config),
        revision,
        config,
    };
    if let Some(s) = m.services.get_mut(unit) {
        s.runs.push(run);
    }
}

/// Makes the next `remaining` calls of `snap <command> ... <target>` fail;
/// with `command` "ip", the next calls of `ip`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub command: String,
    pub target: Option<String>,
    pub remaining: u32,
    pub exit: i32,
    pub stderr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineCall {
    pub program: String,
    pub args: Vec<String>,
    pub exit: i32,
}

impl MachineCall {
    /// Calls that change the machine (what a converged hook must not make).
    pub fn is_mutating(&self) -> bool {
        let verb = self
            .args
            .iter()
            .find(|a| !a.starts_with('-'))
            .map(String::as_str);
        match self.program.as_str() {
            "snap" => matches!(
                verb,
                Some("install" | "refresh" | "remove" | "set" | "unset")
            ),
            "sysctl" => self
                .args
                .iter()
                .any(|a| a == "-p" || a == "-w" || a.starts_with("--load") || a.contains('=')),
            "systemctl" => matches!(
                verb,
                Some(
                    "start"
                        | "stop"
                        | "restart"
                        | "reload"
                        | "enable"
                        | "disable"
                        | "daemon-reload"
                )
            ),
            _ => false,
        }
    }
}

struct Out {
    stdout: String,
    stderr: String,
    exit: i32,
}

fn ok(stdout: impl Into<String>) -> Out {
    Out {
        stdout: stdout.into(),
        stderr: String::new(),
        exit: 0,
    }
}

fn fail(exit: i32, stderr: impl Into<String>) -> Out {
    Out {
        stdout: String::new(),
        stderr: stderr.into(),
        exit,
    }
}

/// Entry point of the `snap` and `systemctl` executables.
pub fn main(program: &str, args: Vec<String>) -> i32 {
    let layout = match Layout::of_current_exe() {
        Ok(layout) => layout,
        Err(e) => {
            eprintln!("{program}: {e}");
            return 1;
        }
    };
    let kill = crate::kill::count_call(&layout, program, &args);
    if kill == Some(crate::kill::Moment::Before) {
        crate::kill::kill_hook();
    }
    let mut hang = false;
    let result = layout.with(&layout.machine_file(), |m: &mut Machine| {
        let line = std::iter::once(program.to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        if m.hangs.iter().any(|h| line.starts_with(h.as_str())) {
            hang = true;
            m.calls.push(MachineCall {
                program: program.to_string(),
                args: args.clone(),
                exit: -9,
            });
            return (fail(-9, ""), true);
        }
        let out = match program {
            "snap" => snap(m, &args),
            "systemctl" => systemctl(m, &args),
            "sysctl" => sysctl(m, &args),
            "ip" => ip(m, &args),
            other => fail(1, format!("{other}: not simulated\n")),
        };
        crate::processes::sync(m);
        m.calls.push(MachineCall {
            program: program.to_string(),
            args: args.clone(),
            exit: out.exit,
        });
        (out, true)
    });
    if kill == Some(crate::kill::Moment::After) {
        crate::kill::kill_hook();
    }
    if hang {
        // Outside the state lock, like snapd stuck on a change.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    match result {
        Ok(out) => {
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
            out.exit
        }
        Err(e) => {
            eprintln!("{program}: simulated machine state unreadable: {e}");
            1
        }
    }
}

fn snap(m: &mut Machine, args: &[String]) -> Out {
    let Some((verb, rest)) = args.split_first() else {
        return fail(
            1,
            "error: the required argument `<command>` was not provided\n",
        );
    };
    if let Some(i) = m.faults.iter().position(|f| {
        &f.command == verb && f.remaining > 0 && f.target.as_ref().is_none_or(|t| rest.contains(t))
    }) {
        let fault = &mut m.faults[i];
        fault.remaining -= 1;
        return fail(fault.exit, fault.stderr.clone());
    }
    let from_store = matches!(verb.as_str(), "install" | "refresh")
        && !rest.iter().any(|a| {
            a == "--dangerous" || a.starts_with("--hold") || a == "--unhold" || a.ends_with(".snap")
        });
    if m.store_unreachable && from_store {
        let name = rest
            .iter()
            .find(|a| !a.starts_with('-'))
            .cloned()
            .unwrap_or_default();
        return fail(
            1,
            format!("error: cannot {verb} \"{name}\": persistent network error: Post \"https://api.snapcraft.io/v2/snaps/refresh\": dial tcp: lookup api.snapcraft.io: Temporary failure in name resolution\n"),
        );
    }
    match verb.as_str() {
        "install" => snap_install(m, rest),
        "refresh" => snap_refresh(m, rest),
        "remove" => snap_remove(m, rest),
        "list" => snap_list(m, rest),
        "info" => snap_info(m, rest),
        "set" => snap_set(m, rest, false),
        "unset" => snap_set(m, rest, true),
        "get" => snap_get(m, rest),
        "version" => ok(format!(
            "snap    {v}\nsnapd   {v}\nseries  16\n",
            v = m.snapd_version
        )),
        other => fail(
            1,
            format!("error: unknown command \"{other}\", see 'snap help'.\n"),
        ),
    }
}

fn parse_flags(rest: &[String], spec: &[flags::Flag]) -> Result<flags::Parsed, Out> {
    flags::parse(rest, spec).map_err(|e| {
        // snap's flag parser (go-flags) words it so.
        let e = match e.strip_prefix("option provided but not defined: ") {
            Some(flag) => format!("unknown flag `{}'", flag.trim_start_matches('-')),
            None => e,
        };
        fail(1, format!("error: {e}\n"))
    })
}

const CLASSIC_MESSAGE: &str = "was published using classic confinement and thus may perform\n       arbitrary system changes outside of the security sandbox that snaps are\n       usually confined to, which may put your system at risk.\n\n       If you understand and want to proceed repeat the command including\n       --classic.\n";

#[derive(Debug, Deserialize)]
struct SnapYaml {
    name: String,
    #[serde(default)]
    version: Value,
    #[serde(default = "all_archs")]
    architectures: Vec<String>,
    #[serde(default)]
    confinement: Option<String>,
    #[serde(default)]
    apps: BTreeMap<String, AppYaml>,
}

#[derive(Debug, Deserialize)]
struct AppYaml {
    #[serde(default)]
    daemon: Option<String>,
}

fn version_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn snap_install(m: &mut Machine, rest: &[String]) -> Out {
    let p = match parse_flags(
        rest,
        &[
            value(&["channel"]),
            boolean(&["classic"]),
            boolean(&["dangerous"]),
            boolean(&["devmode"]),
        ],
    ) {
        Ok(p) => p,
        Err(out) => return out,
    };
    let [target] = p.positional.as_slice() else {
        return fail(
            1,
            "error: the required argument `<snap>` was not provided\n",
        );
    };
    if target.contains('/') || target.ends_with(".snap") {
        install_local(
            m,
            Path::new(target),
            p.is_set("dangerous"),
            p.is_set("classic"),
        )
    } else {
        let channel = p.get("channel").unwrap_or("latest/stable").to_string();
        if m.snaps.contains_key(target) {
            return ok(format!(
                "snap \"{target}\" is already installed, see 'snap help refresh'\n"
            ));
        }
        install_from_store(m, target, &channel, p.is_set("classic"), "installed")
    }
}

fn install_local(m: &mut Machine, file: &Path, dangerous: bool, classic: bool) -> Out {
    let shown = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(1, format!("error: cannot open \"{shown}\": {e}\n")),
    };
    if !dangerous {
        return fail(
            1,
            format!("error: cannot find signatures with metadata for snap \"{shown}\"\n"),
        );
    }
    if !bytes.starts_with(b"hsqs") {
        let head: Vec<u8> = bytes.iter().take(15).copied().collect();
        return fail(
            1,
            format!(
                "error: cannot read snap file: cannot process snap or snapdir: file \"{shown}\" is invalid (header {head:?} {:?})\n",
                String::from_utf8_lossy(&head)
            ),
        );
    }
    let meta = match Command::new("unsquashfs").args(["-cat"]).arg(file).arg("meta/snap.yaml").output() {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => {
            return fail(
                1,
                format!(
                    "error: cannot install snap file: cannot process snap or snapdir: cannot read \"meta/snap.yaml\": {}\n",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
        }
        Err(e) => return fail(1, format!("error: (simulation) cannot run unsquashfs: {e}\n")),
    };
    let yaml: SnapYaml = match serde_yaml::from_slice(&meta) {
        Ok(y) => y,
        Err(e) => {
            return fail(
                1,
                format!("error: cannot install snap file: cannot parse snap.yaml: {e}\n"),
            )
        }
    };
    if !yaml
        .architectures
        .iter()
        .any(|a| a == "all" || *a == m.arch)
    {
        return fail(
            1,
            format!(
                "error: cannot install snap file: snap \"{}\" supported architectures ({}) are incompatible with this system ({})\n",
                yaml.name,
                yaml.architectures.join(", "),
                m.arch
            ),
        );
    }
    let is_classic = yaml.confinement.as_deref() == Some("classic");
    if is_classic && !classic {
        return fail(
            1,
            format!("error: snap \"{}\" {CLASSIC_MESSAGE}", yaml.name),
        );
    }
    let revision = format!(
        "x{}",
        m.snaps
            .get(&yaml.name)
            .and_then(|s| s.revision.strip_prefix('x'))
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            + 1
    );
    let dest = m.root.join("snap").join(&yaml.name).join(&revision);
    let _ = std::fs::remove_dir_all(&dest);
    if let Some(parent) = dest.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match Command::new("unsquashfs")
        .args(["-no-xattrs", "-q", "-n", "-d"])
        .arg(&dest)
        .arg(file)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return fail(
                1,
                format!(
                    "error: cannot install snap file: {}\n",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            )
        }
        Err(e) => {
            return fail(
                1,
                format!("error: (simulation) cannot run unsquashfs: {e}\n"),
            )
        }
    }
    // snapd keeps the file it mounts as <name>_<revision>.snap.
    let kept = m.root.join("var/lib/snapd/snaps");
    let _ = std::fs::create_dir_all(&kept);
    let _ = std::fs::write(kept.join(format!("{}_{revision}.snap", yaml.name)), &bytes);
    let snap = InstalledSnap {
        version: version_text(&yaml.version),
        revision,
        channel: None,
        source: SnapSource::Local(file.to_path_buf()),
        classic: is_classic,
        apps: yaml.apps.into_iter().map(|(k, a)| (k, a.daemon)).collect(),
        configure_hook: dest.join("meta/hooks/configure").exists(),
        held: m.snaps.get(&yaml.name).is_some_and(|s| s.held),
    };
    let name = yaml.name;
    let line = format!("{name} {} installed\n", snap.version);
    activate(m, &name, snap);
    ok(line)
}

fn install_from_store(
    m: &mut Machine,
    name: &str,
    channel: &str,
    classic: bool,
    verb: &str,
) -> Out {
    let Some(channels) = m.store.get(name) else {
        return fail(1, format!("error: snap \"{name}\" not found\n"));
    };
    let channel = if channel.contains('/') {
        channel.to_string()
    } else {
        format!("latest/{channel}")
    };
    let Some(rev) = channels.get(&channel).cloned() else {
        let available: Vec<&String> = channels.keys().collect();
        return fail(
            1,
            format!(
                "error: snap \"{name}\" is not available on {channel} but is available to install on the\n       following channels: {}\n",
                available.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
    };
    if !rev.architectures.iter().any(|a| a == "all" || *a == m.arch) {
        return fail(
            1,
            format!(
                "error: snap \"{name}\" is not available on {channel} for this architecture ({})\n",
                m.arch
            ),
        );
    }
    if rev.classic && !classic {
        return fail(
            1,
            format!("error: This revision of snap \"{name}\" {CLASSIC_MESSAGE}"),
        );
    }
    let revision = rev.revision.to_string();
    let dir = m.root.join("snap").join(name).join(&revision).join("meta");
    let snap_yaml = serde_json::json!({
        "name": name,
        "version": rev.version,
        "architectures": rev.architectures,
        "confinement": if rev.classic { "classic" } else { "strict" },
        "apps": rev.apps.iter().map(|(app, daemon)| {
            let mut a = Map::new();
            a.insert("command".into(), Value::String(format!("bin/{app}")));
            if let Some(d) = daemon { a.insert("daemon".into(), Value::String(d.clone())); }
            (app.clone(), Value::Object(a))
        }).collect::<Map<String, Value>>(),
    });
    let written = std::fs::create_dir_all(dir.join("hooks"))
        .and_then(|_| {
            std::fs::write(
                dir.join("snap.yaml"),
                serde_yaml::to_string(&snap_yaml).unwrap_or_default(),
            )
        })
        .and_then(|_| std::fs::write(dir.join("hooks/configure"), "#!/bin/sh\n"));
    if let Err(e) = written {
        return fail(
            1,
            format!("error: (simulation) cannot lay out /snap/{name}: {e}\n"),
        );
    }
    let held = m.snaps.get(name).is_some_and(|s| s.held);
    let snap = InstalledSnap {
        version: rev.version.clone(),
        revision,
        channel: Some(channel.clone()),
        source: SnapSource::Store,
        classic: rev.classic,
        apps: rev.apps.clone(),
        configure_hook: true,
        held,
    };
    let line = format!(
        "{name} ({channel}) {} from Canonical\u{2713} {verb}\n",
        rev.version
    );
    activate(m, name, snap);
    ok(line)
}

/// Points `current` at the new revision, links its apps into /snap/bin,
/// and (re)starts its daemons as snapd does on install and refresh: a
/// daemon that was disabled before a refresh stays disabled and stopped
/// (snapd's stop-snap-services records the disabled ones, and
/// start-snap-services leaves them out).
fn activate(m: &mut Machine, name: &str, snap: InstalledSnap) {
    let base = m.root.join("snap").join(name);
    let current = base.join("current");
    let _ = std::fs::remove_file(&current);
    let _ = std::os::unix::fs::symlink(&snap.revision, &current);
    let bin = m.root.join("snap/bin");
    let _ = std::fs::create_dir_all(&bin);
    let mut started = Vec::new();
    for (app, daemon) in &snap.apps {
        let link = if app == name {
            bin.join(name)
        } else {
            bin.join(format!("{name}.{app}"))
        };
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink("/usr/bin/snap", &link);
        if daemon.is_some() {
            let unit = format!("snap.{name}.{app}.service");
            crate::processes::write_unit(m, name, app, &unit);
            let disabled = m.services.get(&unit).is_some_and(|s| !s.enabled);
            let svc = m.services.entry(unit.clone()).or_default();
            if disabled {
                svc.active = false;
            } else {
                svc.active = true;
                svc.enabled = true;
                svc.starts += 1;
                started.push(unit);
            }
        }
    }
    m.snaps.insert(name.to_string(), snap);
    for unit in started {
        note_start(m, &unit);
    }
}

fn snap_refresh(m: &mut Machine, rest: &[String]) -> Out {
    let older = version_tuple(&m.snapd_version) < (2, 58);
    let mut spec = vec![
        value(&["channel"]),
        boolean(&["classic"]),
        boolean(&["amend"]),
    ];
    if !older {
        spec.push(boolean(&["hold"]));
    }
    let p = match parse_flags(rest, &spec) {
        Ok(p) => p,
        Err(out) => return out,
    };
    if p.is_set("hold") {
        let names: Vec<&String> = p.positional.iter().collect();
        for name in &names {
            if !m.snaps.contains_key(*name) {
                return fail(1, format!("error: snap \"{name}\" is not installed\n"));
            }
        }
        for name in &names {
            if let Some(s) = m.snaps.get_mut(*name) {
                s.held = true;
            }
        }
        let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        return ok(format!(
            "General refreshes of {} held indefinitely\n",
            quoted.join(", ")
        ));
    }
    let [name] = p.positional.as_slice() else {
        return fail(
            1,
            "error: (simulation) refresh takes exactly one snap name\n",
        );
    };
    let Some(installed) = m.snaps.get(name).cloned() else {
        return fail(1, format!("error: snap \"{name}\" is not installed\n"));
    };
    if matches!(installed.source, SnapSource::Local(_)) && !p.is_set("amend") {
        return fail(1, format!("error: local snap \"{name}\" is unknown to the store, use --amend to proceed anyway\n"));
    }
    let channel = p
        .get("channel")
        .map(str::to_string)
        .or(installed.channel.clone())
        .unwrap_or_else(|| "latest/stable".into());
    let full = if channel.contains('/') {
        channel.clone()
    } else {
        format!("latest/{channel}")
    };
    let same = installed.source == SnapSource::Store
        && installed.channel.as_deref() == Some(full.as_str())
        && m.store
            .get(name)
            .and_then(|c| c.get(&full))
            .map(|r| r.revision.to_string())
            == Some(installed.revision.clone());
    if same {
        return ok(format!("snap \"{name}\" has no updates available\n"));
    }
    install_from_store(
        m,
        name,
        &channel,
        p.is_set("classic") || installed.classic && p.get("channel").is_none(),
        "refreshed",
    )
}

fn version_tuple(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn snap_remove(m: &mut Machine, rest: &[String]) -> Out {
    let p = match parse_flags(rest, &[boolean(&["purge"])]) {
        Ok(p) => p,
        Err(out) => return out,
    };
    let mut out = String::new();
    for name in &p.positional {
        if m.snaps.remove(name).is_none() {
            out.push_str(&format!("snap \"{name}\" is not installed\n"));
            continue;
        }
        m.services
            .retain(|svc, _| !svc.starts_with(&format!("snap.{name}.")));
        m.snap_config.remove(name);
        let _ = std::fs::remove_dir_all(m.root.join("snap").join(name));
        crate::processes::remove_units(m, name);
        out.push_str(&format!("{name} removed\n"));
    }
    ok(out)
}

/// `snap info` as snapd 2.63 prints it (cmd/snap/cmd_info.go): the
/// snap's header, what is installed and tracked, and under `channels:`
/// every track (latest first, then the newest) with its four risks, a
/// closed risk after an open one shown as `^` (it follows the one above),
/// one before any as `--`; aligned as its tabwriter aligns them.
fn snap_info(m: &mut Machine, rest: &[String]) -> Out {
    let p = match parse_flags(rest, &[value(&["unicode"]), boolean(&["verbose"])]) {
        Ok(p) => p,
        Err(out) => return out,
    };
    let never = p.get("unicode") == Some("never");
    let (uparrow, dash, tick) = if never {
        ("^", "--", "**")
    } else {
        ("\u{2191}", "\u{2013}", "\u{2713}")
    };
    let [name] = p.positional.as_slice() else {
        return fail(
            1,
            "error: the required argument `<snap> (at least 1 argument)` was not provided\n",
        );
    };
    let remote = m.store.get(name).filter(|_| !m.store_unreachable);
    let local = m.snaps.get(name);
    if remote.is_none() && local.is_none() {
        return fail(1, format!("error: no snap found for \"{name}\"\n"));
    }
    let mut out = format!(
        "name:      {name}\nsummary:   {name}\npublisher: Canonical{tick}\nstore-url: https://snapcraft.io/{name}\nlicense:   Apache-2.0\ndescription: |\n  {name}\n"
    );
    if let Some(s) = local {
        if let Some(channel) = &s.channel {
            out.push_str(&format!("tracking:     {channel}\n"));
        }
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(channels) = remote {
        let mut tracks: Vec<&str> = channels
            .keys()
            .filter_map(|c| c.split('/').next())
            .collect();
        tracks.sort_by_key(|t| (*t != "latest", std::cmp::Reverse(version_tuple(t))));
        tracks.dedup();
        for track in tracks {
            let mut open = false;
            for risk in ["stable", "candidate", "beta", "edge"] {
                let channel = format!("{track}/{risk}");
                let shown = match channels.get(&channel) {
                    Some(r) => {
                        open = true;
                        let notes = if r.classic { "classic" } else { "-" };
                        format!("{} 2025-01-16 ({}) 20MB {notes}", r.version, r.revision)
                    }
                    None if open => uparrow.to_string(),
                    None => dash.to_string(),
                };
                rows.push((format!("  {channel}"), shown));
            }
        }
    }
    let installed = local.map(|s| {
        let notes = if s.classic { "classic" } else { "-" };
        format!("{} ({}) 20MB {notes}", s.version, s.revision)
    });
    let width = rows
        .iter()
        .map(|(c, _)| c.len() + 1)
        .chain(installed.iter().map(|_| "installed:".len()))
        .max()
        .unwrap_or(0);
    if !rows.is_empty() {
        out.push_str("channels:\n");
    }
    for (channel, shown) in rows {
        out.push_str(&format!("{:<width$} {shown}\n", format!("{channel}:")));
    }
    if let Some(installed) = installed {
        out.push_str(&format!("{:<width$} {installed}\n", "installed:"));
    }
    ok(out)
}

fn snap_list(m: &mut Machine, rest: &[String]) -> Out {
    let wanted: Vec<&String> = rest.iter().filter(|a| !a.starts_with('-')).collect();
    let rows: Vec<(&String, &InstalledSnap)> = m
        .snaps
        .iter()
        .filter(|(n, _)| wanted.is_empty() || wanted.contains(n))
        .collect();
    if rows.is_empty() {
        if !wanted.is_empty() {
            return fail(1, "error: no matching snaps installed\n");
        }
        return Out {
            stdout: String::new(),
            stderr: "No snaps are installed yet. Try 'snap install hello-world'.\n".into(),
            exit: 0,
        };
    }
    let mut out = format!(
        "{:<12} {:<10} {:<5} {:<14} {:<11} {}\n",
        "Name", "Version", "Rev", "Tracking", "Publisher", "Notes"
    );
    for (name, s) in rows {
        let (tracking, publisher) = match &s.source {
            SnapSource::Store => (
                s.channel.clone().unwrap_or("-".into()),
                "canonical\u{2713}".to_string(),
            ),
            SnapSource::Local(_) => ("-".into(), "-".into()),
        };
        // snapd notes the confinement and a hold; a file's revision is
        // in Rev (x1, x2, ...), not here.
        let mut notes = vec![];
        if s.classic {
            notes.push("classic");
        }
        if s.held && version_tuple(&m.snapd_version) >= (2, 58) {
            notes.push("held");
        }
        let notes = if notes.is_empty() {
            "-".to_string()
        } else {
            notes.join(",")
        };
        out.push_str(&format!(
            "{:<12} {:<10} {:<5} {:<14} {:<11} {}\n",
            name, s.version, s.revision, tracking, publisher, notes
        ));
    }
    ok(out)
}

fn snap_set(m: &mut Machine, rest: &[String], unset: bool) -> Out {
    let Some((name, pairs)) = rest.split_first() else {
        return fail(
            1,
            "error: the required argument `<snap>` was not provided\n",
        );
    };
    let Some(installed) = m.snaps.get(name) else {
        return fail(1, format!("error: snap \"{name}\" is not installed\n"));
    };
    if pairs.is_empty() {
        return fail(
            1,
            "error: the required argument `<conf value>` was not provided\n",
        );
    }
    if !installed.configure_hook {
        return fail(
            1,
            format!("error: cannot perform the following tasks:\n- Run configure hook of \"{name}\" snap (snap \"{name}\" has no \"configure\" hook)\n"),
        );
    }
    let config = m.snap_config.entry(name.clone()).or_default();
    for pair in pairs {
        if unset {
            config.remove(pair);
            continue;
        }
        if let Some(key) = pair.strip_suffix('!') {
            config.remove(key);
            continue;
        }
        let Some((key, raw)) = pair.split_once('=') else {
            return fail(
                1,
                format!("error: invalid configuration: {pair:?} (want key=value)\n"),
            );
        };
        // snapd stores a value that parses as JSON as that JSON.
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        if value.is_null() {
            config.remove(key);
        } else {
            config.insert(key.to_string(), value);
        }
    }
    ok("")
}

fn snap_get(m: &mut Machine, rest: &[String]) -> Out {
    let p = match parse_flags(rest, &[boolean(&["d"]), boolean(&["t"]), boolean(&["l"])]) {
        Ok(p) => p,
        Err(out) => return out,
    };
    let Some((name, keys)) = p.positional.split_first() else {
        return fail(
            1,
            "error: the required argument `<snap>` was not provided\n",
        );
    };
    if !m.snaps.contains_key(name) {
        return fail(1, format!("error: snap \"{name}\" is not installed\n"));
    }
    let config = m.snap_config.get(name).cloned().unwrap_or_default();
    if keys.is_empty() && config.is_empty() {
        return fail(1, format!("error: snap \"{name}\" has no configuration\n"));
    }
    match keys {
        [key] if !p.is_set("d") => match config.get(key) {
            Some(Value::String(s)) => ok(format!("{s}\n")),
            Some(v) => ok(format!("{v}\n")),
            None => fail(
                1,
                format!("error: snap \"{name}\" has no \"{key}\" configuration option\n"),
            ),
        },
        _ => ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&config).unwrap_or_default()
        )),
    }
}

/// `ip [-j] [-br] addr show [scope <scope>]`, printed as iproute2 6.1
/// prints it (held to the real one by tests/machine_sim.rs): with a
/// scope, an interface whose addresses are all of other scopes is left
/// out, one without any address is listed, and an address left out of a
/// listed interface is `{}` in JSON. Other commands are not simulated.
fn ip(m: &mut Machine, args: &[String]) -> Out {
    if let Some(fault) = m
        .faults
        .iter_mut()
        .find(|f| f.command == "ip" && f.remaining > 0)
    {
        fault.remaining -= 1;
        return fail(fault.exit, fault.stderr.clone());
    }
    let (mut json, mut brief) = (false, false);
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "-j" | "-json" => json = true,
            "-br" | "-brief" => brief = true,
            _ => break,
        }
        rest = tail;
    }
    let scope = match rest {
        [object, show] if is_addr(object) && show == "show" => None,
        [object, show, scope, value] if is_addr(object) && show == "show" && scope == "scope" => {
            Some(value.as_str())
        }
        _ => {
            return fail(
                255,
                format!("ip: (simulation) unsupported arguments {args:?}\n"),
            )
        }
    };
    if !(json && brief) {
        return fail(255, "ip: (simulation) only -j -br is simulated\n");
    }
    let wanted = |a: &InterfaceAddress| scope.is_none_or(|s| a.scope == s);
    // In iproute2's key order (serde_json's maps sort theirs).
    let text = |s: &str| Value::String(s.to_string()).to_string();
    let links: Vec<String> = m
        .interfaces
        .iter()
        .filter(|i| i.addresses.is_empty() || i.addresses.iter().any(wanted))
        .map(|i| {
            let addresses: Vec<String> = i
                .addresses
                .iter()
                .map(|a| match wanted(a) {
                    true => format!(
                        r#"{{"local":{},"prefixlen":{}}}"#,
                        text(&a.local),
                        a.prefixlen
                    ),
                    false => "{}".to_string(),
                })
                .collect();
            let peer = i.link.as_deref().map(|p| format!(r#""link":{},"#, text(p)));
            format!(
                r#"{{{}"ifname":{},"operstate":{},"addr_info":[{}]}}"#,
                peer.unwrap_or_default(),
                text(&i.name),
                text(&i.operstate),
                addresses.join(",")
            )
        })
        .collect();
    ok(format!("[{}]\n", links.join(",")))
}

fn is_addr(object: &str) -> bool {
    matches!(object, "a" | "addr" | "address")
}

/// procps' `sysctl`: `-p <file>` loads `key = value` lines (`#` and `;`
/// start comments), printing each it sets; a key the kernel refuses or
/// does not have is reported on stderr and the rest still set, and the
/// exit status is then 255.
fn sysctl(m: &mut Machine, args: &[String]) -> Out {
    let file = match args {
        [flag, file] if flag == "-p" || flag == "--load" => file.clone(),
        [flag] if flag == "-p" => "/etc/sysctl.conf".to_string(),
        _ => {
            return fail(
                255,
                format!("sysctl: (simulation) unsupported arguments {args:?}\n"),
            )
        }
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => return fail(255, format!("sysctl: cannot open \"{file}\": {e}\n")),
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            stderr.push_str(&format!("sysctl: {file}: no '=' in \"{line}\"\n"));
            continue;
        };
        let key = key.trim().replace('/', ".");
        let value = value.trim();
        if m.sysctl_refused.contains(&key) {
            stderr.push_str(&format!("sysctl: permission denied on key \"{key}\"\n"));
            continue;
        }
        m.sysctl.insert(key.clone(), value.to_string());
        stdout.push_str(&format!("{key} = {value}\n"));
    }
    Out {
        exit: if stderr.is_empty() { 0 } else { 255 },
        stdout,
        stderr,
    }
}

fn unit_name(u: &str) -> String {
    if u.contains('.')
        && (u.ends_with(".service") || u.ends_with(".socket") || u.ends_with(".timer"))
    {
        u.to_string()
    } else {
        format!("{u}.service")
    }
}

fn systemctl(m: &mut Machine, args: &[String]) -> Out {
    let flags = [
        boolean(&["now"]),
        boolean(&["quiet", "q"]),
        boolean(&["no-block"]),
        boolean(&["no-pager"]),
    ];
    let p = match flags::parse(args, &flags) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                1,
                format!(
                    "systemctl: {}\n",
                    e.replace("option provided but not defined: ", "unrecognized option '")
                        .to_string()
                        + "'"
                ),
            )
        }
    };
    let Some((verb, units)) = p.positional.split_first() else {
        return fail(1, "systemctl: too few arguments\n");
    };
    let units: Vec<String> = units.iter().map(|u| unit_name(u)).collect();
    match verb.as_str() {
        "is-active" => {
            let mut out = String::new();
            let mut all = true;
            for u in &units {
                let active = m.services.get(u).is_some_and(|s| s.active);
                all &= active;
                out.push_str(if active { "active\n" } else { "inactive\n" });
            }
            let out = if p.is_set("quiet") {
                String::new()
            } else {
                out
            };
            Out {
                stdout: out,
                stderr: String::new(),
                exit: if all { 0 } else { 3 },
            }
        }
        "is-enabled" => {
            let mut out = String::new();
            let mut all = true;
            for u in &units {
                match m.services.get(u) {
                    Some(s) => {
                        all &= s.enabled;
                        out.push_str(if s.enabled { "enabled\n" } else { "disabled\n" });
                    }
                    None => {
                        return fail(
                            1,
                            format!(
                            "Failed to get unit file state for {u}: No such file or directory\n"
                        ),
                        )
                    }
                }
            }
            Out {
                stdout: out,
                stderr: String::new(),
                exit: if all { 0 } else { 1 },
            }
        }
        "daemon-reload" => ok(""),
        "start" | "stop" | "restart" | "enable" | "disable" => {
            if units.is_empty() {
                return fail(1, "Too few arguments.\n");
            }
            for u in &units {
                if !m.services.contains_key(u) {
                    let what = if verb == "enable" || verb == "disable" {
                        format!("Failed to {verb} unit: Unit file {u} does not exist.\n")
                    } else {
                        format!("Failed to {verb} {u}: Unit {u} not found.\n")
                    };
                    return fail(
                        if verb == "enable" || verb == "disable" {
                            1
                        } else {
                            5
                        },
                        what,
                    );
                }
            }
            let crashing = m.crashing.clone();
            for u in &units {
                let before = m.services.get(u).map(|s| s.starts).unwrap_or(0);
                let s = m.services.entry(u.clone()).or_default();
                match verb.as_str() {
                    "start" if !s.active => {
                        s.active = true;
                        s.starts += 1;
                    }
                    "restart" => {
                        s.active = true;
                        s.starts += 1;
                    }
                    "stop" => s.active = false,
                    "enable" => {
                        s.enabled = true;
                        if p.is_set("now") && !s.active {
                            s.active = true;
                            s.starts += 1;
                        }
                    }
                    "disable" => {
                        s.enabled = false;
                        if p.is_set("now") {
                            s.active = false;
                        }
                    }
                    _ => {}
                }
                if crashing.contains(u) {
                    s.active = false;
                }
                if s.starts > before {
                    note_start(m, u);
                }
            }
            ok("")
        }
        other => fail(1, format!("Unknown command verb {other}.\n")),
    }
}
