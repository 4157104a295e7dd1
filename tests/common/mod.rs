//! Helpers shared by the integration tests: the charm under test, deployed
//! into a simulated unit, and a probe charm for testing the simulation's
//! own contract.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use juju_sim::{CharmSource, Sim, SimOptions};

pub const ROOT_VAR: &str = "KUBERNETES_WORKER_ROOT";

/// The architecture under test: `KW_TEST_ARCH` (with `KW_TEST_BINARY`,
/// the hook binary built for it, which binfmt runs under qemu-user), or
/// this machine's with the binary cargo built for the tests.
pub fn arch() -> &'static str {
    static ARCH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ARCH.get_or_init(|| {
        std::env::var("KW_TEST_ARCH").unwrap_or_else(|_| juju_sim::host_arch().to_string())
    })
}

/// The hook binary under test: `KW_TEST_BINARY` (a shipped one), or the
/// one cargo built for the tests.
pub fn binary() -> PathBuf {
    match std::env::var_os("KW_TEST_BINARY") {
        Some(path) => PathBuf::from(path),
        None => {
            assert_eq!(
                arch(),
                juju_sim::host_arch(),
                "KW_TEST_ARCH needs KW_TEST_BINARY"
            );
            PathBuf::from(env!("CARGO_BIN_EXE_kubernetes-worker"))
        }
    }
}

/// The charm from this source tree, with the binary under test at
/// `bin/kubernetes-worker-<arch>`.
pub fn charm() -> CharmSource {
    CharmSource::Tree {
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        binaries: vec![(format!("bin/kubernetes-worker-{}", arch()), binary())],
    }
}

/// A fresh unit of the real charm, on a machine of the architecture under
/// test.
pub fn unit() -> Sim {
    unit_on(None)
}

/// The same on a machine with names of its own (see [`juju_sim::Host`]).
pub fn unit_on(host: Option<juju_sim::Host>) -> Sim {
    unit_numbered(0, host)
}

/// Unit `number` of the application (`kubernetes-worker/<number>`; unit 0
/// is the leader).
pub fn unit_numbered(number: u32, host: Option<juju_sim::Host>) -> Sim {
    Sim::new(
        &charm(),
        SimOptions {
            arch: arch().to_string(),
            root_var: Some(ROOT_VAR.into()),
            machine: (arch() != juju_sim::host_arch())
                .then(|| juju_sim::kernel_machine(arch()).to_string()),
            host,
            unit_number: number,
            ..SimOptions::default()
        },
    )
}

/// A charm whose dispatch runs the shell script `probe.sh` in its dir, with
/// this charm's metadata: for testing what the simulated agent does.
pub struct Probe {
    pub sim: Sim,
    _src: tempfile::TempDir,
}

impl Probe {
    pub fn new() -> Probe {
        let src = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
            std::fs::copy(repo.join(f), src.path().join(f)).unwrap();
        }
        let dispatch = src.path().join("dispatch");
        std::fs::write(&dispatch, "#!/bin/sh\n. \"$JUJU_CHARM_DIR/probe.sh\"\n").unwrap();
        std::fs::set_permissions(
            &dispatch,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let sim = Sim::new(
            &CharmSource::Tree {
                dir: src.path().to_path_buf(),
                binaries: vec![],
            },
            SimOptions::default(),
        );
        let probe = Probe { sim, _src: src };
        probe.script("exit 0\n");
        probe
    }

    /// Sets the script the next hooks run.
    pub fn script(&self, script: &str) {
        std::fs::write(self.sim.charm_dir().join("probe.sh"), script).unwrap();
    }

    /// Runs `script` as hook `hook` and returns (exit, stdout, stderr).
    pub fn run(&self, hook: &str, script: &str) -> juju_sim::HookRun {
        self.script(script);
        self.sim.hook(hook)
    }
}

/// What one command in a probe hook did.
#[derive(Debug, Clone)]
pub struct Res {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Probe {
    /// Runs each `(label, shell command)` inside hook `hook` and returns
    /// what each printed and its exit code, by label. The hook itself
    /// exits 0 unless `fail` is set.
    pub fn calls(
        &self,
        hook: &str,
        commands: &[(&str, &str)],
        fail: bool,
    ) -> std::collections::BTreeMap<String, Res> {
        let results = self.sim.dir().join("probe-results");
        let _ = std::fs::remove_dir_all(&results);
        std::fs::create_dir_all(&results).unwrap();
        let mut script = format!(
            "R={}\nrun() {{ l=$1; shift; \"$@\" >\"$R/$l.out\" 2>\"$R/$l.err\"; echo $? >\"$R/$l.rc\"; }}\n",
            results.display()
        );
        for (label, command) in commands {
            script.push_str(&command.replace("run ", &format!("run {label} ")));
            script.push('\n');
        }
        script.push_str(if fail { "exit 1\n" } else { "exit 0\n" });
        let run = self.run(hook, &script);
        self.script("exit 0\n");
        assert_eq!(
            run.exit,
            if fail { 1 } else { 0 },
            "probe hook: {}",
            run.stderr
        );
        commands
            .iter()
            .map(|(label, _)| {
                let read = |ext: &str| {
                    std::fs::read_to_string(results.join(format!("{label}.{ext}")))
                        .unwrap_or_else(|_| panic!("command {label} did not run"))
                };
                let res = Res {
                    stdout: read("out"),
                    stderr: read("err"),
                    code: read("rc").trim().parse().unwrap(),
                };
                (label.to_string(), res)
            })
            .collect()
    }

    /// One command in a plain hook.
    pub fn call(&self, hook: &str, command: &str) -> Res {
        self.calls(hook, &[("x", &format!("run {command}"))], false)
            .remove("x")
            .unwrap()
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A CNI tarball of `arch`'s real plugins (all, or only `names`). The
/// full one is built once and shared.
pub fn cni_tgz(dir: &Path, arch: &str, names: Option<&[&str]>) -> PathBuf {
    let plugins = juju_sim::fixtures::cni_plugins_dir(repo(), arch);
    if names.is_some() {
        return juju_sim::fixtures::cni_tarball(
            &plugins,
            &dir.join(format!("cni-{arch}.tgz")),
            names,
        );
    }
    shared_tgz(&format!("cni-{arch}"), &plugins, None)
}

/// The real plugins a unit is deployed with by default: the three a node
/// needs at the least (the bridge, its IP addresses, loopback). Debian's
/// whole set is 16 binaries and 60 MB unpacked, which every deployment
/// would unpack and sync, six seconds of each test under qemu-user for
/// s390x; the tests that are about the tarball itself use the whole set
/// ([`cni_tgz`] with `None`).
pub const NODE_PLUGINS: &[&str] = &["bridge", "host-local", "loopback"];

/// The tarball of [`NODE_PLUGINS`] for `arch`, built once and shared.
pub fn node_cni_tgz(arch: &str) -> PathBuf {
    let plugins = juju_sim::fixtures::cni_plugins_dir(repo(), arch);
    shared_tgz(&format!("cni-{arch}-node"), &plugins, Some(NODE_PLUGINS))
}

/// `build/fixtures/<name>.tgz`, built once by whichever test process
/// needs it first.
fn shared_tgz(name: &str, plugins: &Path, names: Option<&[&str]>) -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let shared = repo().join(format!("build/fixtures/{name}.tgz"));
    if !shared.exists() {
        // Built aside and renamed: test processes may race to build it.
        let tmp = repo().join(format!("build/fixtures/.{name}.{}.tgz", std::process::id()));
        juju_sim::fixtures::cni_tarball(plugins, &tmp, names);
        std::fs::rename(&tmp, &shared).unwrap();
    }
    shared
}

/// A unit as an operator deploys it: the store serving the snaps, this
/// arch's CNI tarball attached, zero-byte snap resources (use the store).
pub fn provisioned() -> (Sim, tempfile::TempDir) {
    provisioned_on(None)
}

/// The same on a machine with names of its own.
pub fn provisioned_on(host: Option<juju_sim::Host>) -> (Sim, tempfile::TempDir) {
    provisioned_as(0, host)
}

/// Unit `number`, provisioned.
pub fn provisioned_as(number: u32, host: Option<juju_sim::Host>) -> (Sim, tempfile::TempDir) {
    let sim = unit_numbered(number, host);
    let scratch = tempfile::tempdir().unwrap();
    sim.edit_machine(|m| m.store = juju_sim::fixtures::kubernetes_store());
    sim.attach_file(&format!("cni-{}", arch()), &node_cni_tgz(arch()));
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        sim.attach(snap, b"");
    }
    (sim, scratch)
}

/// Every file and directory under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}
pub mod cluster;

/// The flags a CDK snap's wrapper passes its daemon for an `args` string.
pub fn bash_args(args: &str) -> std::collections::BTreeMap<String, String> {
    juju_sim::fixtures::bash_argv(args)
        .into_iter()
        .map(|arg| {
            let flag = arg
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("{arg:?} is not a flag"));
            let (k, v) = flag.split_once('=').unwrap_or((flag, "true"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A file on the simulated machine, as text.
pub fn read(sim: &Sim, path: &str) -> String {
    std::fs::read_to_string(sim.root().join(path.trim_start_matches('/'))).unwrap()
}

/// A YAML file on the simulated machine.
pub fn yaml(sim: &Sim, path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(sim, path)).unwrap()
}

/// How often the snap's daemon has been started.
pub fn starts(sim: &Sim, snap: &str) -> u32 {
    sim.machine().services[&format!("snap.{snap}.daemon.service")].starts
}

/// The unit says its node runs (the unit's history shown if not).
pub fn assert_active(sim: &Sim) {
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into()),
        "{}",
        sim.timeline()
    );
}

/// A unit active in today's cluster, on a machine that holds `files`
/// (machine path, content) before the first hook.
pub fn active_today_with(files: &[(&str, &str)]) -> (Sim, tempfile::TempDir, cluster::Cluster) {
    let (sim, scratch) = provisioned();
    for (path, content) in files {
        let file = sim.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = cluster::Cluster::new();
    c.relate(&sim, cluster::Master::Today);
    assert_active(&sim);
    (sim, scratch, c)
}

/// Runs one of tests/today's scripts (today's Charmed Kubernetes code, in
/// the virtualenv `make today-venv` builds) on `case`, as JSON on its
/// stdin, and returns the JSON it prints.
pub fn today(script: &str, case: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("KW_TODAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("build/today-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `make today-venv` installs today's charm libraries",
        python.display()
    );
    let mut child = std::process::Command::new(python)
        .arg(repo.join("tests/today").join(script))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running today's code");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(case.to_string().as_bytes())
        .expect("writing the case");
    let out = child.wait_with_output().expect("today's code");
    assert!(out.status.success(), "tests/today/{script} failed");
    serde_json::from_slice(&out.stdout).expect("today's code prints JSON")
}
