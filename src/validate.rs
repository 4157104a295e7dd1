//! Checks of values that come from outside (relation data, secrets, config)
//! by their syntax, before they reach a flag, a file or a log line. Each
//! returns why a value is refused, quoting it escaped and bounded; tokens
//! and keys are never quoted.

use std::net::IpAddr;

/// The most characters of a value a message quotes.
const QUOTED: usize = 64;

/// `value` as a message may quote it: escaped (no newline or control
/// character reaches a status or a log line) and bounded.
pub fn quoted(value: &str) -> String {
    let escaped = format!("{value:?}");
    charm::quote::bounded(&escaped, QUOTED).into_owned()
}

/// A DNS name (RFC 1123): dot-separated labels of letters, digits and
/// hyphens, not starting or ending with a hyphen, each 1-63 characters,
/// 253 in all; one trailing dot allowed.
pub fn dns_name(value: &str) -> Result<(), String> {
    let name = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!("is not a DNS name: {}", quoted(value)))
    }
}

/// A TCP or UDP port, 1-65535.
pub fn port(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("is not a port number (1-65535): {}", quoted(value))),
    }
}

/// An IPv4 or IPv6 address.
pub fn ip(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("is not an IP address: {}", quoted(value)))
}

/// The longest token accepted: service-account JWTs are about 1 KiB.
pub const TOKEN_MAX: usize = 8 * 1024;

/// A bearer token: printable ASCII without spaces (what can go in an HTTP
/// header and a kubeconfig unquoted), at most [`TOKEN_MAX`] characters.
/// The token itself is never quoted.
pub fn token(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > TOKEN_MAX {
        return Err(format!(
            "is not a token ({} characters, at most {TOKEN_MAX})",
            value.len()
        ));
    }
    match value.chars().position(|c| !c.is_ascii_graphic()) {
        None => Ok(()),
        Some(at) => Err(format!(
            "is not a token (character {} is not printable ASCII)",
            at + 1
        )),
    }
}

/// What a PEM value must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pem {
    /// One or more X.509 certificates, each of which parses.
    Certificates,
    /// One private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// A PEM value that parses as the kind of object expected. Key material is
/// never quoted.
pub fn pem(value: &str, kind: Pem) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    match kind {
        Pem::Certificates => {
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(value.as_bytes()) {
                let cert = cert.map_err(|e| format!("is not PEM certificates ({e})"))?;
                webpki::EndEntityCert::try_from(&cert)
                    .map_err(|e| format!("holds a certificate that does not parse ({e})"))?;
                count += 1;
            }
            if count == 0 {
                return Err("holds no PEM certificate".into());
            }
            Ok(())
        }
        Pem::PrivateKey => PrivateKeyDer::from_pem_slice(value.as_bytes())
            .map(drop)
            .map_err(|_| "is not a PEM private key".into()),
    }
}

/// That `key_pem` is the private key of the first certificate in
/// `cert_pem` (both already checked with [`pem`]).
pub fn key_matches(cert_pem: &str, key_pem: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not PEM certificates ({e})"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| "is not a PEM private key".to_string())?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(certs, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("is not the private key of the certificate".into())
        }
        Err(e) => Err(format!("cannot be used with the certificate ({e})")),
    }
}

/// Comma-separated CIDRs (`10.0.0.0/8,fd00::/8`).
pub fn cidrs(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is empty".into());
    }
    for item in value.split(',').map(str::trim) {
        let ok = item.split_once('/').is_some_and(|(ip, len)| {
            match (ip.parse::<IpAddr>(), len.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(n)) => n <= 32,
                (Ok(IpAddr::V6(_)), Ok(n)) => n <= 128,
                _ => false,
            }
        });
        if !ok {
            return Err(format!("holds {} which is not a CIDR", quoted(item)));
        }
    }
    Ok(())
}

/// A container image reference: `[registry/]path[:tag][@digest]`.
pub fn image(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 512
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '@'))
        && !value.starts_with(['/', '.', '-', ':', '@']);
    if ok {
        Ok(())
    } else {
        Err(format!("is not an image reference: {}", quoted(value)))
    }
}

/// A URL the worker may call: https, with a host, nothing a flag or file
/// could be split on.
pub fn https_url(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("is not a URL: {}", quoted(value)));
    }
    match reqwest::Url::parse(value) {
        // The parser takes port 0, which no server listens on.
        Ok(u) if u.port() == Some(0) => {
            Err(format!("has a port outside 1-65535: {}", quoted(value)))
        }
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
            match u.domain() {
                Some(name) => dns_name(name)
                    .map_err(|_| format!("has a host that is not a DNS name: {}", quoted(value))),
                None => Ok(()),
            }
        }
        Ok(_) => Err(format!("is not an https URL: {}", quoted(value))),
        Err(e) => Err(format!("is not a URL: {} ({e})", quoted(value))),
    }
}

/// An image registry location: `host[:port][/path]`, as in an image name.
pub fn registry(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
        && !value.starts_with(['/', '.', '-'])
        && !value.contains("//");
    if ok {
        Ok(())
    } else {
        Err(format!("is not a registry location: {}", quoted(value)))
    }
}

/// A Juju secret URI as `secret-get` takes it (Juju's `secrets.ParseURI`):
/// `secret:<id>` or `secret://<model-uuid>/<id>`, the id a 20-character
/// xid (base32hex, lowercase).
pub fn secret_uri(value: &str) -> Result<(), String> {
    let xid = |id: &str| {
        id.len() == 20
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
    };
    let uuid = |u: &str| {
        let groups: Vec<&str> = u.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| {
                g.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            })
    };
    let ok = match value.strip_prefix("secret://") {
        Some(rest) => rest
            .split_once('/')
            .is_some_and(|(model, id)| uuid(model) && xid(id)),
        None => value.strip_prefix("secret:").is_some_and(xid),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("is not a Juju secret URI: {}", quoted(value)))
    }
}

/// A tag or file name a remote charm gives: letters, digits, `.`, `_`,
/// `-`, at most 253 characters, not starting with a dot.
pub fn simple_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("is not a simple name: {}", quoted(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["cluster.local", "cluster.local.", "a", "x-1.example.com"] {
            assert!(dns_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "cluster.local\n--v=9",
            "-a.b",
            "a-.b",
            "a..b",
            "a b",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(130)),
        ] {
            let why = dns_name(bad).unwrap_err();
            assert!(!why.contains('\n'), "{why:?}");
        }
        assert_eq!(
            dns_name("cluster.local\n--v=9").unwrap_err(),
            r#"is not a DNS name: "cluster.local\n--v=9""#
        );
    }

    #[test]
    fn ports() {
        assert_eq!(port("53"), Ok(53));
        assert_eq!(port("65535"), Ok(65535));
        for bad in ["0", "65536", "-1", "", "53x", "５３"] {
            assert!(port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_never_quoted() {
        assert!(token("admin::0123456789abcdefABCDEF").is_ok());
        assert!(token("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").is_ok());
        let why = token("secret\nvalue").unwrap_err();
        assert_eq!(why, "is not a token (character 7 is not printable ASCII)");
        assert!(token("with space").is_err());
        assert!(token("").is_err());
        let why = token(&"x".repeat(TOKEN_MAX + 1)).unwrap_err();
        assert!(!why.contains("xxx"), "{why}");
    }

    #[test]
    fn pems_parse_as_what_they_should_hold() {
        let pki = juju_sim::cluster::Pki::new();
        let ca = pki.ca_pem();
        assert!(pem(&ca, Pem::Certificates).is_ok());
        let (cert, key, _, _) = pki.issue(&["n1"]);
        assert!(pem(&cert, Pem::Certificates).is_ok());
        assert!(pem(&key, Pem::PrivateKey).is_ok());
        assert!(
            pem(&key, Pem::Certificates).is_err(),
            "a key is no certificate"
        );
        assert!(
            pem(&cert, Pem::PrivateKey).is_err(),
            "a certificate is no key"
        );
        let garbled = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
        assert!(pem(garbled, Pem::Certificates).is_err());
        assert!(pem("not pem at all", Pem::Certificates).is_err());
        let why = pem(
            "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
            Pem::PrivateKey,
        )
        .unwrap_err();
        assert!(!why.contains("!!"), "{why}");
    }

    #[test]
    fn urls_registries_and_names() {
        assert!(https_url("https://10.0.0.1:6443").is_ok());
        assert!(https_url("https://[fd00::1]:6443").is_ok());
        assert!(https_url("http://10.0.0.1:6443").is_err());
        assert!(https_url("https://10.0.0.1:6443\n--x").is_err());
        assert!(registry("rocks.canonical.com:443/cdk").is_ok());
        assert!(registry("registry.k8s.io").is_ok());
        assert!(registry("rocks.canonical.com/cdk --flag").is_err());
        assert!(registry("").is_err());
        assert!(simple_name("10-flannel.conflist").is_ok());
        assert!(simple_name("k8s-cluster-1").is_ok());
        assert!(simple_name("../etc/passwd").is_err());
        assert!(simple_name("a/b").is_err());
    }

    #[test]
    fn long_values_are_quoted_short() {
        let why = dns_name(&"x".repeat(100_000)).unwrap_err();
        assert!(why.len() < 120, "{}", why.len());
    }

    #[test]
    fn urls_are_bounded_like_what_reads_them() {
        assert!(https_url("https://10.0.0.1:6443").is_ok());
        assert!(https_url("https://[fd00::1]:6443").is_ok());
        assert!(https_url("https://api.example.com").is_ok());
        for bad in [
            "https://10.0.0.1:0",
            "https://10.0.0.1:65536",
            "https://10.0.0.1:99999999",
            "https://api.example.com:0/",
        ] {
            assert!(https_url(bad).is_err(), "{bad}");
        }
        let long_label = format!("https://{}.example.com:6443", "a".repeat(64));
        assert!(https_url(&long_label).is_err());
        let long_name = format!("https://{}:6443", ["abc"; 100].join("."));
        assert!(https_url(&long_name)
            .unwrap_err()
            .contains("not a DNS name"));
    }
}
