//! Issue 13: observability through cos-agent, with the COS token from the
//! tokens relation; through the real binary in the simulated unit. The
//! published configuration is decoded as grafana-agent's cos_agent library
//! decodes it (JSON; dashboards base64 of xz, here through xz(1)), and its
//! rules and dashboard queries are checked with promtool.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use common::cluster::{self, Cluster, Master};
use juju_sim::Sim;
use serde_json::Value;

const CP: &str = "kubernetes-control-plane";

struct Cos {
    sim: Sim,
    _scratch: tempfile::TempDir,
    cluster: Cluster,
    rels: cluster::Relations,
    agent: u32,
    tokens: u32,
}

fn tag() -> &'static str {
    "kubernetes-4c7bx1p2ut6bbmwbyhd2yuucf9rwwnnq"
}

/// A node next to today's control plane, with grafana-agent related on
/// cos-agent and the control plane on tokens (no token answered yet).
fn related() -> Cos {
    let (sim, scratch, cluster, rels) = cluster::running(Master::Today);
    let agent = sim.relate("cos-agent", "grafana-agent");
    for run in sim.join(agent, "grafana-agent/0", &[]) {
        run.assert_ok();
    }
    let tokens = sim.relate("tokens", CP);
    for run in sim.join(tokens, &format!("{CP}/0"), &[]) {
        run.assert_ok();
    }
    Cos {
        sim,
        _scratch: scratch,
        cluster,
        rels,
        agent,
        tokens,
    }
}

fn local(sim: &Sim, id: u32, key: &str) -> Option<String> {
    sim.unit()
        .relations
        .iter()
        .find(|r| r.id == id)
        .and_then(|r| r.local_unit.get(key).cloned())
}

fn published(c: &Cos) -> Value {
    let text = local(&c.sim, c.agent, "config").expect("config published");
    serde_json::from_str(&text).expect("config is JSON")
}

fn answer(c: &Cos, token: &str) -> juju_sim::HookRun {
    let user = format!("system:cos:{}", c.cluster.node);
    let tokens = serde_json::json!({ user: token }).to_string();
    c.sim
        .change(c.tokens, &format!("{CP}/0"), &[("tokens", &tokens)])
}

/// xz(1) decompresses what the library's `lzma.decompress` would.
fn unxz(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("xz")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("xz (xz-utils)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "xz -dc failed");
    out.stdout
}

fn promtool_check(rules: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(rules).unwrap()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian's prometheus package; make deps installs it)");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        serde_yaml::to_string(rules).unwrap()
    );
}

#[test]
fn the_configuration_is_published_once_the_token_and_cluster_tag_are_known() {
    let c = related();
    assert_eq!(
        c.sim.status(),
        ("waiting".into(), "Waiting for the COS token".into()),
        "{}",
        c.sim.timeline()
    );
    assert_eq!(local(&c.sim, c.agent, "config"), None);
    assert_eq!(
        local(&c.sim, c.tokens, "requests").as_deref(),
        Some(format!(r#"{{"system:cos:{}":"system:cos"}}"#, c.cluster.node).as_str())
    );

    answer(&c, "uid-1::secretsecret").assert_ok();
    assert_eq!(
        c.sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
    let config = published(&c);
    let keys: BTreeSet<&str> = config
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "dashboards",
            "log_alert_rules",
            "log_slots",
            "metrics_alert_rules",
            "metrics_scrape_jobs",
            "subordinate",
            "tracing_protocols"
        ])
    );
    assert_eq!(config["subordinate"], false);
    assert_eq!(config["log_slots"], serde_json::json!([]));
    assert_eq!(config["tracing_protocols"], serde_json::json!([]));
    assert_eq!(config["log_alert_rules"], serde_json::json!({}));

    // The jobs, field by field.
    let jobs = config["metrics_scrape_jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "kube-proxy",
            "kubelet",
            "kubelet-resource",
            "kubelet-cadvisor",
            "kubelet-probes"
        ]
    );
    let node = c.cluster.node.as_str();
    for job in jobs {
        let sc = &job["static_configs"][0];
        assert_eq!(sc["labels"]["node"], node);
        assert_eq!(sc["labels"]["cluster"], tag());
        let relabels = job["relabel_configs"].as_array().unwrap();
        assert!(relabels.iter().any(|r| r["target_label"] == "instance"
            && r["replacement"] == node
            && r["source_labels"] == serde_json::json!(["instance"])));
        if job["job_name"] == "kube-proxy" {
            assert_eq!(sc["targets"], serde_json::json!(["localhost:10249"]));
            assert_eq!(job["scheme"], "http");
            assert!(job.get("authorization").is_none(), "no token over http");
            continue;
        }
        assert_eq!(sc["targets"], serde_json::json!(["localhost:10250"]));
        assert_eq!(job["scheme"], "https");
        assert_eq!(job["authorization"]["credentials"], "uid-1::secretsecret");
        // kubelet's certificate is checked against the cluster CA (inline:
        // the agent's snap cannot read /root), by the name it was issued for.
        assert_eq!(job["tls_config"]["ca"], c.cluster.pki.ca_pem().as_str());
        assert_eq!(job["tls_config"]["server_name"], node);
        assert!(job["tls_config"].get("insecure_skip_verify").is_none());
        assert!(relabels
            .iter()
            .any(|r| r["target_label"] == "job" && r["replacement"] == "kubelet"));
        assert!(relabels.iter().any(
            |r| r["target_label"] == "metrics_path" && r["replacement"] == job["metrics_path"]
        ));
    }

    // The rules: valid for Prometheus, the node's maxPods in place.
    let rules = &config["metrics_alert_rules"];
    promtool_check(rules);
    let alerts: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for want in [
        "KubeletDown",
        "KubeProxyDown",
        "KubeletNodeNotReady",
        "KubeletPlegDurationHigh",
        "KubeletTooManyPods",
        "KubeletClientCertificateExpiration",
    ] {
        assert!(alerts.contains(&want), "{want} in {alerts:?}");
    }
    assert!(rules.to_string().contains("0.95 * 110"));
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        assert!(!rule["annotations"]["summary"].as_str().unwrap().is_empty());
        assert!(rule["annotations"]["description"].as_str().unwrap().len() > 80);
    }

    // The dashboard: base64 of xz of JSON.
    let dashboards = config["dashboards"].as_array().unwrap();
    assert_eq!(dashboards.len(), 1);
    let xz = base64::engine::general_purpose::STANDARD
        .decode(dashboards[0].as_str().unwrap())
        .unwrap();
    let dashboard: Value = serde_json::from_slice(&unxz(&xz)).unwrap();
    check_dashboard(&dashboard);

    // Converged: nothing is published again.
    let mark = c.sim.mark();
    c.sim.hook("config-changed").assert_ok();
    answer(&c, "uid-1::secretsecret").assert_ok();
    let sets: Vec<_> = c
        .sim
        .tool_calls_since(mark)
        .into_iter()
        .filter(|t| t.tool == "relation-set")
        .collect();
    assert!(sets.is_empty(), "{sets:?}");
    // A cos-agent hook with nothing new does not read the tokens again.
    let mark = c.sim.mark();
    c.sim.change(c.agent, "grafana-agent/0", &[]).assert_ok();
    let token_reads: Vec<_> = c
        .sim
        .tool_calls_since(mark)
        .into_iter()
        .filter(|t| t.args.iter().any(|a| a.starts_with("tokens:")))
        .collect();
    assert!(token_reads.is_empty(), "{token_reads:?}");
}

/// Every query is valid PromQL and filters only by the labels the jobs set
/// (and the few the metrics carry themselves).
fn check_dashboard(dashboard: &Value) {
    const JOB_LABELS: [&str; 5] = ["cluster", "node", "job", "metrics_path", "instance"];
    const METRIC_LABELS: [&str; 2] = ["container_state", "le"];
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut labels = BTreeSet::new();
    for expr in &exprs {
        for selector in expr.split('{').skip(1) {
            let inner = selector.split('}').next().unwrap();
            for matcher in inner.split(',') {
                let name: String = matcher
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                labels.insert(name);
            }
        }
        for by in expr.split("by (").skip(1) {
            for name in by.split(')').next().unwrap().split(',') {
                labels.insert(name.trim().to_string());
            }
        }
        assert!(expr.contains(r#"cluster="$cluster""#), "{expr}");
        assert!(expr.contains(r#"node=~"$node""#), "{expr}");
    }
    for label in &labels {
        assert!(
            JOB_LABELS.contains(&label.as_str()) || METRIC_LABELS.contains(&label.as_str()),
            "a query filters by {label}, which the jobs do not set"
        );
    }
    for title in [
        "kubelet up",
        "kube-proxy up",
        "Running pods",
        "Running containers",
        "PLEG",
        "Node CPU",
        "Node memory",
        "kubelet CPU",
        "kubelet memory",
        "kube-proxy rule sync",
    ] {
        assert!(
            dashboard["panels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["title"].as_str().unwrap().starts_with(title)),
            "a panel {title}"
        );
    }
    // As recording rules, promtool parses each query.
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::json!({
                "record": format!("dashboard:query_{i}"),
                "expr": e.replace("$__rate_interval", "5m"),
            })
        })
        .collect();
    promtool_check(&serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] }));
}

#[test]
fn a_rotated_token_is_published_and_a_departed_agent_waits_for_nothing() {
    let c = related();
    answer(&c, "uid-1::first").assert_ok();
    assert_eq!(
        published(&c)["metrics_scrape_jobs"][1]["authorization"]["credentials"],
        "uid-1::first"
    );
    answer(&c, "uid-1::second").assert_ok();
    assert_eq!(
        published(&c)["metrics_scrape_jobs"][1]["authorization"]["credentials"],
        "uid-1::second"
    );
    // The token never reaches the charm's own files.
    for file in [
        ".kubernetes-worker-state.json",
        ".kubernetes-worker-journal.json",
    ] {
        let text = std::fs::read_to_string(c.sim.charm_dir().join(file)).unwrap();
        assert!(!text.contains("uid-1::"), "{file} holds a COS token");
    }

    // Without an answer, the unit waits while cos-agent is related...
    c.sim
        .change(c.tokens, &format!("{CP}/0"), &[("tokens", "")])
        .assert_ok();
    assert_eq!(c.sim.status().1, "Waiting for the COS token");
    // ...and not once it is gone.
    for run in c.sim.unrelate(c.agent) {
        run.assert_ok();
    }
    assert_eq!(
        c.sim.status(),
        ("active".into(), "Kubernetes worker running.".into()),
        "{}",
        c.sim.timeline()
    );
    let _ = &c.rels;
}

#[test]
fn a_malformed_tokens_value_is_a_clear_status() {
    let c = related();
    c.sim
        .change(
            c.tokens,
            &format!("{CP}/0"),
            &[("tokens", r#"{"system:cos:x": "cos-token-9""#)],
        )
        .assert_ok();
    // Not quoted: what fails to parse may hold a token.
    assert_eq!(
        c.sim.status(),
        (
            "waiting".into(),
            format!("Waiting for the COS token: tokens relation: tokens from {CP}/0 is not a JSON object")
        )
    );
    assert!(c
        .sim
        .unit()
        .logs
        .iter()
        .all(|l| !l.message.contains("cos-token-9")));
    assert_eq!(local(&c.sim, c.agent, "config"), None);
}

#[test]
fn without_cos_agent_the_tokens_relation_is_not_waited_on() {
    let (sim, _s, _c, _r) = cluster::running(Master::Today);
    let tokens = sim.relate("tokens", CP);
    for run in sim.join(tokens, &format!("{CP}/0"), &[]) {
        run.assert_ok();
    }
    assert_eq!(
        sim.status(),
        ("active".into(), "Kubernetes worker running.".into())
    );
}

#[test]
fn max_pods_from_kubelet_extra_config_reaches_the_rule() {
    let c = related();
    answer(&c, "uid-1::x").assert_ok();
    c.sim
        .configure("kubelet-extra-config", "{maxPods: 250}")
        .assert_ok();
    assert!(published(&c)["metrics_alert_rules"]
        .to_string()
        .contains("0.95 * 250"));
}

/// Today's own code reads what this charm publishes (issue 31): cosl, the
/// COS charms' library (tests/today/requirements.txt), decodes the
/// dashboard as grafana-agent's cos_agent library does (`LZMABase64`) and
/// takes the alert rules with this unit's Juju topology, as grafana-agent
/// forwards them. Natively only (`todays_code_`), like every check
/// against today's code.
#[test]
fn todays_code_cosl_reads_the_published_dashboard_and_rules() {
    let c = related();
    answer(&c, "uid-1::secretsecret").assert_ok();
    let text = local(&c.sim, c.agent, "config").expect("config published");
    let unit = c.sim.unit();
    let case = serde_json::json!({
        "config": text,
        "topology": {"model": unit.model, "model_uuid": unit.model_uuid,
                     "application": "kubernetes-worker", "unit": unit.unit},
    });
    let read = common::today("cos_agent.py", &case);

    // The same dashboard as xz(1) gives.
    let config = published(&c);
    let encoded = config["dashboards"][0].as_str().unwrap();
    let ours: Value = serde_json::from_slice(&unxz(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(read["dashboards"], serde_json::json!([ours]));

    // Every rule taken, labelled with this unit's topology, under the
    // group names the COS side gives ours (sanitised, `_rules` added).
    let published_rules: usize = config["metrics_alert_rules"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    let groups = read["rules"]["groups"].as_array().unwrap();
    let rules: Vec<&Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(rules.len(), published_rules);
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "kubernetes_worker_kubelet_rules",
            "kubernetes_worker_kube_proxy_rules"
        ]
    );
    for rule in rules {
        assert_eq!(
            rule["labels"]["juju_application"], "kubernetes-worker",
            "{rule}"
        );
        assert_eq!(
            rule["labels"]["juju_model_uuid"],
            unit.model_uuid.as_str(),
            "{rule}"
        );
    }
}
