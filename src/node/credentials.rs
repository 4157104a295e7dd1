//! The node's tokens and private keys: from the files this charm wrote
//! while they are current, else from the relation or the secret.

use charm::files::{self};

use crate::daemons::{self};
use crate::error::Error;
use crate::kubeconfig;
use crate::problem::Problem;
use crate::relations::{
    self, Certificates, Credentials, CredentialsRef, KubeControl, CERTIFICATES, KUBE_CONTROL,
};
use crate::unit_state::Recorded;

use super::config_files::{CLIENT_KEY, ROOT_KUBECONFIG};
use super::{Fresh, Node};

impl Node<'_> {
    /// The tokens in the kubeconfigs this charm wrote: the one place they
    /// are kept between hooks.
    pub(super) fn disk_tokens(&self) -> Option<Credentials> {
        let token = |path: &str| -> Option<String> {
            let bytes = files::read_optional(&self.root.path(path)).ok()??;
            kubeconfig::token(&String::from_utf8_lossy(&bytes)).filter(|t| !t.is_empty())
        };
        Some(Credentials {
            kubelet_token: token(daemons::KUBELET_KUBECONFIG)?,
            proxy_token: token(daemons::PROXY_KUBECONFIG)?,
            client_token: token(ROOT_KUBECONFIG)?,
        })
    }

    /// The node's tokens: from the kubeconfigs while they are the ones
    /// kube-control names, else from the relation or the secret.
    pub(super) fn credentials(
        &self,
        recorded: &mut Recorded,
        wanted: &CredentialsRef,
        fresh: &Fresh,
    ) -> Result<Result<Credentials, Problem>, Error> {
        let disk = self.disk_tokens();
        let result = match wanted {
            CredentialsRef::Tokens(refs) => {
                let matches = |c: &Credentials| {
                    relations::secret_matches(&refs.kubelet_token, &c.kubelet_token)
                        && relations::secret_matches(&refs.proxy_token, &c.proxy_token)
                        && relations::secret_matches(&refs.client_token, &c.client_token)
                };
                match disk.filter(|d| matches(d) && !recorded.credentials_stale) {
                    Some(disk) => Ok(disk),
                    None => {
                        let data = match &fresh.kube_control {
                            Some(data) => data.clone(),
                            None => relations::read(self.tools, KUBE_CONTROL)?,
                        };
                        match relations::kube_control(&data, &self.user()) {
                            Ok(Some(KubeControl {
                                credentials: Some(CredentialsRef::Tokens(c)),
                                ..
                            })) if matches(&c) => Ok(c),
                            // A token that is none: the ones in place stay.
                            Err(malformed) => Err(Problem::blocked(malformed)),
                            _ => Err(Problem::waiting("Waiting for kube-control relation data")),
                        }
                    }
                }
            }
            CredentialsRef::Secret { id, from } => {
                let current = disk.filter(|_| {
                    fresh.kube_control.is_none()
                        && !recorded.credentials_stale
                        && recorded.credentials_secret.as_ref() == Some(id)
                });
                match current {
                    Some(disk) => Ok(disk),
                    None => self.read_secret(id, from)?,
                }
            }
        };
        // Cleared once the tokens are in the kubeconfigs (see `converge`):
        // a hook stopped before then leaves them to the next.
        if result.is_err() {
            recorded.credentials_stale = true;
        } else {
            recorded.credentials_secret = match wanted {
                CredentialsRef::Secret { id, .. } => Some(id.clone()),
                CredentialsRef::Tokens(_) => None,
            };
        }
        Ok(result)
    }

    /// The certificates with their private keys: the ones in the files this
    /// charm wrote while they are those the relation names, else the
    /// relation's (read again unless this hook has).
    pub(super) fn private_keys(
        &self,
        certs: &Certificates,
        fresh: &Fresh,
    ) -> Result<Result<Certificates, Problem>, Error> {
        let mut certs = certs.clone();
        let mut in_place = true;
        for (key, path) in [
            (&mut certs.server_key, daemons::SERVER_KEY),
            (&mut certs.client_key, CLIENT_KEY),
        ] {
            if !relations::is_fingerprint(key) {
                continue;
            }
            let disk = files::read_optional(&self.root.path(path))?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
            match disk {
                Some(text) if relations::secret_matches(key, &text) => *key = text,
                _ => in_place = false,
            }
        }
        if in_place {
            return Ok(Ok(certs));
        }
        let data = match &fresh.certificates {
            Some(data) => data.clone(),
            None => relations::read(self.tools, CERTIFICATES)?,
        };
        Ok(match relations::certificates(&data, &self.cert_name()) {
            Ok(Some(certs)) => Ok(certs),
            Ok(None) => Err(Problem::waiting("Waiting for certificates")),
            Err(malformed) => Err(Problem::blocked(malformed)),
        })
    }

    /// The tokens in secret `id` (named by unit `from`), at its latest
    /// revision. A secret this unit may not read, or that is gone, is
    /// something to wait for: the control plane grants and replaces them.
    /// Any other refusal is the relation's to mend: blocked, naming it.
    fn read_secret(&self, id: &str, from: &str) -> Result<Result<Credentials, Problem>, Error> {
        let waiting = |why: String| {
            Ok(Err(Problem::waiting(format!(
                "Waiting for credentials: {why}"
            ))))
        };
        let content = match self.tools.secret_get(id, true) {
            Ok(content) => content,
            Err(e) if e.code().is_some() => {
                let stderr = match &e {
                    charm::tools::ToolError::Exec(x) => x.stderr().trim().to_string(),
                    other => other.to_string(),
                };
                let why = stderr.strip_prefix("ERROR ").unwrap_or(&stderr);
                let why = charm::quote::bounded(why, 200);
                let source = format!("{KUBE_CONTROL} relation: secret-id from {from}");
                if e.code() == Some(1) {
                    return waiting(format!("cannot read secret {id} ({source}): {why}"));
                }
                return Ok(Err(Problem::blocked(format!(
                    "{source}: secret-get refused {id}: {why}"
                ))));
            }
            Err(e) => {
                return Err(Error::Tool {
                    doing: "reading the credentials secret",
                    source: e,
                })
            }
        };
        let get = |key: &str| content.get(key).filter(|v| !v.is_empty()).cloned();
        match (
            get("kubelet-token"),
            get("proxy-token"),
            get("client-token"),
        ) {
            (Some(kubelet_token), Some(proxy_token), Some(client_token)) => {
                for (key, token) in [
                    ("kubelet-token", &kubelet_token),
                    ("proxy-token", &proxy_token),
                    ("client-token", &client_token),
                ] {
                    if let Err(why) = crate::validate::token(token) {
                        // The tokens in place stay in force.
                        return Ok(Err(Problem::blocked(format!("secret {id}: {key} {why}"))));
                    }
                }
                Ok(Ok(Credentials {
                    kubelet_token,
                    proxy_token,
                    client_token,
                }))
            }
            _ => waiting(format!(
                "secret {id} lacks kubelet-token, proxy-token or client-token"
            )),
        }
    }
}
