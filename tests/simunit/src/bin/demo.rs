//! `juju-sim-demo <charm>`: deploys a packed charm into a simulated unit,
//! runs a unit's life (deploy, config change, relations, update-status,
//! stop), and prints the status timeline and what the charm did.

use std::path::PathBuf;
use std::process::ExitCode;

use juju_sim::{CharmSource, Sim, SimOptions};

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
    let sim = Sim::new(
        &CharmSource::Packed(charm.clone()),
        SimOptions {
            root_var: Some("KUBERNETES_WORKER_ROOT".into()),
            ..SimOptions::default()
        },
    );
    println!(
        "Deploying {} into a simulated unit at {}",
        charm.display(),
        sim.dir().display()
    );
    println!("(machine root: {})\n", sim.root().display());
    // What an operator attaches: this machine's CNI plugins (Debian's real
    // ones, from `make fixtures`) and zero-byte snaps, meaning "use the
    // store", which here serves kubectl, kubelet and kube-proxy.
    let arch = juju_sim::host_arch();
    let plugins = juju_sim::fixtures::cni_plugins_dir(std::path::Path::new("."), arch);
    let tarball = juju_sim::fixtures::cni_tarball(&plugins, &sim.dir().join("cni.tgz"), None);
    sim.attach_file(&format!("cni-{arch}"), &tarball);
    for name in ["kubectl", "kubelet", "kube-proxy"] {
        sim.attach(name, b"");
    }
    sim.edit_machine(|m| m.store = juju_sim::fixtures::kubernetes_store());
    let mut failed = 0;
    let mut check = |run: juju_sim::HookRun| {
        if run.exit != 0 {
            failed += 1;
            eprintln!("hook {} exited {}:\n{}", run.name, run.exit, run.stderr);
        }
    };
    for run in sim.deploy() {
        check(run);
    }
    // Today's Charmed Kubernetes: a control plane whose kube-control names
    // a Juju secret holding this node's tokens and the API endpoints (an
    // HTTPS server on loopback), easyrsa's CA, containerd (its socket
    // JSON-quoted, as charms.reactive sends it) and flannel.
    let cluster = juju_sim::cluster::Cluster::new();
    let rels = cluster.relate(&sim, juju_sim::cluster::Master::Today);
    let snap_args = |snap: &str| {
        sim.machine()
            .snap_config
            .get(snap)
            .and_then(|c| c.get("args").cloned())
            .unwrap_or_default()
    };
    println!("kubelet args: {}", snap_args("kubelet"));
    println!("kube-proxy args: {}", snap_args("kube-proxy"));
    for rel in sim.unit().relations {
        println!("published on {}: {:?}", rel.rid(), rel.local_unit);
    }
    // The control plane rotates the tokens: secret-changed.
    if let Some(secret) = &rels.secret {
        if let Some(run) = sim.set_secret_content(
            secret,
            &[
                ("kubelet-token", "kubelet-token-rotated"),
                ("proxy-token", &cluster.proxy_token),
                ("client-token", &cluster.client_token),
            ],
        ) {
            check(run);
        }
    }
    check(sim.configure("labels", "demo=true disk=ssd"));
    check(sim.configure("channel", "1.32/stable"));
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    check(run);
    println!(
        "upgrade action: {} {}",
        action.status,
        serde_json::Value::Object(action.results)
    );
    check(sim.hook("update-status"));
    check(sim.hook("update-status"));
    let labels = cluster
        .api
        .node(&cluster.node)
        .map(|n| n["metadata"]["labels"].clone())
        .unwrap_or_default();
    println!("node {} labels in the API server: {labels}", cluster.node);
    check(sim.hook("stop"));

    println!("Hook runs and the statuses each set:\n");
    print!("{}", sim.timeline());
    let unit = sim.unit();
    println!("\nOperator log (juju-log):");
    for log in &unit.logs {
        println!("  {:<8} [{}] {}", log.level, log.hook, log.message);
    }
    println!("\nHook tool calls: {}", unit.calls.len());
    let machine = sim.machine();
    println!("snap/systemctl calls: {}", machine.calls.len());
    for call in &machine.calls {
        println!(
            "  {} {} -> {}",
            call.program,
            call.args.join(" "),
            call.exit
        );
    }
    let (status, message) = sim.status();
    println!("\nFinal status: {status}: {message}");
    if failed > 0 {
        eprintln!("{failed} hook(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
