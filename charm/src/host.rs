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

/// The addresses of global scope (no loopback, no link-local) of this
/// machine's interfaces whose operational state is up, as `ip -br addr
/// show scope global` lists them (the kernel's `operstate`, which an
/// interface without a carrier or of unknown state does not have);
/// interfaces whose names start with one of `skip` are left out.
pub fn global_addresses(skip: &[&str]) -> Vec<String> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let operstate_up = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/operstate"))
            .is_ok_and(|s| s.trim() == "up")
    };
    let mut addresses = Vec::new();
    for ifa in all {
        if skip.iter().any(|p| ifa.interface_name.starts_with(p))
            || ifa.interface_name.contains('/')
            || !operstate_up(&ifa.interface_name)
        {
            continue;
        }
        let Some(address) = ifa.address else { continue };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            std::net::IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            std::net::IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let global = match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        };
        if global && !addresses.contains(&ip.to_string()) {
            addresses.push(ip.to_string());
        }
    }
    addresses
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
