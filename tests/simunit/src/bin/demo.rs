//! `juju-sim-demo <charm>`: the packed charm in simulated units next to
//! today's Charmed Kubernetes (a control plane whose API server runs on
//! loopback, easyrsa, containerd, flannel), a few lines per scene: deploy,
//! an upgrade refused and why, the control plane upgraded first and the
//! drained upgrade, a three-unit rolling upgrade, a CIS report, and a
//! removal. Every hook's statuses, the operator log and the machine calls
//! go to build/demo.log.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use juju_sim::application::Application;
use juju_sim::cluster::{Cluster, Master};
use juju_sim::{CharmSource, HookRun, Host, Sim, SimOptions};
use serde_json::{json, Value};

struct Demo {
    charm: PathBuf,
    failed: usize,
    log: String,
}

impl Demo {
    /// A unit as an operator deploys it: this machine's CNI plugins
    /// (Debian's real ones, from `make fixtures`), zero-byte snaps ("use
    /// the store", which serves 1.31 and 1.32), on 1.31 and held back
    /// from upgrades; the ubuntu account the CIS reports are saved for.
    fn unit(&self, number: u32, host: Option<Host>) -> Sim {
        let sim = Sim::new(
            &CharmSource::Packed(self.charm.clone()),
            SimOptions {
                root_var: Some("KUBERNETES_WORKER_ROOT".into()),
                unit_number: number,
                host,
                ..SimOptions::default()
            },
        );
        let arch = juju_sim::host_arch();
        let plugins = juju_sim::fixtures::cni_plugins_dir(Path::new("."), arch);
        let tarball = juju_sim::fixtures::cni_tarball(&plugins, &sim.dir().join("cni.tgz"), None);
        sim.attach_file(&format!("cni-{arch}"), &tarball);
        for name in ["kubectl", "kubelet", "kube-proxy"] {
            sim.attach(name, b"");
        }
        sim.edit_machine(|m| m.store = juju_sim::fixtures::kubernetes_store());
        sim.set_config("channel", "1.31/stable");
        sim.set_config("require-manual-upgrade", true);
        with_ubuntu(&sim);
        sim
    }

    fn check(&mut self, run: HookRun) {
        if run.exit != 0 {
            self.failed += 1;
            eprintln!("hook {} exited {}:\n{}", run.name, run.exit, run.stderr);
        }
    }

    fn checks(&mut self, runs: Vec<HookRun>) {
        for run in runs {
            self.check(run);
        }
    }

    fn action(&mut self, sim: &Sim, name: &str, params: Value) -> (String, String, Value) {
        let (run, action) = sim.action(name, params);
        self.check(run);
        (action.status, action.message, Value::Object(action.results))
    }

    /// Keeps a unit's whole story for build/demo.log.
    fn record(&mut self, title: &str, sim: &Sim) {
        let _ = writeln!(self.log, "===== {title}: {}\n", sim.unit().unit);
        let _ = writeln!(self.log, "{}", sim.timeline());
        for log in &sim.unit().logs {
            let _ = writeln!(
                self.log,
                "  {:<8} [{}] {}",
                log.level, log.hook, log.message
            );
        }
        for call in &sim.machine().calls {
            let _ = writeln!(
                self.log,
                "  $ {} {} -> {}",
                call.program,
                call.args.join(" "),
                call.exit
            );
        }
        self.log.push('\n');
    }
}

/// The ubuntu account, with this user's ids (the demo may run as anyone),
/// and its home.
fn with_ubuntu(sim: &Sim) {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let root = sim.root();
    let _ = std::fs::create_dir_all(root.join("etc"));
    let _ = std::fs::create_dir_all(root.join("home/ubuntu"));
    let _ = std::fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/bash\nubuntu:x:{uid}:{gid}:Ubuntu:/home/ubuntu:/bin/bash\n"
        ),
    );
    let _ = std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nubuntu:x:{gid}:\n"),
    );
}

fn status(sim: &Sim) -> String {
    let (status, message) = sim.status();
    format!("{status}: {message}")
}

fn kubelet(sim: &Sim) -> String {
    sim.machine()
        .snaps
        .get("kubelet")
        .map(|s| s.version.clone())
        .unwrap_or_else(|| "none".into())
}

fn main() -> ExitCode {
    let Some(charm) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: juju-sim-demo <path/to/kubernetes-worker.charm>");
        return ExitCode::from(2);
    };
    if !charm.exists() {
        eprintln!(
            "juju-sim-demo: {} does not exist (run `make charm`)",
            charm.display()
        );
        return ExitCode::from(2);
    }
    let mut demo = Demo {
        charm,
        failed: 0,
        log: String::new(),
    };

    println!("== 1. Deploy next to today's control plane (v1.31.2)");
    let sim = demo.unit(0, None);
    demo.checks(sim.deploy());
    let cluster = Cluster::new();
    cluster.relate(&sim, Master::Today);
    let args = sim
        .machine()
        .snap_config
        .get("kubelet")
        .and_then(|c| c.get("args").cloned())
        .unwrap_or_default();
    println!("   kubelet {} running with: {args}", kubelet(&sim));
    println!("   status: {}", status(&sim));

    println!("\n== 2. The channel moves to 1.32 while the control plane is on 1.31");
    demo.check(sim.configure("channel", "1.32/stable"));
    println!("   status: {}", status(&sim));
    let (outcome, message, _) = demo.action(&sim, "upgrade", json!({}));
    println!("   upgrade action: {outcome}: {message}");

    println!("\n== 3. The control plane goes first; then the drained upgrade");
    cluster.api.set_version("v1.32.0");
    let add_web = |name: &str| {
        cluster.api.add_pod(juju_sim::cluster::pod(
            name,
            "web",
            &cluster.node,
            Some("ReplicaSet"),
        ))
    };
    add_web("web-1");
    let (outcome, message, results) = demo.action(&sim, "upgrade", json!({}));
    println!("   upgrade action: {outcome}{message}");
    for key in ["kubelet", "skew", "drain", "ready", "uncordoned"] {
        if let Some(v) = results.get(key) {
            println!("     {key}: {}", v.as_str().unwrap_or_default());
        }
    }
    println!("   kubelet now {}; status: {}", kubelet(&sim), status(&sim));

    println!("\n== 4. A CIS benchmark report (cis-1.23, kube-bench's rules, air-gapped)");
    let (outcome, message, results) = demo.action(&sim, "cis-benchmark", json!({}));
    let field = |key: &str| {
        results
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let summary = field("summary");
    let counts: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains(" checks "))
        .take(4)
        .collect();
    println!(
        "   cis-benchmark action: {outcome}{message}: {}",
        counts.join(", ")
    );
    println!("   not passed: {}", field("checks"));
    println!("   report: {}", field("report"));

    println!("\n== 5. Removal: the node is drained, then deleted");
    cluster.api.add_node("worker-b");
    add_web("web-2");
    demo.check(sim.configure("removal-drain-timeout", 30));
    demo.checks(sim.remove_unit());
    println!("   status: {}", status(&sim));
    demo.record("one unit", &sim);

    println!("\n== 6. A rolling upgrade: three units, `upgrade all-units=true` on the leader");
    match Host::possible() {
        Err(why) => println!("   skipped: {why}"),
        Ok(()) => roll(&mut demo),
    }

    let log = Path::new("build/demo.log");
    let _ = std::fs::create_dir_all("build");
    if std::fs::write(log, &demo.log).is_ok() {
        println!(
            "\nEvery hook, status, log line and machine call: {}",
            log.display()
        );
    }
    if demo.failed > 0 {
        eprintln!("{} hook(s) failed", demo.failed);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Three units on 1.31, each its own node (a host name of its own), the
/// control plane on 1.32; the operator moves the channel and runs the
/// upgrade once, on the leader.
fn roll(demo: &mut Demo) {
    let cluster = Cluster::for_node("worker-0");
    cluster.api.set_version("v1.32.0");
    let mut units = Vec::new();
    for n in 0..3 {
        let host = Host {
            hostname: format!("worker-{n}"),
            hosts: format!("127.0.0.1 localhost\n10.1.0.{} worker-{n}\n", 10 + n),
        };
        let sim = demo.unit(n, Some(host));
        demo.checks(sim.deploy());
        cluster
            .peer(&format!("worker-{n}"))
            .relate(&sim, Master::Today);
        units.push(sim);
    }
    let app = Application::new(units, "coordinator");
    for sim in &app.units {
        demo.check(sim.configure("channel", "1.32/stable"));
    }
    demo.checks(app.settle());
    let (outcome, message, results) =
        demo.action(&app.units[0], "upgrade", json!({"all-units": true}));
    println!(
        "   upgrade all-units=true: {outcome}{message}; order: {}",
        results["order"].as_str().unwrap_or_default()
    );
    demo.checks(app.settle());
    for sim in &app.units {
        println!(
            "   {}: kubelet {}; {}",
            sim.unit().unit,
            kubelet(sim),
            status(sim)
        );
    }
    for sim in &app.units {
        demo.record("rolling upgrade", sim);
    }
}
