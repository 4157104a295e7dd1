//! Issue 31: the kube-control exchange with today's own code on the other
//! side. The control plane's bag and secrets come from
//! ops-interface-kube-control's KubeControlProvides (0.3.3, from PyPI, in
//! the virtualenv `make today-venv` builds), run in a control-plane charm
//! by ops' testing Harness (tests/today/kube_control.py), answering what
//! this charm published: the library must parse this unit's request, and
//! this unit must come up on what the library sends.

mod common;

use common::assert_active;
use common::cluster::Cluster;
use serde_json::{json, Value};

/// The control plane's choices in one exchange.
struct ControlPlane {
    has_xcp: bool,
    dns: bool,
    endpoints: usize,
}

#[test]
fn the_control_plane_side_is_todays_library() {
    for cp in [
        ControlPlane {
            has_xcp: false,
            dns: true,
            endpoints: 1,
        },
        ControlPlane {
            has_xcp: true,
            dns: false,
            endpoints: 2,
        },
    ] {
        let (sim, _s) = common::provisioned();
        for run in sim.deploy() {
            run.assert_ok();
        }
        let c = Cluster::new();
        c.api
            .follow_kubelet(&c.node, sim.dir().join("machine.json"));
        c.relate_runtime(&sim);
        c.relate_ca_and_cni(&sim, true);
        let control = sim.relate("kube-control", "kubernetes-control-plane");
        for run in sim.join(control, "kubernetes-control-plane/0", &[]) {
            run.assert_ok();
        }
        let ours = sim.unit().relation(control).unwrap().local_unit.clone();
        let user = format!("system:node:{}", c.node);
        // A second endpoint that does not answer: the worker must use the
        // one that does, or say it cannot.
        let mut endpoints = vec![c.api.url.clone()];
        endpoints.extend((1..cp.endpoints).map(|_| "https://127.0.0.1:9".to_string()));
        let answer = common::today(
            "kube_control.py",
            &json!({
                "worker_unit": sim.unit().unit,
                "worker_bag": ours,
                "api_endpoints": endpoints,
                "cluster_tag": "kubernetes-4c7bx1p2ut6bbmwbyhd2yuucf9rwwnnq",
                "default_cni": "",
                "dns": {"enabled": cp.dns, "domain": "cluster.local",
                        "sdn_ip": if cp.dns { "10.152.183.10" } else { "" }, "port": 53},
                "has_xcp": cp.has_xcp,
                "registry": "rocks.canonical.com:443/cdk",
                "labels": ["team=storage"],
                "taints": ["node-role.kubernetes.io/control-plane:NoSchedule"],
                "ca": c.pki.ca_pem(),
                "tokens": {"client": c.client_token, "kubelet": c.kubelet_token,
                           "proxy": c.proxy_token},
            }),
        );

        // What this unit published parses as the library's AuthRequest,
        // the same as today's worker (the library's requirer) publishes.
        assert_eq!(
            answer["requests"],
            json!([{"auth_group": "system:nodes", "kubelet_user": user,
                    "schema_vers": "[0, 1]", "unit": sim.unit().unit}])
        );
        for (key, value) in answer["requirer_bag"].as_object().unwrap() {
            assert_eq!(ours.get(key).map(String::as_str), value.as_str(), "{key}");
        }

        // The bag the rest of the suite's control plane writes by hand
        // (Cluster::kube_control_data) is the library's, key for key and
        // in each value's form, so that the model cannot drift from it.
        if cp.dns {
            let model: std::collections::BTreeMap<String, String> = c
                .kube_control_data_with(common::cluster::Master::Today, Some("secret:x"))
                .into_iter()
                .collect();
            let library = answer["bag"].as_object().unwrap();
            let keys =
                |m: &mut dyn Iterator<Item = &String>| -> Vec<String> { m.cloned().collect() };
            assert_eq!(keys(&mut model.keys()), keys(&mut library.keys()));
            let form = |text: &str| -> String {
                match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(o)) => format!(
                        "object of {}",
                        o.values()
                            .next()
                            .and_then(Value::as_object)
                            .map(|entry| entry.keys().cloned().collect::<Vec<_>>().join(","))
                            .unwrap_or_default()
                    ),
                    Ok(Value::Array(_)) => "array".into(),
                    Ok(v) => format!("{v:?}")
                        .split('(')
                        .next()
                        .unwrap_or_default()
                        .into(),
                    Err(_) => "text".into(),
                }
            };
            for (key, value) in library {
                assert_eq!(
                    form(&model[key]),
                    form(value.as_str().unwrap()),
                    "{key}: the model writes {:?}, the library {value}",
                    model[key]
                );
            }
        }

        // The library's secrets, owned by the control plane and granted
        // to this unit, under the ids Juju gives them here.
        let mut bag: Vec<(String, String)> = answer["bag"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for (id, secret) in answer["secrets"].as_object().unwrap() {
            let content: Vec<(&str, &str)> = secret["content"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let ours = sim.add_secret(
                "kubernetes-control-plane",
                secret["label"].as_str().unwrap(),
                &content,
                secret["granted"].as_bool().unwrap(),
            );
            for (_, value) in bag.iter_mut() {
                *value = value.replace(id, &ours);
            }
        }
        let refs: Vec<(&str, &str)> = bag.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sim.change(control, "kubernetes-control-plane/0", &refs)
            .assert_ok();

        assert_active(&sim);
        let kubeconfig = common::read(&sim, "/root/cdk/kubeconfig");
        assert!(kubeconfig.contains(&c.kubelet_token), "{kubeconfig}");
        assert!(common::read(&sim, "/root/cdk/kubeproxyconfig").contains(&c.proxy_token));
        assert!(common::read(&sim, "/root/.kube/config").contains(&c.client_token));
        let config = common::read(&sim, "/root/cdk/kubelet/config.yaml");
        assert_eq!(
            config.contains("10.152.183.10"),
            cp.dns,
            "clusterDNS as the library said: {config}"
        );
        let args = sim.machine().snap_config["kubelet"]["args"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            args.contains("--cloud-provider=\"external\""),
            cp.has_xcp,
            "{args}"
        );
    }
}
