//! The few Kubernetes API calls the worker makes: label its node, cordon
//! and drain it, delete it. TLS trusts only the cluster's CA (from the
//! certificates relation); requests carry the client token from
//! kube-control; every request has a short timeout, so an unreachable API
//! server costs a hook seconds, never a wedge.
//!
//! Each request runs on a runtime of the calling thread (reqwest's async
//! client, driven by `block_on`), so the hook process never has a second
//! thread: a program the charm starts next is spawned from a process with
//! one thread, which matters under qemu-user (it emulates the spawn with
//! fork) and keeps the hook's behaviour simple to reason about.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an API call did not succeed; the text is for status messages and
/// action failures.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot set up TLS with the cluster CA: {0}")]
    Setup(String),
    #[error("the API server at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{method} {path}: {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        /// The `reason` of each of the Status's `details.causes`.
        causes: Vec<String>,
    },
    #[error("{method} {path}: unexpected response: {reason}")]
    Response {
        method: String,
        path: String,
        reason: String,
    },
    /// The hook's intent could not be recorded before a write.
    #[error(transparent)]
    Intent(#[from] charm::files::FileError),
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, .. })
    }

    /// 429: the server refuses for now (an eviction a disruption budget
    /// does not allow yet).
    pub fn is_too_many_requests(&self) -> bool {
        matches!(self, ApiError::Status { status: 429, .. })
    }

    /// 403 because the object's namespace is being deleted (the
    /// NamespaceLifecycle admission's refusal of anything new there, an
    /// eviction included).
    pub fn is_namespace_terminating(&self) -> bool {
        matches!(self, ApiError::Status { status: 403, causes, .. }
            if causes.iter().any(|c| c == "NamespaceTerminating"))
    }
}

pub struct Api {
    url: String,
    token: String,
    client: Client,
    runtime: Runtime,
}

/// A pod as far as draining cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub daemonset: bool,
    /// The name of its controller (its DaemonSet's, for a DaemonSet pod).
    pub controller: Option<String>,
    pub mirror: bool,
    pub controlled: bool,
    pub local_data: bool,
    /// Its phase is Succeeded or Failed: nothing runs in it any more.
    pub finished: bool,
    /// It has a deletionTimestamp: it is already going.
    pub deleting: bool,
}

impl Api {
    pub fn new(url: &str, ca_pem: &str, token: &str) -> Result<Api, ApiError> {
        let cas = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| ApiError::Setup(e.to_string()))?;
        if cas.is_empty() {
            return Err(ApiError::Setup("the CA holds no certificate".into()));
        }
        let mut builder = Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false);
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ApiError::Setup(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ApiError::Setup(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Api {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client,
            runtime,
        })
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> Result<Value, ApiError> {
        if method != Method::GET {
            // A write changes the cluster: the hook's mark precedes it, as
            // it precedes any change to the machine.
            charm::intent::before_change()?;
        }
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some((content_type, body)) = body {
            request = request
                .header("Content-Type", content_type)
                .body(body.to_string());
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| ApiError::Unreachable {
                url: self.url.clone(),
                reason: error_chain(&e),
            })?;
            decode(method, path, response).await
        })
    }
}

async fn decode(method: Method, path: &str, response: Response) -> Result<Value, ApiError> {
    let status = response.status();
    let text = response.text().await.map_err(|e| ApiError::Response {
        method: method.to_string(),
        path: path.to_string(),
        reason: error_chain(&e),
    })?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
        let causes = value["details"]["causes"]
            .as_array()
            .map(|causes| {
                causes
                    .iter()
                    .filter_map(|c| c["reason"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Err(ApiError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            message,
            causes,
        });
    }
    if value.is_null() && status != StatusCode::NO_CONTENT && !text.trim().is_empty() {
        return Err(ApiError::Response {
            method: method.to_string(),
            path: path.to_string(),
            reason: "not JSON".into(),
        });
    }
    Ok(value)
}

impl Api {
    /// Sets `labels` on the node and removes `remove`, in one merge patch.
    pub fn patch_labels(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), ApiError> {
        let mut patch = serde_json::Map::new();
        for (k, v) in labels {
            patch.insert(k.clone(), json!(v));
        }
        for k in remove {
            patch.insert(k.clone(), Value::Null);
        }
        self.call(
            Method::PATCH,
            &format!("/api/v1/nodes/{node}"),
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"labels": patch}}),
            )),
        )
        .map(drop)
    }

    pub fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<(), ApiError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/nodes/{node}"),
            Some((
                "application/merge-patch+json",
                json!({"spec": {"unschedulable": unschedulable}}),
            )),
        )
        .map(drop)
    }

    /// The API server's version (`gitVersion`: `v1.31.2`).
    pub fn version(&self) -> Result<String, ApiError> {
        let value = self.call(Method::GET, "/version", None)?;
        value
            .get("gitVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::Response {
                method: "GET".into(),
                path: "/version".into(),
                reason: "no gitVersion".into(),
            })
    }

    /// The node's `Ready` condition: `None` when it is True, else what the
    /// condition says (its message, or its reason and status).
    pub fn node_not_ready(&self, node: &str) -> Result<Option<String>, ApiError> {
        let value = self.call(Method::GET, &format!("/api/v1/nodes/{node}"), None)?;
        Ok(not_ready(&value))
    }

    /// The node's Ready condition (as [`Api::node_not_ready`]) and the
    /// kubelet version it posts (`status.nodeInfo.kubeletVersion`).
    pub fn node_readiness(&self, node: &str) -> Result<(Option<String>, Option<String>), ApiError> {
        let value = self.call(Method::GET, &format!("/api/v1/nodes/{node}"), None)?;
        let version = value["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .map(str::to_string);
        Ok((not_ready(&value), version))
    }

    /// A node other than `node` that takes new pods: Ready, not cordoned,
    /// and with no taint that keeps ordinary pods away (a control-plane
    /// node's `NoSchedule`). `None`: the pods evicted from `node` would
    /// have nowhere to go.
    pub fn other_schedulable_node(&self, node: &str) -> Result<Option<String>, ApiError> {
        let list = self.call(Method::GET, "/api/v1/nodes", None)?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        Ok(items.iter().find_map(|item| {
            let name = item["metadata"]["name"].as_str()?;
            let cordoned = item["spec"]["unschedulable"].as_bool() == Some(true);
            let tainted = item["spec"]["taints"].as_array().is_some_and(|taints| {
                taints
                    .iter()
                    .any(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
            });
            (name != node && !cordoned && !tainted && not_ready(item).is_none())
                .then(|| name.to_string())
        }))
    }

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn node_cordoned(&self, node: &str) -> Result<bool, ApiError> {
        let value = self.call(Method::GET, &format!("/api/v1/nodes/{node}"), None)?;
        Ok(value["spec"]["unschedulable"].as_bool() == Some(true))
    }

    /// Server-side apply of `body` at `path`, this charm the field manager
    /// (`force`: its fields win over another manager's).
    pub fn apply(&self, path: &str, body: &Value) -> Result<(), ApiError> {
        self.call(
            Method::PATCH,
            &format!("{path}?fieldManager=kubernetes-worker&force=true"),
            Some(("application/apply-patch+yaml", body.clone())),
        )
        .map(drop)
    }

    /// Deletes the object at `path`; one already gone is not an error.
    pub fn delete(&self, path: &str) -> Result<(), ApiError> {
        match self.call(Method::DELETE, path, None) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    pub fn delete_node(&self, node: &str) -> Result<(), ApiError> {
        self.call(Method::DELETE, &format!("/api/v1/nodes/{node}"), None)
            .map(drop)
    }

    pub fn pods_on(&self, node: &str) -> Result<Vec<Pod>, ApiError> {
        let path = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}");
        let list = self.call(Method::GET, &path, None)?;
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(items.iter().map(pod).collect())
    }

    /// The pod as it is now; `None` once it is gone.
    pub fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, ApiError> {
        match self.call(
            Method::GET,
            &format!("/api/v1/namespaces/{namespace}/pods/{name}"),
            None,
        ) {
            Ok(item) => Ok(Some(pod(&item))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a DaemonSet exists (a pod's controller may be gone while
    /// the pod still runs: an orphan).
    pub fn daemonset_exists(&self, namespace: &str, name: &str) -> Result<bool, ApiError> {
        match self.call(
            Method::GET,
            &format!("/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}"),
            None,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn evict(&self, pod: &Pod) -> Result<(), ApiError> {
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        });
        self.call(
            Method::POST,
            &format!(
                "/api/v1/namespaces/{}/pods/{}/eviction",
                pod.namespace, pod.name
            ),
            Some(("application/json", body)),
        )
        .map(drop)
    }
}

fn not_ready(node: &Value) -> Option<String> {
    let conditions = node["status"]["conditions"].as_array();
    let Some(ready) = conditions.and_then(|c| c.iter().find(|c| c["type"] == "Ready")) else {
        return Some("the node reports no Ready condition yet".into());
    };
    if ready["status"] == "True" {
        return None;
    }
    let text = |key: &str| ready[key].as_str().filter(|s| !s.is_empty());
    Some(match (text("message"), text("reason")) {
        (Some(message), _) => message.to_string(),
        (None, Some(reason)) => format!("{reason} (Ready is {})", ready["status"]),
        (None, None) => format!("Ready is {}", ready["status"]),
    })
}

fn pod(item: &Value) -> Pod {
    let meta = &item["metadata"];
    let owners = meta["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let controller = owners
        .iter()
        .find(|o| o["controller"].as_bool() == Some(true));
    Pod {
        namespace: meta["namespace"].as_str().unwrap_or("default").to_string(),
        name: meta["name"].as_str().unwrap_or_default().to_string(),
        daemonset: controller.is_some_and(|o| o["kind"] == "DaemonSet"),
        controller: controller.and_then(|o| o["name"].as_str().map(str::to_string)),
        mirror: meta["annotations"]
            .get("kubernetes.io/config.mirror")
            .is_some(),
        controlled: controller.is_some(),
        local_data: item["spec"]["volumes"]
            .as_array()
            .is_some_and(|vols| vols.iter().any(|v| v.get("emptyDir").is_some())),
        finished: matches!(
            item["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ),
        deleting: !meta["deletionTimestamp"].is_null(),
    }
}

/// An error and its causes on one line (reqwest's own text is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_classified_for_draining() {
        let item = json!({
            "metadata": {"namespace": "kube-system", "name": "flannel-x",
                "ownerReferences": [{"kind": "DaemonSet", "controller": true}]},
            "spec": {"volumes": [{"name": "run", "hostPath": {}}]}
        });
        let p = pod(&item);
        assert!(p.daemonset && p.controlled && !p.mirror && !p.local_data);
        let bare =
            pod(&json!({"metadata": {"name": "debug"}, "spec": {"volumes": [{"emptyDir": {}}]}}));
        assert!(!bare.controlled && bare.local_data);
        assert_eq!(bare.namespace, "default");
        let mirror = pod(
            &json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}}}),
        );
        assert!(mirror.mirror);
        let done = pod(
            &json!({"metadata": {"name": "job-x", "deletionTimestamp": "2026-12-04T00:00:00Z"},
            "status": {"phase": "Failed"}}),
        );
        assert!(done.finished && done.deleting);
        let running = pod(&json!({"metadata": {"name": "web"}, "status": {"phase": "Running"}}));
        assert!(!running.finished && !running.deleting);
    }

    #[test]
    fn the_ready_condition_is_read() {
        let node = |c: Value| json!({"status": {"conditions": c}});
        assert_eq!(
            not_ready(&node(json!([{"type": "Ready", "status": "True"}]))),
            None
        );
        assert_eq!(
            not_ready(&node(json!([{"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                 "message": "container runtime network not ready"}]))),
            Some("container runtime network not ready".into())
        );
        assert_eq!(
            not_ready(&node(
                json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}])
            )),
            Some("NodeStatusUnknown (Ready is \"Unknown\")".into())
        );
        assert!(not_ready(&json!({}))
            .unwrap()
            .contains("no Ready condition"));
    }

    #[test]
    fn a_bad_ca_is_a_setup_error() {
        assert!(matches!(
            Api::new("https://127.0.0.1:1", "not pem", "t"),
            Err(ApiError::Setup(_))
        ));
    }

    #[test]
    fn a_server_that_never_answers_is_given_up_on_at_the_deadline() {
        // The kernel accepts connections into the backlog; nobody reads or
        // answers them (a blackholed API server, a hung process).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ca = juju_sim::cluster::Pki::new().ca_pem();
        let api = Api::new(&format!("https://127.0.0.1:{port}"), &ca, "t").unwrap();
        let started = std::time::Instant::now();
        let err = api.delete_node("n").unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ApiError::Unreachable { .. }), "{err}");
        // It did wait (this is not a refusal) and stopped at a deadline:
        // the TLS handshake is part of connecting.
        assert!(
            took >= CONNECT_TIMEOUT - Duration::from_millis(100),
            "{took:?}"
        );
        assert!(took < REQUEST_TIMEOUT + Duration::from_secs(2), "{took:?}");
        drop(listener);
    }

    #[test]
    fn a_call_starts_no_thread() {
        // In a process of its own, where no other test runs a thread.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kubeapi::tests::threads_before_and_after_a_call"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("KUBEAPI_THREADS_TEST", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let counts: Vec<&str> = stdout
            .lines()
            .find_map(|l| l.split_once("threads: ").map(|(_, n)| n))
            .unwrap_or_else(|| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
            .split(' ')
            .collect();
        assert_eq!(counts.len(), 3, "{stdout}");
        assert!(
            counts.iter().all(|n| *n == counts[0]),
            "threads before the client, after building it, after a call: {counts:?}"
        );
    }

    /// Run by [`a_call_starts_no_thread`] in a process of its own.
    #[test]
    #[ignore = "a helper run in a child process"]
    fn threads_before_and_after_a_call() {
        if std::env::var_os("KUBEAPI_THREADS_TEST").is_none() {
            return;
        }
        let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
        let before = threads();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ca = juju_sim::cluster::Pki::new().ca_pem();
        let api = Api::new(&format!("https://127.0.0.1:{port}"), &ca, "t").unwrap();
        let built = threads();
        assert!(api.delete_node("n").is_err());
        // With the client still alive, as when the hook starts a program
        // (juju-log) right after a call.
        println!("threads: {before} {built} {}", threads());
        drop(api);
    }

    #[test]
    fn a_refused_connection_fails_at_once() {
        // A port nothing listens on: refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ca = juju_sim::cluster::Pki::new().ca_pem();
        let api = Api::new(&format!("https://127.0.0.1:{port}"), &ca, "t").unwrap();
        let started = std::time::Instant::now();
        let err = api.delete_node("n").unwrap_err();
        assert!(matches!(err, ApiError::Unreachable { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
