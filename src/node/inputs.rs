//! What the relations give the node: all its daemons need, or what is
//! missing or wrong; and the API server they name.

use crate::daemons::Version;
use crate::kubeapi::{Api, ApiError};
use crate::problem::Problem;
use crate::relations::{
    self, Certificates, Cni, CredentialsRef, Dns, KubeControl, Runtime, CERTIFICATES, CNI,
    CONTAINER_RUNTIME, KUBE_API_ENDPOINT, KUBE_CONTROL,
};
use crate::unit_state::{NodeOptions, Recorded};

use super::Node;

/// The first release without a built-in container runtime.
const RUNTIME_REQUIRED_SINCE: Version = Version(1, 24);

/// Everything the daemons need from the relations, once delivered.
pub(super) struct Ready {
    pub(super) api_url: String,
    pub(super) certs: Certificates,
    pub(super) creds: CredentialsRef,
    pub(super) dns: Dns,
    pub(super) control: KubeControl,
    pub(super) cni: Option<Cni>,
    pub(super) runtime: Option<Runtime>,
}

impl Node<'_> {
    /// The API server's URL and the cluster CA: all an API call needs
    /// besides the client token.
    pub fn api_target(&self, recorded: &Recorded) -> Option<(String, String)> {
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let control = relations::kube_control(&data(KUBE_CONTROL), &self.user())
            .ok()
            .flatten();
        let http = relations::api_urls_from_http(&data(KUBE_API_ENDPOINT)).ok()?;
        let certs = relations::cached_certificates(&data(CERTIFICATES), &self.cert_name())
            .ok()
            .flatten()?;
        let url = control
            .as_ref()
            .and_then(|c| pick(&c.api_urls, self.unit_number()))
            .or_else(|| http.first().cloned())?;
        Some((url, certs.ca))
    }

    /// What the relations provide, or what is missing or wrong.
    /// `kubelet`: the installed kubelet's version, if known.
    pub(super) fn ready(
        &self,
        recorded: &Recorded,
        options: &NodeOptions,
        kubelet: Option<Version>,
    ) -> Result<Ready, Vec<Problem>> {
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let (control, api, certs, cni, runtime) = (
            data(KUBE_CONTROL),
            data(KUBE_API_ENDPOINT),
            data(CERTIFICATES),
            data(CNI),
            data(CONTAINER_RUNTIME),
        );
        let needs_runtime = kubelet.is_none_or(|v| v >= RUNTIME_REQUIRED_SINCE);
        let mut blocked = Vec::new();
        if !control.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:kube-control to the control plane",
            ));
        }
        if !certs.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:certificates to a certificate authority",
            ));
        }
        if !cni.is_related() && !options.ignore_missing_cni {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:cni to a CNI subordinate (flannel, calico)",
            ));
        }
        if needs_runtime && !runtime.is_related() {
            blocked.push(Problem::blocked(
                "Relate kubernetes-worker:container-runtime to a container runtime (containerd)",
            ));
        }
        let parsed = (
            relations::kube_control(&control, &self.user()),
            relations::api_urls_from_http(&api),
            relations::cached_certificates(&certs, &self.cert_name()),
            relations::cni(&cni),
            relations::container_runtime(&runtime),
        );
        let (control, http_urls, certs, cni_data, runtime_data) = match parsed {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
            (a, b, c, d, e) => {
                let malformed = [a.err(), b.err(), c.err(), d.err(), e.err()];
                blocked.extend(malformed.into_iter().flatten().map(Problem::blocked));
                return Err(blocked);
            }
        };
        if !blocked.is_empty() {
            return Err(blocked);
        }
        let mut waiting = Vec::new();
        let creds = control.as_ref().and_then(|c| c.credentials.clone());
        if creds.is_none() {
            waiting.push(Problem::waiting("Waiting for kube-control relation data"));
        }
        if certs.is_none() {
            waiting.push(Problem::waiting("Waiting for certificates"));
        }
        // Current control planes send the URLs on kube-control, and each
        // worker takes its own (unit number modulo their count); older
        // masters sent them on http.
        let api_url = control
            .as_ref()
            .and_then(|c| pick(&c.api_urls, self.unit_number()))
            .or_else(|| http_urls.first().cloned());
        if api_url.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the API server address (kube-api-endpoint or kube-control)",
            ));
        }
        let dns = control
            .as_ref()
            .map(|c| c.dns.clone())
            .unwrap_or(Dns::Pending);
        if dns == Dns::Pending && creds.is_some() {
            waiting.push(Problem::waiting("Waiting for cluster DNS."));
        }
        if cni.is_related() && cni_data.is_none() {
            waiting.push(Problem::waiting(
                "Waiting for the cluster CIDR from the cni relation",
            ));
        }
        if runtime.is_related() && runtime_data.is_none() {
            waiting.push(Problem::waiting("Waiting for the container runtime"));
        }
        match (api_url, certs, creds, control) {
            (Some(api_url), Some(certs), Some(creds), Some(control)) if waiting.is_empty() => {
                Ok(Ready {
                    api_url,
                    certs,
                    creds,
                    dns,
                    control,
                    cni: cni_data,
                    runtime: runtime_data,
                })
            }
            _ => Err(waiting),
        }
    }

    /// A client for every API server the relations name (an HA control
    /// plane's each), if they named the CA and the client token is in
    /// place.
    pub fn every_api(&self, recorded: &Recorded) -> Option<Vec<(String, Result<Api, ApiError>)>> {
        let (_, ca) = self.api_target(recorded)?;
        let token = self.disk_tokens()?.client_token;
        let data = |ep: &str| recorded.relations.get(ep).cloned().unwrap_or_default();
        let mut urls = relations::kube_control(&data(KUBE_CONTROL), &self.user())
            .ok()
            .flatten()
            .map(|c| c.api_urls)
            .unwrap_or_default();
        urls.extend(relations::api_urls_from_http(&data(KUBE_API_ENDPOINT)).unwrap_or_default());
        // Both relations may name the same API server: ask it once.
        let mut seen = std::collections::BTreeSet::new();
        urls.retain(|url| seen.insert(url.clone()));
        Some(
            urls.into_iter()
                .map(|url| {
                    let api = Api::new(&url, &ca, &token);
                    (url, api)
                })
                .collect(),
        )
    }

    /// The API client, if the relations have named the API server and the
    /// CA, and the client token is in place.
    pub fn api(&self, recorded: &Recorded) -> Option<Result<Api, ApiError>> {
        let (url, ca) = self.api_target(recorded)?;
        let token = self.disk_tokens()?.client_token;
        Some(Api::new(&url, &ca, &token))
    }
}

/// `endpoints[unit_number % len]`: the control plane's endpoints spread
/// over the workers.
fn pick(endpoints: &[String], unit_number: usize) -> Option<String> {
    (!endpoints.is_empty()).then(|| endpoints[unit_number % endpoints.len()].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_takes_its_own_endpoint() {
        let endpoints: Vec<String> = ["https://a:6443", "https://b:6443"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pick(&endpoints, 0).as_deref(), Some("https://a:6443"));
        assert_eq!(pick(&endpoints, 3).as_deref(), Some("https://b:6443"));
        assert_eq!(pick(&[], 3), None);
    }
}
