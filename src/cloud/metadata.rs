//! What the integrators need to know about this instance, from the
//! cloud's metadata service, where today's interface libraries read it:
//! AWS's IMDSv2 (a session token first), GCE's metadata server, Azure's
//! instance metadata service. Each request has a short deadline, goes to
//! the service directly (never through a proxy), and is read no further
//! than the libraries read (2048 bytes; Azure's document whole).

use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::Value;

/// Moves every metadata service to one address (a stand-in in tests):
/// `http://127.0.0.1:8080` takes the place of `http://169.254.169.254`
/// and `http://metadata.google.internal`.
pub const ADDRESS_VAR: &str = "KUBERNETES_WORKER_CLOUD_METADATA";

const LINK_LOCAL: &str = "http://169.254.169.254";
const GOOGLE: &str = "http://metadata.google.internal";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// As much as the libraries read of a plain answer.
const READ_LIMIT: usize = 2048;
/// An Azure instance document is a few kilobytes.
const DOCUMENT_LIMIT: usize = 256 * 1024;

/// What this instance is, as the integrator is told: the keys and values
/// of the interface, in the order the library sends them.
pub type Facts = Vec<(String, String)>;

struct Service {
    base: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Service {
    fn new(default: &str) -> Result<Service, String> {
        let base = std::env::var(ADDRESS_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string());
        let client = Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        Ok(Service {
            base: base.trim_end_matches('/').to_string(),
            client,
            runtime,
        })
    }

    fn ask(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        limit: usize,
    ) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| format!("{method} {url}: {}", reason(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("{method} {url}: {status}"));
            }
            // The deadline bounds what is read; the libraries look no
            // further than their first block.
            let mut text = response
                .text()
                .await
                .map_err(|e| format!("{method} {url}: {}", reason(&e)))?;
            if text.len() > limit {
                let mut end = limit;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            Ok(text)
        })
    }
}

fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the deadline".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}

/// A value the service gave, fit to send: one line of printable text.
fn checked(what: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 256 || value.chars().any(|c| c.is_control()) {
        return Err(format!("the metadata service gave an unusable {what}"));
    }
    Ok(value.to_string())
}

/// AWS: `instance-id` and `region` (the availability zone less its
/// letter), through an IMDSv2 session token.
pub fn aws() -> Result<Facts, String> {
    let service = Service::new(LINK_LOCAL)?;
    let token = service.ask(
        Method::PUT,
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
        READ_LIMIT,
    )?;
    let auth = [("X-aws-ec2-metadata-token", token.trim())];
    let id = service.ask(
        Method::GET,
        "/latest/meta-data/instance-id",
        &auth,
        READ_LIMIT,
    )?;
    let zone = service.ask(
        Method::GET,
        "/latest/meta-data/placement/availability-zone",
        &auth,
        READ_LIMIT,
    )?;
    let zone = checked("availability zone", &zone)?;
    Ok(vec![
        ("instance-id".into(), checked("instance id", &id)?),
        (
            "region".into(),
            zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
                .to_string(),
        ),
    ])
}

/// GCE: the instance's name and zone (the last part of its path).
pub fn gce() -> Result<Facts, String> {
    let service = Service::new(GOOGLE)?;
    let flavor = [("Metadata-Flavor", "Google")];
    let base = "/computeMetadata/v1/instance";
    let name = service.ask(Method::GET, &format!("{base}/name"), &flavor, READ_LIMIT)?;
    let zone = service.ask(Method::GET, &format!("{base}/zone"), &flavor, READ_LIMIT)?;
    let zone = checked("zone", &zone)?;
    Ok(vec![
        ("instance".into(), checked("instance name", &name)?),
        (
            "zone".into(),
            zone.rsplit('/').next().unwrap_or(&zone).to_string(),
        ),
    ])
}

/// Azure: the VM's id, name, location, resource group and subscription,
/// from the instance document.
pub fn azure() -> Result<Facts, String> {
    let service = Service::new(LINK_LOCAL)?;
    let text = service.ask(
        Method::GET,
        "/metadata/instance?api-version=2017-12-01",
        &[("Metadata", "true")],
        DOCUMENT_LIMIT,
    )?;
    let document: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the instance metadata is not JSON: {e}"))?;
    let field = |name: &str| -> Result<String, String> {
        let value = document["compute"][name]
            .as_str()
            .ok_or_else(|| format!("the instance metadata has no compute.{name}"))?;
        checked(name, value)
    };
    Ok(vec![
        ("vm-id".into(), field("vmId")?),
        ("vm-name".into(), field("name")?),
        ("vm-location".into(), field("location")?),
        ("res-group".into(), field("resourceGroupName")?),
        ("subscription-id".into(), field("subscriptionId")?),
    ])
}
