//! The clouds a worker can run on, as far as its integrations see them:
//! each cloud's instance metadata service on a loopback port, and the
//! cloud's integrator charm on the other end of the relation.
//!
//! The metadata services answer as the real ones do to the requests the
//! interface libraries make, and refuse the rest as they refuse them: AWS
//! IMDSv2 wants a session token (PUT, with a TTL of 1 to 21600 seconds)
//! on every read; Google's server wants `Metadata-Flavor: Google`; Azure's
//! wants `Metadata: true` and an `api-version`.
//!
//! The integrators are the providing side of charmed-kubernetes'
//! interface-{aws,gcp,azure}-integration (charms.reactive, `provides.py`),
//! which the integrator charms run: a request counts once the unit's bag
//! names its instance and says `requested`; its values are read through
//! charms.reactive's JSON view (decoded where they are JSON, else taken as
//! text), what it asks for is granted, and the answer is the `completed`
//! map, instance to hash. The AWS integrator hashes the whole bag,
//! decoded, as `json.dumps(..., sort_keys=True)` prints it: that hash is
//! made by CPython itself here (`python3`), so that the worker's own
//! hashing is checked against the real thing and not against a copy of
//! itself. Google's and Azure's echo the bag's `requested`.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::model::Databag;
use crate::Sim;

/// The clouds as the integrations name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Gce,
    Azure,
}

impl Cloud {
    /// The machine's DMI vendor on this cloud (what the charm reads).
    pub fn vendor(self) -> &'static str {
        match self {
            Cloud::Aws => "Amazon EC2",
            Cloud::Gce => "Google",
            Cloud::Azure => "Microsoft Corporation",
        }
    }

    /// The worker's endpoint for this cloud's integrator.
    pub fn endpoint(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gce => "gcp",
            Cloud::Azure => "azure",
        }
    }

    pub fn integrator(self) -> &'static str {
        match self {
            Cloud::Aws => "aws-integrator",
            Cloud::Gce => "gcp-integrator",
            Cloud::Azure => "azure-integrator",
        }
    }
}

/// The instance the worker runs on.
#[derive(Debug, Clone)]
pub struct Instance {
    pub cloud: Cloud,
    /// AWS instance id, GCE instance name, Azure VM id.
    pub id: String,
    /// AWS availability zone, GCE zone, Azure location.
    pub zone: String,
    pub name: String,
    pub resource_group: String,
    pub subscription: String,
}

impl Instance {
    pub fn on(cloud: Cloud) -> Instance {
        let (id, zone) = match cloud {
            Cloud::Aws => ("i-0a1b2c3d4e5f60718", "us-east-1b"),
            Cloud::Gce => ("juju-4c1a2b-0", "us-central1-a"),
            Cloud::Azure => ("5c0e2b3a-9d8f-4e7a-b6c5-d4e3f2a1b0c9", "eastus"),
        };
        Instance {
            cloud,
            id: id.into(),
            zone: zone.into(),
            name: "juju-4c1a2b-0".into(),
            resource_group: "juju-k8s-4c1a2b".into(),
            subscription: "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d".into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct MetadataState {
    /// (method, path, answered status), in order.
    pub requests: Vec<(String, String, u16)>,
    /// Connections are closed as soon as they are accepted.
    pub down: bool,
    tokens: Vec<String>,
}

/// One cloud's instance metadata service, on 127.0.0.1.
#[derive(Clone)]
pub struct MetadataService {
    pub url: String,
    pub state: Arc<Mutex<MetadataState>>,
}

impl MetadataService {
    pub fn start(instance: &Instance) -> MetadataService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(MetadataState::default()));
        let (shared, instance) = (state.clone(), instance.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, instance) = (shared.clone(), instance.clone());
                std::thread::spawn(move || serve(stream, &instance, &state));
            }
        });
        MetadataService { url, state }
    }

    /// The charm's hooks on `sim` ask this service.
    pub fn serve_to(&self, sim: &Sim) {
        let url = self.url.clone();
        sim.edit_unit(|s| {
            s.extra_env
                .insert("KUBERNETES_WORKER_CLOUD_METADATA".into(), url);
        });
    }

    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, instance: &Instance, state: &Mutex<MetadataState>) {
    if state.lock().unwrap().down {
        return;
    }
    let mut reader = BufReader::new(stream);
    let Some(request) = crate::http::read_request(&mut reader) else {
        return;
    };
    let (method, target, headers) = (request.method, request.target, request.headers);
    let (status, reply) = answer(instance, state, &method, &target, &headers);
    state
        .lock()
        .unwrap()
        .requests
        .push((method, target, status));
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn answer(
    instance: &Instance,
    state: &Mutex<MetadataState>,
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match instance.cloud {
        Cloud::Aws => {
            if path == "/latest/api/token" {
                // IMDSv2: a PUT with a TTL in range; a forwarded request
                // (through a proxy) is refused.
                let ttl: Option<u32> = headers
                    .get("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|t| t.parse().ok());
                if method != "PUT" {
                    return (405, String::new());
                }
                if headers.contains_key("x-forwarded-for") {
                    return (403, String::new());
                }
                return match ttl {
                    Some(1..=21600) => {
                        let token = format!("AQAEA{}token", state.lock().unwrap().tokens.len());
                        state.lock().unwrap().tokens.push(token.clone());
                        (200, token)
                    }
                    _ => (400, String::new()),
                };
            }
            let token = headers.get("x-aws-ec2-metadata-token");
            if method != "GET" {
                return (405, String::new());
            }
            if !token.is_some_and(|t| state.lock().unwrap().tokens.contains(t)) {
                // Instances launched with IMDSv2 required.
                return (401, String::new());
            }
            match path {
                "/latest/meta-data/instance-id" => (200, instance.id.clone()),
                "/latest/meta-data/placement/availability-zone" => (200, instance.zone.clone()),
                _ => (404, String::new()),
            }
        }
        Cloud::Gce => {
            if headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                return (403, "Missing Metadata-Flavor:Google header.".into());
            }
            match path {
                "/computeMetadata/v1/instance/name" => (200, instance.id.clone()),
                "/computeMetadata/v1/instance/zone" => (
                    200,
                    format!("projects/123456789012/zones/{}", instance.zone),
                ),
                _ => (404, String::new()),
            }
        }
        Cloud::Azure => {
            if headers.get("metadata").map(String::as_str) != Some("true") {
                return (
                    400,
                    json!({"error": "Bad request. Required metadata header not specified"})
                        .to_string(),
                );
            }
            if !query.contains("api-version=") {
                return (
                    400,
                    json!({"error": "Bad request. api-version was not specified in the request"})
                        .to_string(),
                );
            }
            if path != "/metadata/instance" {
                return (404, String::new());
            }
            let document = json!({
                "compute": {
                    "location": instance.zone,
                    "name": instance.name,
                    "osType": "Linux",
                    "resourceGroupName": instance.resource_group,
                    "subscriptionId": instance.subscription,
                    "vmId": instance.id,
                    "vmSize": "Standard_D2s_v3",
                    "zone": "",
                },
                "network": {"interface": []},
            });
            (200, document.to_string())
        }
    }
}

/// What an integrator granted one instance, as its charm would apply it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub instance_tags: BTreeMap<String, String>,
    pub security_group_tags: BTreeMap<String, String>,
    pub subnet_tags: BTreeMap<String, String>,
    /// The permissions by the integrator's name (`instance-inspection`,
    /// `dns-management`, `object-storage-management`, ...).
    pub permissions: Vec<String>,
    pub object_storage_patterns: Vec<String>,
    /// Region, zone or location the request named.
    pub place: String,
}

/// An integrator charm on the other end of the worker's relation.
pub struct Integrator {
    pub cloud: Cloud,
    pub unit: String,
    pub relation: u32,
    /// Instance -> the hash of the request last completed (its `completed`).
    completed: BTreeMap<String, String>,
    /// Instance -> what it was granted.
    pub granted: BTreeMap<String, Grants>,
    /// How many requests it fulfilled.
    pub fulfilled: usize,
}

impl Integrator {
    /// `juju integrate` the worker with the integrator, whose one unit
    /// joins.
    pub fn relate(sim: &Sim, cloud: Cloud) -> Integrator {
        let relation = sim.relate(cloud.endpoint(), cloud.integrator());
        let unit = format!("{}/0", cloud.integrator());
        for run in sim.join(
            relation,
            &unit,
            &[
                ("private-address", "10.0.0.50"),
                ("ingress-address", "10.0.0.50"),
                ("egress-subnets", "10.0.0.50/32"),
            ],
        ) {
            run.assert_ok();
        }
        Integrator {
            cloud,
            unit,
            relation,
            completed: BTreeMap::new(),
            granted: BTreeMap::new(),
            fulfilled: 0,
        }
    }

    /// The worker's bag as the integrator sees it.
    pub fn received(&self, sim: &Sim) -> Databag {
        sim.unit()
            .relation(self.relation)
            .map(|r| r.local_unit.clone())
            .unwrap_or_default()
    }

    /// The integrator's hook after the worker's bag changed: a new or
    /// changed request is fulfilled and answered (the worker's
    /// relation-changed runs), as the integrator charm handles
    /// `endpoint.<name>.requested`. Returns whether it answered.
    pub fn handle(&mut self, sim: &Sim) -> bool {
        let raw = self.received(sim);
        let received: BTreeMap<String, Value> =
            raw.iter().map(|(k, v)| (k.clone(), decoded(v))).collect();
        let get = |k: &str| received.get(k).cloned().unwrap_or(Value::Null);
        let truthy = |k: &str| match get(k) {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        let text = |k: &str| match get(k) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let (instance, hash) = match self.cloud {
            Cloud::Aws => {
                // IntegrationRequest.changed: instance-id and requested.
                if !(truthy("instance-id") && truthy("requested")) {
                    return false;
                }
                (text("instance-id"), python_hash(&raw))
            }
            Cloud::Gce => {
                if !["charm", "instance", "zone", "requested"]
                    .iter()
                    .all(|k| truthy(k))
                {
                    return false;
                }
                (text("instance"), text("requested"))
            }
            Cloud::Azure => {
                if !["charm", "vm-id", "vm-name", "res-group", "requested"]
                    .iter()
                    .all(|k| truthy(k))
                {
                    return false;
                }
                (text("vm-id"), text("requested"))
            }
        };
        if self.completed.get(&instance) == Some(&hash) {
            return false;
        }
        let grants = self.grant(&received);
        self.granted.insert(instance.clone(), grants);
        self.completed.insert(instance, hash);
        self.fulfilled += 1;
        // to_publish['completed'] = completed: JSON, keys sorted.
        let completed = format!(
            "{{{}}}",
            self.completed
                .iter()
                .map(|(k, v)| format!("{}: {}", json!(k), json!(v)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        sim.change(self.relation, &self.unit, &[("completed", &completed)])
            .assert_ok();
        true
    }

    /// What the integrator charm applies for a request, by the
    /// properties its interface reads. A value of the wrong type fails
    /// there as it fails in Python (`dict(...)` of a string).
    fn grant(&self, received: &BTreeMap<String, Value>) -> Grants {
        let map = |k: &str| -> BTreeMap<String, String> {
            match received.get(k) {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                Some(other) => panic!(
                    "the {} integrator's hook fails: dict() of {k}={other}",
                    self.cloud.endpoint()
                ),
            }
        };
        let list = |k: &str| -> Vec<String> {
            match received.get(k) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect(),
                Some(other) => panic!(
                    "the {} integrator's hook fails: list() of {k}={other}",
                    self.cloud.endpoint()
                ),
            }
        };
        let flag = |k: &str| {
            received
                .get(k)
                .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false)))
        };
        let (tags_key, place_key) = match self.cloud {
            Cloud::Aws => ("instance-tags", "region"),
            Cloud::Gce => ("instance-labels", "zone"),
            Cloud::Azure => ("instance-tags", "vm-location"),
        };
        let permissions = [
            "instance-inspection",
            "network-management",
            "load-balancer-management",
            "loadbalancer-management",
            "security-management",
            "block-storage-management",
            // All three providers read this key; the libraries send
            // `enable-dns` on Google Cloud and Azure.
            "dns-management",
            "object-storage-access",
            "object-storage-management",
        ]
        .iter()
        .filter(|p| flag(&format!("enable-{p}")))
        .map(|p| p.to_string())
        .collect();
        Grants {
            instance_tags: map(tags_key),
            security_group_tags: map("instance-security-group-tags"),
            subnet_tags: map("instance-subnet-tags"),
            permissions,
            object_storage_patterns: list("object-storage-management-patterns"),
            place: received
                .get(place_key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// charms.reactive's JSONUnitDataView: JSON where it decodes, else the
/// text (an empty value stays empty).
fn decoded(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::String(String::new());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// The AWS integrator's hash of a bag, made by CPython as provides.py
/// makes it.
pub fn python_hash(bag: &Databag) -> String {
    let script = "import json,sys,hashlib\n\
        def v(s):\n    \
            if not s: return s\n    \
            try: return json.loads(s)\n    \
            except Exception: return s\n\
        raw=json.load(sys.stdin)\n\
        print(hashlib.sha256(json.dumps({k: v(x) for k, x in raw.items()}, sort_keys=True).encode('utf8')).hexdigest(), end='')";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (the AWS integrator's hash is made by CPython; CI installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(bag).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the machine's DMI vendor, as the cloud's hypervisor shows it.
pub fn provision(sim: &Sim, cloud: Cloud) {
    let dmi = sim.root().join("sys/devices/virtual/dmi/id");
    std::fs::create_dir_all(&dmi).unwrap();
    std::fs::write(dmi.join("sys_vendor"), format!("{}\n", cloud.vendor())).unwrap();
}
