//! `kubernetes-worker check-cni|check-snap`: the install-time checks, run
//! by hand before attaching a resource.

mod common;

use std::process::Command;

use juju_sim::fixtures::TestSnap;

fn check(args: &[&str]) -> (i32, String, String) {
    // The binary under test: in `make test`, each shipped one.
    let out = Command::new(common::binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_cni_tarball_is_checked_for_an_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let s390x = common::cni_tgz(dir.path(), "s390x", None);
    let s390x = s390x.to_str().unwrap();
    let (code, out, _) = check(&["check-cni", s390x, "--arch", "s390x"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("OK: ") && out.contains("16 s390x plugins"),
        "{out}"
    );
    let (code, _, err) = check(&["check-cni", s390x, "--arch", "amd64"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "cni-amd64 resource holds s390x plugins; this machine is amd64"
    );
}

#[test]
fn a_snap_file_is_checked_for_its_name_and_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let snap = TestSnap::daemon("kubelet", "1.31.2", "s390x").build(dir.path());
    let snap = snap.to_str().unwrap();
    assert_eq!(
        check(&["check-snap", snap, "--name", "kubelet", "--arch", "s390x"]).0,
        0
    );
    let (code, _, err) = check(&["check-snap", snap, "--name", "kubelet", "--arch", "arm64"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "kubelet resource is an s390x snap; this machine is arm64"
    );
    let (code, _, err) = check(&[
        "check-snap",
        snap,
        "--name",
        "kube-proxy",
        "--arch",
        "s390x",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "kube-proxy resource is the kubelet snap, not kube-proxy"
    );
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(check(&["check-snap", "x.snap"]).0, 2);
    assert_eq!(check(&["check-cni", "x.tgz", "--arch", "mips"]).0, 2);
    assert_eq!(check(&["check-cni"]).0, 2);
    assert_eq!(check(&["--help"]).0, 0);
}
