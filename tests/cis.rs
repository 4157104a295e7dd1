//! Issue 22: the `cis-benchmark` action. The charm evaluates the CIS
//! Kubernetes Benchmark's worker-node checks (cis-1.23, as
//! kube-bench-config adjusts them for snaps) against the node as it
//! configured it, saves kube-bench's text and JSON reports, applies
//! remediations through its own flag handling, and resets them.
//!
//! The stand-in machine keeps a process table (`<root>/proc`) with each
//! running snap daemon's argv as the CDK snaps' wrapper passes it, and
//! writes snapd's unit files; the checks read those, as kube-bench's `ps`
//! and `stat` would.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::cluster::Cluster;
use juju_sim::Sim;
use serde_json::{json, Value};

const SERVICE: &str = "etc/systemd/system/snap.kubelet.daemon.service";

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n";
const GROUP: &str = "root:x:0:\nubuntu:x:1000:\n";

/// A unit active in today's cluster, on a machine with Ubuntu's accounts
/// and the ubuntu user's home.
fn node() -> (Sim, tempfile::TempDir, Cluster) {
    with_home(common::active_today_with(&[
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
    ]))
}

fn with_home<T, U>((sim, scratch, c): (Sim, T, U)) -> (Sim, T, U) {
    let home = sim.root().join("home/ubuntu");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
    (sim, scratch, c)
}

fn bench(sim: &Sim, apply: &str) -> serde_json::Map<String, Value> {
    let (run, action) = sim.action("cis-benchmark", json!({ "apply": apply }));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{}", action.message);
    action.results
}

fn result<'a>(results: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    results
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {results:?}"))
}

/// The machine path `juju scp <unit>:<path> .` fetches.
fn fetched(sim: &Sim, results: &serde_json::Map<String, Value>, key: &str) -> String {
    let command = result(results, key);
    let path = command
        .strip_prefix("juju scp kubernetes-worker/0:")
        .and_then(|p| p.strip_suffix(" ."))
        .unwrap_or_else(|| panic!("{command}"));
    assert!(path.starts_with("/home/ubuntu/kube-bench-results/results-"));
    let file = sim.root().join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    std::fs::read_to_string(file).unwrap()
}

fn summary(pass: u32, fail: u32, warn: u32) -> String {
    let section = |name: &str| {
        format!("== Summary {name} ==\n{pass} checks PASS\n{fail} checks FAIL\n{warn} checks WARN\n0 checks INFO\n\n")
    };
    section("node") + &section("total")
}

fn kubelet_argv(sim: &Sim) -> Vec<String> {
    let m = sim.machine();
    m.services["snap.kubelet.daemon.service"]
        .runs
        .last()
        .unwrap()
        .argv
        .clone()
}

fn states(json: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(json).unwrap();
    doc["Controls"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["results"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["test_number"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The node as the charm configures it: everything passes but three
/// unscored checks, which warn. 4.2.8: kubelet runs with
/// --hostname-override (the node is named as the charm names it, which
/// the control plane's certificates and today's charm rely on); 4.2.9 and
/// 4.2.13: kubelet's event rate and TLS ciphers are kubelet's defaults,
/// which `apply=dangerous` changes. The whole expected report is
/// tests/data/cis/node-report.txt.
#[test]
fn the_node_as_the_charm_configures_it() {
    let (sim, _scratch, _c) = node();
    let mark = sim.mark();
    let results = bench(&sim, "none");
    assert_eq!(result(&results, "summary"), summary(20, 0, 3));
    assert_eq!(result(&results, "checks"), "WARN: 4.2.8, 4.2.9, 4.2.13");
    assert_eq!(result(&results, "benchmark"), "cis-1.23");
    let text = fetched(&sim, &results, "report");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cis/node-report.txt"
    );
    if std::env::var_os("KW_BLESS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    assert_eq!(text, expected);

    let json = fetched(&sim, &results, "report-json");
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc["Totals"],
        json!({"total_pass": 20, "total_fail": 0, "total_warn": 3, "total_info": 0})
    );
    let controls = &doc["Controls"][0];
    assert_eq!(controls["version"], "cis-1.23");
    assert_eq!(controls["node_type"], "node");
    let hostname = &controls["tests"][1]["results"][7];
    assert_eq!(hostname["test_number"], "4.2.8");
    assert_eq!(hostname["status"], "WARN");
    assert_eq!(
        hostname["expected_result"],
        "'--hostname-override' is not present"
    );
    let cmd = hostname["actual_value"].as_str().unwrap();
    assert!(cmd.starts_with("/snap/kubelet/"), "{cmd}");
    assert!(
        cmd.contains(" --config=/root/cdk/kubelet/config.yaml "),
        "{cmd}"
    );
    let anonymous = &controls["tests"][1]["results"][0];
    assert_eq!(
        anonymous["expected_result"],
        "'{.authentication.anonymous.enabled}' is equal to 'false'"
    );
    assert_eq!(
        anonymous["AuditConfig"],
        "/bin/cat /root/cdk/kubelet/config.yaml"
    );
    let service = &controls["tests"][0]["results"][0];
    assert_eq!(service["actual_value"], "permissions=644");
    assert!(service["audit"]
        .as_str()
        .unwrap()
        .contains("/etc/systemd/system/snap.kubelet.daemon.service"));

    // A report changes nothing on the machine and nothing Juju holds.
    assert!(sim.machine_calls_since(mark).is_empty());
    assert!(sim
        .tool_calls_since(mark)
        .iter()
        .all(|c| !matches!(c.tool.as_str(), "relation-set" | "status-set" | "open-port")));
}

/// Files whose mode or owner an operator changed by hand fail their
/// checks; `conservative` fixes them: the charm's own kubeconfig back to
/// the mode the charm writes it with, the service file snapd owns by
/// taking away what 644 does not allow, recorded; `reset` puts back what
/// was recorded, and only that.
#[test]
fn files_changed_by_hand() {
    let (sim, _scratch, _c) = node();
    let kubeconfig = sim.root().join("root/cdk/kubeconfig");
    let service = sim.root().join(SERVICE);
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o660)).unwrap();
    std::fs::set_permissions(&service, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::os::unix::fs::chown(&service, Some(1000), Some(1000)).unwrap();

    let results = bench(&sim, "none");
    assert_eq!(result(&results, "summary"), summary(17, 3, 3));
    assert_eq!(
        result(&results, "checks"),
        "FAIL: 4.1.1, 4.1.2, 4.1.5; WARN: 4.2.8, 4.2.9, 4.2.13"
    );
    let json = fetched(&sim, &results, "report-json");
    let doc: Value = serde_json::from_str(&json).unwrap();
    let mode = &doc["Controls"][0]["tests"][0]["results"][4];
    assert_eq!(mode["actual_value"], "permissions=660");
    assert_eq!(
        mode["expected_result"],
        "permissions has permissions 660, expected 644 or more restrictive"
    );
    let owner = &doc["Controls"][0]["tests"][0]["results"][1];
    assert_eq!(owner["actual_value"], "ubuntu:ubuntu");
    let text = fetched(&sim, &results, "report");
    assert!(text.contains("[FAIL] 4.1.5 Ensure that the --kubeconfig kubelet.conf file permissions are set to 644 or more restrictive (Automated)\n"));
    assert!(text.contains("4.1.5 Run the below command (based on the file location on your system) on the each worker node.\nFor example,\nchmod 644 /root/cdk/kubeconfig\n\n"));

    let mark = sim.mark();
    let results = bench(&sim, "conservative");
    assert_eq!(
        result(&results, "summary"),
        "Applied 3 remediations. Re-run with \"apply=none\" to generate a new report."
    );
    assert_eq!(
        result(&results, "applied"),
        "4.1.1: chmod 644 /etc/systemd/system/snap.kubelet.daemon.service; \
         4.1.2: chown root:root /etc/systemd/system/snap.kubelet.daemon.service; \
         4.1.5: chmod 600 /root/cdk/kubeconfig"
    );
    assert_eq!(
        result(&results, "not-applied"),
        "4.2.8: no remediation the charm can apply; \
         4.2.9: changes kubelet's flags (apply=dangerous); \
         4.2.13: changes kubelet's flags (apply=dangerous)"
    );
    // No snap, no restart: only files.
    assert!(sim.machine_calls_since(mark).is_empty());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&kubeconfig), 0o600);
    assert_eq!(mode(&service), 0o644);
    assert_eq!(std::fs::metadata(&service).unwrap().uid(), 0);
    let results = bench(&sim, "none");
    assert_eq!(result(&results, "summary"), summary(20, 0, 3));

    // A hook keeps it so.
    sim.hook("update-status").assert_ok();
    assert_eq!(mode(&kubeconfig), 0o600);
    assert_eq!(mode(&service), 0o644);

    let results = bench(&sim, "reset");
    assert_eq!(
        result(&results, "summary"),
        "Reset is complete. Re-run with \"apply=none\" to generate a new report."
    );
    assert_eq!(
        result(&results, "undone"),
        "/etc/systemd/system/snap.kubelet.daemon.service: mode 664, owner 1000:1000"
    );
    assert_eq!(mode(&service), 0o664);
    assert_eq!(std::fs::metadata(&service).unwrap().uid(), 1000);
    // The charm's own file stays as the charm writes it.
    assert_eq!(mode(&kubeconfig), 0o600);
    let results = bench(&sim, "none");
    assert_eq!(
        result(&results, "checks"),
        "FAIL: 4.1.1, 4.1.2; WARN: 4.2.8, 4.2.9, 4.2.13"
    );
    // Nothing left to reset.
    assert_eq!(result(&bench(&sim, "reset"), "undone"), "none");
}

/// `dangerous` sets kubelet's event rate and ciphers through the flags
/// the charm gives kubelet: kubelet restarts once with them, later hooks
/// keep them without touching kubelet again, and `reset` takes exactly
/// them away.
#[test]
fn dangerous_sets_kubelet_flags_that_hooks_keep_and_reset_removes() {
    let (sim, _scratch, _c) = node();
    let before = kubelet_argv(&sim);
    let starts = sim.machine().services["snap.kubelet.daemon.service"].starts;

    let results = bench(&sim, "dangerous");
    assert_eq!(
        result(&results, "summary"),
        "Applied 2 remediations. Re-run with \"apply=none\" to generate a new report."
    );
    let ciphers = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_GCM_SHA256";
    assert_eq!(
        result(&results, "applied"),
        format!("4.2.9: kubelet --event-qps=0; 4.2.13: kubelet --tls-cipher-suites={ciphers}")
    );
    let m = sim.machine();
    assert_eq!(m.services["snap.kubelet.daemon.service"].starts, starts + 1);
    assert!(m.services["snap.kubelet.daemon.service"].active);
    let argv = kubelet_argv(&sim);
    let mut expected = before.clone();
    expected.push("--event-qps=0".into());
    expected.push(format!("--tls-cipher-suites={ciphers}"));
    let sorted = |v: &[String]| {
        let mut v = v[1..].to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&argv), sorted(&expected));
    common::assert_active(&sim);

    let results = bench(&sim, "none");
    assert_eq!(result(&results, "summary"), summary(22, 0, 1));
    assert_eq!(result(&results, "checks"), "WARN: 4.2.8");
    let json = fetched(&sim, &results, "report-json");
    assert!(states(&json).contains(&("4.2.13".into(), "PASS".into())));

    // Later hooks keep the flags and change nothing.
    let mark = sim.mark();
    sim.hook("config-changed").assert_ok();
    sim.hook("update-status").assert_ok();
    sim.hook("upgrade-charm").assert_ok();
    let mutating: Vec<_> = sim
        .machine_calls_since(mark)
        .into_iter()
        .filter(|c| c.is_mutating())
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    assert_eq!(sorted(&kubelet_argv(&sim)), sorted(&expected));

    // The operator's own value wins over the remediation.
    sim.configure("kubelet-extra-args", "event-qps=5")
        .assert_ok();
    assert!(kubelet_argv(&sim).contains(&"--event-qps=5".to_string()));
    let results = bench(&sim, "dangerous");
    assert_eq!(
        result(&results, "not-applied"),
        "4.2.8: no remediation the charm can apply; 4.2.9: kubelet-extra-args sets event-qps; change it there"
    );
    sim.configure("kubelet-extra-args", "").assert_ok();
    assert!(kubelet_argv(&sim).contains(&"--event-qps=0".to_string()));

    let results = bench(&sim, "reset");
    assert_eq!(
        result(&results, "undone"),
        "kubelet --event-qps; kubelet --tls-cipher-suites"
    );
    assert_eq!(sorted(&kubelet_argv(&sim)), sorted(&before));
    let results = bench(&sim, "none");
    assert_eq!(result(&results, "summary"), summary(20, 0, 3));
}

/// In a container (LXD) kubelet cannot protect the kernel's defaults,
/// and the charm does not ask it to: the benchmark says so, a scored
/// failure no level can fix.
#[test]
fn in_a_container_kernel_defaults_fail() {
    // With no ubuntu account either (not a cloud image): no user controls
    // the reports' path, and root keeps them there.
    let (sim, _scratch, _c) = common::active_today_with(&[
        ("/run/systemd/container", "lxc\n"),
        ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("/etc/group", "root:x:0:\n"),
    ]);
    let results = bench(&sim, "dangerous");
    fetched(&sim, &results, "report-json");
    let dir = std::fs::metadata(sim.root().join("home/ubuntu/kube-bench-results")).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o700));
    assert!(result(&results, "checks").starts_with("FAIL: 4.2.6; WARN:"));
    assert!(result(&results, "not-applied").contains("4.2.6: no remediation the charm can apply"));
}

/// The ubuntu user owns its home: root writes the reports there by
/// descriptor, into a directory that user owns, never through a link
/// placed there. One that is not as it must be is refused, and the action
/// says why, its findings in its results.
#[test]
fn the_reports_are_never_written_through_a_link_the_user_placed() {
    let (sim, _scratch, _c) = node();
    let elsewhere = sim.root().join("etc/cron.d");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(
        "/etc/cron.d",
        sim.root().join("home/ubuntu/kube-bench-results"),
    )
    .unwrap();
    let (run, action) = sim.action("cis-benchmark", json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action
            .message
            .starts_with("the reports were not saved: refusing to write in")
            && action.message.contains("kube-bench-results"),
        "{}",
        action.message
    );
    assert!(result(&action.results, "summary").contains("checks PASS"));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // Its own directory, as the charm makes it: the user's, 0700.
    std::fs::remove_file(sim.root().join("home/ubuntu/kube-bench-results")).unwrap();
    let results = bench(&sim, "none");
    fetched(&sim, &results, "report");
    let dir = std::fs::metadata(sim.root().join("home/ubuntu/kube-bench-results")).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (1000, 0o700));
}

/// A parameter Juju's schema would refuse, should one get through, fails
/// the action and changes nothing.
#[test]
fn an_unknown_level_fails_the_action() {
    let (sim, _scratch, _c) = node();
    let mark = sim.mark();
    let (run, action) = sim.action("cis-benchmark", json!({"apply": "everything"}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert_eq!(
        action.message,
        "Invalid \"apply\" parameter: \"everything\"; use none, conservative, dangerous or reset"
    );
    assert!(sim.machine_calls_since(mark).is_empty());
}
