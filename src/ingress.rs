//! The nginx ingress controller on this application's nodes: the objects
//! the leader applies through the API server (server-side apply, this
//! charm as the field manager), built as data, not from a template; the
//! DaemonSet selects the nodes by the `juju-application=<app>` label the
//! charm puts on each of its nodes.

use serde::Serialize;
use serde_json::{json, Value};

use crate::unit_state::IngressSettings;

/// The image for `nginx-image=auto`, under the cluster's registry: one
/// multi-arch tag (amd64, arm64, s390x, ppc64le).
pub const AUTO_IMAGE: &str = "ingress-nginx/controller:v1.14.4";

/// The controller runs as this user (the image's `www-data`).
const UID: u64 = 101;

/// The IngressClass the controller serves, marked the cluster's default.
pub const CLASS: &str = "nginx-ingress-controller";

/// One object: where it lives in the API and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its path, e.g. `/api/v1/namespaces/ingress-nginx-w`.
    pub path: String,
    pub body: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Meta<'a>,
    #[serde(flatten)]
    body: Value,
}

#[derive(Serialize)]
struct Meta<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    labels: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
}

/// What the objects are made from.
pub struct Inputs<'a> {
    pub app: &'a str,
    /// `registry-location` from kube-control.
    pub registry: &'a str,
    pub settings: &'a IngressSettings,
    /// The default certificate's key (config only; never cached).
    pub ssl_key: Option<&'a str>,
}

/// The image the controller runs.
pub fn image(inputs: &Inputs) -> String {
    match inputs.settings.image.as_str() {
        "auto" | "" => format!("{}/{AUTO_IMAGE}", inputs.registry.trim_end_matches('/')),
        explicit => explicit.to_string(),
    }
}

/// Every object, in the order they are applied (deleted in reverse).
pub fn objects(inputs: &Inputs) -> Vec<Object> {
    let app = inputs.app;
    let settings = inputs.settings;
    let ns = format!("ingress-nginx-{app}");
    let part = format!("ingress-nginx-{app}");
    let labels = json!({
        "app.kubernetes.io/name": part,
        "app.kubernetes.io/part-of": part,
        format!("cdk-{app}-ingress"): "true",
    });
    let account = format!("nginx-ingress-serviceaccount-{app}");
    let cluster_role = format!("nginx-ingress-clusterrole-{app}");
    let role = format!("nginx-ingress-role-{app}");
    let daemonset = format!("nginx-ingress-controller-{app}");
    let ssl = match (settings.ssl_certificate.is_empty(), inputs.ssl_key) {
        (false, Some(key)) if !key.is_empty() => Some((settings.ssl_certificate.as_str(), key)),
        _ => None,
    };
    let mut out = Vec::new();
    let mut push = |path: String, api: &str, kind: &str, meta: Meta, body: Value| {
        let manifest = Manifest {
            api_version: api,
            kind,
            metadata: meta,
            body,
        };
        out.push(Object {
            path,
            body: serde_json::to_value(manifest).unwrap_or(Value::Null),
        });
    };
    push(
        format!("/api/v1/namespaces/{ns}"),
        "v1",
        "Namespace",
        Meta {
            name: &ns,
            namespace: None,
            labels: json!({ format!("cdk-{app}-ingress"): "true" }),
            annotations: None,
        },
        json!({}),
    );
    push(
        format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}"),
        "v1",
        "ServiceAccount",
        Meta {
            name: &account,
            namespace: Some(&ns),
            labels: labels.clone(),
            annotations: None,
        },
        json!({}),
    );
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| json!({ "apiGroups": groups, "resources": resources, "verbs": verbs });
    push(
        format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{cluster_role}"),
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        Meta {
            name: &cluster_role,
            namespace: None,
            labels: labels.clone(),
            annotations: None,
        },
        json!({ "rules": [
            rule(&[""], &["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"], &["list", "watch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["list", "watch"]),
            rule(&[""], &["nodes"], &["get"]),
            rule(&[""], &["services"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses", "ingressclasses"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses/status"], &["update"]),
            rule(&[""], &["events"], &["create", "patch"]),
            rule(&["discovery.k8s.io"], &["endpointslices"], &["get", "list", "watch"]),
        ]}),
    );
    push(
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{role}"),
        "rbac.authorization.k8s.io/v1",
        "Role",
        Meta {
            name: &role,
            namespace: Some(&ns),
            labels: labels.clone(),
            annotations: None,
        },
        json!({ "rules": [
            rule(&[""], &["namespaces"], &["get"]),
            rule(&[""], &["configmaps", "pods", "secrets", "endpoints", "services"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses", "ingressclasses"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses/status"], &["update"]),
            rule(&[""], &["configmaps"], &["create"]),
            rule(&[""], &["events"], &["create", "patch"]),
            json!({ "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                    "resourceNames": ["ingress-controller-leader"], "verbs": ["get", "update"] }),
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        ]}),
    );
    let subject = json!([{ "kind": "ServiceAccount", "name": account, "namespace": ns }]);
    let cluster_binding = format!("nginx-ingress-clusterrole-nisa-binding-{app}");
    push(
        format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{cluster_binding}"),
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        Meta {
            name: &cluster_binding,
            namespace: None,
            labels: labels.clone(),
            annotations: None,
        },
        json!({
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role },
            "subjects": subject,
        }),
    );
    let binding = format!("nginx-ingress-role-nisa-binding-{app}");
    push(
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{binding}"),
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Meta {
            name: &binding,
            namespace: Some(&ns),
            labels: labels.clone(),
            annotations: None,
        },
        json!({
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role },
            "subjects": subject,
        }),
    );
    for (name, data) in [
        (
            "nginx-configuration",
            json!({
                "use-forwarded-headers": settings.forwarded_headers.to_string(),
                "proxy-real-ip-cidr": settings.real_ip_cidr,
            }),
        ),
        ("tcp-services", json!({})),
        ("udp-services", json!({})),
    ] {
        push(
            format!("/api/v1/namespaces/{ns}/configmaps/{name}"),
            "v1",
            "ConfigMap",
            Meta {
                name,
                namespace: Some(&ns),
                labels: labels.clone(),
                annotations: None,
            },
            json!({ "data": data }),
        );
    }
    if let Some((cert, key)) = ssl {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        push(
            format!("/api/v1/namespaces/{ns}/secrets/default-ssl-certificate"),
            "v1",
            "Secret",
            Meta {
                name: "default-ssl-certificate",
                namespace: Some(&ns),
                labels: labels.clone(),
                annotations: None,
            },
            // Opaque, as the Python charm made it: a Secret's type cannot
            // change, and a switched unit applies over that one.
            json!({ "type": "Opaque", "data": { "tls.crt": b64(cert), "tls.key": b64(key) } }),
        );
    }
    let mut args = vec![
        "/nginx-ingress-controller".to_string(),
        "--configmap=$(POD_NAMESPACE)/nginx-configuration".into(),
        "--tcp-services-configmap=$(POD_NAMESPACE)/tcp-services".into(),
        "--udp-services-configmap=$(POD_NAMESPACE)/udp-services".into(),
        "--annotations-prefix=nginx.ingress.kubernetes.io".into(),
        format!(
            "--enable-ssl-chain-completion={}",
            settings.chain_completion
        ),
        format!("--enable-ssl-passthrough={}", settings.passthrough),
    ];
    if ssl.is_some() {
        args.push("--default-ssl-certificate=$(POD_NAMESPACE)/default-ssl-certificate".into());
    }
    let selector = json!({ "app.kubernetes.io/name": part, "app.kubernetes.io/part-of": part });
    let probe = json!({ "httpGet": { "path": "/healthz", "port": 10254, "scheme": "HTTP" },
                        "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3 });
    let mut liveness = probe.clone();
    liveness["initialDelaySeconds"] = json!(10);
    push(
        format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{daemonset}"),
        "apps/v1",
        "DaemonSet",
        Meta {
            name: &daemonset,
            namespace: Some(&ns),
            labels: labels.clone(),
            annotations: None,
        },
        json!({ "spec": {
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": {
                    "labels": selector,
                    "annotations": { "prometheus.io/port": "10254", "prometheus.io/scrape": "true" },
                },
                "spec": {
                    "serviceAccountName": account,
                    "nodeSelector": { "juju-application": app },
                    "terminationGracePeriodSeconds": 60,
                    // hostPort does not work with every CNI: the host's network.
                    "hostNetwork": true,
                    "containers": [{
                        // The ops charm's name for it (no dash): a node
                        // switched from it has this container, made with
                        // client-side apply, and server-side apply merges
                        // into an item of the same name (under another
                        // name the pod would get a second controller on
                        // the same host ports).
                        "name": format!("nginx-ingress-controller{app}"),
                        "image": image(inputs),
                        "args": args,
                        "securityContext": {
                            "capabilities": { "drop": ["ALL"], "add": ["NET_BIND_SERVICE"] },
                            "runAsUser": UID,
                        },
                        "env": [
                            { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                            { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                        ],
                        "ports": [
                            { "name": "http", "containerPort": 80 },
                            { "name": "https", "containerPort": 443 },
                        ],
                        "livenessProbe": liveness,
                        "readinessProbe": probe,
                    }],
                },
            },
        }}),
    );
    push(
        format!("/apis/networking.k8s.io/v1/ingressclasses/{CLASS}"),
        "networking.k8s.io/v1",
        "IngressClass",
        Meta {
            name: CLASS,
            namespace: None,
            labels,
            annotations: Some(json!({ "ingressclass.kubernetes.io/is-default-class": "true" })),
        },
        json!({ "spec": { "controller": "k8s.io/ingress-nginx" } }),
    );
    out
}

/// A fingerprint of every object as it would be applied.
pub fn fingerprint(objects: &[Object]) -> String {
    let mut hash = charm::resources::Fingerprint::default();
    for object in objects {
        hash.update(&object.path);
        hash.update(object.body.to_string());
    }
    hash.hex()
}
