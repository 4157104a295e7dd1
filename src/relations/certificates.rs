//! `certificates` (interface tls-certificates): the CA, the server and
//! client certificates and their keys; and the cache's copy without keys.

use super::{is_fingerprint, malformed, secret_fingerprint, EndpointData, Malformed, CERTIFICATES};
use crate::validate;

/// The certificates relation as read, kept as the charm may keep it: every
/// private key (this unit's and the others' the CA lists) replaced by its
/// fingerprint. Keys live only in the 0600 files under /root/cdk. One that
/// does not parse (a value that only looks like a fingerprint included)
/// becomes a value that still does not, so it is reported as before.
pub fn redact_keys(read: &EndpointData) -> EndpointData {
    let mut data = read.clone();
    for units in data.relations.values_mut() {
        for bag in units.values_mut() {
            for (key, v) in bag.iter_mut() {
                if !key.ends_with(".key") || v.is_empty() {
                    continue;
                }
                *v = match validate::pem(v, validate::Pem::PrivateKey) {
                    Ok(()) => secret_fingerprint(v),
                    Err(_) => format!("{UNPARSABLE}{}", secret_fingerprint(v)),
                };
            }
        }
    }
    data
}

/// What stands for a private key that does not parse, in the cache.
const UNPARSABLE: &str = "unparsable ";

/// What the certificate authority gave this unit. Read from the cache,
/// each private key is its fingerprint (see [`redact_keys`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificates {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys never in a log line, whatever prints it.
        f.debug_struct("Certificates")
            .field("ca", &self.ca)
            .field("server_cert", &self.server_cert)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

/// Reads tls-certificates for `cert_name` (`kubernetes-worker_0`), as read
/// from the relation. `None` until all five are published.
pub fn certificates(
    data: &EndpointData,
    cert_name: &str,
) -> Result<Option<Certificates>, Malformed> {
    certificates_in(data, cert_name, false)
}

/// The same from the cache ([`redact_keys`]): each key is its fingerprint,
/// checked before it was replaced.
pub fn cached_certificates(
    data: &EndpointData,
    cert_name: &str,
) -> Result<Option<Certificates>, Malformed> {
    certificates_in(data, cert_name, true)
}

fn certificates_in(
    data: &EndpointData,
    cert_name: &str,
    cached: bool,
) -> Result<Option<Certificates>, Malformed> {
    for (unit, bag) in data.bags() {
        let server_cert_key = format!("{cert_name}.server.cert");
        let server_key_key = format!("{cert_name}.server.key");
        let keys = [
            "ca",
            "client.cert",
            "client.key",
            &server_cert_key,
            &server_key_key,
        ];
        let values: Vec<&String> = keys
            .iter()
            .filter_map(|k| bag.get(*k).filter(|v| !v.is_empty()))
            .collect();
        if values.len() < keys.len() {
            continue;
        }
        for (key, value) in keys.iter().zip(&values) {
            let kind = if key.ends_with(".key") {
                if cached && is_fingerprint(value) {
                    continue;
                }
                validate::Pem::PrivateKey
            } else {
                validate::Pem::Certificates
            };
            validate::pem(value, kind).map_err(|why| malformed(CERTIFICATES, unit, key, why))?;
        }
        return Ok(Some(Certificates {
            ca: values[0].clone(),
            client_cert: values[1].clone(),
            client_key: values[2].clone(),
            server_cert: values[3].clone(),
            server_key: values[4].clone(),
        }));
    }
    Ok(None)
}
