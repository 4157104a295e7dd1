//! The charm's `dispatch`: picks the binary for the machine's `uname -m`,
//! and blocks cleanly where there is none.

use std::path::{Path, PathBuf};

use juju_sim::{CharmSource, Sim, SimOptions};

const ARCHES: [(&str, &str); 4] = [
    ("x86_64", "amd64"),
    ("s390x", "s390x"),
    ("aarch64", "arm64"),
    ("ppc64le", "ppc64el"),
];

/// A stand-in binary per architecture that records which one ran and with
/// which event.
fn recorder(dir: &Path, arch: &str) -> PathBuf {
    let path = dir.join(format!("recorder-{arch}"));
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"{arch} $JUJU_DISPATCH_PATH\" >> \"$JUJU_CHARM_DIR/ran\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn sim_with(binaries: &[&str]) -> (Sim, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let charm = CharmSource::Tree {
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        binaries: binaries
            .iter()
            .map(|arch| {
                (
                    format!("bin/kubernetes-worker-{arch}"),
                    recorder(scratch.path(), arch),
                )
            })
            .collect(),
    };
    (Sim::new(&charm, SimOptions::default()), scratch)
}

/// Makes the simulated machine report `machine` from `uname -m`.
fn set_machine(sim: &Sim, machine: &str) {
    let uname = sim.dir().join("sbin/uname");
    std::fs::write(&uname, format!("#!/bin/sh\necho {machine}\n")).unwrap();
    std::fs::set_permissions(&uname, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn dispatch_runs_the_binary_for_each_machine() {
    let (sim, _scratch) = sim_with(&["amd64", "s390x", "arm64", "ppc64el"]);
    for (machine, arch) in ARCHES {
        set_machine(&sim, machine);
        sim.hook("config-changed").assert_ok();
        let ran = std::fs::read_to_string(sim.charm_dir().join("ran")).unwrap();
        assert_eq!(
            ran.lines().last().unwrap(),
            format!("{arch} hooks/config-changed")
        );
    }
}

#[test]
fn dispatch_blocks_on_an_unknown_machine_and_exits_0() {
    let (sim, _scratch) = sim_with(&["amd64", "s390x", "arm64", "ppc64el"]);
    set_machine(&sim, "riscv64");
    sim.hook("install").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "Unsupported architecture: riscv64".to_string()
        )
    );
    assert!(!sim.charm_dir().join("ran").exists());
    // An action there fails, saying why, and the unit stays out of error.
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert_eq!(action.message, "Unsupported architecture: riscv64");
    assert_eq!(sim.unit().error, None);
}

#[test]
fn dispatch_blocks_when_the_charm_lacks_the_machines_binary() {
    let (sim, _scratch) = sim_with(&["amd64"]);
    set_machine(&sim, "s390x");
    sim.hook("install").assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "blocked");
    assert!(message.contains("no binary for s390x"), "{message}");
    assert!(sim.unit().logs.iter().any(|l| l.level == "ERROR"));
    let (run, action) = sim.action("pause", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("no binary for s390x"),
        "{}",
        action.message
    );
}

#[test]
fn dispatch_hands_actions_their_path() {
    let (sim, _scratch) = sim_with(&["amd64", "s390x", "arm64", "ppc64el"]);
    set_machine(&sim, "s390x");
    let (run, _) = sim.action("resume", serde_json::json!({}));
    run.assert_ok();
    let ran = std::fs::read_to_string(sim.charm_dir().join("ran")).unwrap();
    assert_eq!(ran.trim(), "s390x actions/resume");
}
