//! The machine's names: its host name, and its fully qualified domain name
//! as Python's `socket.getfqdn()` finds it (what Python charms name things
//! after).
//!
//! The FQDN is asked of the machine's own C library through `getent`,
//! which every Debian and Ubuntu machine has (libc-bin): a static binary
//! carries a resolver of its own that knows neither the machine's NSS
//! modules (systemd-resolved's, LDAP's) nor, for a static glibc, any module
//! at all. `getent` also puts a deadline on a lookup, which an in-process
//! resolver call cannot have.

use crate::exec::{self, deadline, ExecError};

/// The kernel's host name (`uname -n`), as it is.
pub fn hostname() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `socket.getfqdn()` for this machine: the host name's first address
/// (`getaddrinfo`), then that address's names (`gethostbyaddr`): the
/// first that has a dot, canonical name first, else the host name. As
/// there, a name or address the resolver does not know gives the host
/// name. `Err` only when `getent` could not be run or did not answer in
/// time: a machine that cannot say is not one to guess about.
pub fn fqdn() -> Result<String, ExecError> {
    let host = hostname();
    let Some(address) = lookup(&["ahosts", &host])?.and_then(|out| first_address(&out)) else {
        return Ok(host);
    };
    let names = lookup(&["hosts", &address])?
        .map(|out| names_of(&out))
        .unwrap_or_default();
    Ok(pick(&host, &names))
}

/// Why the machine's addresses could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AddressesError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("ip -j -br addr show scope global printed what is not its JSON: {0}")]
    Output(serde_json::Error),
}

/// The addresses of global scope of this machine's interfaces whose
/// operational state is UP, as `ip -j -br addr show scope global` lists
/// them, skipping interfaces whose names start with one of `skip`: the
/// command and the rule of today's charms (`kubernetes_snaps.
/// get_bind_addresses`). Asked of iproute2 rather than of the kernel
/// directly so that a simulated machine can answer for itself.
pub fn global_addresses(skip: &[&str]) -> Result<Vec<String>, AddressesError> {
    let args = ["-j", "-br", "addr", "show", "scope", "global"];
    let out = exec::run("ip", &args, None, deadline::QUERY)?;
    parse_global_addresses(&out.stdout, skip)
}

/// [`global_addresses`] from `ip`'s output, each address once.
pub fn parse_global_addresses(json: &[u8], skip: &[&str]) -> Result<Vec<String>, AddressesError> {
    #[derive(serde::Deserialize)]
    struct Link {
        ifname: String,
        operstate: String,
        #[serde(default)]
        addr_info: Vec<Address>,
    }
    // iproute2 prints `{}` for an address of a listed interface that the
    // scope filter left out.
    #[derive(serde::Deserialize)]
    struct Address {
        local: Option<String>,
    }
    let links: Vec<Link> = serde_json::from_slice(json).map_err(AddressesError::Output)?;
    let mut addresses: Vec<String> = Vec::new();
    for link in links {
        if !link.operstate.eq_ignore_ascii_case("up")
            || skip.iter().any(|p| link.ifname.starts_with(p))
        {
            continue;
        }
        for local in link.addr_info.into_iter().filter_map(|a| a.local) {
            if let Ok(ip) = local.parse::<std::net::IpAddr>() {
                if !addresses.contains(&ip.to_string()) {
                    addresses.push(ip.to_string());
                }
            }
        }
    }
    Ok(addresses)
}

/// `getent`'s answer, or `None` when the key is not found (exit 2).
fn lookup(args: &[&str]) -> Result<Option<String>, ExecError> {
    match exec::run("getent", args, None, deadline::LOOKUP) {
        Ok(out) => Ok(Some(out.stdout_str())),
        Err(e) if e.code() == Some(2) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The first address `getent ahosts` lists (`<address> <socktype>
/// [<canonical name>]` per line, in getaddrinfo's order).
fn first_address(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|a| a.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
}

/// The names `getent hosts <address>` gives (`<address> <name>
/// [<alias>...]`): the canonical name, then the aliases.
fn names_of(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .unwrap_or_default()
}

fn pick(host: &str, names: &[String]) -> String {
    names
        .iter()
        .find(|n| n.contains('.'))
        .or(names.first())
        .cloned()
        .unwrap_or_else(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses_are_read_as_today_s_charms_read_them() {
        // iproute2 6.1's own output on a machine with a veth pair, a down
        // interface and LXD's bridge.
        let out = br#"[{"ifname":"ifb0","operstate":"DOWN","addr_info":[]},{"ifname":"eth0","operstate":"UP","addr_info":[{"local":"192.0.2.2","prefixlen":24},{"local":"fd00::2","prefixlen":64},{}]},{"link":"kwtest1","ifname":"kwtest0","operstate":"UP","addr_info":[{"local":"198.51.100.7","prefixlen":24},{}]},{"ifname":"lxdbr0","operstate":"UP","addr_info":[{"local":"10.10.0.1","prefixlen":24}]},{"ifname":"wg0","operstate":"UNKNOWN","addr_info":[{"local":"10.9.0.1","prefixlen":32}]}]"#;
        assert_eq!(
            parse_global_addresses(out, &["lxdbr"]).unwrap(),
            ["192.0.2.2", "fd00::2", "198.51.100.7"]
        );
        assert_eq!(
            parse_global_addresses(b"[]", &[]).unwrap(),
            Vec::<String>::new()
        );
        let err = parse_global_addresses(b"Object \"addr\" is unknown", &[]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("ip -j -br addr show scope global printed"));
    }

    #[test]
    fn getent_answers_are_read_as_getfqdn_reads_its_own() {
        let ahosts = "172.31.1.2      STREAM ip-172-31-1-2\n172.31.1.2      DGRAM  \n172.31.1.2      RAW    \n";
        assert_eq!(first_address(ahosts).as_deref(), Some("172.31.1.2"));
        let v6 = "fd00::5         STREAM h\n";
        assert_eq!(first_address(v6).as_deref(), Some("fd00::5"));
        assert_eq!(first_address(""), None);
        let hosts = "172.31.1.2      ip-172-31-1-2.ec2.internal\n";
        let names = names_of(hosts);
        assert_eq!(pick("ip-172-31-1-2", &names), "ip-172-31-1-2.ec2.internal");
        // The canonical name without a dot, an alias with one: the alias.
        let names = names_of("127.0.1.1 box box.example.com other\n");
        assert_eq!(pick("box", &names), "box.example.com");
        // No name with a dot: the canonical name, as getfqdn returns it.
        let names = names_of("127.0.1.1 box other\n");
        assert_eq!(pick("BOX", &names), "box");
        assert_eq!(pick("BOX", &[]), "BOX");
    }
}
