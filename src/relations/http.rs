//! `kube-api-endpoint` (interface http): the API server URLs the 2017
//! masters sent.

use super::{check_url, malformed, EndpointData, Malformed, KUBE_API_ENDPOINT};
use crate::validate;

/// `https://<host>:<port>` for every unit of the http relation.
pub fn api_urls_from_http(data: &EndpointData) -> Result<Vec<String>, Malformed> {
    let mut urls = Vec::new();
    for (unit, bag) in data.bags() {
        let host = bag
            .get("hostname")
            .filter(|h| !h.is_empty())
            .or_else(|| bag.get("private-address"));
        let (Some(host), Some(port)) = (host, bag.get("port")) else {
            continue;
        };
        let port =
            validate::port(port).map_err(|why| malformed(KUBE_API_ENDPOINT, unit, "port", why))?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(malformed(
                KUBE_API_ENDPOINT,
                unit,
                "hostname",
                format!("is not a host name: {}", validate::quoted(host)),
            ));
        }
        // An IPv6 literal needs brackets in a URL.
        let url = match host.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => format!("https://[{ip}]:{port}"),
            Err(_) => format!("https://{host}:{port}"),
        };
        check_url(&url).map_err(|why| malformed(KUBE_API_ENDPOINT, unit, "hostname", why))?;
        urls.push(url);
    }
    urls.sort();
    urls.dedup();
    Ok(urls)
}
