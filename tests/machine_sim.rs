//! The simulated machine's `snap` and `systemctl` behave like the real CLIs
//! for everything the charm calls: tested through a probe charm, with
//! snaps built by mksquashfs here.

mod common;

use common::Probe;
use juju_sim::fixtures::TestSnap;
use juju_sim::machine::{Fault, SnapSource, StoreRevision};

fn with_store(p: &Probe) {
    p.sim.edit_machine(|m| {
        let mut channels = std::collections::BTreeMap::new();
        for (channel, version, revision) in [
            ("1.31/stable", "1.31.2", 3001),
            ("1.32/stable", "1.32.0", 3100),
        ] {
            channels.insert(
                channel.to_string(),
                StoreRevision {
                    version: version.into(),
                    revision,
                    classic: true,
                    architectures: vec!["all".into()],
                    apps: [
                        ("kubelet".to_string(), None),
                        ("daemon".to_string(), Some("simple".to_string())),
                    ]
                    .into_iter()
                    .collect(),
                },
            );
        }
        m.store.insert("kubelet".into(), channels);
    });
}

#[test]
fn store_install_needs_classic_and_lays_out_the_snap() {
    let p = Probe::new();
    with_store(&p);
    let r = p.calls(
        "install",
        &[
            ("strict", "run snap install kubelet --channel=1.31/stable"),
            (
                "classic",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            (
                "again",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            ("active", "run systemctl is-active snap.kubelet.daemon"),
            ("missing", "run snap install no-such-snap --classic"),
        ],
        false,
    );
    assert_eq!(r["strict"].code, 1);
    assert!(
        r["strict"].stderr.contains("--classic"),
        "{}",
        r["strict"].stderr
    );
    assert_eq!(r["classic"].code, 0, "{:?}", r["classic"]);
    assert_eq!(
        r["classic"].stdout,
        "kubelet (1.31/stable) 1.31.2 from Canonical\u{2713} installed\n"
    );
    assert_eq!(
        r["again"].stdout,
        "snap \"kubelet\" is already installed, see 'snap help refresh'\n"
    );
    assert_eq!(r["active"].stdout, "active\n");
    assert_eq!(
        r["missing"].stderr,
        "error: snap \"no-such-snap\" not found\n"
    );
    let yaml =
        std::fs::read_to_string(p.sim.root().join("snap/kubelet/current/meta/snap.yaml")).unwrap();
    assert!(yaml.contains("version: 1.31.2"), "{yaml}");
    assert!(p
        .sim
        .root()
        .join("snap/bin/kubelet")
        .symlink_metadata()
        .is_ok());
    let snap = &p.sim.machine().snaps["kubelet"];
    assert_eq!(snap.channel.as_deref(), Some("1.31/stable"));
    assert_eq!(snap.revision, "3001");
}

#[test]
fn local_files_need_dangerous_a_squashfs_and_this_arch() {
    let p = Probe::new();
    let dir = tempfile::tempdir().unwrap();
    let good = TestSnap::daemon("kubelet", "1.31.2", juju_sim::host_arch()).build(dir.path());
    let wrong = TestSnap::daemon("kubelet", "1.31.2", "s390x").build(dir.path());
    let junk = dir.path().join("junk.snap");
    std::fs::write(&junk, b"this is no squashfs").unwrap();
    let r = p.calls(
        "install",
        &[
            (
                "unsigned",
                &format!("run snap install --classic {}", good.display()),
            ),
            (
                "junk",
                &format!("run snap install --dangerous --classic {}", junk.display()),
            ),
            (
                "wrong",
                &format!("run snap install --dangerous --classic {}", wrong.display()),
            ),
            (
                "noclassic",
                &format!("run snap install --dangerous {}", good.display()),
            ),
            (
                "good",
                &format!("run snap install --dangerous --classic {}", good.display()),
            ),
        ],
        false,
    );
    assert!(
        r["unsigned"]
            .stderr
            .starts_with("error: cannot find signatures with metadata for snap"),
        "{:?}",
        r["unsigned"]
    );
    assert!(
        r["junk"].stderr.contains("cannot process snap or snapdir"),
        "{:?}",
        r["junk"]
    );
    assert_eq!(
        r["wrong"].stderr,
        format!(
            "error: cannot install snap file: snap \"kubelet\" supported architectures (s390x) are incompatible with this system ({})\n",
            juju_sim::host_arch()
        )
    );
    assert!(
        r["noclassic"].stderr.contains("classic confinement"),
        "{:?}",
        r["noclassic"]
    );
    assert_eq!(r["good"].code, 0, "{:?}", r["good"]);
    assert_eq!(r["good"].stdout, "kubelet 1.31.2 installed\n");
    let snap = &p.sim.machine().snaps["kubelet"];
    assert_eq!(snap.revision, "x1");
    assert_eq!(snap.source, SnapSource::Local(good.clone()));
    assert!(snap.configure_hook);
    assert!(p
        .sim
        .root()
        .join("snap/kubelet/current/meta/hooks/configure")
        .exists());
}

#[test]
fn refreshing_a_local_snap_from_the_store_needs_amend() {
    let p = Probe::new();
    with_store(&p);
    let dir = tempfile::tempdir().unwrap();
    let local = TestSnap::daemon("kubelet", "1.31.2", "all").build(dir.path());
    let r = p.calls(
        "install",
        &[
            (
                "local",
                &format!("run snap install --dangerous --classic {}", local.display()),
            ),
            (
                "plain",
                "run snap refresh kubelet --channel=1.31/stable --classic",
            ),
            (
                "amend",
                "run snap refresh kubelet --channel=1.31/stable --classic --amend",
            ),
            (
                "same",
                "run snap refresh kubelet --channel=1.31/stable --classic",
            ),
            (
                "newer",
                "run snap refresh kubelet --channel=1.32/stable --classic",
            ),
        ],
        false,
    );
    assert_eq!(
        r["plain"].stderr,
        "error: local snap \"kubelet\" is unknown to the store, use --amend to proceed anyway\n"
    );
    assert_eq!(r["amend"].code, 0, "{:?}", r["amend"]);
    assert_eq!(
        r["same"].stdout,
        "snap \"kubelet\" has no updates available\n"
    );
    assert_eq!(
        r["newer"].stdout,
        "kubelet (1.32/stable) 1.32.0 from Canonical\u{2713} refreshed\n"
    );
    let machine = p.sim.machine();
    assert_eq!(machine.snaps["kubelet"].source, SnapSource::Store);
    // Installed from the file, refreshed twice: the daemon started 3 times.
    assert_eq!(machine.services["snap.kubelet.daemon.service"].starts, 3);
}

#[test]
fn the_store_fails_as_told_then_recovers() {
    let p = Probe::new();
    with_store(&p);
    p.sim.edit_machine(|m| {
        m.faults.push(Fault {
            command: "install".into(),
            target: Some("kubelet".into()),
            remaining: 2,
            exit: 1,
            stderr: "error: cannot perform the following tasks:\n- Download snap \"kubelet\" (3001) from channel \"1.31/stable\" (unexpected EOF)\n".into(),
        })
    });
    let r = p.calls(
        "install",
        &[
            (
                "one",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            (
                "two",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            (
                "three",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
        ],
        false,
    );
    assert!(r["one"].stderr.contains("unexpected EOF"));
    assert!(r["two"].stderr.contains("unexpected EOF"));
    assert_eq!(r["three"].code, 0);
}

#[test]
fn snap_set_needs_a_configure_hook_and_parses_json_values() {
    let p = Probe::new();
    let dir = tempfile::tempdir().unwrap();
    let hookless = TestSnap {
        configure_hook: false,
        ..TestSnap::daemon("kube-proxy", "1.31.2", "all")
    }
    .build(dir.path());
    let kubelet = TestSnap::daemon("kubelet", "1.31.2", "all").build(dir.path());
    let r = p.calls(
        "install",
        &[
            (
                "i1",
                &format!(
                    "run snap install --dangerous --classic {}",
                    hookless.display()
                ),
            ),
            (
                "i2",
                &format!(
                    "run snap install --dangerous --classic {}",
                    kubelet.display()
                ),
            ),
            ("nohook", "run snap set kube-proxy v=0"),
            (
                "set",
                "run snap set kubelet v=0 config=/root/cdk/kubelet/config.yaml fail-swap-on=false",
            ),
            ("unset", "run snap set kubelet v!"),
            ("get", "run snap get -d kubelet"),
            ("notinstalled", "run snap set kubectl a=b"),
        ],
        false,
    );
    assert!(
        r["nohook"].stderr.contains("has no \"configure\" hook"),
        "{:?}",
        r["nohook"]
    );
    assert_eq!(r["set"].code, 0);
    let config = &p.sim.machine().snap_config["kubelet"];
    assert_eq!(config["fail-swap-on"], serde_json::json!(false));
    assert_eq!(
        config["config"],
        serde_json::json!("/root/cdk/kubelet/config.yaml")
    );
    assert!(!config.contains_key("v"));
    assert!(
        r["get"].stdout.contains("\"fail-swap-on\": false"),
        "{}",
        r["get"].stdout
    );
    assert_eq!(
        r["notinstalled"].stderr,
        "error: snap \"kubectl\" is not installed\n"
    );
}

#[test]
fn systemctl_knows_only_the_services_that_exist() {
    let p = Probe::new();
    with_store(&p);
    let r = p.calls(
        "install",
        &[
            ("unknown", "run systemctl restart snap.kubelet.daemon"),
            ("inactive", "run systemctl is-active snap.kubelet.daemon"),
            (
                "install",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            ("stop", "run systemctl stop snap.kubelet.daemon.service"),
            ("after-stop", "run systemctl is-active snap.kubelet.daemon"),
            ("disable", "run systemctl disable --now snap.kubelet.daemon"),
            ("enabled", "run systemctl is-enabled snap.kubelet.daemon"),
            ("restart", "run systemctl restart snap.kubelet.daemon"),
        ],
        false,
    );
    assert_eq!(r["unknown"].code, 5);
    assert_eq!(
        r["unknown"].stderr,
        "Failed to restart snap.kubelet.daemon.service: Unit snap.kubelet.daemon.service not found.\n"
    );
    assert_eq!(
        (r["inactive"].code, r["inactive"].stdout.as_str()),
        (3, "inactive\n")
    );
    assert_eq!(
        (r["after-stop"].code, r["after-stop"].stdout.as_str()),
        (3, "inactive\n")
    );
    assert_eq!(
        (r["enabled"].code, r["enabled"].stdout.as_str()),
        (1, "disabled\n")
    );
    let svc = &p.sim.machine().services["snap.kubelet.daemon.service"];
    assert!(svc.active);
    assert!(!svc.enabled);
    assert_eq!(svc.starts, 2);
    let calls = p.sim.machine().calls;
    let mutating = calls.iter().filter(|c| c.is_mutating()).count();
    assert_eq!(mutating, 5, "{calls:?}");
}

#[test]
fn refresh_hold_needs_snapd_2_58_and_survives_refreshes() {
    let p = Probe::new();
    with_store(&p);
    let r = p.calls(
        "install",
        &[
            (
                "install",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            ("hold", "run snap refresh --hold kubelet"),
            ("nothing", "run snap refresh --hold not-installed"),
            (
                "refresh",
                "run snap refresh kubelet --channel=1.32/stable --classic",
            ),
        ],
        false,
    );
    assert_eq!(r["hold"].code, 0, "{:?}", r["hold"]);
    assert_eq!(
        r["hold"].stdout,
        "General refreshes of \"kubelet\" held indefinitely\n"
    );
    assert_eq!(r["nothing"].code, 1);
    assert_eq!(
        r["refresh"].code, 0,
        "a held snap still refreshes when asked"
    );
    let machine = p.sim.machine();
    assert!(machine.snaps["kubelet"].held);
    assert_eq!(machine.snaps["kubelet"].version, "1.32.0");
    // An older snapd does not know the flag.
    p.sim.edit_machine(|m| m.snapd_version = "2.57.6".into());
    let r = p.calls(
        "install",
        &[
            ("hold", "run snap refresh --hold kubelet"),
            ("version", "run snap version"),
        ],
        false,
    );
    assert_eq!(r["hold"].code, 1);
    assert_eq!(r["hold"].stderr, "error: unknown flag `hold'\n");
    assert!(r["version"].stdout.contains("snapd   2.57.6"));
}

#[test]
fn sysctl_loads_a_file_and_reports_the_keys_it_cannot_set() {
    let p = Probe::new();
    let file = p.sim.dir().join("50-test.conf");
    std::fs::write(
        &file,
        "# comment\n; also\nnet.ipv4.conf.all.forwarding = 1\nkernel/panic=10\n\nvm.overcommit_memory = 1\n",
    )
    .unwrap();
    p.sim.edit_machine(|m| {
        m.sysctl_refused.insert("vm.overcommit_memory".into());
    });
    let r = p.calls(
        "install",
        &[
            ("load", &format!("run sysctl -p {}", file.display())),
            ("missing", "run sysctl -p /no/such/file"),
        ],
        false,
    );
    assert_eq!(r["load"].code, 255);
    assert_eq!(
        r["load"].stdout,
        "net.ipv4.conf.all.forwarding = 1\nkernel.panic = 10\n"
    );
    assert_eq!(
        r["load"].stderr,
        "sysctl: permission denied on key \"vm.overcommit_memory\"\n"
    );
    assert_eq!(r["missing"].code, 255);
    let machine = p.sim.machine();
    assert_eq!(machine.sysctl["kernel.panic"], "10");
    assert!(!machine.sysctl.contains_key("vm.overcommit_memory"));
    let call = machine
        .calls
        .iter()
        .find(|c| c.program == "sysctl")
        .unwrap();
    assert!(call.is_mutating());
}

/// The test API server's server-side apply is kube-apiserver's: lists
/// merged by their keys, items and fields kept for the manager that owns
/// them (force or not), an applier's dropped items removed, conflicts
/// without force.
#[test]
fn server_side_apply_merges_as_kube_apiserver_does() {
    use juju_sim::ssa::{write, Outcome};
    use serde_json::json;
    let ds = |containers: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "d", "namespace": "n"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    };
    let stored = |o: Result<Outcome, String>| match o.unwrap() {
        Outcome::Stored(v) => v,
        Outcome::Conflicts(c) => panic!("{c}"),
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    // kubectl's client-side apply made it: an Update.
    let live = stored(write(
        "Update",
        "kubectl-client-side-apply",
        false,
        None,
        &ds(json!([{"name": "old", "image": "i:1", "ports": [{"containerPort": 80}]}])),
    ));
    // Another manager applies a container of another name: both stay.
    let both = stored(write(
        "Apply",
        "charm",
        true,
        Some(&live),
        &ds(json!([{"name": "new", "image": "i:2"}])),
    ));
    assert_eq!(names(&both), vec!["old", "new"]);
    // The same name without force: the image is the other manager's.
    match write(
        "Apply",
        "charm",
        false,
        Some(&live),
        &ds(json!([{"name": "old", "image": "i:2"}])),
    )
    .unwrap()
    {
        Outcome::Conflicts(c) => assert!(
            c.contains(r#"conflict with "kubectl-client-side-apply" using apps/v1"#)
                && c.contains(r#".spec.template.spec.containers[name="old"].image"#),
            "{c}"
        ),
        Outcome::Stored(v) => panic!("no conflict: {v}"),
    }
    // With force: one item, the image taken over, the port (set by the
    // other manager alone) kept; a port is keyed by containerPort and
    // protocol (defaulted to TCP).
    let merged = stored(write(
        "Apply",
        "charm",
        true,
        Some(&live),
        &ds(json!([{"name": "old", "image": "i:2", "ports": [{"containerPort": 443}]}])),
    ));
    assert_eq!(names(&merged), vec!["old"]);
    let ctr = &merged["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ctr["image"], "i:2");
    assert_eq!(ctr["ports"].as_array().unwrap().len(), 2, "{ctr}");
    // What an applier owned and no longer applies goes.
    let again = stored(write(
        "Apply",
        "charm",
        true,
        Some(&both),
        &ds(json!([{"name": "newer", "image": "i:3"}])),
    ));
    assert_eq!(names(&again), vec!["old", "newer"]);
}

#[test]
fn snap_info_shows_each_track_as_snapd_does() {
    let p = Probe::new();
    with_store(&p);
    p.sim.edit_machine(|m| {
        let edge = StoreRevision {
            version: "1.32.1".into(),
            ..m.store["kubelet"]["1.32/stable"].clone()
        };
        m.store
            .get_mut("kubelet")
            .unwrap()
            .insert("1.32/edge".into(), edge);
    });
    let r = p.calls(
        "install",
        &[
            (
                "install",
                "run snap install kubelet --channel=1.31/stable --classic",
            ),
            ("info", "run snap info --unicode=never kubelet"),
            ("missing", "run snap info no-such-snap"),
        ],
        false,
    );
    assert_eq!(r["info"].code, 0, "{:?}", r["info"]);
    let out = &r["info"].stdout;
    assert!(out.contains("tracking:     1.31/stable\n"), "{out}");
    assert!(out.contains("  1.32/candidate: ^\n"), "{out}");
    assert!(out.contains("installed:"), "{out}");
    let channels = charm::snap::parse_info_channels(out).unwrap();
    assert_eq!(channels["1.31/stable"], "1.31.2");
    assert_eq!(channels["1.32/beta"], "1.32.0");
    assert_eq!(channels["1.32/edge"], "1.32.1");
    assert_eq!(r["missing"].code, 1);
    assert_eq!(
        r["missing"].stderr,
        "error: no snap found for \"no-such-snap\"\n"
    );
}

/// The simulated `ip` prints what iproute2 prints for the same interfaces:
/// a network namespace of its own is given interfaces of every kind the
/// charm must read (up and down, a veth's peer, an address of each scope,
/// none at all, a container bridge), the real `ip` lists them, the
/// simulated machine is given the same table, and the two outputs must be
/// byte for byte the same. Needs root (unshare); elsewhere it says so.
#[test]
fn ip_lists_addresses_as_iproute2_does() {
    const SETUP: &str = "set -e
        ip link set lo up
        ip link add a0 type veth peer name a1
        ip addr add 198.51.100.7/24 dev a0
        ip addr add 2001:db8::7/64 dev a0 nodad
        ip link set a0 up
        ip link set a1 up
        ip link add b0 type veth peer name b1
        ip addr add 203.0.113.5/24 dev b0
        ip link add lxdbr0 type veth peer name l1
        ip addr add 10.10.0.1/24 dev lxdbr0
        ip addr add 10.0.0.1/8 scope link dev l1
        ip link set lxdbr0 up
        ip link set l1 up
        for i in 1 2 3 4 5; do
            ip -j addr show; ip -j -br addr show scope global
            ip -j -br addr show; ip -j addr show
        done";
    let real = match std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", SETUP])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        other => {
            eprintln!("skipped: a network namespace of our own cannot be had: {other:?}");
            return;
        }
    };
    let model = |table: &str| -> Vec<juju_sim::machine::Interface> {
        let table: Vec<serde_json::Value> = serde_json::from_str(table).unwrap();
        table
            .iter()
            .map(|link| juju_sim::machine::Interface {
                name: link["ifname"].as_str().unwrap().into(),
                operstate: link["operstate"].as_str().unwrap().into(),
                link: link["link"].as_str().map(String::from),
                addresses: link["addr_info"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        juju_sim::machine::InterfaceAddress::new(
                            a["local"].as_str().unwrap(),
                            a["prefixlen"].as_u64().unwrap() as u8,
                            a["scope"].as_str().unwrap(),
                        )
                    })
                    .collect(),
            })
            .collect()
    };
    // Five tries: one where the table did not change while it was read.
    let lines: Vec<&str> = real.lines().collect();
    let (interfaces, scoped, all) = lines
        .chunks(4)
        .find(|c| model(c[0]) == model(c[3]))
        .map(|c| (model(c[0]), c[1], c[2]))
        .expect("the interfaces kept changing");
    // Every case is there to be compared.
    let has = |f: &dyn Fn(&juju_sim::machine::Interface) -> bool| interfaces.iter().any(f);
    assert!(has(&|i| i.addresses.is_empty()));
    assert!(has(&|i| i.operstate == "DOWN" && !i.addresses.is_empty()));
    assert!(has(&|i| i.link.is_some()));
    assert!(has(&|i| i.addresses.iter().all(|a| a.scope != "global")));
    assert!(has(&|i| i.addresses.iter().any(|a| a.scope == "global")
        && i.addresses.iter().any(|a| a.scope != "global")));
    let p = Probe::new();
    p.sim.edit_machine(|m| m.interfaces = interfaces.clone());
    for (args, want) in [
        (
            &["-j", "-br", "addr", "show", "scope", "global"][..],
            scoped,
        ),
        (&["-j", "-br", "addr", "show"][..], all),
    ] {
        let (code, out, err) = p.sim.machine_run("ip", args);
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, format!("{want}\n"), "ip {args:?}");
    }
    let (code, _, err) = p.sim.machine_run("ip", &["route", "show"]);
    assert_eq!(code, 255, "{err}");
}
