//! The calls each `make bench` scenario makes, hook by hook: every hook
//! tool and every `snap`, `systemctl`, `sysctl` and `ip` run, with its arguments
//! (values that differ from run to run or machine to machine are
//! normalised: certificates, tokens, the machine's names and addresses,
//! temporary paths, the architecture). They are compared with `tests/call_lists.txt`, so
//! that a change to what a hook reads or does shows in review, and a
//! reshaping of the code that must not change behaviour is held to it.
//!
//! After a deliberate change: `KW_BLESS=1 cargo test --test call_lists`
//! writes the file anew; the diff is the review.

mod common;

use common::cluster::{Cluster, Master};
use juju_sim::{HookRun, Sim};

const GOLDEN: &str = "tests/call_lists.txt";

/// One hook's calls, normalised, a line each.
fn calls(sim: &Sim, cluster: Option<&Cluster>, hook: impl FnOnce(&Sim) -> HookRun) -> Vec<String> {
    let mark = sim.mark();
    hook(sim).assert_ok();
    let mut out = Vec::new();
    for call in sim.tool_calls_since(mark) {
        out.push(normalise(sim, cluster, &call.tool, &call.args));
    }
    for call in sim.machine_calls_since(mark) {
        out.push(format!(
            "  {}",
            normalise(sim, cluster, &call.program, &call.args)
        ));
    }
    out
}

fn normalise(sim: &Sim, cluster: Option<&Cluster>, program: &str, args: &[String]) -> String {
    let mut words = vec![program.to_string()];
    // Values set (relation-set, snap set) carry certificates, tokens and
    // addresses: their keys are what a hook decides.
    let keys_only = matches!(program, "relation-set" | "action-set" | "state-set")
        || (program == "snap" && args.first().is_some_and(|a| a == "set"));
    let mut after_dashes = false;
    for arg in args {
        let mut arg = arg.clone();
        if arg == "--" {
            after_dashes = true;
            words.push(arg);
            continue;
        }
        for (path, name) in [
            (sim.root(), "<root>"),
            (sim.charm_dir(), "<charm>"),
            (sim.dir().to_path_buf(), "<sim>"),
        ] {
            arg = arg.replace(&path.display().to_string(), name);
        }
        arg = arg.replace(&format!("cni-{}", common::arch()), "cni-<arch>");
        if let Some(c) = cluster {
            arg = arg.replace(&c.node, "<node>");
            arg = arg.replace(&c.api.port.to_string(), "<port>");
        }
        if program == "juju-log" && after_dashes {
            // What is logged is in the unit's log; that a line is logged,
            // and at which level, is the call.
            arg = "<message>".into();
        }
        if keys_only && !arg.starts_with('-') {
            if let Some((key, _)) = arg.split_once('=') {
                arg = format!("{key}=…");
            }
        }
        words.push(arg);
    }
    words.join(" ")
}

/// The scenarios of `make bench` (benches/hooks.rs), once each.
fn scenarios() -> String {
    let mut out = String::new();
    let mut section = |title: &str, lines: Vec<String>| {
        out.push_str(&format!("## {title}\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push('\n');
    };
    let (fresh, _s1) = common::provisioned();
    section(
        "install (fresh unit)",
        calls(&fresh, None, |s| s.hook("install")),
    );

    let (sim, _s2) = common::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let cluster = Cluster::new();
    let rels = cluster.relate(&sim, Master::Today);
    assert_eq!(sim.status().0, "active", "{:?}", sim.status());
    let c = Some(&cluster);
    section(
        "config-changed, nothing changed",
        calls(&sim, c, |s| s.hook("config-changed")),
    );
    section(
        "update-status, converged",
        calls(&sim, c, |s| s.hook("update-status")),
    );
    let data = cluster.kube_control_data_with(Master::Today, rels.secret.as_deref());
    let same: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let control_unit = "kubernetes-control-plane/0";
    section(
        "kube-control-relation-changed, no change",
        calls(&sim, c, |s| s.change(rels.control, control_unit, &same)),
    );
    let secret = rels.secret.clone().unwrap();
    section(
        "secret-changed, kubelet and kube-proxy tokens rotated",
        calls(&sim, c, |s| {
            s.set_secret_content(
                &secret,
                &[
                    ("kubelet-token", "kubelet-1"),
                    ("proxy-token", "proxy-1"),
                    ("client-token", &cluster.client_token),
                ],
            )
            .unwrap()
        }),
    );
    let agent = sim.relate("cos-agent", "grafana-agent");
    for run in sim.join(agent, "grafana-agent/0", &[]) {
        run.assert_ok();
    }
    let tokens = sim.relate("tokens", "kubernetes-control-plane");
    let user = format!("system:cos:{}", cluster.node);
    let answer = |i: usize| serde_json::json!({ &user: format!("uid-{i}::cos-token") }).to_string();
    for run in sim.join(tokens, control_unit, &[("tokens", &answer(0))]) {
        run.assert_ok();
    }
    section(
        "cos-agent-relation-changed, no change",
        calls(&sim, c, |s| s.change(agent, "grafana-agent/0", &[])),
    );
    section(
        "tokens-relation-changed, COS token rotated",
        calls(&sim, c, |s| {
            s.change(tokens, control_unit, &[("tokens", &answer(1))])
        }),
    );
    // As benches/hooks.rs: the leader of two starts a roll to 1.32 and
    // waits for the other unit's turn.
    juju_sim::application::leader_waiting_in_a_roll(&sim, &cluster);
    section(
        "update-status, waiting for its turn in a roll",
        calls(&sim, c, |s| s.hook("update-status")),
    );
    out
}

#[test]
fn each_bench_scenario_makes_the_calls_on_record() {
    let got = scenarios();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("KW_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let first = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "the calls differ from {GOLDEN} from line {}:\n  now:    {:?}\n  before: {:?}\n(KW_BLESS=1 writes the file anew after a deliberate change)\n\n{got}",
            first + 1,
            g.get(first),
            w.get(first)
        );
    }
}
