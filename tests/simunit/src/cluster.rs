//! A control plane for the worker to talk to: a test CA issuing real
//! certificates, a loopback HTTPS server standing in for the Kubernetes API
//! (token checked, nodes, pods and evictions, every request recorded), and
//! the relation data masters of each generation sent.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::Sim;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{json, Value};

/// A certificate authority for one test.
pub struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test cluster CA");
        Pki {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate and key (PEM) for `sans` (IP addresses or names).
    pub fn issue(&self, sans: &[&str]) -> (String, String, rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert, key)
    }
}

/// One request the API server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub authorized: bool,
    pub content_type: String,
}

#[derive(Default, Clone)]
pub struct ApiState {
    /// kube-apiserver's version, as `GET /version` gives it (`None`: the
    /// default, [`API_VERSION`]).
    pub version: Option<String>,
    pub nodes: BTreeMap<String, Value>,
    /// Nodes whose kubelet is the simulated machine's, by the machine's
    /// file: what they post follows it (see [`ApiServer::follow_kubelet`]).
    pub kubelets: BTreeMap<String, std::path::PathBuf>,
    pub pods: Vec<Value>,
    /// PodDisruptionBudgets (policy/v1), which evictions respect.
    pub pdbs: Vec<Value>,
    pub requests: Vec<Request>,
    /// Connections are closed as soon as they are accepted (the server
    /// is down behind its address).
    pub down: bool,
    /// Connections are accepted and never answered (a blackholed or hung
    /// server).
    pub silent: bool,
    /// Objects created by server-side apply, by path (without the query).
    pub objects: BTreeMap<String, Value>,
    /// Answers for the next applies and deletes of objects: (status,
    /// message), first first.
    pub write_failures: std::collections::VecDeque<(u16, String)>,
    /// Namespaces being deleted: the NamespaceLifecycle admission refuses
    /// anything new in them, evictions included.
    pub terminating_namespaces: std::collections::BTreeSet<String>,
    /// Pods (namespace, name) deleted right after the next list of pods
    /// that shows them: their controller scaled them away between a
    /// drain's list and its eviction.
    pub gone_after_list: std::collections::BTreeSet<(String, String)>,
    /// Evictions refused so far, by pod (namespace, name).
    pub refusals: BTreeMap<(String, String), u32>,
    /// Changes made as an eviction is refused ([`ApiServer::on_refusal`]).
    pub on_refusal: Vec<RefusalTrigger>,
}

/// A change to a pod, as its controller or kubelet makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodChange {
    /// Ready, as its kubelet reports it once its containers are up.
    Ready,
    /// Marked for deletion (its deletionTimestamp), still listed.
    MarkDeleted,
    /// Gone, as its controller scaling down leaves it.
    Delete,
}

/// `change` to pod `target` as the eviction of `refused` is refused for
/// the `times`th time.
#[derive(Debug, Clone)]
pub struct RefusalTrigger {
    pub refused: (String, String),
    pub times: u32,
    pub target: (String, String),
    pub change: PodChange,
}

impl ApiState {
    fn pods_named<'a>(
        &'a mut self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a mut Value> + 'a {
        self.pods.iter_mut().filter(move |p| {
            p["metadata"]["namespace"] == namespace && p["metadata"]["name"] == name
        })
    }

    fn change_pod(&mut self, (namespace, name): (&str, &str), change: PodChange) {
        match change {
            PodChange::Ready => self.set_pod_ready(namespace, name, true),
            PodChange::MarkDeleted => {
                for p in self.pods_named(namespace, name) {
                    p["metadata"]["deletionTimestamp"] = json!("2026-12-04T00:00:00Z");
                }
            }
            PodChange::Delete => self.pods.retain(|p| {
                p["metadata"]["namespace"] != namespace || p["metadata"]["name"] != name
            }),
        }
    }

    fn set_pod_ready(&mut self, namespace: &str, name: &str, ready: bool) {
        for p in self.pods_named(namespace, name) {
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
        }
    }

    /// Counts a refused eviction of `namespace/name` and makes the changes
    /// due at that count, before the refusal is answered.
    fn refused(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let count = {
            let n = self.refusals.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let due: Vec<RefusalTrigger> = self
            .on_refusal
            .iter()
            .filter(|t| t.refused == key && t.times == count)
            .cloned()
            .collect();
        for t in due {
            self.change_pod((&t.target.0, &t.target.1), t.change);
        }
    }
}

/// The stand-in API server, on 127.0.0.1. A clone is the same server.
#[derive(Clone)]
pub struct ApiServer {
    pub url: String,
    pub port: u16,
    pub state: Arc<Mutex<ApiState>>,
}

impl ApiServer {
    pub fn start(pki: &Pki, token: &str) -> ApiServer {
        let (_, _, cert, key) = pki.issue(&["127.0.0.1"]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ApiState::default()));
        let token = format!("Bearer {token}");
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, state, token) = (config.clone(), shared.clone(), token.clone());
                std::thread::spawn(move || serve(stream, config, state, &token));
            }
        });
        ApiServer {
            url: format!("https://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    pub fn add_node(&self, name: &str) {
        self.state.lock().unwrap().nodes.insert(
            name.to_string(),
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {},
                   "status": {"conditions": [
                       {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                       {"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}]}}),
        );
    }

    /// Merges `patch` into the node, as a kubectl patch would.
    pub fn patch_node(&self, name: &str, patch: Value) {
        if let Some(node) = self.state.lock().unwrap().nodes.get_mut(name) {
            merge(node, &patch);
        }
    }

    /// The version this API server says it runs (`v1.31.2`).
    pub fn set_version(&self, version: &str) {
        self.state.lock().unwrap().version = Some(version.to_string());
    }

    /// Makes `node` post what the kubelet of the simulated machine whose
    /// state is `machine_file` would: its version (that of the revision it
    /// last started); once it stops, Ready Unknown, as the node controller
    /// marks a node whose kubelet went quiet, until it runs again.
    pub fn follow_kubelet(&self, node: &str, machine_file: std::path::PathBuf) {
        self.state
            .lock()
            .unwrap()
            .kubelets
            .insert(node.to_string(), machine_file);
    }

    /// Sets the node's Ready condition as kubelet would report it.
    pub fn set_ready(&self, name: &str, ready: bool, reason: &str, message: &str) {
        let mut s = self.state.lock().unwrap();
        let Some(node) = s.nodes.get_mut(name) else {
            return;
        };
        if let Some(conditions) = node["status"]["conditions"].as_array_mut() {
            for c in conditions.iter_mut().filter(|c| c["type"] == "Ready") {
                c["status"] = json!(if ready { "True" } else { "False" });
                c["reason"] = json!(reason);
                c["message"] = json!(message);
            }
        }
    }

    /// Everything the server holds, to put back with [`ApiServer::restore`].
    pub fn save(&self) -> ApiState {
        self.state.lock().unwrap().clone()
    }

    pub fn restore(&self, state: &ApiState) {
        *self.state.lock().unwrap() = state.clone();
    }

    /// Forgets every node, pod and request, as a new cluster would.
    pub fn reset(&self) {
        *self.state.lock().unwrap() = ApiState::default();
    }

    pub fn set_silent(&self, silent: bool) {
        self.state.lock().unwrap().silent = silent;
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().nodes.get(name).cloned()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The objects applied, by path.
    pub fn objects(&self) -> BTreeMap<String, Value> {
        self.state.lock().unwrap().objects.clone()
    }

    /// The next applies or deletes of objects fail with `status`.
    pub fn fail_writes(&self, status: u16, message: &str, times: usize) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..times {
            s.write_failures.push_back((status, message.to_string()));
        }
    }

    /// Creates or updates `object` at `path` as `kubectl apply` without
    /// `--server-side` does (what the Python charms did): an Update by
    /// the manager `kubectl-client-side-apply`, the applied manifest kept
    /// in the `last-applied-configuration` annotation.
    pub fn client_side_apply(&self, path: &str, object: &Value) {
        let mut object = object.clone();
        let manifest = object.to_string();
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!(manifest);
        let mut s = self.state.lock().unwrap();
        let live = s.objects.get(path).cloned();
        match crate::ssa::write(
            "Update",
            "kubectl-client-side-apply",
            false,
            live.as_ref(),
            &object,
        ) {
            Ok(crate::ssa::Outcome::Stored(stored)) => {
                s.objects.insert(path.to_string(), stored);
            }
            Ok(crate::ssa::Outcome::Conflicts(c)) => panic!("an update cannot conflict: {c}"),
            Err(why) => panic!("{why}"),
        }
    }

    /// Applies `object` at `path` as `manager` with server-side apply, as
    /// a PATCH with `force=true` would.
    pub fn server_side_apply(&self, path: &str, manager: &str, object: &Value) {
        let mut s = self.state.lock().unwrap();
        let live = s.objects.get(path).cloned();
        match crate::ssa::write("Apply", manager, true, live.as_ref(), object) {
            Ok(crate::ssa::Outcome::Stored(stored)) => {
                s.objects.insert(path.to_string(), stored);
            }
            Ok(crate::ssa::Outcome::Conflicts(c)) => panic!("a forced apply cannot conflict: {c}"),
            Err(why) => panic!("{why}"),
        }
    }

    /// Adds a pod; a DaemonSet's pod comes with its DaemonSet (until
    /// [`ApiServer::delete_daemonset`] orphans it).
    pub fn add_pod(&self, pod: Value) {
        let mut s = self.state.lock().unwrap();
        let owner = pod["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["controller"] == true).cloned());
        if let Some(owner) = owner.filter(|o| o["kind"] == "DaemonSet") {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
            let name = owner["name"].as_str().unwrap_or_default();
            s.objects
                .entry(daemonset_path(ns, name))
                .or_insert_with(|| {
                    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                           "metadata": {"namespace": ns, "name": name}})
                });
        }
        s.pods.push(pod);
    }

    /// Deletes a DaemonSet without its pods (an orphaning delete).
    pub fn delete_daemonset(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .objects
            .remove(&daemonset_path(namespace, name));
    }

    pub fn pods(&self) -> Vec<Value> {
        self.state.lock().unwrap().pods.clone()
    }

    /// Deletes the pod just after the next list that shows it, as a
    /// controller scaling down between a drain's list and its eviction.
    pub fn delete_pod_after_list(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .gone_after_list
            .insert((namespace.to_string(), name.to_string()));
    }

    /// Deletes a pod at once, as its controller scaling down would.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .change_pod((namespace, name), PodChange::Delete);
    }

    /// Marks a pod for deletion (its deletionTimestamp), as the namespace
    /// controller or a delete with a grace period does; it stays listed
    /// until [`ApiServer::delete_pod`].
    pub fn mark_pod_deleted(&self, namespace: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .change_pod((namespace, name), PodChange::MarkDeleted);
    }

    /// Starts deleting a namespace: from now on creates in it, evictions
    /// included, are refused as NamespaceLifecycle refuses them.
    pub fn terminate_namespace(&self, namespace: &str) {
        self.state
            .lock()
            .unwrap()
            .terminating_namespaces
            .insert(namespace.to_string());
    }

    /// A PodDisruptionBudget over the pods of `namespace` whose labels
    /// include `match_labels`: `minAvailable` or `maxUnavailable`, as
    /// given in `spec` (integers).
    pub fn add_pdb(&self, namespace: &str, name: &str, match_labels: Value, spec: Value) {
        let mut spec = spec;
        spec["selector"] = json!({ "matchLabels": match_labels });
        self.state.lock().unwrap().pdbs.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"namespace": namespace, "name": name},
            "spec": spec,
        }));
    }

    /// Two replicas of `web` behind a budget of one healthy pod: `web-1`
    /// on `node`, Ready; `web-2` on another node, not Ready yet (until a
    /// test makes it so). Until then, `web-1` may not be evicted.
    pub fn web_behind_a_budget(&self, node: &str) {
        self.add_pod(pod("web-1", "web", node, Some("ReplicaSet")));
        self.add_pod(pod("web-2", "web", "another-node", Some("ReplicaSet")));
        self.set_pod_ready("default", "web-2", false);
        self.add_pdb(
            "default",
            "web",
            json!({"app": "web"}),
            json!({"minAvailable": 1}),
        );
    }

    /// Sets a pod's Ready condition, as its kubelet would.
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) {
        self.state
            .lock()
            .unwrap()
            .set_pod_ready(namespace, name, ready);
    }

    /// How many times the eviction of pod `namespace/name` was refused.
    pub fn refusals(&self, namespace: &str, name: &str) -> u32 {
        let key = (namespace.to_string(), name.to_string());
        self.state
            .lock()
            .unwrap()
            .refusals
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the eviction of pod `namespace/name` has been refused
    /// `times` times (a minute at most): a test's change to the cluster
    /// follows the drain's own progress, not the clock, so that it comes
    /// at the same point of the drain on a slow machine as on a fast one.
    pub fn wait_for_refusals(&self, namespace: &str, name: &str, times: u32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.refusals(namespace, name) < times {
            assert!(
                std::time::Instant::now() < deadline,
                "the eviction of {namespace}/{name} was not refused {times} times within a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Makes `change` to pod `target` right as the eviction of pod
    /// `refused` is refused for the `times`th time, before that refusal is
    /// answered: whatever the drain reads next sees it, however slowly
    /// either side runs.
    pub fn on_refusal(
        &self,
        refused: (&str, &str),
        times: u32,
        target: (&str, &str),
        change: PodChange,
    ) {
        self.state.lock().unwrap().on_refusal.push(RefusalTrigger {
            refused: (refused.0.to_string(), refused.1.to_string()),
            times,
            target: (target.0.to_string(), target.1.to_string()),
            change,
        });
    }
}

/// A pod as a controller of `owner` kind (or none) makes it, scheduled on
/// `node`, Running and Ready, labelled `app=<app>`.
pub fn pod(name: &str, app: &str, node: &str, owner: Option<&str>) -> Value {
    let mut p = json!({
        "metadata": {"namespace": "default", "name": name, "labels": {"app": app}},
        "spec": {"nodeName": node, "volumes": []},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    if let Some(kind) = owner {
        p["metadata"]["ownerReferences"] = json!([{"kind": kind, "name": app, "controller": true}]);
    }
    p
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn selects(pdb: &Value, pod: &Value) -> bool {
    pdb["metadata"]["namespace"] == pod["metadata"]["namespace"]
        && pdb["spec"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|labels| {
                labels
                    .iter()
                    .all(|(k, v)| pod["metadata"]["labels"][k] == *v)
            })
}

/// Whether the eviction API lets `pod` go, as kube-apiserver's eviction
/// REST decides it (pkg/registry/core/pod/storage/eviction.go), with the
/// budget's status as the disruption controller would have it now:
/// healthy = matching pods Ready and not being deleted; desired =
/// `minAvailable`, or the matching pods less `maxUnavailable`. `Err` is the
/// answer refusing it.
fn eviction_allowed(s: &ApiState, pod: &Value) -> Result<(), (u16, Value)> {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    // canIgnorePDB: a pod that is done, not started, or already going.
    if matches!(phase, "Succeeded" | "Failed" | "Pending")
        || !pod["metadata"]["deletionTimestamp"].is_null()
    {
        return Ok(());
    }
    let budgets: Vec<&Value> = s.pdbs.iter().filter(|b| selects(b, pod)).collect();
    let budget = match budgets.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err((
                500,
                json!({"kind": "Status", "status": "Failure", "reason": "InternalError", "code": 500,
                       "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
            ))
        }
    };
    let matching: Vec<&Value> = s.pods.iter().filter(|p| selects(budget, p)).collect();
    let healthy = matching
        .iter()
        .filter(|p| pod_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .count() as i64;
    let desired = match (
        budget["spec"]["minAvailable"].as_i64(),
        budget["spec"]["maxUnavailable"].as_i64(),
    ) {
        (Some(min), _) => min,
        (None, Some(max)) => matching.len() as i64 - max,
        (None, None) => panic!("a budget needs minAvailable or maxUnavailable: {budget}"),
    };
    // Ready pods need a disruption to spare; a pod not Ready goes while
    // the budget is met (the default unhealthyPodEvictionPolicy,
    // IfHealthyBudget).
    let allowed = if pod_ready(pod) {
        healthy - desired > 0
    } else {
        healthy >= desired
    };
    if allowed {
        return Ok(());
    }
    let name = budget["metadata"]["name"].as_str().unwrap_or_default();
    Err((
        429,
        json!({"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
               "message": "Cannot evict pod as it would violate the pod's disruption budget.",
               "details": {"causes": [{"reason": "DisruptionBudget",
                   "message": format!("The disruption budget {name} needs {desired} healthy pods and has {healthy} currently")}]}}),
    ))
}

fn serve(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    state: Arc<Mutex<ApiState>>,
    token: &str,
) {
    if state.lock().map(|s| s.down).unwrap_or(false) {
        return;
    }
    if state.lock().map(|s| s.silent).unwrap_or(false) {
        // Hold the connection, say nothing, until the client gives up.
        let mut stream = stream;
        let _ = std::io::Read::read_to_end(&mut stream, &mut Vec::new());
        return;
    }
    // As kube-apiserver's (Go sets TCP_NODELAY on every connection): with
    // Nagle on, the handshake's small writes wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let tls = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(tls);
    loop {
        let Some(request) = crate::http::read_request(&mut reader) else {
            return;
        };
        let (method, path, headers, body) = (
            request.method,
            request.target,
            request.headers,
            request.body,
        );
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let authorized = headers.get("authorization").map(String::as_str) == Some(token);
        let (status, reply) = {
            let mut s = state.lock().unwrap();
            sync_kubelets(&mut s);
            let content_type = headers.get("content-type").cloned().unwrap_or_default();
            s.requests.push(Request {
                method: method.clone(),
                path: path.clone(),
                body: body.clone(),
                authorized,
                content_type: content_type.clone(),
            });
            if !authorized {
                (401, json!({"kind": "Status", "message": "Unauthorized"}))
            } else if let Some(answer) = objects(&mut s, &method, &path, &content_type, &body) {
                answer
            } else {
                route(&mut s, &method, &path, &body)
            }
        };
        let text = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let tls = reader.get_mut();
        if tls
            .write_all(response.as_bytes())
            .and_then(|_| tls.flush())
            .is_err()
        {
            return;
        }
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Why the API server refuses these labels, as apimachinery's
/// `ValidateLabels` says it (qualified names for keys, label values for
/// values), or `None`.
fn invalid_labels(labels: &Value) -> Option<String> {
    let word = |s: &str| {
        let alnum = |c: char| c.is_ascii_alphanumeric();
        s.len() <= 63
            && (s.is_empty()
                || s.starts_with(alnum)
                    && s.ends_with(alnum)
                    && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')))
    };
    let subdomain = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !p.starts_with('-')
                    && !p.ends_with('-')
            })
    };
    for (key, value) in labels.as_object()? {
        let (prefix, name) = key
            .rsplit_once('/')
            .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        if name.is_empty() || !word(name) || prefix.is_some_and(|p| !subdomain(p)) {
            return Some(format!(
                "metadata.labels: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
        let value = value.as_str().unwrap_or_default();
        if !word(value) {
            return Some(format!(
                "metadata.labels: Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ));
        }
    }
    None
}

/// Server-side apply (PATCH with a field manager and the apply content
/// type) and deletion of any namespaced or cluster object but nodes and
/// pods, as the API server answers them; `None` for other requests.
fn objects(
    s: &mut ApiState,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let (bare, query) = path.split_once('?').unwrap_or((path, ""));
    let is_object = (bare.starts_with("/api/v1/namespaces/") || bare.starts_with("/apis/"))
        && !bare.contains("/pods/");
    if !is_object || !matches!(method, "PATCH" | "DELETE") {
        return None;
    }
    if let Some((status, message)) = s.write_failures.pop_front() {
        return Some((
            status,
            json!({"kind": "Status", "status": "Failure", "message": message}),
        ));
    }
    if method == "DELETE" {
        return Some(match s.objects.remove(bare) {
            Some(_) => (200, json!({"kind": "Status", "status": "Success"})),
            None => (
                404,
                json!({"kind": "Status", "message": format!("{bare} not found")}),
            ),
        });
    }
    if content_type != "application/apply-patch+yaml" {
        return Some((
            415,
            json!({"kind": "Status", "message": "not an apply patch"}),
        ));
    }
    if !query.split('&').any(|q| q.starts_with("fieldManager=")) {
        return Some((
            422,
            json!({"kind": "Status", "message": "fieldManager is required for apply requests"}),
        ));
    }
    // The object's own name must be the path's last segment.
    let name = bare.rsplit('/').next().unwrap_or("");
    if body["metadata"]["name"] != name {
        return Some((
            400,
            json!({"kind": "Status", "message": "the name of the object does not match the path"}),
        ));
    }
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|q| q.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    };
    let manager = param("fieldManager").unwrap_or_default();
    let force = param("force").as_deref() == Some("true");
    let existed = s.objects.contains_key(bare);
    Some(
        match crate::ssa::write("Apply", &manager, force, s.objects.get(bare), body) {
            Ok(crate::ssa::Outcome::Stored(object)) => {
                s.objects.insert(bare.to_string(), object.clone());
                (if existed { 200 } else { 201 }, object)
            }
            Ok(crate::ssa::Outcome::Conflicts(message)) => (
                409,
                json!({"kind": "Status", "status": "Failure", "reason": "Conflict",
                       "message": message, "code": 409}),
            ),
            Err(why) => (
                500,
                json!({"kind": "Status", "status": "Failure", "message": why}),
            ),
        },
    )
}

/// What each followed kubelet posts, from its machine's state.
fn sync_kubelets(s: &mut ApiState) {
    for (name, file) in s.kubelets.clone() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<crate::machine::Machine>(&bytes) else {
            continue;
        };
        let service = m.services.get("snap.kubelet.daemon.service");
        let running = service.is_some_and(|s| s.active);
        let version = service
            .and_then(|s| s.runs.last())
            .and_then(|run| revision_version(&m, "kubelet", &run.revision));
        if let Some(node) = s.nodes.get_mut(&name) {
            post_status(node, version.as_deref(), running);
        }
    }
}

impl ApiServer {
    /// What a kubelet running elsewhere (a real one, in the LXD suite)
    /// posts: its version, and whether it is running at all. It takes the
    /// place of the simulated machine's ([`ApiServer::follow_kubelet`]).
    pub fn post_kubelet(&self, node: &str, version: Option<&str>, running: bool) {
        let mut s = self.state.lock().unwrap();
        s.kubelets.remove(node);
        if let Some(node) = s.nodes.get_mut(node) {
            post_status(node, version, running);
        }
    }
}

fn post_status(node: &mut Value, version: Option<&str>, running: bool) {
    if let Some(version) = version {
        node["status"]["nodeInfo"]["kubeletVersion"] = json!(format!("v{version}"));
    }
    // While it runs, the node stands as the test set it (Ready unless
    // told otherwise); once it stops, the node controller marks it
    // Unknown, until it runs again.
    let quiet = (
        "Unknown",
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    );
    let posting = ("True", "KubeletReady", "kubelet is posting ready status");
    if let Some(conditions) = node["status"]["conditions"].as_array_mut() {
        for c in conditions.iter_mut().filter(|c| c["type"] == "Ready") {
            let (status, reason, message) = match (running, c["reason"] == quiet.1) {
                (false, _) => quiet,
                (true, true) => posting,
                (true, false) => continue,
            };
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
    }
}

/// The version of `snap` at `revision`, as installed or as the store
/// serves it.
fn revision_version(m: &crate::machine::Machine, snap: &str, revision: &str) -> Option<String> {
    if let Some(installed) = m.snaps.get(snap).filter(|s| s.revision == revision) {
        return Some(installed.version.clone());
    }
    m.store
        .get(snap)?
        .values()
        .find(|r| r.revision.to_string() == revision)
        .map(|r| r.version.clone())
}

fn route(s: &mut ApiState, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let not_found = (
        404,
        json!({"kind": "Status", "message": format!("{path} not found")}),
    );
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    match (method, segments.as_slice()) {
        // As kube-apiserver's version.Info; open to every authenticated
        // user (system:public-info-viewer).
        ("GET", ["version"]) => {
            let git = s.version.clone().unwrap_or(API_VERSION.to_string());
            let mut parts = git.trim_start_matches('v').split('.');
            let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            (
                200,
                json!({"major": major, "minor": minor, "gitVersion": git,
                       "gitCommit": "0000000000000000000000000000000000000000",
                       "gitTreeState": "clean", "buildDate": "2024-10-22T20:28:14Z",
                       "goVersion": "go1.22.8", "compiler": "gc", "platform": "linux/amd64"}),
            )
        }
        ("GET", ["api", "v1", "nodes"]) => (
            200,
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                   "items": s.nodes.values().cloned().collect::<Vec<_>>()}),
        ),
        ("GET", ["api", "v1", "nodes", name]) => s
            .nodes
            .get(*name)
            .map(|n| (200, n.clone()))
            .unwrap_or(not_found),
        ("PATCH", ["api", "v1", "nodes", name]) => match s.nodes.get_mut(*name) {
            Some(node) => {
                // As kube-apiserver: the patched object is validated whole,
                // and one bad label refuses the whole patch.
                let mut patched = node.clone();
                merge(&mut patched, body);
                match invalid_labels(&patched["metadata"]["labels"]) {
                    Some(why) => (
                        422,
                        json!({"kind": "Status", "status": "Failure", "reason": "Invalid",
                               "message": format!("Node \"{name}\" is invalid: {why}"), "code": 422}),
                    ),
                    None => {
                        *node = patched;
                        (200, node.clone())
                    }
                }
            }
            None => not_found,
        },
        ("DELETE", ["api", "v1", "nodes", name]) => match s.nodes.remove(*name) {
            Some(_) => (200, json!({"kind": "Status", "status": "Success"})),
            None => not_found,
        },
        ("GET", ["api", "v1", "pods"]) => {
            let node = path.split("spec.nodeName%3D").nth(1).unwrap_or("");
            let items: Vec<Value> = s
                .pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == node)
                .cloned()
                .collect();
            let listed = |p: &Value| {
                items.iter().any(|i| i["metadata"] == p["metadata"])
                    && s.gone_after_list.contains(&(
                        p["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ))
            };
            let gone: Vec<usize> = (0..s.pods.len()).filter(|i| listed(&s.pods[*i])).collect();
            for i in gone.into_iter().rev() {
                let p = s.pods.remove(i);
                let key = (
                    p["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                );
                s.gone_after_list.remove(&key);
            }
            (200, json!({"kind": "PodList", "items": items}))
        }
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "daemonsets", name]) => {
            match s.objects.get(&daemonset_path(ns, name)) {
                Some(ds) => (200, ds.clone()),
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("daemonsets.apps \"{name}\" not found"), "reason": "NotFound",
                           "details": {"name": name, "group": "apps", "kind": "daemonsets"}, "code": 404}),
                ),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => s
            .pods
            .iter()
            .find(|p| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *name)
            .map_or_else(|| pod_not_found(name), |p| (200, p.clone())),
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let target =
                |p: &Value| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *name;
            // Admission runs before the eviction's own checks.
            if s.terminating_namespaces.contains(*ns) {
                s.refused(ns, name);
                return (
                    403,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("pods \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
                           "reason": "Forbidden",
                           "details": {"name": name, "kind": "pods", "causes": [{
                               "reason": "NamespaceTerminating",
                               "message": format!("namespace {ns} is being terminated"),
                               "field": "metadata.namespace"}]},
                           "code": 403}),
                );
            }
            let refused = s
                .pods
                .iter()
                .find(|p| target(p))
                .and_then(|p| eviction_allowed(s, p).err());
            if let Some(answer) = refused {
                s.refused(ns, name);
                return answer;
            }
            match s.pods.iter().position(target) {
                // A pod with a long grace period: evicted, still terminating.
                Some(i)
                    if s.pods[i]["spec"]["terminationGracePeriodSeconds"].as_u64() > Some(3600) =>
                {
                    s.pods[i]["metadata"]["deletionTimestamp"] = json!("2026-11-28T00:00:00Z");
                    (201, json!({"kind": "Status", "status": "Success"}))
                }
                Some(i) => {
                    s.pods.remove(i);
                    (201, json!({"kind": "Status", "status": "Success"}))
                }
                None => pod_not_found(name),
            }
        }
        _ => not_found,
    }
}

/// Where a DaemonSet lives, as the objects are kept (by path).
fn daemonset_path(namespace: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}")
}

/// kube-apiserver's answer for a pod that does not exist (or no longer).
fn pod_not_found(name: &str) -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("pods \"{name}\" not found"), "reason": "NotFound",
               "details": {"name": name, "kind": "pods"}, "code": 404}),
    )
}

/// The generations of control plane the worker must understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Master {
    /// September 2017: flat tokens on kube-control, URLs on kube-api-endpoint.
    Sep2017,
    /// December 2017: `creds` JSON keyed by user.
    Dec2017,
    /// A current control plane: `creds` and `api-endpoints` on kube-control,
    /// no kube-api-endpoint relation.
    Current,
    /// Today's charms (1.29 - 1.32): the tokens in a Juju secret named by
    /// `creds` (schema 1), containerd and flannel JSON-encoding their values.
    Today,
}

pub const DNS_IP: &str = "10.152.183.10";
/// The stand-in API server's version unless a test sets another.
pub const API_VERSION: &str = "v1.31.2";
pub const CIDR: &str = "10.1.0.0/16";

/// A control plane, a CA and a CNI subordinate, ready to relate.
pub struct Cluster {
    /// Shared by the views of one cluster ([`Cluster::peer`]).
    pub pki: Arc<Pki>,
    pub api: ApiServer,
    pub node: String,
    pub client_token: String,
    pub kubelet_token: String,
    pub proxy_token: String,
    /// kube-control's `has-xcp`: the control plane runs the external
    /// cloud provider.
    pub has_xcp: bool,
    issued: Mutex<BTreeMap<String, (String, String, String, String)>>,
}

/// Relation ids of a related unit.
pub struct Relations {
    pub control: u32,
    pub api: Option<u32>,
    pub certs: u32,
    pub cni: u32,
    /// containerd, for kubelets that need a runtime (1.24 and later).
    pub runtime: Option<u32>,
    /// The secret holding the tokens ([`Master::Today`]).
    pub secret: Option<String>,
}

pub const CONTAINERD_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const REGISTRY: &str = "rocks.canonical.com:443/cdk";

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::for_node(&hostname())
    }

    /// A cluster expecting the worker to register as `node` (the lowercased
    /// host name of the machine the charm runs on).
    pub fn for_node(node: &str) -> Cluster {
        let node = node.to_lowercase();
        let pki = Arc::new(Pki::new());
        let client_token = "admin-token-0123".to_string();
        let api = ApiServer::start(&pki, &client_token);
        api.add_node(&node);
        Cluster {
            pki,
            api,
            node,
            client_token,
            kubelet_token: "kubelet-token-4567".into(),
            proxy_token: "proxy-token-89ab".into(),
            has_xcp: false,
            issued: Mutex::default(),
        }
    }

    /// The same cluster (CA, API server, tokens) as another machine's
    /// unit sees it: its own node, registered in the API server.
    pub fn peer(&self, node: &str) -> Cluster {
        let node = node.to_lowercase();
        self.api.add_node(&node);
        Cluster {
            pki: self.pki.clone(),
            api: self.api.clone(),
            node,
            client_token: self.client_token.clone(),
            kubelet_token: self.kubelet_token.clone(),
            proxy_token: self.proxy_token.clone(),
            has_xcp: self.has_xcp,
            issued: Mutex::default(),
        }
    }

    pub fn kube_control_data(&self, form: Master) -> Vec<(String, String)> {
        self.kube_control_data_with(form, None)
    }

    /// The secret's content as today's control plane writes it.
    pub fn secret_content(&self) -> Vec<(&str, &str)> {
        vec![
            ("kubelet-token", self.kubelet_token.as_str()),
            ("proxy-token", self.proxy_token.as_str()),
            ("client-token", self.client_token.as_str()),
            ("endpoint", "kube-control"),
        ]
    }

    /// kube-control as a control plane of `form` sends it; `secret_id`
    /// names the secret with this node's tokens ([`Master::Today`]).
    pub fn kube_control_data_with(
        &self,
        form: Master,
        secret_id: Option<&str>,
    ) -> Vec<(String, String)> {
        let user = format!("system:node:{}", self.node);
        if form == Master::Today {
            let creds = json!({
                user: {"scope": "kubernetes-worker/0", "kubelet_token": "", "proxy_token": "",
                       "client_token": "", "secret-id": secret_id.unwrap_or_default()},
                "system:node:another-node": {"scope": "kubernetes-worker/1", "kubelet_token": "",
                       "proxy_token": "", "client_token": "", "secret-id": "secret:d0000000000000000099"},
            })
            .to_string();
            return vec![
                ("api-endpoints".into(), json!([self.api.url]).to_string()),
                // The API server's CA in a secret (ops-interface-kube-control
                // 0.3); the worker takes its CA from the certificates
                // relation, as today's does, and never reads this one.
                (
                    "ca-certificate-secret-id".into(),
                    "secret:d0000000000000000098".into(),
                ),
                (
                    "cluster-tag".into(),
                    "kubernetes-4c7bx1p2ut6bbmwbyhd2yuucf9rwwnnq".into(),
                ),
                ("creds".into(), creds),
                ("default-cni".into(), "\"\"".into()),
                ("domain".into(), "cluster.local".into()),
                ("enable-kube-dns".into(), "True".into()),
                ("has-xcp".into(), self.has_xcp.to_string()),
                ("labels".into(), "[]".into()),
                ("port".into(), "53".into()),
                ("registry-location".into(), REGISTRY.into()),
                ("sdn-ip".into(), DNS_IP.into()),
                ("taints".into(), "[]".into()),
            ];
        }
        let creds = json!({
            user: {"scope": "kubernetes-worker/0", "kubelet_token": self.kubelet_token,
                   "proxy_token": self.proxy_token, "client_token": self.client_token},
            "system:node:another-node": {"scope": "kubernetes-worker/1", "kubelet_token": "x",
                   "proxy_token": "y", "client_token": "z"},
        })
        .to_string();
        let mut data = vec![
            ("domain".to_string(), "cluster.local".to_string()),
            ("sdn-ip".to_string(), DNS_IP.to_string()),
            ("port".to_string(), "53".to_string()),
        ];
        match form {
            Master::Sep2017 => {
                data.push(("kubelet_token".into(), self.kubelet_token.clone()));
                data.push(("proxy_token".into(), self.proxy_token.clone()));
                data.push(("client_token".into(), self.client_token.clone()));
            }
            Master::Dec2017 => {
                data.push(("creds".into(), creds));
                data.push(("enable-kube-dns".into(), "True".into()));
            }
            Master::Current | Master::Today => {
                data.push(("creds".into(), creds));
                data.push(("enable-kube-dns".into(), "True".into()));
                data.push(("api-endpoints".into(), json!([self.api.url]).to_string()));
                data.push(("cluster-tag".into(), "kubernetes-abc123".into()));
                data.push(("default-cni".into(), "flannel".into()));
                data.push(("registry-location".into(), "rocks.canonical.com".into()));
                data.push(("has-xcp".into(), "false".into()));
            }
        }
        data
    }

    /// What the CA publishes for `cert_name`: issued once per cluster and
    /// name, as a CA keeps what it issued.
    pub fn cert_data(&self, cert_name: &str) -> Vec<(String, String)> {
        let mut issued = self.issued.lock().unwrap();
        let (server_cert, server_key, client_cert, client_key) = issued
            .entry(cert_name.to_string())
            .or_insert_with(|| {
                let (server_cert, server_key, ..) = self.pki.issue(&["127.0.0.1", &self.node]);
                let (client_cert, client_key, ..) = self.pki.issue(&["client"]);
                (server_cert, server_key, client_cert, client_key)
            })
            .clone();
        vec![
            ("ca".into(), self.pki.ca_pem()),
            ("client.cert".into(), client_cert),
            ("client.key".into(), client_key),
            (format!("{cert_name}.server.cert"), server_cert),
            (format!("{cert_name}.server.key"), server_key),
        ]
    }

    /// Relates `sim` to this cluster as masters of `form` did, with
    /// flannel as the CNI and, for a kubelet that needs one (1.24 and
    /// later, as installed), containerd as the runtime.
    pub fn relate(&self, sim: &Sim, form: Master) -> Relations {
        // The node is the one this machine's kubelet registers.
        self.api
            .follow_kubelet(&self.node, sim.dir().join("machine.json"));
        let pairs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
        let join = |id: u32, unit: &str, data: Vec<(String, String)>| {
            let refs: Vec<(&str, &str)> =
                data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for run in sim.join(id, unit, &refs) {
                run.assert_ok();
            }
        };
        let api = if matches!(form, Master::Current | Master::Today) {
            None
        } else {
            let id = sim.relate("kube-api-endpoint", "kubernetes-master");
            join(
                id,
                "kubernetes-master/0",
                vec![
                    ("hostname".into(), "127.0.0.1".into()),
                    ("private-address".into(), "127.0.0.1".into()),
                    ("port".into(), self.api.port.to_string()),
                ],
            );
            Some(id)
        };
        let today = form == Master::Today;
        // On a real machine (the LXD suite) the simulation does not know
        // the kubelet: it is a current one there.
        let runtime_needed = sim.machine().snaps.get("kubelet").is_none_or(|k| {
            let mut v = k.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (1, 24)
        });
        let runtime = runtime_needed.then(|| self.relate_runtime(sim));
        let (app, unit) = if today {
            ("kubernetes-control-plane", "kubernetes-control-plane/0")
        } else {
            ("kubernetes-master", "kubernetes-master/0")
        };
        let secret = today.then(|| {
            let user = format!("system:node:{}", self.node);
            sim.add_secret(app, &format!("{user}-creds"), &self.secret_content(), true)
        });
        let control = sim.relate("kube-control", app);
        join(
            control,
            unit,
            pairs(&self.kube_control_data_with(form, secret.as_deref())),
        );
        let (certs, cni) = self.relate_ca_and_cni(sim, today);
        Relations {
            control,
            api,
            certs,
            cni,
            runtime,
            secret,
        }
    }

    /// The container-runtime relation, as containerd (charms.reactive)
    /// answers it, JSON-encoding every value. Returns its id.
    pub fn relate_runtime(&self, sim: &Sim) -> u32 {
        let id = sim.relate("container-runtime", "containerd");
        let socket = json!(CONTAINERD_SOCKET).to_string();
        let runtime = json!("remote").to_string();
        let data = [
            ("socket", socket.as_str()),
            ("runtime", runtime.as_str()),
            ("nvidia_enabled", "false"),
        ];
        for run in sim.join(id, "containerd/0", &data) {
            run.assert_ok();
        }
        id
    }

    /// The certificates and cni relations, as easyrsa and flannel answer
    /// them (`today`: flannel JSON-encoding its values). Returns their ids.
    pub fn relate_ca_and_cni(&self, sim: &Sim, today: bool) -> (u32, u32) {
        let join = |id: u32, unit: &str, data: Vec<(String, String)>| {
            let refs: Vec<(&str, &str)> =
                data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for run in sim.join(id, unit, &refs) {
                run.assert_ok();
            }
        };
        let certs = sim.relate("certificates", "easyrsa");
        let cert_name = sim.unit().unit.replace('/', "_");
        join(certs, "easyrsa/0", self.cert_data(&cert_name));
        let cni = sim.relate("cni", "flannel");
        let cni_data = if today {
            vec![
                ("cidr".into(), json!(CIDR).to_string()),
                (
                    "cni-conf-file".into(),
                    json!("10-flannel.conflist").to_string(),
                ),
            ]
        } else {
            vec![("cidr".into(), CIDR.into())]
        };
        join(cni, "flannel/0", cni_data);
        (certs, cni)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}
