//! The simulated agent honours shared/juju-contract.md: one test per rule,
//! through a probe charm whose hooks run shell commands against the
//! simulated hook tools exactly as a charm would.

mod common;

use common::Probe;

fn usage_error(res: &common::Res, message: &str) {
    assert_eq!(res.code, 2, "{res:?}");
    assert_eq!(res.stderr, format!("ERROR {message}\n"));
    assert_eq!(res.stdout, "", "nothing on stdout on error");
}

// ----- rules common to every hook tool ------------------------------------

#[test]
fn unknown_flags_are_usage_errors() {
    let p = Probe::new();
    usage_error(
        &p.call("install", "config-get --foo"),
        "option provided but not defined: --foo",
    );
    usage_error(
        &p.call("install", "is-leader -x"),
        "option provided but not defined: -x",
    );
    usage_error(
        &p.call("install", "config-get --format"),
        "option needs an argument: --format",
    );
}

#[test]
fn a_command_that_fails_to_run_exits_1_with_one_error_line() {
    let p = Probe::new();
    let res = p.call("install", "resource-get kubelet");
    assert_eq!(res.code, 1);
    assert!(
        res.stderr
            .starts_with("ERROR could not download resource: HTTP request failed: "),
        "{}",
        res.stderr
    );
    assert_eq!(res.stderr.lines().count(), 1);
    assert_eq!(res.stdout, "");
}

#[test]
fn flags_are_gnu_style_and_interleave_with_arguments() {
    let p = Probe::new();
    let id = p.sim.relate("kube-control", "kubernetes-master");
    p.sim
        .join(id, "kubernetes-master/0", &[("domain", "cluster.local")]);
    let r = p.calls(
        "update-status",
        &[
            (
                "eq",
                "run relation-get --format=json -r kube-control:1 - kubernetes-master/0",
            ),
            (
                "space",
                "run relation-get --format json -r kube-control:1 - kubernetes-master/0",
            ),
            (
                "mixed",
                "run relation-get - --format json kubernetes-master/0 -r kube-control:1",
            ),
            (
                "short",
                "run relation-get -r=1 --format=json domain kubernetes-master/0",
            ),
        ],
        false,
    );
    let expected = "{\"domain\":\"cluster.local\"}\n";
    assert_eq!(r["eq"].stdout, expected);
    assert_eq!(r["space"].stdout, expected);
    assert_eq!(r["mixed"].stdout, expected);
    assert_eq!(r["short"].stdout, "\"cluster.local\"\n");
}

#[test]
fn double_dash_ends_flags() {
    let p = Probe::new();
    let res = p.call(
        "install",
        "juju-log --log-level WARNING -- --format=json is text here",
    );
    assert_eq!(res.code, 0, "{res:?}");
    let log = p.sim.unit().logs.pop().unwrap();
    assert_eq!(log.level, "WARNING");
    assert_eq!(log.message, "--format=json is text here");
    let res = p.call("install", "status-set blocked -- '-starts with a dash'");
    assert_eq!(res.code, 0, "{res:?}");
    assert_eq!(p.sim.unit().status.message, "-starts with a dash");
}

#[test]
fn json_is_gos_sorted_with_a_newline_and_null_for_missing() {
    let p = Probe::new();
    p.sim.set_config("labels", "a=<b>&c");
    let r = p.calls(
        "install",
        &[
            ("all", "run config-get --format=json"),
            ("missing", "run config-get --format=json no-such-option"),
            ("one", "run config-get --format=json ingress"),
        ],
        false,
    );
    let all = &r["all"].stdout;
    assert!(all.ends_with("}\n"));
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(all)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // Keys in the text appear in sorted order too.
    let positions: Vec<usize> = sorted
        .iter()
        .map(|k| all.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{all}");
    assert!(
        all.contains("\"labels\":\"a=\\u003cb\\u003e\\u0026c\""),
        "Go escapes HTML: {all}"
    );
    assert_eq!(r["missing"].stdout, "null\n");
    assert_eq!(r["one"].stdout, "true\n");
}

#[test]
fn config_values_keep_their_types_and_defaults() {
    let p = Probe::new();
    p.sim.set_config("require-manual-upgrade", false);
    let res = p.call("config-changed", "config-get --format=json");
    let v: serde_json::Value = serde_json::from_str(&res.stdout).unwrap();
    assert_eq!(v["require-manual-upgrade"], serde_json::json!(false));
    assert_eq!(v["ingress"], serde_json::json!(true));
    assert_eq!(v["channel"], serde_json::json!("1.31/stable"));
    assert_eq!(v["labels"], serde_json::json!(""));
}

#[test]
fn relation_ids_use_the_number_after_the_last_colon() {
    let p = Probe::new();
    let id = p.sim.relate("certificates", "easyrsa");
    assert_eq!(id, 1);
    p.sim.join(id, "easyrsa/0", &[("ca", "CERT")]);
    let r = p.calls(
        "update-status",
        &[
            (
                "other-name",
                "run relation-get --format=json -r whatever:1 ca easyrsa/0",
            ),
            (
                "unknown",
                "run relation-get --format=json -r certificates:99 ca easyrsa/0",
            ),
            ("no-rid", "run relation-get --format=json ca easyrsa/0"),
            ("list-no-rid", "run relation-list --format=json"),
        ],
        false,
    );
    assert_eq!(r["other-name"].stdout, "\"CERT\"\n");
    usage_error(
        &r["unknown"],
        "invalid value \"certificates:99\" for option -r: relation not found",
    );
    usage_error(&r["no-rid"], "no relation id specified");
    usage_error(&r["list-no-rid"], "no relation id specified");
}

#[test]
fn the_hook_environment_is_replaced_not_inherited() {
    let p = Probe::new();
    let res = p.call(
        "install",
        "sh -c 'env; echo cwd=$(pwd); cat; echo stdin-done'",
    );
    let env = res.stdout;
    for absent in ["HOME=", "USER=", "SHELL=", "CARGO"] {
        assert!(
            !env.lines().any(|l| l.starts_with(absent)),
            "{absent} leaked: {env}"
        );
    }
    for present in [
        "JUJU_DISPATCH_PATH=hooks/install",
        "JUJU_HOOK_NAME=install",
        "JUJU_UNIT_NAME=kubernetes-worker/0",
        "JUJU_MODEL_NAME=",
        "JUJU_MODEL_UUID=",
        "JUJU_VERSION=",
        "JUJU_CONTEXT_ID=",
        "JUJU_AGENT_SOCKET_ADDRESS=",
        "JUJU_AGENT_SOCKET_NETWORK=unix",
        "JUJU_MACHINE_ID=0",
        "JUJU_PRINCIPAL_UNIT=",
        "JUJU_AVAILABILITY_ZONE=",
        "JUJU_API_ADDRESSES=",
        "JUJU_CHARM_HTTP_PROXY=",
        "LANG=C.UTF-8",
        "DEBIAN_FRONTEND=noninteractive",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(present)),
            "{present} missing: {env}"
        );
    }
    let charm_dir = p.sim.charm_dir().display().to_string();
    assert!(env.contains(&format!("JUJU_CHARM_DIR={charm_dir}\n")));
    assert!(env.contains(&format!("CHARM_DIR={charm_dir}\n")));
    assert!(env.contains(&format!("cwd={charm_dir}\n")));
    let path = env.lines().find(|l| l.starts_with("PATH=")).unwrap();
    assert!(
        path.starts_with(&format!("PATH={}/tools:", p.sim.dir().display())),
        "{path}"
    );
    assert!(env.ends_with("stdin-done\n"), "stdin is /dev/null");
}

#[test]
fn relation_hooks_get_their_relation_variables() {
    let p = Probe::new();
    p.script("env | grep -E '^JUJU_(RELATION|REMOTE|DEPARTING)' | sort > \"$JUJU_CHARM_DIR/env.$JUJU_HOOK_NAME\"\n");
    let id = p.sim.relate("kube-api-endpoint", "kubernetes-master");
    p.sim.join(id, "kubernetes-master/0", &[]);
    p.sim.depart(id, "kubernetes-master/0");
    p.sim.unrelate(id);
    let read = |hook: &str| {
        std::fs::read_to_string(p.sim.charm_dir().join(format!("env.{hook}"))).unwrap()
    };
    assert_eq!(
        read("kube-api-endpoint-relation-created"),
        "JUJU_RELATION=kube-api-endpoint\nJUJU_RELATION_ID=kube-api-endpoint:1\nJUJU_REMOTE_APP=kubernetes-master\nJUJU_REMOTE_UNIT=\n"
    );
    assert!(read("kube-api-endpoint-relation-joined")
        .contains("JUJU_REMOTE_UNIT=kubernetes-master/0\n"));
    assert!(read("kube-api-endpoint-relation-departed")
        .contains("JUJU_DEPARTING_UNIT=kubernetes-master/0\n"));
    assert!(read("kube-api-endpoint-relation-broken").contains("JUJU_REMOTE_UNIT=\n"));
}

// ----- transactional tools ----------------------------------------------

#[test]
fn transactional_changes_are_dropped_when_the_hook_fails() {
    let p = Probe::new();
    let id = p.sim.relate("kube-control", "kubernetes-master");
    p.calls(
        "config-changed",
        &[
            (
                "set",
                "run relation-set -r kube-control:1 kubelet_user=system:node:w0",
            ),
            ("open", "run open-port 80/tcp"),
            ("state", "run state-set installed=yes"),
            ("status", "run status-set maintenance 'doing things'"),
        ],
        true,
    );
    let unit = p.sim.unit();
    let rel = unit.relation(id).unwrap();
    assert!(!rel.local_unit.contains_key("kubelet_user"));
    assert!(unit.ports.is_empty());
    assert!(unit.charm_state.is_empty());
    // status-set is not transactional: it took effect at once.
    assert_eq!(unit.status.message, "doing things");
    assert_eq!(
        p.sim.status(),
        ("error".into(), "hook failed: \"config-changed\"".into())
    );

    // The same changes in a hook that succeeds are committed.
    p.calls(
        "config-changed",
        &[
            (
                "set",
                "run relation-set -r kube-control:1 kubelet_user=system:node:w0",
            ),
            ("open", "run open-port 80/tcp"),
            ("state", "run state-set installed=yes"),
        ],
        false,
    );
    let unit = p.sim.unit();
    assert_eq!(
        unit.relation(id).unwrap().local_unit["kubelet_user"],
        "system:node:w0"
    );
    assert!(unit.ports.contains("80/tcp"));
    assert_eq!(unit.charm_state["installed"], "yes");
    assert_eq!(unit.error, None);
}

#[test]
fn a_hook_sees_its_own_pending_writes() {
    let p = Probe::new();
    p.sim.relate("cni", "flannel");
    let r = p.calls(
        "update-status",
        &[
            ("set", "run relation-set -r cni:1 is_master=False"),
            (
                "get",
                "run relation-get --format=json -r cni:1 is_master kubernetes-worker/0",
            ),
            ("open", "run open-port 443"),
            ("ports", "run opened-ports --format=json"),
        ],
        false,
    );
    assert_eq!(r["get"].stdout, "\"False\"\n");
    assert_eq!(r["ports"].stdout, "[\"443/tcp\"]\n");
}

#[test]
fn relation_set_trims_deletes_with_empty_values_and_rejects_duplicates() {
    let p = Probe::new();
    let id = p.sim.relate("cni", "flannel");
    let r = p.calls(
        "update-status",
        &[
            ("trim", "run relation-set -r cni:1 ' kubeconfig_path = /root/cdk/kubeconfig ' is_master=False"),
            ("dup", "run relation-set -r cni:1 a=1 a=2"),
            ("bad", "run relation-set -r cni:1 novalue"),
            ("file", "printf 'gpu: \"False\"\\nnote: two words\\n' | run relation-set -r cni:1 --file -"),
            ("delete", "run relation-set -r cni:1 is_master="),
        ],
        false,
    );
    usage_error(&r["dup"], "duplicate key specified: \"a\"");
    usage_error(&r["bad"], "expected \"key=value\", got \"novalue\"");
    assert_eq!(r["file"].code, 0, "{:?}", r["file"]);
    let bag = p.sim.unit().relation(id).unwrap().local_unit.clone();
    assert_eq!(bag["kubeconfig_path"], "/root/cdk/kubeconfig");
    assert_eq!(bag["gpu"], "False");
    assert_eq!(bag["note"], "two words");
    assert!(!bag.contains_key("is_master"));
    assert_eq!(bag["private-address"], "10.1.0.10", "the agent's own keys");
}

// ----- per-tool behaviour ------------------------------------------------

#[test]
fn resource_get_prints_the_path_without_a_newline() {
    let p = Probe::new();
    p.sim.attach("kubelet", b"");
    p.sim.attach("cni-amd64", b"not really a tarball");
    let r = p.calls(
        "install",
        &[
            ("empty", "run resource-get kubelet"),
            ("cni", "run resource-get cni-amd64"),
            ("missing", "run resource-get kubectl"),
        ],
        false,
    );
    let empty = &r["empty"];
    assert_eq!(empty.code, 0);
    assert!(!empty.stdout.ends_with('\n'));
    assert!(
        empty.stdout.ends_with("/resources/kubelet.snap"),
        "{}",
        empty.stdout
    );
    assert_eq!(std::fs::metadata(&empty.stdout).unwrap().len(), 0);
    assert_eq!(
        std::fs::read(&r["cni"].stdout).unwrap(),
        b"not really a tarball"
    );
    assert_eq!(r["missing"].code, 1);
}

#[test]
fn status_set_takes_four_statuses_and_one_message() {
    let p = Probe::new();
    let r = p.calls(
        "install",
        &[
            ("bad", "run status-set running"),
            ("two", "run status-set active two words"),
            (
                "ok",
                "run status-set waiting 'Waiting for kube-control relation data'",
            ),
            ("get", "run status-get --format=json --include-data"),
        ],
        false,
    );
    usage_error(
        &r["bad"],
        "invalid status \"running\", expected one of [maintenance blocked waiting active]",
    );
    assert_eq!(r["two"].code, 2);
    assert_eq!(
        r["get"].stdout,
        "{\"message\":\"Waiting for kube-control relation data\",\"status\":\"waiting\",\"status-data\":{}}\n"
    );
}

#[test]
fn after_start_a_charm_that_never_set_a_status_is_unknown() {
    let p = Probe::new();
    p.script("exit 0\n");
    p.sim.deploy();
    assert_eq!(p.sim.status(), ("unknown".into(), "".into()));
    let history = p.sim.unit().status_history;
    assert_eq!(history[0].message, "installing charm software");
}

#[test]
fn stop_gets_the_agent_status_first() {
    let p = Probe::new();
    p.script("exit 0\n");
    p.sim.hook("stop").assert_ok();
    assert_eq!(
        p.sim.status(),
        ("maintenance".into(), "stopping charm software".into())
    );
}

#[test]
fn relation_list_omits_the_departing_unit_whose_data_stays_readable() {
    let p = Probe::new();
    let id = p.sim.relate("kube-api-endpoint", "kubeapi-load-balancer");
    p.sim
        .join(id, "kubeapi-load-balancer/0", &[("port", "443")]);
    p.sim
        .join(id, "kubeapi-load-balancer/1", &[("port", "443")]);
    p.script(
        "relation-list --format=json > \"$JUJU_CHARM_DIR/list\"; relation-get --format=json port \"$JUJU_DEPARTING_UNIT\" > \"$JUJU_CHARM_DIR/port\"\n",
    );
    p.sim.depart(id, "kubeapi-load-balancer/0").assert_ok();
    let read = |f: &str| std::fs::read_to_string(p.sim.charm_dir().join(f)).unwrap();
    assert_eq!(read("list"), "[\"kubeapi-load-balancer/1\"]\n");
    assert_eq!(read("port"), "\"443\"\n");
}

#[test]
fn relation_ids_are_sorted_and_empty_when_none() {
    let p = Probe::new();
    p.sim.relate("kube-api-endpoint", "a");
    p.sim.relate("cni", "flannel");
    p.sim.relate("kube-api-endpoint", "b");
    let r = p.calls(
        "update-status",
        &[
            ("api", "run relation-ids --format=json kube-api-endpoint"),
            ("none", "run relation-ids --format=json certificates"),
        ],
        false,
    );
    assert_eq!(
        r["api"].stdout,
        "[\"kube-api-endpoint:1\",\"kube-api-endpoint:3\"]\n"
    );
    assert_eq!(r["none"].stdout, "[]\n");
}

#[test]
fn unit_get_network_get_and_is_leader() {
    let p = Probe::new();
    let r = p.calls(
        "install",
        &[
            ("private", "run unit-get --format=json private-address"),
            ("public", "run unit-get public-address"),
            (
                "ingress",
                "run network-get --format=json kube-control --ingress-address",
            ),
            (
                "nobind",
                "run network-get --format=json nope --ingress-address",
            ),
            ("leader", "run is-leader --format=json"),
        ],
        false,
    );
    assert_eq!(r["private"].stdout, "\"10.1.0.10\"\n");
    assert_eq!(r["public"].stdout, "192.0.2.10\n");
    assert_eq!(r["ingress"].stdout, "\"10.1.0.10\"\n");
    assert_eq!(r["nobind"].code, 1);
    assert_eq!(r["leader"].stdout, "true\n");
}

#[test]
fn application_version_set_and_juju_log() {
    let p = Probe::new();
    let r = p.calls(
        "install",
        &[
            ("version", "run application-version-set -- 1.31.2"),
            ("noversion", "run application-version-set"),
            (
                "log",
                "run juju-log --log-level INFO -- several words joined",
            ),
            ("nolog", "run juju-log"),
        ],
        false,
    );
    assert_eq!(r["version"].code, 0);
    usage_error(&r["noversion"], "no version specified");
    usage_error(&r["nolog"], "no message specified");
    let unit = p.sim.unit();
    assert_eq!(unit.workload_version, "1.31.2");
    assert_eq!(unit.logs.last().unwrap().message, "several words joined");
}

#[test]
fn actions_get_their_parameters_and_report_results() {
    let p = Probe::new();
    p.script(
        "action-get --format=json > \"$JUJU_CHARM_DIR/params\"\naction-set outcome=cordoned node.name=w0\naction-set Bad=1 || true\naction-set stdout=x || true\n",
    );
    let (run, action) = p.sim.action("pause", serde_json::json!({"force": true}));
    run.assert_ok();
    let params = std::fs::read_to_string(p.sim.charm_dir().join("params")).unwrap();
    assert_eq!(
        params,
        "{\"delete-local-data\":false,\"force\":true,\"timeout\":60}\n"
    );
    assert_eq!(action.status, "completed");
    assert_eq!(action.results["outcome"], "cordoned");
    assert_eq!(action.results["node"]["name"], "w0");
    assert!(!action.results.contains_key("Bad"));
    assert!(!action.results.contains_key("stdout"));
    let calls = p.sim.unit().calls;
    let codes: Vec<i32> = calls
        .iter()
        .filter(|c| c.tool == "action-set")
        .map(|c| c.exit)
        .collect();
    assert_eq!(codes, vec![0, 2, 2]);
}

#[test]
fn action_fail_fails_the_action_but_not_the_unit() {
    let p = Probe::new();
    p.script("action-fail 'API server unreachable'\n");
    let (run, action) = p.sim.action("resume", serde_json::json!({}));
    run.assert_ok();
    assert_eq!(action.status, "failed");
    assert_eq!(action.message, "API server unreachable");
    assert_eq!(p.sim.unit().error, None);
    // Outside an action the action tools refuse.
    let res = p.call("update-status", "action-get --format=json");
    assert_eq!(res.code, 1);
}

#[test]
fn state_get_prints_an_empty_string_for_a_missing_key() {
    let p = Probe::new();
    p.call("install", "state-set a=1");
    let r = p.calls(
        "config-changed",
        &[
            ("a", "run state-get --format=json a"),
            ("b", "run state-get --format=json b"),
            ("all", "run state-get --format=json"),
        ],
        false,
    );
    assert_eq!(r["a"].stdout, "\"1\"\n");
    assert_eq!(r["b"].stdout, "\"\"\n");
    assert_eq!(r["all"].stdout, "{\"a\":\"1\"}\n");
}

#[test]
fn ports_open_close_and_list_in_jujus_order() {
    let p = Probe::new();
    p.calls(
        "config-changed",
        &[
            ("a", "run open-port 443/tcp"),
            ("b", "run open-port 80"),
            ("c", "run open-port 53/udp"),
            ("d", "run open-port 80/tcp"),
        ],
        false,
    );
    assert_eq!(
        p.call("update-status", "opened-ports --format=json").stdout,
        "[\"80/tcp\",\"443/tcp\",\"53/udp\"]\n"
    );
    p.call("config-changed", "close-port 443/tcp");
    assert_eq!(
        p.call("update-status", "opened-ports --format=json").stdout,
        "[\"80/tcp\",\"53/udp\"]\n"
    );
    usage_error(
        &p.call("update-status", "open-port 99999/tcp"),
        "invalid port \"99999/tcp\"",
    );
}

#[test]
fn every_tool_call_is_recorded() {
    let p = Probe::new();
    p.call("install", "is-leader --format=json");
    let calls = p.sim.unit().calls;
    let last = calls.last().unwrap();
    assert_eq!(last.hook, "install");
    assert_eq!(last.tool, "is-leader");
    assert_eq!(last.args, vec!["--format=json".to_string()]);
    assert_eq!(last.exit, 0);
}

#[test]
fn a_tool_called_outside_a_hook_is_refused() {
    let p = Probe::new();
    let out = std::process::Command::new(p.sim.dir().join("tools/config-get"))
        .env("JUJU_CONTEXT_ID", "stale")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ERROR bad request"));
}

#[test]
fn network_get_lists_every_ingress_address() {
    let p = Probe::new();
    p.sim.edit_unit(|u| u.ipv6_address = Some("fd00::a".into()));
    let r = p.calls(
        "install",
        &[
            ("full", "run network-get --format=json kube-control"),
            ("unknown", "run network-get --format=json nope"),
        ],
        false,
    );
    let full: serde_json::Value = serde_json::from_str(&r["full"].stdout).unwrap();
    assert_eq!(
        full["ingress-addresses"],
        serde_json::json!(["10.1.0.10", "fd00::a"])
    );
    assert_eq!(full["egress-subnets"][1], "fd00::a/128");
    assert_eq!(
        full["bind-addresses"][0]["addresses"][1]["value"],
        "fd00::a"
    );
    assert_eq!(r["unknown"].code, 1);
    assert_eq!(
        r["unknown"].stderr,
        "ERROR no network config found for binding \"nope\"\n"
    );
}

#[test]
fn secret_get_reads_tracks_and_refuses_as_juju_does() {
    let p = Probe::new();
    let id = p
        .sim
        .add_secret("kubernetes-control-plane", "creds", &[("t", "one")], true);
    let hidden = p.sim.add_secret("other", "", &[("t", "x")], false);
    let uuid = p.sim.unit().model_uuid;
    let xid = id.trim_start_matches("secret:");
    let r = p.calls(
        "install",
        &[
            ("first", &format!("run secret-get {id} --format=json")),
            ("key", &format!("run secret-get {id} t")),
            (
                "long",
                &format!("run secret-get secret://{uuid}/{xid} --format=json"),
            ),
            ("denied", &format!("run secret-get {hidden}")),
            ("missing", "run secret-get secret:d0000000000000000999"),
            ("both", &format!("run secret-get {id} --peek --refresh")),
            ("label", "run secret-get --label creds --format=json"),
        ],
        false,
    );
    assert_eq!(r["first"].stdout, "{\"t\":\"one\"}\n");
    assert_eq!(r["key"].stdout, "one\n");
    assert_eq!(r["long"].stdout, "{\"t\":\"one\"}\n");
    assert_eq!(r["denied"].code, 1);
    assert_eq!(r["denied"].stderr, "ERROR permission denied\n");
    assert_eq!(r["missing"].code, 1);
    assert_eq!(
        r["missing"].stderr,
        "ERROR secret \"secret:d0000000000000000999\" not found\n"
    );
    usage_error(
        &r["both"],
        "specify one of --peek or --refresh but not both",
    );
    assert_eq!(r["label"].stdout, "{\"t\":\"one\"}\n");
    assert_eq!(
        p.sim.unit().secrets[&id].tracked,
        Some(1),
        "first read tracks"
    );

    // A new revision: plain reads keep the tracked one, --peek sees the
    // new one, --refresh moves to it; the unit got secret-changed.
    p.script("exit 0\n");
    let changed = p
        .sim
        .set_secret_content(&id, &[("t", "two")])
        .expect("secret-changed for a unit that tracks the secret");
    changed.assert_ok();
    let hook = p.sim.unit().hooks.last().unwrap().name.clone();
    assert_eq!(hook, "secret-changed");
    let r = p.calls(
        "secret-changed",
        &[
            ("plain", &format!("run secret-get {id}")),
            ("peek", &format!("run secret-get {id} --peek")),
            ("refresh", &format!("run secret-get {id} --refresh")),
            ("after", &format!("run secret-get {id}")),
        ],
        false,
    );
    assert_eq!(r["plain"].stdout, "t: one\n");
    assert_eq!(r["peek"].stdout, "t: two\n");
    assert_eq!(r["refresh"].stdout, "t: two\n");
    assert_eq!(r["after"].stdout, "t: two\n");
    assert_eq!(p.sim.unit().secrets[&id].tracked, Some(2));
    // A refresh in a failed hook is not kept.
    p.sim.set_secret_content(&id, &[("t", "three")]).unwrap();
    p.calls(
        "update-status",
        &[("r", &format!("run secret-get {id} --refresh"))],
        true,
    );
    assert_eq!(p.sim.unit().secrets[&id].tracked, Some(2));
}

#[test]
fn secret_changed_gets_the_secret_variables() {
    let p = Probe::new();
    let id = p.sim.add_secret("owner", "my-label", &[("k", "v")], true);
    p.sim
        .edit_unit(|u| u.secrets.get_mut(&id).unwrap().tracked = Some(1));
    let out = p.sim.dir().join("secret-env");
    p.script(&format!(
        "echo \"$JUJU_HOOK_NAME $JUJU_SECRET_ID $JUJU_SECRET_LABEL\" > {}\n",
        out.display()
    ));
    p.sim
        .set_secret_content(&id, &[("k", "w")])
        .unwrap()
        .assert_ok();
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        format!("secret-changed {id} my-label\n")
    );
    // A unit that never read a secret is not told of its changes.
    let unread = p.sim.add_secret("owner", "", &[("k", "v")], true);
    assert!(p.sim.set_secret_content(&unread, &[("k", "w")]).is_none());
}

#[test]
#[should_panic(expected = "a container-scoped relation has one remote unit")]
fn a_container_scoped_relation_has_one_remote_unit() {
    let p = Probe::new();
    let id = p.sim.relate("container-runtime", "containerd");
    p.sim.join(id, "containerd/0", &[]);
    p.sim.join(id, "containerd/1", &[]);
}
