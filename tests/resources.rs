//! Issue 3: the machine's architecture, the cni-<arch> plugins, and snaps
//! from attached files or the store, through the real binary.

mod common;

use common::{arch, cni_tgz, provisioned, tree};
use juju_sim::fixtures::TestSnap;
use juju_sim::machine::{Fault, SnapSource};
use juju_sim::Sim;

fn snap_calls(sim: &Sim, mark: juju_sim::Mark) -> Vec<String> {
    sim.machine_calls_since(mark)
        .into_iter()
        .filter(|c| c.program == "snap")
        .map(|c| c.args.join(" "))
        .collect()
}

/// With the resources in place, a unit with no relations asks for the
/// control plane: the status has moved past every resource.
fn assert_resources_settled(sim: &Sim) {
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "Relate kubernetes-worker:kube-control to the control plane".to_string()
        )
    );
}

fn cni_bin(sim: &Sim) -> std::path::PathBuf {
    sim.root().join("opt/cni/bin")
}

#[test]
fn a_deploy_with_zero_byte_snaps_installs_from_the_store_on_the_channel() {
    let (sim, s) = provisioned();
    // Debian's whole set, where the default deployment has three.
    sim.attach_file(&format!("cni-{}", arch()), &cni_tgz(s.path(), arch(), None));
    let mark = sim.mark();
    for run in sim.deploy() {
        run.assert_ok();
    }
    assert_eq!(
        snap_calls(&sim, mark),
        vec![
            "install kubectl --channel=1.31/stable --classic",
            "install kubelet --channel=1.31/stable --classic",
            "install kube-proxy --channel=1.31/stable --classic",
            "refresh --hold kubectl kubelet kube-proxy",
        ]
    );
    let machine = sim.machine();
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        assert_eq!(machine.snaps[snap].channel.as_deref(), Some("1.31/stable"));
        assert!(machine.snaps[snap].held, "only the charm refreshes {snap}");
    }
    let plugins = std::fs::read_dir(cni_bin(&sim)).unwrap().count();
    assert_eq!(plugins, 16, "Debian's 16 plugins installed");
    assert_resources_settled(&sim);
    assert_eq!(sim.unit().workload_version, "1.31.2");
    let history: Vec<String> = sim
        .unit()
        .status_history
        .iter()
        .map(|s| s.message.clone())
        .collect();
    assert!(
        history.contains(&"Installing kubelet snap".to_string()),
        "{history:?}"
    );
    assert!(
        history.contains(&format!("Unpacking cni-{} resource.", arch())),
        "{history:?}"
    );
}

#[test]
fn only_this_architectures_cni_resource_is_fetched() {
    let (sim, _s) = provisioned();
    sim.hook("install").assert_ok();
    assert_eq!(cni_fetched(&sim), vec![format!("cni-{}", arch())]);
}

/// The CNI resources the unit asked for, in order.
fn cni_fetched(sim: &Sim) -> Vec<String> {
    sim.unit()
        .calls
        .iter()
        .filter(|c| c.tool == "resource-get" && c.args[0].starts_with("cni-"))
        .map(|c| c.args[0].clone())
        .collect()
}

/// A unit switched from today's charm keeps its one `cni-plugins`
/// tarball: used where this architecture's resource is empty, its
/// binaries checked like any, and left for `cni-<arch>` once that is
/// attached.
#[test]
fn todays_cni_plugins_resource_stands_in_for_an_empty_cni_arch() {
    let (sim, scratch) = provisioned();
    let own = format!("cni-{}", arch());
    let plugins = std::fs::read(common::node_cni_tgz(arch())).unwrap();
    sim.attach(&own, b"");
    sim.attach("cni-plugins", &plugins);
    sim.hook("install").assert_ok();
    assert_eq!(cni_fetched(&sim), [own.clone(), "cni-plugins".to_string()]);
    assert!(cni_bin(&sim).join("bridge").is_file());
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&sim)).unwrap()).unwrap();
    assert_eq!(journal["cni"]["resource"], "cni-plugins");

    // Another architecture's tarball is refused by its name, and the
    // plugins in place stay.
    let other = if arch() == "s390x" { "amd64" } else { "s390x" };
    sim.attach(
        "cni-plugins",
        &std::fs::read(cni_tgz(scratch.path(), other, None)).unwrap(),
    );
    sim.hook("upgrade-charm").assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "blocked");
    assert!(
        message.starts_with(&format!(
            "cni-plugins resource holds {other} plugins; this machine is {}",
            arch()
        )),
        "{message}"
    );
    assert!(cni_bin(&sim).join("bridge").is_file());

    // This architecture's own tarball takes over; with neither, the
    // message names it.
    sim.attach(&own, &plugins);
    sim.hook("upgrade-charm").assert_ok();
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&sim)).unwrap()).unwrap();
    assert_eq!(journal["cni"]["resource"], own.as_str());
    sim.attach(&own, b"");
    sim.attach("cni-plugins", b"");
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            format!(
                "{own} resource is empty (zero bytes); attach the CNI plugins tarball for {}",
                arch()
            )
        )
    );
}

#[test]
fn plugins_are_root_owned_0755_files() {
    use std::os::unix::fs::MetadataExt;
    let (sim, _s) = provisioned();
    sim.hook("install").assert_ok();
    for entry in std::fs::read_dir(cni_bin(&sim)).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o755);
        assert_eq!(meta.uid(), nix_uid());
    }
    let leftovers: Vec<String> = tree(&sim.root().join("opt/cni"))
        .into_iter()
        .filter(|p| p.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn an_attached_snap_is_installed_dangerously_once() {
    let (sim, scratch) = provisioned();
    let kubelet = TestSnap::daemon("kubelet", "1.31.9", arch()).build(scratch.path());
    sim.attach_file("kubelet", &kubelet);
    let mark = sim.mark();
    sim.hook("install").assert_ok();
    let calls = snap_calls(&sim, mark);
    let uploaded = sim.unit().agent_dir.join("resources/kubelet.snap");
    assert!(
        calls.contains(&format!(
            "install --dangerous --classic {}",
            uploaded.display()
        )),
        "{calls:?}"
    );
    assert_eq!(
        sim.machine().snaps["kubelet"].source,
        SnapSource::Local(uploaded)
    );
    assert_eq!(sim.unit().workload_version, "1.31.9");

    // The same file again (upgrade-charm re-checks every resource): nothing.
    let mark = sim.mark();
    sim.hook("upgrade-charm").assert_ok();
    sim.hook("config-changed").assert_ok();
    assert!(snap_calls(&sim, mark).is_empty());
}

#[test]
fn a_zero_byte_upload_after_a_local_install_refreshes_from_the_store_with_amend() {
    let (sim, scratch) = provisioned();
    sim.set_config("require-manual-upgrade", false);
    let kubelet = TestSnap::daemon("kubelet", "1.31.9", arch()).build(scratch.path());
    sim.attach_file("kubelet", &kubelet);
    sim.hook("install").assert_ok();
    sim.attach("kubelet", b"");
    let mark = sim.mark();
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        snap_calls(&sim, mark),
        vec!["refresh kubelet --channel=1.31/stable --classic --amend"]
    );
    assert_eq!(sim.machine().snaps["kubelet"].source, SnapSource::Store);
    assert_eq!(sim.unit().workload_version, "1.31.2");
    assert_resources_settled(&sim);
}

#[test]
fn a_snap_for_another_architecture_is_refused_and_not_installed() {
    let (sim, scratch) = provisioned();
    let other = if arch() == "s390x" { "amd64" } else { "s390x" };
    let kubelet = TestSnap::daemon("kubelet", "1.31.9", other).build(scratch.path());
    sim.attach_file("kubelet", &kubelet);
    sim.hook("install").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            format!(
                "kubelet resource is an {other} snap; this machine is {}",
                arch()
            )
        )
    );
    assert!(!sim.machine().snaps.contains_key("kubelet"));
    assert!(
        sim.machine().snaps.contains_key("kubectl"),
        "the others still install"
    );
}

#[test]
fn a_file_that_is_not_the_right_snap_is_refused() {
    let (sim, scratch) = provisioned();
    let proxy = TestSnap::daemon("kube-proxy", "1.31.9", arch()).build(scratch.path());
    sim.attach_file("kubelet", &proxy);
    sim.hook("install").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "kubelet resource is the kube-proxy snap, not kubelet".to_string()
        )
    );
    sim.attach("kubelet", b"PK\x03\x04 a zip file, not a snap");
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "kubelet resource is not a snap (not a squashfs image)".to_string()
        )
    );
    assert!(!sim.machine().snaps.contains_key("kubelet"));
}

#[test]
fn a_snap_that_snapd_rejects_is_blocked_with_snapds_message() {
    let (sim, scratch) = provisioned();
    let kubelet = TestSnap::daemon("kubelet", "1.31.9", arch()).build(scratch.path());
    sim.attach_file("kubelet", &kubelet);
    let uploaded = sim.unit().agent_dir.join("resources/kubelet.snap");
    // What snapd says of a snap that needs features this system lacks: a
    // refusal the charm cannot foresee.
    sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "install".into(),
            target: Some(uploaded.display().to_string()),
            remaining: 1,
            exit: 1,
            stderr: "error: cannot install snap file: snap \"kubelet\" assumes unsupported features:\n       snapd2.99 (try to refresh snapd)\n".into(),
        })
    });
    sim.hook("install").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "kubelet resource rejected by snapd: cannot install snap file: snap \"kubelet\" assumes unsupported features: snapd2.99 (try to refresh snapd)".to_string()
        )
    );
    assert!(!sim.machine().snaps.contains_key("kubelet"));
}

#[test]
fn bad_cni_tarballs_are_blocked_and_leave_the_installed_plugins_alone() {
    let (sim, scratch) = provisioned();
    sim.hook("install").assert_ok();
    let resource = format!("cni-{}", arch());
    let bin = cni_bin(&sim);
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    let outside_before: Vec<String> = tree(&sim.root())
        .into_iter()
        .filter(|p| !p.starts_with("opt/cni/bin"))
        .collect();

    let other = if arch() == "s390x" { "amd64" } else { "s390x" };
    let wrong_arch = cni_tgz(scratch.path(), other, None);
    let docs = scratch.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("README.md"), "plugins elsewhere").unwrap();
    let no_plugins = juju_sim::fixtures::cni_tarball(&docs, &scratch.path().join("docs.tgz"), None);
    let hostile = scratch.path().join("hostile.tgz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && mkdir -p h && cp {}/bridge h/ && tar -czf {} --absolute-names /etc/hostname h/bridge",
            scratch.path().display(),
            juju_sim::fixtures::cni_plugins_dir(common::repo(), arch()).display(),
            hostile.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let gz_not_tar = scratch.path().join("gz.tgz");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 4096 /dev/urandom | gzip > {}",
            gz_not_tar.display()
        ))
        .status()
        .unwrap();

    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            vec![],
            format!(
                "{resource} resource is empty (zero bytes); attach the CNI plugins tarball for {}",
                arch()
            ),
        ),
        (
            b"not a tarball at all".to_vec(),
            format!("{resource} resource is not a gzip tar archive"),
        ),
        (
            std::fs::read(&gz_not_tar).unwrap(),
            format!("{resource} resource is not a valid gzip tar archive"),
        ),
        (
            std::fs::read(&no_plugins).unwrap(),
            format!("{resource} resource holds no CNI plugins"),
        ),
        (
            std::fs::read(&wrong_arch).unwrap(),
            format!(
                "{resource} resource holds {other} plugins; this machine is {}",
                arch()
            ),
        ),
        (
            std::fs::read(&hostile).unwrap(),
            format!("{resource} resource refused: \"/etc/hostname\" is an absolute path"),
        ),
    ];
    for (bytes, expected) in cases {
        sim.attach(&resource, &bytes);
        sim.hook("upgrade-charm").assert_ok();
        let (status, message) = sim.status();
        assert_eq!(status, "blocked", "{message}");
        assert!(
            message.starts_with(&expected),
            "{message:?} should start with {expected:?}"
        );
        for (name, content) in &before {
            assert_eq!(
                &std::fs::read(bin.join(name)).unwrap(),
                content,
                "{name} changed"
            );
        }
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), before.len());
        let outside: Vec<String> = tree(&sim.root())
            .into_iter()
            .filter(|p| !p.starts_with("opt/cni/bin"))
            .collect();
        assert_eq!(outside, outside_before, "written outside /opt/cni/bin");
    }
    sim.detach(&resource);
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        sim.status(),
        ("blocked".into(), format!("Missing {resource} resource."))
    );
}

#[test]
fn a_cni_change_that_drops_a_plugin_removes_it_but_not_a_subordinates_file() {
    let (sim, scratch) = provisioned();
    sim.hook("install").assert_ok();
    let bin = cni_bin(&sim);
    // A CNI subordinate (flannel) puts its own binary here.
    std::fs::write(bin.join("flannel"), b"subordinate's").unwrap();
    let fewer = cni_tgz(
        scratch.path(),
        arch(),
        Some(&["bridge", "loopback", "host-local", "portmap"]),
    );
    sim.attach_file(&format!("cni-{}", arch()), &fewer);
    sim.hook("upgrade-charm").assert_ok();
    let mut left: Vec<String> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["bridge", "flannel", "host-local", "loopback", "portmap"]
    );
    assert_eq!(
        std::fs::read(bin.join("flannel")).unwrap(),
        b"subordinate's"
    );
}

#[test]
fn a_plugin_name_owned_by_someone_else_is_not_replaced() {
    let (sim, scratch) = provisioned();
    let two = cni_tgz(scratch.path(), arch(), Some(&["bridge", "loopback"]));
    sim.attach_file(&format!("cni-{}", arch()), &two);
    sim.hook("install").assert_ok();
    // A subordinate places a plugin of a name the charm's next tarball
    // also holds: once the charm keeps a record, it is someone else's.
    std::fs::write(cni_bin(&sim).join("portmap"), b"someone else's").unwrap();
    let three = cni_tgz(
        scratch.path(),
        arch(),
        Some(&["bridge", "loopback", "portmap"]),
    );
    sim.attach_file(&format!("cni-{}", arch()), &three);
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        std::fs::read(cni_bin(&sim).join("portmap")).unwrap(),
        b"someone else's"
    );
    assert!(cni_bin(&sim).join("loopback").exists());
}

fn eof_fault(snap: &str, times: u32) -> Fault {
    Fault {
        command: "install".into(),
        target: Some(snap.into()),
        remaining: times,
        exit: 1,
        stderr: format!(
            "error: cannot perform the following tasks:\n- Download snap \"{snap}\" (1001) from channel \"1.31/stable\" (unexpected EOF)\n"
        ),
    }
}

#[test]
fn the_store_failing_twice_is_retried_within_the_hook() {
    let (sim, _s) = provisioned();
    sim.edit_machine(|m| m.faults.push(eof_fault("kubelet", 2)));
    sim.hook("install").assert_ok();
    assert!(sim.machine().snaps.contains_key("kubelet"));
    assert_resources_settled(&sim);
    assert_eq!(sim.unit().error, None);
}

#[test]
fn a_store_that_keeps_failing_waits_and_the_next_hook_retries() {
    let (sim, _s, _c, _rels) = common::cluster::running(common::cluster::Master::Current);
    sim.set_config("require-manual-upgrade", false);
    sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "refresh".into(),
            target: Some("kube-proxy".into()),
            remaining: 3,
            exit: 1,
            stderr: "error: cannot perform the following tasks:\n- Download snap \"kube-proxy\" (1102) from channel \"1.32/stable\" (unexpected EOF)\n".into(),
        })
    });
    sim.configure("channel", "1.32/stable").assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "waiting");
    assert!(
        message.starts_with(
            "Waiting to retry installing kube-proxy: cannot perform the following tasks"
        ),
        "{message}"
    );
    assert!(message.contains("unexpected EOF"), "{message}");
    assert_eq!(sim.unit().error, None);
    // The store is back; update-status is the next hook and retries.
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.machine().snaps["kube-proxy"].channel.as_deref(),
        Some("1.32/stable")
    );
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
}

#[test]
fn a_channel_the_store_lacks_is_blocked_not_retried() {
    let (sim, _s) = provisioned();
    sim.set_config("channel", "1.99/stable");
    sim.hook("install").assert_ok();
    let (status, message) = sim.status();
    assert_eq!(status, "blocked");
    assert!(message.contains("channel 1.99/stable"), "{message}");
}

#[test]
fn a_channel_change_needs_the_upgrade_action_when_manual_upgrades_are_required() {
    let (sim, _s, c, _rels) = common::cluster::running(common::cluster::Master::Current);
    // The control plane went to 1.32 first, as the version-skew policy
    // asks (tests/upgrades.rs has the refusals).
    c.api.set_version("v1.32.0");
    let mark = sim.mark();
    sim.configure("channel", "1.32/stable").assert_ok();
    assert!(snap_calls(&sim, mark).is_empty(), "snaps left alone");
    assert_eq!(
        sim.status(),
        (
            "blocked".to_string(),
            "Needs manual upgrade, run the upgrade action".to_string()
        )
    );
    // update-status keeps saying so without looking again.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
    );
    assert!(sim.tool_calls_since(mark).is_empty());

    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed", "{action:?}");
    assert!(
        action.results["kubelet"]
            .as_str()
            .unwrap()
            .contains("1.32.0"),
        "{:?}",
        action.results
    );
    let machine = sim.machine();
    for snap in ["kubectl", "kubelet", "kube-proxy"] {
        assert_eq!(machine.snaps[snap].channel.as_deref(), Some("1.32/stable"));
    }
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
    assert_eq!(sim.unit().workload_version, "1.32.0");
}

#[test]
fn without_manual_upgrades_the_hook_upgrades() {
    let (sim, _s) = provisioned();
    sim.set_config("require-manual-upgrade", false);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let mark = sim.mark();
    sim.configure("channel", "1.32/stable").assert_ok();
    assert_eq!(
        snap_calls(&sim, mark),
        vec![
            "refresh kubectl --channel=1.32/stable --classic",
            "refresh kubelet --channel=1.32/stable --classic",
            "refresh kube-proxy --channel=1.32/stable --classic",
        ]
    );
    assert_eq!(sim.unit().workload_version, "1.32.0");
}

#[test]
fn a_new_attached_snap_waits_for_the_upgrade_action() {
    let (sim, scratch, _c, _rels) = common::cluster::running(common::cluster::Master::Current);
    let kubelet = TestSnap::daemon("kubelet", "1.31.9", arch()).build(scratch.path());
    sim.attach_file("kubelet", &kubelet);
    sim.hook("upgrade-charm").assert_ok();
    sim.hook("config-changed").assert_ok();
    assert_eq!(
        sim.status().1,
        "Needs manual upgrade, run the upgrade action"
    );
    assert_eq!(sim.machine().snaps["kubelet"].source, SnapSource::Store);
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "completed");
    assert!(matches!(
        sim.machine().snaps["kubelet"].source,
        SnapSource::Local(_)
    ));
    assert_eq!(sim.unit().workload_version, "1.31.9");
}

#[test]
fn an_upgrade_that_cannot_complete_fails_the_action_with_the_reason() {
    let (sim, _s) = provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    sim.set_config("channel", "1.32/stable");
    sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "refresh".into(),
            target: Some("kubelet".into()),
            remaining: 10,
            exit: 1,
            stderr: "error: cannot refresh \"kubelet\": unexpected EOF\n".into(),
        })
    });
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("unexpected EOF"),
        "{}",
        action.message
    );
    assert_eq!(sim.unit().error, None);
}

#[test]
fn converged_hooks_make_no_snap_call_and_write_no_file() {
    let (sim, _s) = provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let snapshot = |sim: &Sim| -> Vec<(String, std::time::SystemTime)> {
        let mut files: Vec<(String, std::time::SystemTime)> = tree(&sim.root())
            .into_iter()
            .filter_map(|p| {
                let meta = sim.root().join(&p).symlink_metadata().ok()?;
                Some((p, meta.modified().ok()?))
            })
            .collect();
        let state = sim.charm_dir().join(".kubernetes-worker-state.json");
        files.push((
            "state".into(),
            std::fs::metadata(state).unwrap().modified().unwrap(),
        ));
        files
    };
    for hook in [
        "install",
        "config-changed",
        "upgrade-charm",
        "start",
        "update-status",
        "leader-settings-changed",
    ] {
        sim.hook(hook).assert_ok();
        let before = snapshot(&sim);
        let mark = sim.mark();
        sim.hook(hook).assert_ok();
        let calls = sim.machine_calls_since(mark);
        assert!(
            calls.iter().all(|c| !c.is_mutating()),
            "{hook} ran {calls:?}"
        );
        assert!(snap_calls(&sim, mark).is_empty(), "{hook}");
        assert_eq!(snapshot(&sim), before, "{hook} wrote files");
        let tool_calls = sim.tool_calls_since(mark);
        assert!(
            tool_calls
                .iter()
                .all(|c| c.tool != "status-set" || hook == "install"),
            "{hook}: {tool_calls:?}"
        );
    }
}

#[test]
fn a_snapd_change_in_progress_is_waited_for() {
    let (sim, _s) = provisioned();
    sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "install".into(),
            target: Some("kubelet".into()),
            remaining: 2,
            exit: 10,
            stderr: "error: snap \"kubelet\" has \"install-snap\" change in progress\n".into(),
        })
    });
    sim.hook("install").assert_ok();
    assert!(sim.machine().snaps.contains_key("kubelet"));
    let attempts = sim
        .machine()
        .calls
        .iter()
        .filter(|c| {
            c.args.first().is_some_and(|a| a == "install")
                && c.args.contains(&"kubelet".to_string())
        })
        .count();
    assert_eq!(attempts, 3);
    assert_resources_settled(&sim);
}

#[test]
fn a_channel_snapd_cannot_take_blocks_and_changes_nothing() {
    let (sim, _s, _c, _rels) = common::cluster::running(common::cluster::Master::Current);
    for bad in ["", "1.31/stabel"] {
        let mark = sim.mark();
        sim.configure("channel", bad).assert_ok();
        // Refused before the store is asked: not a store failure to retry.
        let asked: Vec<_> = sim
            .machine_calls_since(mark)
            .into_iter()
            .filter(|c| c.program == "snap" && c.args.first().is_some_and(|v| v == "info"))
            .collect();
        assert!(asked.is_empty(), "{bad:?}: {asked:?}");
        assert_eq!(
            sim.status(),
            (
                "blocked".to_string(),
                format!("channel {bad:?} is not a snap channel: write [<track>/]<risk>[/<branch>], e.g. 1.31/stable")
            )
        );
        let mutating: Vec<_> = sim
            .machine_calls_since(mark)
            .into_iter()
            .filter(|c| c.is_mutating())
            .collect();
        assert!(mutating.is_empty(), "{bad:?}: {mutating:?}");
    }
    // The upgrade action says the same and does nothing.
    let (run, action) = sim.action("upgrade", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert!(
        action.message.contains("is not a snap channel"),
        "{}",
        action.message
    );
    let mark = sim.mark();
    sim.configure("channel", "1.31/stable").assert_ok();
    assert!(snap_calls(&sim, mark).is_empty(), "still on its channel");
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
}

fn journal_path(sim: &Sim) -> std::path::PathBuf {
    sim.charm_dir().join(".kubernetes-worker-journal.json")
}

use juju_sim::fixtures::names_in;

#[test]
fn a_plugin_install_stopped_half_way_is_finished_by_the_next_hook() {
    let (sim, scratch) = provisioned();
    let two = cni_tgz(scratch.path(), arch(), Some(&["bridge", "loopback"]));
    sim.attach_file(&format!("cni-{}", arch()), &two);
    sim.hook("install").assert_ok();
    // What a hook stopped among the moves of a three-plugin install
    // leaves: the intent written ahead, host-local moved already, its
    // staging directory and a temporary file of its own.
    let three = scratch.path().join("three");
    std::fs::create_dir(&three).unwrap();
    let three = cni_tgz(&three, arch(), Some(&["bridge", "loopback", "host-local"]));
    sim.attach_file(&format!("cni-{}", arch()), &three);
    let bin = cni_bin(&sim);
    std::fs::write(bin.join("host-local"), b"moved before the kill").unwrap();
    let staging = bin
        .parent()
        .unwrap()
        .join(".kubernetes-worker-staging.Ab12Cd");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("bridge"), b"half").unwrap();
    let mut journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(journal_path(&sim)).unwrap()).unwrap();
    journal["cni_pending"] = serde_json::json!({
        "resource": format!("cni-{}", arch()),
        "sha256": "0".repeat(64),
        "plugins": ["bridge", "host-local", "loopback"],
    });
    std::fs::write(journal_path(&sim), journal.to_string()).unwrap();

    sim.hook("upgrade-charm").assert_ok();
    assert_resources_settled(&sim);
    assert_eq!(names_in(&bin), ["bridge", "host-local", "loopback"]);
    assert_ne!(
        std::fs::read(bin.join("host-local")).unwrap(),
        b"moved before the kill"
    );
    assert!(!staging.exists(), "the staging directory is swept");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(journal_path(&sim)).unwrap()).unwrap();
    assert!(journal["cni_pending"].is_null(), "{journal}");
    // host-local is the charm's: a tarball without it removes it.
    sim.attach_file(&format!("cni-{}", arch()), &two);
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(names_in(&bin), ["bridge", "loopback"]);
}

#[test]
fn an_install_or_unpack_killed_at_any_moment_converges_with_the_plugins_the_charms() {
    let (base, scratch) = provisioned();
    // Debian's whole set: an unpack long enough to be killed part-way.
    let full = cni_tgz(scratch.path(), arch(), None);
    base.attach_file(&format!("cni-{}", arch()), &full);
    let few = cni_tgz(scratch.path(), arch(), Some(&["bridge", "loopback"]));
    // How long an undisturbed install and upgrade take, to spread the
    // kills over them.
    let installing = {
        let started = std::time::Instant::now();
        base.hook("install").assert_ok();
        started.elapsed()
    };
    let installed = names_in(&cni_bin(&base));
    let took = {
        let started = std::time::Instant::now();
        base.attach_file(&format!("cni-{}", arch()), &few);
        base.hook("upgrade-charm").assert_ok();
        started.elapsed()
    };
    let expected = names_in(&cni_bin(&base));
    let mut killed = 0;
    for step in 0..8u32 {
        let (sim, _s) = provisioned();
        sim.attach_file(&format!("cni-{}", arch()), &full);
        sim.kill_next_after(installing * step / 8);
        let run = sim.hook("install");
        run.assert_ok();
        killed += u32::from(run.killed);
        let all = names_in(&cni_bin(&sim));
        assert_eq!(
            all,
            installed,
            "install killed at {:?}",
            installing * step / 8
        );
        assert_eq!(
            names_in(cni_bin(&sim).parent().unwrap()),
            ["bin"],
            "no debris"
        );
        sim.attach_file(&format!("cni-{}", arch()), &few);
        sim.kill_next_after(took * step / 8);
        let run = sim.hook("upgrade-charm");
        run.assert_ok();
        killed += u32::from(run.killed);
        let bin = cni_bin(&sim);
        assert_eq!(names_in(&bin), expected, "killed at {:?}", took * step / 8);
        let cni_dir: Vec<String> = names_in(bin.parent().unwrap());
        assert_eq!(cni_dir, ["bin"], "no debris");
        assert!(
            names_in(&sim.charm_dir())
                .iter()
                .all(|n| !n.ends_with(".tmp")),
            "{:?}",
            names_in(&sim.charm_dir())
        );
        assert_resources_settled(&sim);
        // Every plugin the first tarball had is the charm's: back to it,
        // and then to the small one again, both converge exactly.
        sim.attach_file(&format!("cni-{}", arch()), &full);
        sim.hook("upgrade-charm").assert_ok();
        assert_eq!(names_in(&bin), all);
    }
    assert!(killed >= 8, "only {killed} of 16 hooks were killed mid-way");
}

#[test]
fn a_resource_the_controller_cannot_serve_now_is_waited_for_and_fetched_later() {
    let (sim, _s) = provisioned();
    sim.edit_unit(|s| {
        s.tool_faults.insert(
            "resource-get".into(),
            "could not download resource: HTTP request failed: Get https://10.0.0.2:17070/units/unit-kubernetes-worker-0/resources/cni: unexpected EOF".into(),
        );
    });
    let mark = sim.mark();
    for run in sim.deploy() {
        run.assert_ok();
    }
    // Unrelated, the unit asks for its relations first; the log says what
    // it waits for.
    let logged = sim.unit().logs.iter().any(|l| {
        l.message.starts_with(&format!(
            "Waiting for the cni-{} resource: could not download resource: HTTP request failed:",
            arch()
        )) && l
            .message
            .ends_with("unexpected EOF; retrying on the next hook")
    });
    assert!(logged, "{:#?}", sim.unit().logs);
    // A snap resource that could not be fetched is not "use the store".
    assert!(
        snap_calls(&sim, mark).is_empty(),
        "{:?}",
        snap_calls(&sim, mark)
    );
    assert!(!cni_bin(&sim).exists());

    // The controller answers again: the next hook, even update-status,
    // fetches and installs.
    sim.edit_unit(|s| {
        s.tool_faults.remove("resource-get");
    });
    sim.hook("update-status").assert_ok();
    assert_resources_settled(&sim);
    assert!(cni_bin(&sim).join("loopback").exists());
    assert!(sim.machine().snaps.contains_key("kubelet"));
}

#[test]
fn a_related_unit_waits_for_a_resource_it_cannot_fetch_and_keeps_running() {
    let (sim, scratch, _c, _rels) = common::cluster::running(juju_sim::cluster::Master::Today);
    let few = cni_tgz(scratch.path(), arch(), Some(&["bridge", "loopback"]));
    sim.attach_file(&format!("cni-{}", arch()), &few);
    sim.edit_unit(|s| {
        s.tool_faults.insert(
            format!("resource-get cni-{}", arch()),
            "could not download resource: HTTP request failed: connection reset by peer".into(),
        );
    });
    let mark = sim.mark();
    sim.hook("upgrade-charm").assert_ok();
    assert_eq!(
        sim.status(),
        (
            "waiting".into(),
            format!("Waiting for the cni-{} resource: could not download resource: HTTP request failed: connection reset by peer; retrying on the next hook", arch())
        )
    );
    assert!(snap_calls(&sim, mark).is_empty());
    assert!(
        cni_bin(&sim).join("host-local").exists(),
        "plugins untouched"
    );
    // While it waits, update-status looks again at that one resource only:
    // one resource-get, within the hook's budget of four calls.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    let calls: Vec<String> = sim
        .tool_calls_since(mark)
        .iter()
        .map(|c| c.tool.clone())
        .collect();
    assert_eq!(
        calls.iter().filter(|t| *t == "resource-get").count(),
        1,
        "{calls:?}"
    );
    assert!(calls.len() <= 4, "{calls:?}");
    assert_eq!(sim.status().0, "waiting");
    sim.edit_unit(|s| {
        s.tool_faults.clear();
    });
    sim.hook("update-status").assert_ok();
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    assert_eq!(names_in(&cni_bin(&sim)), ["bridge", "loopback"]);
}
