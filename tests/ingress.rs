//! Issue 14: the nginx ingress controller, applied by the leader through
//! the API server (server-side apply), removed when `ingress` is off; the
//! ports and the ingress-proxy relation. Through the real binary in the
//! simulated unit, against the test API server.

mod common;

use std::collections::BTreeSet;

use common::assert_active;
use common::cluster::{self, Cluster, Master, REGISTRY};
use serde_json::{json, Value};

const APP: &str = "kubernetes-worker";

fn ns() -> String {
    format!("ingress-nginx-{APP}")
}

fn daemonset_path() -> String {
    format!(
        "/apis/apps/v1/namespaces/{}/daemonsets/nginx-ingress-controller-{APP}",
        ns()
    )
}

fn secret_path() -> String {
    format!(
        "/api/v1/namespaces/{}/secrets/default-ssl-certificate",
        ns()
    )
}

/// The objects without the default certificate's Secret.
fn expected_paths() -> BTreeSet<String> {
    let ns = ns();
    [
        format!("/api/v1/namespaces/{ns}"),
        format!("/api/v1/namespaces/{ns}/serviceaccounts/nginx-ingress-serviceaccount-{APP}"),
        format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/nginx-ingress-clusterrole-{APP}"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/nginx-ingress-role-{APP}"),
        format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/nginx-ingress-clusterrole-nisa-binding-{APP}"),
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/nginx-ingress-role-nisa-binding-{APP}"),
        format!("/api/v1/namespaces/{ns}/configmaps/nginx-configuration"),
        format!("/api/v1/namespaces/{ns}/configmaps/tcp-services"),
        format!("/api/v1/namespaces/{ns}/configmaps/udp-services"),
        daemonset_path(),
        "/apis/networking.k8s.io/v1/ingressclasses/nginx-ingress-controller".to_string(),
    ]
    .into_iter()
    .collect()
}

fn paths(c: &Cluster) -> BTreeSet<String> {
    c.api.objects().into_keys().collect()
}

fn container(c: &Cluster) -> Value {
    c.api.objects()[&daemonset_path()]["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(c: &Cluster) -> Vec<String> {
    container(c)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn writes(c: &Cluster, from: usize) -> Vec<String> {
    c.api.requests()[from..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn the_leader_applies_every_object_with_server_side_apply() {
    let (sim, _s, c, _r) = cluster::running(Master::Today);
    assert_active(&sim);
    assert_eq!(paths(&c), expected_paths());
    for r in c
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/apis/apps/"))
    {
        assert!(
            r.path
                .ends_with("?fieldManager=kubernetes-worker&force=true"),
            "{}",
            r.path
        );
        assert_eq!(r.content_type, "application/apply-patch+yaml");
    }
    let objects = c.api.objects();
    let ds = &objects[&daemonset_path()];
    assert_eq!(ds["kind"], "DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["nodeSelector"], json!({ "juju-application": APP }));
    assert_eq!(
        pod["serviceAccountName"],
        format!("nginx-ingress-serviceaccount-{APP}")
    );
    let ctr = container(&c);
    assert_eq!(
        ctr["image"],
        format!("{REGISTRY}/ingress-nginx/controller:v1.14.4")
    );
    assert_eq!(ctr["securityContext"]["runAsUser"], 101);
    assert_eq!(
        ctr["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"])
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(ctr[probe]["httpGet"]["path"], "/healthz");
        assert_eq!(ctr[probe]["httpGet"]["port"], 10254);
    }
    let args = args(&c);
    for want in [
        "--configmap=$(POD_NAMESPACE)/nginx-configuration",
        "--tcp-services-configmap=$(POD_NAMESPACE)/tcp-services",
        "--udp-services-configmap=$(POD_NAMESPACE)/udp-services",
        "--annotations-prefix=nginx.ingress.kubernetes.io",
        "--enable-ssl-chain-completion=false",
        "--enable-ssl-passthrough=false",
    ] {
        assert!(args.contains(&want.to_string()), "{want} in {args:?}");
    }
    assert!(!args
        .iter()
        .any(|a| a.starts_with("--default-ssl-certificate")));
    let class = &objects["/apis/networking.k8s.io/v1/ingressclasses/nginx-ingress-controller"];
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(class["spec"]["controller"], "k8s.io/ingress-nginx");
    let config = &objects[&format!("/api/v1/namespaces/{}/configmaps/nginx-configuration", ns())];
    assert_eq!(config["data"]["use-forwarded-headers"], "false");
    assert_eq!(config["data"]["proxy-real-ip-cidr"], "0.0.0.0/0");
    let binding = &objects[&format!(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/nginx-ingress-clusterrole-nisa-binding-{APP}"
    )];
    assert_eq!(binding["subjects"][0]["namespace"], ns());
    // The node carries the label the DaemonSet selects.
    let node = c.api.node(&c.node).unwrap();
    assert_eq!(node["metadata"]["labels"]["juju-application"], APP);
    let ports = sim.unit().ports;
    assert!(
        ports.contains("80/tcp") && ports.contains("443/tcp"),
        "{ports:?}"
    );

    // Converged hooks write nothing to the API server.
    let from = c.api.requests().len();
    sim.hook("config-changed").assert_ok();
    sim.hook("update-status").assert_ok();
    sim.hook("leader-settings-changed").assert_ok();
    assert_eq!(writes(&c, from), Vec::<String>::new());

    // ingress-proxy: where the controller listens.
    let id = sim.relate("ingress-proxy", "haproxy");
    for run in sim.join(id, "haproxy/0", &[]) {
        run.assert_ok();
    }
    let unit = sim.unit();
    let bag = &unit
        .relations
        .iter()
        .find(|r| r.id == id)
        .unwrap()
        .local_unit;
    assert_eq!(bag["port"], "80");
    assert_eq!(bag["hostname"], c.node);
    assert_eq!(bag["private-address"], unit.private_address);
}

#[test]
fn options_reach_the_objects() {
    let (sim, _s, c, _r) = cluster::running(Master::Today);
    sim.set_config(
        "nginx-image",
        "registry.example.com/nginx/controller:v1.12.0",
    );
    sim.set_config("ingress-ssl-chain-completion", true);
    sim.set_config("ingress-ssl-passthrough", true);
    sim.set_config("ingress-use-forwarded-headers", true);
    sim.set_config("ingress-proxy-real-ip-cidr", "10.0.0.0/8, fd00::/8");
    sim.hook("config-changed").assert_ok();
    assert_active(&sim);
    assert_eq!(
        container(&c)["image"],
        "registry.example.com/nginx/controller:v1.12.0"
    );
    let args = args(&c);
    assert!(args.contains(&"--enable-ssl-chain-completion=true".to_string()));
    assert!(args.contains(&"--enable-ssl-passthrough=true".to_string()));
    let config =
        &c.api.objects()[&format!("/api/v1/namespaces/{}/configmaps/nginx-configuration", ns())];
    assert_eq!(config["data"]["use-forwarded-headers"], "true");
    assert_eq!(config["data"]["proxy-real-ip-cidr"], "10.0.0.0/8, fd00::/8");

    // The default certificate: a Secret only with both, and the flag.
    let (cert, key, ..) = c.pki.issue(&["ingress.example.com"]);
    sim.set_config("ingress-default-ssl-certificate", cert.as_str());
    sim.set_config("ingress-default-ssl-key", key.as_str());
    sim.hook("config-changed").assert_ok();
    assert_active(&sim);
    let secret = &c.api.objects()[&secret_path()];
    assert_eq!(secret["type"], "Opaque");
    use base64::Engine;
    let decode = |v: &Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    // Config values are taken trimmed.
    assert_eq!(decode(&secret["data"]["tls.crt"]), cert.trim());
    assert_eq!(decode(&secret["data"]["tls.key"]), key.trim());
    assert!(args_of(&c).contains(
        &"--default-ssl-certificate=$(POD_NAMESPACE)/default-ssl-certificate".to_string()
    ));
    // The key is in no record of the charm's.
    for file in [
        ".kubernetes-worker-state.json",
        ".kubernetes-worker-journal.json",
    ] {
        let text = std::fs::read_to_string(sim.charm_dir().join(file)).unwrap();
        // The key's base64 body, on any line of it but one the certificate
        // (which the cache keeps) carries too: the key's last line is its
        // public point, and about one issued pair in 200 encodes it there
        // with the same alignment, line for line.
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && !cert.contains(l))
        {
            assert!(!text.contains(line), "{file} holds the ingress key");
        }
    }
    // A hook that reads no config still has what it needs to re-apply.
    c.api.fail_writes(500, "etcdserver: request timed out", 1);
    sim.set_config("ingress-use-forwarded-headers", false);
    sim.hook("config-changed").assert_ok();
    assert_eq!(sim.status().0, "waiting");
    sim.hook("update-status").assert_ok();
    assert_active(&sim);
    assert!(c.api.objects().contains_key(&secret_path()));

    // Unset: the Secret goes, the flag too.
    sim.set_config("ingress-default-ssl-certificate", "");
    sim.set_config("ingress-default-ssl-key", "");
    sim.hook("config-changed").assert_ok();
    assert!(!c.api.objects().contains_key(&secret_path()));
    assert!(!args_of(&c)
        .iter()
        .any(|a| a.starts_with("--default-ssl-certificate")));
    assert_eq!(paths(&c), expected_paths());
}

fn args_of(c: &Cluster) -> Vec<String> {
    args(c)
}

#[test]
fn ingress_off_deletes_what_was_applied_and_on_brings_it_back() {
    let (sim, _s, c, _r) = cluster::running(Master::Today);
    let from = c.api.requests().len();
    sim.configure("ingress", false).assert_ok();
    assert_active(&sim);
    assert!(c.api.objects().is_empty(), "{:?}", paths(&c));
    let deletes: Vec<String> = writes(&c, from);
    assert!(
        deletes.iter().all(|w| w.starts_with("DELETE ")),
        "{deletes:?}"
    );
    // In reverse order: the IngressClass first, the namespace last.
    assert!(deletes.first().unwrap().contains("/ingressclasses/"));
    assert!(deletes
        .last()
        .unwrap()
        .ends_with(&format!("/namespaces/{}", ns())));
    let ports = sim.unit().ports;
    assert!(!ports.contains("80/tcp") && !ports.contains("443/tcp"));
    sim.configure("ingress", true).assert_ok();
    assert_eq!(paths(&c), expected_paths());
    let ports = sim.unit().ports;
    assert!(ports.contains("80/tcp") && ports.contains("443/tcp"));
}

#[test]
fn only_the_leader_applies_and_a_new_leader_applies_once() {
    let (sim, scratch) = common::provisioned();
    sim.edit_unit(|u| u.leader = false);
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    c.relate(&sim, Master::Today);
    assert_active(&sim);
    assert!(c.api.objects().is_empty());
    // Ports are every unit's.
    assert!(sim.unit().ports.contains("80/tcp"));
    sim.edit_unit(|u| u.leader = true);
    sim.hook("leader-elected").assert_ok();
    assert_eq!(paths(&c), expected_paths());
    let from = c.api.requests().len();
    sim.hook("leader-elected").assert_ok();
    assert_eq!(writes(&c, from), Vec::<String>::new());
    drop(scratch);
}

#[test]
fn bad_options_are_blocked_naming_them() {
    let (sim, _s, c, _r) = cluster::running(Master::Today);
    let (cert, _key, ..) = c.pki.issue(&["a.example.com"]);
    let (_, other_key, ..) = c.pki.issue(&["b.example.com"]);
    for (settings, message) in [
        (
            vec![("ingress-default-ssl-certificate", cert.as_str())],
            "ingress-default-ssl-certificate is set without ingress-default-ssl-key: set both or neither",
        ),
        (
            vec![("ingress-default-ssl-key", other_key.as_str())],
            "ingress-default-ssl-key is set without ingress-default-ssl-certificate: set both or neither",
        ),
        (
            vec![
                ("ingress-default-ssl-certificate", cert.as_str()),
                ("ingress-default-ssl-key", other_key.as_str()),
            ],
            "ingress-default-ssl-key is not the private key of the certificate in ingress-default-ssl-certificate",
        ),
        (
            vec![("ingress-proxy-real-ip-cidr", "10.0.0.0/33")],
            "ingress-proxy-real-ip-cidr holds \"10.0.0.0/33\" which is not a CIDR",
        ),
        (
            vec![("nginx-image", "nginx controller")],
            "nginx-image is not an image reference: \"nginx controller\"",
        ),
    ] {
        let from = c.api.requests().len();
        for (k, v) in &settings {
            sim.set_config(k, *v);
        }
        sim.hook("config-changed").assert_ok();
        assert_eq!(sim.status(), ("blocked".into(), message.into()));
        assert_eq!(writes(&c, from), Vec::<String>::new(), "nothing applied");
        for (k, _) in &settings {
            sim.edit_unit(|u| {
                u.config.remove(*k);
            });
        }
        sim.hook("config-changed").assert_ok();
        assert_active(&sim);
    }
}

#[test]
fn an_api_server_that_refuses_is_waited_on_and_the_next_hook_succeeds() {
    let (sim, _s, c, _r) = cluster::running(Master::Today);
    for (status, message) in [
        (500, "Internal error occurred: etcdserver: leader changed"),
        (
            422,
            "DaemonSet.apps is invalid: spec.template.spec.containers[0].image: Required value",
        ),
    ] {
        c.api.fail_writes(status, message, 1);
        sim.set_config("ingress-ssl-passthrough", status == 500);
        sim.hook("config-changed").assert_ok();
        let (kind, text) = sim.status();
        assert_eq!(kind, "waiting");
        assert!(
            text.starts_with(
                "Waiting to configure the ingress controller: PATCH /api/v1/namespaces/"
            ) && text.contains(&format!("{status}: {message}")),
            "{text}"
        );
        sim.hook("update-status").assert_ok();
        assert_active(&sim);
        assert_eq!(paths(&c), expected_paths());
    }
}

#[test]
fn a_deposed_leader_asks_before_it_writes_and_then_leaves_the_controller_alone() {
    let (sim, _s, c, rels) = cluster::running(Master::Today);
    assert_eq!(paths(&c), expected_paths());
    // Juju 4 moves leadership and tells the old leader nothing.
    sim.edit_unit(|u| u.leader = false);
    let from = c.api.requests().len();
    let mark = sim.mark();
    // A change that would change the controller's image.
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("registry-location", "registry.example.com/cdk")],
    )
    .assert_ok();
    assert_eq!(writes(&c, from), Vec::<String>::new());
    let asked = sim
        .tool_calls_since(mark)
        .iter()
        .filter(|t| t.tool == "is-leader")
        .count();
    assert_eq!(asked, 1, "one is-leader, when a write is due");
    assert!(container(&c)["image"]
        .as_str()
        .unwrap()
        .starts_with(REGISTRY));
    // Known not to lead now: later hooks neither ask nor write.
    let mark = sim.mark();
    sim.hook("update-status").assert_ok();
    assert!(sim.tool_calls_since(mark).is_empty());
    assert_active(&sim);
}

#[test]
fn a_leader_asks_nothing_when_no_write_is_due() {
    let (sim, _s, _c, rels) = cluster::running(Master::Today);
    let mark = sim.mark();
    sim.change(
        rels.control,
        "kubernetes-control-plane/0",
        &[("cluster-tag", "kubernetes-y")],
    )
    .assert_ok();
    assert!(!sim
        .tool_calls_since(mark)
        .iter()
        .any(|t| t.tool == "is-leader"));
}

#[test]
fn the_controller_container_is_named_as_the_ops_charm_named_it_and_an_earlier_name_goes() {
    let (sim, scratch) = common::provisioned();
    for run in sim.deploy() {
        run.assert_ok();
    }
    let c = Cluster::new();
    // This charm's earlier revisions named the container without the
    // application: the DaemonSet as one of them applied it.
    let earlier = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": format!("nginx-ingress-controller-{APP}"), "namespace": ns()},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": ns()}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": ns()}},
                "spec": {"hostNetwork": true, "containers": [{
                    "name": "nginx-ingress-controller",
                    "image": format!("{REGISTRY}/ingress-nginx/controller:v1.11.5"),
                    "ports": [{"name": "http", "containerPort": 80}]}]}}}});
    c.api
        .server_side_apply(&daemonset_path(), "kubernetes-worker", &earlier);
    c.relate(&sim, Master::Today);
    assert_active(&sim);
    let containers = c.api.objects()[&daemonset_path()]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![format!("nginx-ingress-controller{APP}")]);
    drop(scratch);
}
