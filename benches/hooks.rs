//! `make bench`: what hooks cost, measured on the real binary in the
//! simulated unit, against the budgets of issue 6.
//!
//! Per hook kind: wall time (around the hook, as the agent sees it), the
//! binary's own CPU and peak RSS (getrusage of the hook process itself,
//! which it reports on stdout; the tools it runs are not included), hook-
//! tool calls and mutating snap/systemctl calls. Each figure is the median
//! of repeated runs after warm-up runs. Then the CNI extraction against
//! `tar -xzf` of the same file, interleaved A/B, and the binaries' sizes.
//! Timings are reported, never asserted: the tests assert behaviour.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use juju_sim::cluster::{Cluster, Master};
use juju_sim::{CharmSource, HookRun, Sim, SimOptions};

const RUNS: usize = 15;
const WARMUP: usize = 3;

struct Sample {
    wall: Duration,
    cpu_us: u64,
    rss_kib: u64,
    tool_calls: usize,
    mutating: usize,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_of(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64-unknown-linux-musl",
        "s390x" => "s390x-unknown-linux-gnu",
        "arm64" => "aarch64-unknown-linux-gnu",
        "ppc64el" => "powerpc64le-unknown-linux-gnu",
        _ => panic!("unknown arch {arch}"),
    }
}

/// The shipped binary, or the one `KW_BENCH_BINARY` names (`make
/// profile` builds an unstripped one, for its symbols).
fn binary(arch: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("KW_BENCH_BINARY") {
        return PathBuf::from(path);
    }
    repo()
        .join("target")
        .join(target_of(arch))
        .join("release/kubernetes-worker")
}

/// A unit of the shipped binary for `arch`, with its resources attached.
fn provisioned(arch: &str, scratch: &Path) -> Sim {
    let sim = Sim::new(
        &CharmSource::Tree {
            dir: repo(),
            binaries: vec![(format!("bin/kubernetes-worker-{arch}"), binary(arch))],
        },
        SimOptions {
            arch: arch.to_string(),
            root_var: Some("KUBERNETES_WORKER_ROOT".into()),
            machine: (arch != juju_sim::host_arch())
                .then(|| juju_sim::kernel_machine(arch).to_string()),
            ..SimOptions::default()
        },
    );
    sim.edit_machine(|m| m.store = juju_sim::fixtures::kubernetes_store());
    let tgz = scratch.join(format!("cni-{arch}.tgz"));
    if !tgz.exists() {
        let plugins = juju_sim::fixtures::cni_plugins_dir(&repo(), arch);
        juju_sim::fixtures::cni_tarball(&plugins, &tgz, None);
    }
    sim.attach_file(&format!("cni-{arch}"), &tgz);
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        sim.attach(snap, b"");
    }
    sim
}

/// Runs `hook` and measures it.
fn measure(sim: &Sim, hook: impl FnOnce(&Sim) -> HookRun) -> Sample {
    let mark = sim.mark();
    let started = Instant::now();
    let run = hook(sim);
    let wall = started.elapsed();
    run.assert_ok();
    let (cpu_us, rss_kib) = self_report(&run.stdout);
    Sample {
        wall,
        cpu_us,
        rss_kib,
        tool_calls: sim.tool_calls_since(mark).len(),
        mutating: sim
            .machine_calls_since(mark)
            .iter()
            .filter(|c| c.is_mutating())
            .count(),
    }
}

/// The binary's own line: "... done: wall W us, cpu user U us sys S us, peak rss R KiB".
fn self_report(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" done: wall "))
        .expect("the hook's cost line");
    let number_after = |key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    (
        number_after("cpu user ") + number_after(" sys "),
        number_after("peak rss "),
    )
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

struct Row {
    hook: &'static str,
    wall: Duration,
    cpu_us: u64,
    rss_kib: u64,
    tool_calls: usize,
    mutating: usize,
}

fn row(hook: &'static str, samples: Vec<Sample>) -> Row {
    Row {
        hook,
        wall: median(samples.iter().map(|s| s.wall).collect()),
        cpu_us: median(samples.iter().map(|s| s.cpu_us).collect()),
        rss_kib: median(samples.iter().map(|s| s.rss_kib).collect()),
        tool_calls: median(samples.iter().map(|s| s.tool_calls).collect()),
        mutating: median(samples.iter().map(|s| s.mutating).collect()),
    }
}

fn hook_rows(arch: &str, runs: usize) -> Vec<Row> {
    let scratch = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let installs = (0..WARMUP.min(1) + runs)
        .map(|_| {
            let sim = provisioned(arch, scratch.path());
            measure(&sim, |s| s.hook("install"))
        })
        .skip(1)
        .collect();
    rows.push(row("install (fresh unit)", installs));

    let sim = provisioned(arch, scratch.path());
    for run in sim.deploy() {
        run.assert_ok();
    }
    // Next to today's control plane: tokens in a secret, containerd,
    // flannel; update-status looks at the node's Ready condition.
    let cluster = Cluster::new();
    let rels = cluster.relate(&sim, Master::Today);
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    let repeat = |hook: &dyn Fn(&Sim, usize) -> HookRun| -> Vec<Sample> {
        for i in 0..WARMUP {
            hook(&sim, i).assert_ok();
        }
        (0..runs)
            .map(|i| measure(&sim, |s| hook(s, WARMUP + i)))
            .collect()
    };
    rows.push(row(
        "config-changed, nothing changed",
        repeat(&|s, _| s.hook("config-changed")),
    ));
    rows.push(row(
        "update-status, converged",
        repeat(&|s, _| s.hook("update-status")),
    ));
    let data = cluster.kube_control_data_with(Master::Today, rels.secret.as_deref());
    let same: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let control_unit = "kubernetes-control-plane/0";
    rows.push(row(
        "kube-control-relation-changed, no change",
        repeat(&|s, _| s.change(rels.control, control_unit, &same)),
    ));
    let secret = rels
        .secret
        .clone()
        .expect("today's control plane sends a secret");
    rows.push(row(
        "secret-changed, kubelet and kube-proxy tokens rotated",
        repeat(&|s, i| {
            let (k, p) = (format!("kubelet-{i}"), format!("proxy-{i}"));
            s.set_secret_content(
                &secret,
                &[
                    ("kubelet-token", &k),
                    ("proxy-token", &p),
                    ("client-token", &cluster.client_token),
                ],
            )
            .expect("the unit tracks the secret")
        }),
    ));
    // Observability: grafana-agent on cos-agent, the COS token on tokens.
    let agent = sim.relate("cos-agent", "grafana-agent");
    for run in sim.join(agent, "grafana-agent/0", &[]) {
        run.assert_ok();
    }
    let tokens = sim.relate("tokens", control_unit.split('/').next().unwrap_or_default());
    let user = format!("system:cos:{}", cluster.node);
    let answer = |i: usize| serde_json::json!({ &user: format!("uid-{i}::cos-token") }).to_string();
    for run in sim.join(tokens, control_unit, &[("tokens", &answer(0))]) {
        run.assert_ok();
    }
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    rows.push(row(
        "cos-agent-relation-changed, no change",
        repeat(&|s, _| s.change(agent, "grafana-agent/0", &[])),
    ));
    rows.push(row(
        "tokens-relation-changed, COS token rotated",
        repeat(&|s, i| s.change(tokens, control_unit, &[("tokens", &answer(i + 1))])),
    ));
    let config = sim
        .unit()
        .relations
        .iter()
        .find(|r| r.id == agent)
        .and_then(|r| r.local_unit.get("config").cloned())
        .unwrap_or_default();
    COS_PAYLOAD.store(config.len(), std::sync::atomic::Ordering::Relaxed);
    // Last, as it leaves the unit waiting: a rolling upgrade to 1.32 in
    // which this unit (the leader, so last) waits behind another.
    juju_sim::application::leader_waiting_in_a_roll(&sim, &cluster);
    rows.push(row(
        "update-status, waiting for its turn in a roll",
        repeat(&|s, _| s.hook("update-status")),
    ));
    rows
}

/// The size of the published cos-agent `config`, measured by hook_rows.
static COS_PAYLOAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Median wall times of the charm's extraction (`check-cni`, which runs
/// the install's unpack into a scratch directory) and of `tar -xzf` into an
/// empty directory, interleaved.
fn cni_ratio(arch: &str) -> (Duration, Duration) {
    let scratch = tempfile::tempdir().unwrap();
    let plugins = juju_sim::fixtures::cni_plugins_dir(&repo(), arch);
    let tgz = juju_sim::fixtures::cni_tarball(&plugins, &scratch.path().join("cni.tgz"), None);
    let ours = || {
        let started = Instant::now();
        let out = Command::new(binary(arch))
            .args(["check-cni", tgz.to_str().unwrap(), "--arch", arch])
            .env("TMPDIR", scratch.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    };
    let tar = |n: usize| {
        let dir = scratch.path().join(format!("tar{n}"));
        std::fs::create_dir(&dir).unwrap();
        let started = Instant::now();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        let took = started.elapsed();
        assert!(status.success());
        std::fs::remove_dir_all(&dir).unwrap();
        took
    };
    for n in 0..WARMUP {
        ours();
        tar(n);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..RUNS {
        a.push(ours());
        b.push(tar(100 + n));
    }
    (median(a), median(b))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// A table row's measured cells: hook, wall, CPU, peak RSS, calls, mutating.
fn cells(r: &Row) -> String {
    format!(
        "| {} | {} | {:.2} ms | {:.1} MiB | {} | {} |",
        r.hook,
        ms(r.wall),
        r.cpu_us as f64 / 1000.0,
        r.rss_kib as f64 / 1024.0,
        r.tool_calls,
        r.mutating
    )
}

/// `make profile`: one converged update-status (as measured above, next
/// to today's control plane) under `valgrind --tool=callgrind`, which
/// counts instructions, the same on a busy machine as on an idle one:
/// where the binary's CPU goes, by function, written to `out`.
fn profile_update_status(arch: &str, out: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let sim = provisioned(arch, scratch.path());
    for run in sim.deploy() {
        run.assert_ok();
    }
    let cluster = Cluster::new();
    cluster.relate(&sim, Master::Today);
    for _ in 0..WARMUP {
        sim.hook("update-status").assert_ok();
    }
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    // dispatch execs bin/kubernetes-worker-<arch>: valgrind in its place
    // runs the same binary with the same arguments and environment.
    let bin = sim
        .charm_dir()
        .join(format!("bin/kubernetes-worker-{arch}"));
    let real = bin.with_extension("real");
    std::fs::rename(&bin, &real).unwrap();
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nexec valgrind --quiet --tool=callgrind --callgrind-out-file={} {} \"$@\"\n",
            out.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    println!(
        "update-status under callgrind: {} hook-tool calls; profile in {}",
        sim.tool_calls_since(mark).len(),
        out.display()
    );
}

fn main() {
    let arch = juju_sim::host_arch();
    assert!(
        binary(arch).exists(),
        "run `make charm` first: no {}",
        binary(arch).display()
    );
    if let Some(out) = std::env::var_os("KW_BENCH_CALLGRIND") {
        profile_update_status(arch, Path::new(&out));
        return;
    }
    let mut out = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "# kubernetes-worker hook benchmark\n\nMachine: {} cores, {cpu}; {} runs per figure after {WARMUP} warm-up runs, medians.\nBinary: {} ({arch}, release, static).\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        RUNS,
        binary(arch).strip_prefix(repo()).unwrap().display()
    ));
    out.push_str("## Hooks on amd64 (native)\n\n| hook | wall | binary CPU | peak RSS | hook-tool calls | mutating snap/systemctl | budget |\n|---|---|---|---|---|---|---|\n");
    let rows = hook_rows(arch, RUNS);
    let converged = rows
        .iter()
        .find(|r| r.hook == "update-status, converged")
        .map(|r| (r.tool_calls, r.mutating, r.cpu_us));
    for r in rows {
        let budget = match r.hook {
            "update-status, waiting for its turn in a roll" => {
                let (calls, mutating, cpu) = converged.unwrap_or_default();
                // CPU within the run-to-run noise of one figure (10%).
                format!(
                    "≤ converged update-status ({calls} calls, {mutating} mutating, {:.2} ms CPU within 10%): {}",
                    cpu as f64 / 1000.0,
                    met(r.tool_calls <= calls
                        && r.mutating <= mutating
                        && r.cpu_us * 10 <= cpu * 11)
                )
            }
            "update-status, converged" => format!(
                "≤4 calls, 0 mutating, <5 ms CPU (one GET of the node included), <8 MiB: {}",
                met(r.tool_calls <= 4
                    && r.mutating == 0
                    && r.cpu_us < 5000
                    && r.rss_kib < 8 * 1024)
            ),
            "config-changed, nothing changed" | "kube-control-relation-changed, no change" => {
                format!(
                    "≤12 calls, 0 mutating: {}",
                    met(r.tool_calls <= 12 && r.mutating == 0)
                )
            }
            "cos-agent-relation-changed, no change" => format!(
                "≤12 calls, 0 mutating, <5 ms CPU: {}",
                met(r.tool_calls <= 12 && r.mutating == 0 && r.cpu_us < 5000)
            ),
            "tokens-relation-changed, COS token rotated" => format!(
                "≤14 calls (one relation-set), 0 mutating, <10 ms CPU: {}",
                met(r.tool_calls <= 14 && r.mutating == 0 && r.cpu_us < 10_000)
            ),
            _ => "-".into(),
        };
        out.push_str(&format!("{} {budget} |\n", cells(&r)));
    }
    let payload = COS_PAYLOAD.load(std::sync::atomic::Ordering::Relaxed);
    out.push_str(&format!(
        "\n## cos-agent payload\n\n| published `config` (5 jobs, 6 alerts, 1 dashboard) | budget |\n|---|---|\n| {payload} bytes | ≤ 16 KiB: {} |\n",
        met(payload > 0 && payload <= 16 * 1024)
    ));
    let (ours, tar) = cni_ratio(arch);
    let ratio = ours.as_secs_f64() / tar.as_secs_f64();
    out.push_str(&format!(
        "\n## CNI extraction ({arch}, Debian's containernetworking-plugins, 16 plugins)\n\n| charm (tar + flate2 on zlib-rs, in-process) | `tar -xzf` | ratio | budget ≤ 0.8 |\n|---|---|---|---|\n| {} | {} | {ratio:.2} | {} |\n",
        ms(ours),
        ms(tar),
        met(ratio <= 0.8)
    ));
    out.push_str("\n## Sizes\n\n| file | bytes | budget |\n|---|---|---|\n");
    let mut sizes: Vec<(String, PathBuf, u64)> = ["amd64", "s390x", "arm64", "ppc64el"]
        .iter()
        .map(|a| (format!("bin/kubernetes-worker-{a}"), binary(a), 4 << 20))
        .collect();
    sizes.push((
        "kubernetes-worker.charm".into(),
        repo().join("build/kubernetes-worker.charm"),
        12 << 20,
    ));
    for (name, path, budget) in sizes {
        if let Ok(meta) = std::fs::metadata(&path) {
            out.push_str(&format!(
                "| {name} | {} | ≤ {} MiB: {} |\n",
                meta.len(),
                budget >> 20,
                met(meta.len() <= budget)
            ));
        }
    }
    if binary("s390x").exists() && Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists() {
        out.push_str("\n## Hooks on s390x under qemu-user (emulation: no budget)\n\n| hook | wall | binary CPU | peak RSS | hook-tool calls | mutating |\n|---|---|---|---|---|---|\n");
        for r in hook_rows("s390x", 5) {
            out.push_str(&format!("{}\n", cells(&r)));
        }
    }
    print!("{out}");
    std::fs::create_dir_all(repo().join("bench")).unwrap();
    std::fs::write(repo().join("bench/latest.md"), &out).unwrap();
    println!("\n(written to bench/latest.md)");
}
